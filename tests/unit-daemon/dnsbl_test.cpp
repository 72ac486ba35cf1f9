// The Controller's DNSBL half (daemon/dnsbl.cpp), fed answers as the resolver's thread
// would post them: who holds the address, the tenure rule, events and tickets, the
// signal, quarantine egress, errors that change nothing, ip check, vm show, and a
// restart that charges nothing twice.
#include "fixture.h"

namespace sgt {
namespace {

constexpr const char* kX = "203.0.113.10";
constexpr const char* kY = "203.0.113.20";
constexpr const char* kQ = "198.51.100.25";

IpPrefix ip(const char* s) {
    auto r = IpPrefix::parse(s);
    return *r;
}

class DnsblControllerTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        dnsbl.zones = {{"z.test", false}};
        dnsbl.resolver = Endpoint{ip("127.0.0.1"), 53};
        dnsbl.interval_s = 2;
    }
    static json two(const char* a, const char* b) {
        return policy({vm("a", {{"tenant", "acme"}, {"addresses", {a}}}), vm("b", {{"tenant", "beta"}, {"addresses", {b}}})},
                      {{"proxy", {{"address", {"192.0.2.10:25"}}, {"egress", {kQ}}}}});
    }
    void answer(const char* addr, dnsbl::Answer a) { ctl->dnsbl_answer({ip(addr), "z.test"}, a); }
    void listed(const char* addr) {
        dnsbl::Answer a;
        a.status = dnsbl::Answer::Status::Ok;
        a.a = {"127.0.0.2"};
        a.txt = {"spam from " + std::string(addr)};
        answer(addr, a);
    }
    void clean(const char* addr) {
        dnsbl::Answer a;
        a.status = dnsbl::Answer::Status::NxDomain;
        answer(addr, a);
    }
    double score(const char* id) { return call({{"cmd", "vm.show"}, {"id", id}})["score"].get<double>(); }
    size_t heard_of(const std::string& type) {
        return static_cast<size_t>(std::count_if(heard.begin(), heard.end(), [&](const TierChange& c) { return c.event.type == type; }));
    }
    bool tainted(const char* addr) { return call({{"cmd", "ip.check"}, {"addr", addr}})["tainted"].get<bool>(); }
};

TEST_F(DnsblControllerTest, AListingDuringTheTenureChargesTheHolderOnce) {
    start(two(kX, kY));
    EXPECT_EQ(ctl->dnsbl_lookups().size(), 5u);  // X, Y, the quarantine egress Q, 127.0.0.1 and .2
    clean(kX);
    clean(kY);
    EXPECT_EQ(heard_of("dnsbl_listed"), 0u);
    listed(kX);
    ASSERT_EQ(heard_of("dnsbl_listed"), 1u);
    const TierChange& ch = heard.back().event.type == "dnsbl_listed" ? heard.back() : heard[heard.size() - 2];
    EXPECT_TRUE(ch.ticket);
    EXPECT_EQ(ch.event.vm, "a");
    EXPECT_EQ(ch.event.evidence["zone"], "z.test");
    EXPECT_EQ(ch.event.evidence["reason"], "spam from 203.0.113.10");
    EXPECT_EQ(ch.event.evidence["charged"], true);
    EXPECT_EQ(score("a"), 500);  // the default dnsbl_listing weight
    EXPECT_EQ(score("b"), 0);
    EXPECT_TRUE(tainted(kX));
    EXPECT_FALSE(tainted(kY));
    json a = call({{"cmd", "vm.show"}, {"id", "a"}});
    ASSERT_EQ(a["dnsbl"].size(), 1u);
    EXPECT_EQ(a["dnsbl"][0]["zone"], "z.test");
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "b"}})["dnsbl"], json::array());
    EXPECT_EQ(ctl->dnsbl_counts().at({"z.test", "vm"}), 1u);

    // errors change nothing
    for (auto [status, quads] : std::vector<std::pair<dnsbl::Answer::Status, std::vector<std::string>>>{
             {dnsbl::Answer::Status::ServFail, {}},
             {dnsbl::Answer::Status::Timeout, {}},
             {dnsbl::Answer::Status::Ok, {"127.255.255.254"}},
             {dnsbl::Answer::Status::Ok, {"198.51.100.80"}}}) {
        dnsbl::Answer e;
        e.status = status;
        e.a = quads;
        answer(kX, e);
        answer(kY, e);
    }
    EXPECT_EQ(heard_of("dnsbl_listed"), 1u);
    EXPECT_EQ(heard_of("dnsbl_delisted"), 0u);
    EXPECT_EQ(score("a"), 500);

    // a restart: the listing is known, nothing charged twice
    restart();
    listed(kX);
    EXPECT_EQ(heard_of("dnsbl_listed"), 1u);
    EXPECT_EQ(score("a"), 500);
    clean(kX);
    EXPECT_EQ(heard_of("dnsbl_delisted"), 1u);
    EXPECT_TRUE(tainted(kX));  // listed within address_taint_days
    clock.advance_s(91 * 86400.0);
    EXPECT_FALSE(tainted(kX));
}

TEST_F(DnsblControllerTest, AListingThatPredatesTheHolderOrIsQuarantineChargesNobody) {
    start(two(kX, kY));
    listed(kQ);  // the quarantine egress: expected
    ASSERT_EQ(heard_of("dnsbl_listed"), 1u);
    EXPECT_EQ(heard.back().event.evidence["holder"], "quarantine");
    EXPECT_FALSE(heard.back().ticket);  // expected there
    EXPECT_EQ(heard.back().event.vm, "");
    EXPECT_EQ(ctl->dnsbl_counts().at({"z.test", "quarantine"}), 1u);
    listed(kY);  // the first lookup: already listed, not b's doing
    EXPECT_EQ(heard.back().event.evidence["predates_holder"], true);
    EXPECT_EQ(score("b"), 0);
    // X was clean under a; moved to b and found listed: predates b, charges nobody
    clean(kX);
    ASSERT_TRUE(apply(two(kY, kX)).value("ok", false));
    listed(kX);
    EXPECT_EQ(heard.back().event.type, "dnsbl_listed");
    EXPECT_EQ(heard.back().event.vm, "b");
    EXPECT_EQ(heard.back().event.evidence["charged"], false);
    EXPECT_EQ(heard.back().event.evidence["previous_holder"], "vm:a");
    EXPECT_NE(heard.back().event.reason.find("predates the current holder b"), std::string::npos) << heard.back().event.reason;
    EXPECT_EQ(score("a"), 0);
    EXPECT_EQ(score("b"), 0);
    EXPECT_TRUE(tainted(kX));
    // addresses no longer governed (X, and Q without a proxy): their listings end, they
    // are looked up no more; Y stays listed
    ASSERT_TRUE(apply(policy({vm("a", {{"addresses", {kY}}})})).value("ok", false));
    EXPECT_EQ(ctl->dnsbl_lookups().size(), 3u);
    EXPECT_EQ(ctl->dnsbl_counts(), (std::map<std::pair<std::string, std::string>, size_t>{{{"z.test", "vm"}, 1}}));
    EXPECT_TRUE(tainted(kX));  // ended now: within the window
}

// In a fleet the listing's record carries the day it was last seen listed: a lookup that
// sees it again on a new day hands the agent a new state, one on the same day does not.
TEST_F(DnsblControllerTest, AListingSeenAgainOnANewDayReachesTheFleetRecord) {
    fleet_host = "hv";
    clock.step_wall_ms(86'400'000 - clock.wall_ms() % 86'400'000 + 43'200'000);  // noon, UTC
    start(two(kX, kY));
    clean(kX);
    listed(kX);
    auto first = ctl->fleet_tick().addresses;
    ASSERT_TRUE(first);
    const int64_t day0 = first->listings.states().at({ip(kX), "z.test"}).checked_unix / 86400;
    EXPECT_FALSE(ctl->fleet_tick().addresses);  // nothing new
    clock.advance_ms(60'000);
    listed(kX);  // the same day
    EXPECT_FALSE(ctl->fleet_tick().addresses);
    clock.advance_ms(86'400'000);
    listed(kX);  // a new day
    auto again = ctl->fleet_tick().addresses;
    ASSERT_TRUE(again);
    EXPECT_EQ(again->listings.states().at({ip(kX), "z.test"}).checked_unix / 86400, day0 + 1);
    EXPECT_EQ(heard_of("dnsbl_listed"), 1u);  // announced once
}

TEST_F(DnsblControllerTest, ATestEntryGatesItsZone) {
    start(two(kX, kY));
    clean(kX);
    clean(kY);
    listed("127.0.0.2");
    clean("127.0.0.1");
    listed(kX);  // believed: the zone behaves
    EXPECT_EQ(heard_of("dnsbl_listed"), 1u);
    EXPECT_EQ(score("a"), 500);
    // the zone starts to list the world: no listing is believed, nobody charged
    listed("127.0.0.1");
    listed(kY);
    EXPECT_EQ(heard_of("dnsbl_listed"), 1u);
    EXPECT_EQ(score("b"), 0);
    // ... and it stops: listings count again
    clean("127.0.0.1");
    listed(kY);
    EXPECT_EQ(heard_of("dnsbl_listed"), 2u);
    // the zone's answers stop reaching us (NXDOMAIN for its 127.0.0.2): no delisting
    clean("127.0.0.2");
    clean(kX);
    clean(kY);
    EXPECT_EQ(heard_of("dnsbl_delisted"), 0u);
    EXPECT_EQ(ctl->dnsbl_counts().at({"z.test", "vm"}), 2u);
    listed("127.0.0.2");
    clean(kX);
    EXPECT_EQ(heard_of("dnsbl_delisted"), 1u);
}

}  // namespace
}  // namespace sgt
