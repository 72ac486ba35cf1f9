// DNSBL monitoring's pure logic (core/dnsbl*.h): config, query names, which addresses,
// what an answer means, the scheduler's pace, and the listing state machine with its
// tenure rule and persistence.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/dnsbl.h"
#include "core/dnsbl_listings.h"
#include "core/dnsbl_schedule.h"

namespace smtpgov::dnsbl {
namespace {

using nlohmann::json;

IpPrefix ip(const char* s) {
    auto r = IpPrefix::parse(s);
    return *r;
}

TEST(DnsblOptions, DefaultsAndZones) {
    auto o = parse_options(json::parse(R"({"zones": ["ZEN.spamhaus.org.", {"zone": "v6.example", "ipv6": true}],
                                           "resolver": "127.0.0.1:53"})"));
    ASSERT_TRUE(o) << o.error().message;
    EXPECT_EQ(o->zones, (std::vector<Zone>{{"zen.spamhaus.org", false}, {"v6.example", true}}));
    EXPECT_EQ(o->resolver->to_string(), "127.0.0.1:53");
    EXPECT_EQ(o->interval_s, 3600u);
    EXPECT_EQ(o->queries_per_s, 10u);
    EXPECT_EQ(o->max_per_prefix, 256u);
    EXPECT_FALSE(parse_options(json::object())->enabled());
    EXPECT_TRUE(parse_options(json::parse(R"({"zones": ["a.example"], "resolver": "[::1]:5353"})")));
}

TEST(DnsblOptions, EveryBadInputNamesItsKey) {
    const std::vector<std::pair<const char*, const char*>> cases{
        {R"([])", "dnsbl: must be an object"},
        {R"({"zones": ["a.example"]})", "dnsbl/resolver: required"},
        {R"({"zones": [], "resolver": "127.0.0.1:53"})", "dnsbl/zones: required"},
        {R"({"zones": ["a..example"], "resolver": "127.0.0.1:53"})", "dnsbl/zones/0: "},
        {R"({"zones": ["a.example", "A.example"], "resolver": "127.0.0.1:53"})", "dnsbl/zones/1: "},
        {R"({"zones": [{"zone": "a.example", "ipv6": "yes"}], "resolver": "127.0.0.1:53"})", "dnsbl/zones/0/ipv6"},
        {R"({"zones": [{"name": "a.example"}], "resolver": "127.0.0.1:53"})", "dnsbl/zones/0/name: unknown key"},
        {R"({"zones": [7], "resolver": "127.0.0.1:53"})", "dnsbl/zones/0: must be"},
        {R"({"zones": ["a.example"], "resolver": "localhost:53"})", "dnsbl/resolver: must be ADDR:PORT"},
        {R"({"zones": ["a.example"], "resolver": "127.0.0.1"})", "dnsbl/resolver: must be ADDR:PORT"},
        {R"({"zones": ["a.example"], "resolver": "127.0.0.1:53", "interval_s": 0})", "dnsbl/interval_s: must be"},
        {R"({"zones": ["a.example"], "resolver": "127.0.0.1:53", "queries_per_s": -1})", "dnsbl/queries_per_s"},
        {R"({"zones": ["a.example"], "resolver": "127.0.0.1:53", "max_per_prefix": 1.5})", "dnsbl/max_per_prefix"},
        {R"({"zones": ["a.example"], "resolver": "127.0.0.1:53", "intervall_s": 5})", "dnsbl/intervall_s: unknown key"},
    };
    for (const auto& [doc, want] : cases) {
        auto o = parse_options(json::parse(doc));
        ASSERT_FALSE(o) << doc;
        EXPECT_NE(o.error().message.find(want), std::string::npos) << doc << " -> " << o.error().message;
    }
}

TEST(DnsblNames, ReversedOctetsAndNibbles) {
    const Zone v4{"zen.spamhaus.org", false}, v6{"v6.example", true};
    EXPECT_EQ(query_name(ip("203.0.113.7"), v4), "7.113.0.203.zen.spamhaus.org");
    EXPECT_EQ(query_name(ip("2001:db8::1"), v6),
              "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.v6.example");
    EXPECT_EQ(query_name(ip("2001:db8::1"), v4), std::nullopt);  // an IPv4-only zone
    EXPECT_EQ(query_name(ip("203.0.113.0/24"), v4), std::nullopt);
}

TEST(DnsblLookups, HostsAndPrefixesBounded) {
    EXPECT_EQ(hosts_of(ip("203.0.113.7"), 256), std::vector<IpPrefix>{ip("203.0.113.7")});
    auto h = hosts_of(ip("198.51.100.0/30"), 256);
    EXPECT_EQ(h, (std::vector<IpPrefix>{ip("198.51.100.0"), ip("198.51.100.1"), ip("198.51.100.2"), ip("198.51.100.3")}));
    auto carry = hosts_of(ip("10.0.0.0/16"), 300);
    ASSERT_EQ(carry.size(), 300u);
    EXPECT_EQ(carry[256], ip("10.0.1.0"));
    EXPECT_EQ(hosts_of(ip("2001:db8::/64"), 256).size(), 256u);
    const std::vector<Zone> zones{{"a.example", false}, {"b.example", true}};
    auto l = lookups_of({ip("203.0.113.7"), ip("2001:db8::/120"), ip("203.0.113.7")}, zones, 2);
    // the v4 host in both zones (once), two v6 hosts in b only
    EXPECT_EQ(l.size(), 4u);
    EXPECT_EQ(std::count_if(l.begin(), l.end(), [](const Lookup& x) { return x.zone == "a.example"; }), 1);
}

Answer ok(std::vector<std::string> a, std::vector<std::string> txt = {}) {
    Answer x;
    x.status = Answer::Status::Ok;
    x.a = std::move(a);
    x.txt = std::move(txt);
    return x;
}

Answer status(Answer::Status s) {
    Answer x;
    x.status = s;
    x.detail = "test";
    return x;
}

TEST(DnsblClassify, OnlyLoopbackAnswersAreListings) {
    auto listed = classify(ok({"127.0.0.2", "127.0.0.10"}, {"https://www.spamhaus.org/query/ip/203.0.113.7"}));
    EXPECT_EQ(listed.kind, Kind::Listed);
    EXPECT_EQ(listed.codes, (std::vector<std::string>{"127.0.0.10", "127.0.0.2"}));
    EXPECT_EQ(listed.reason, "https://www.spamhaus.org/query/ip/203.0.113.7");
    EXPECT_EQ(classify(status(Answer::Status::NxDomain)).kind, Kind::NotListed);
    // Spamhaus' error codes: never a listing, and said plainly
    for (const char* code : {"127.255.255.252", "127.255.255.254", "127.255.255.255"}) {
        auto v = classify(ok({code}));
        EXPECT_EQ(v.kind, Kind::Error) << code;
        EXPECT_TRUE(v.list_refuses) << code;
        EXPECT_NE(v.error.find("the list refuses this resolver"), std::string::npos);
        EXPECT_EQ(v.label, "list_refuses");
    }
    EXPECT_EQ(classify(ok({"127.0.0.2", "127.255.255.254"})).kind, Kind::Error);  // mixed: refused
    // an NXDOMAIN-rewriting resolver (or a forger) answers with a web server's address
    auto hijack = classify(ok({"198.51.100.80"}));
    EXPECT_EQ(hijack.kind, Kind::Error);
    EXPECT_EQ(hijack.label, "outside_127");
    EXPECT_EQ(classify(ok({"127.0.0.2", "10.0.0.1"})).kind, Kind::Error);
    EXPECT_EQ(classify(ok({"not an address"})).kind, Kind::Error);
    EXPECT_EQ(classify(ok({})).kind, Kind::Error);
    for (auto s : {Answer::Status::NoData, Answer::Status::ServFail, Answer::Status::Refused, Answer::Status::Timeout,
                   Answer::Status::Malformed, Answer::Status::Unreachable,
                   Answer::Status::Other})
        EXPECT_EQ(classify(status(s)).kind, Kind::Error);
    for (auto s : {Answer::Status::ServFail, Answer::Status::Timeout, Answer::Status::Unreachable}) {
        const std::string label = classify(status(s)).label;
        EXPECT_NE(std::find(result_labels().begin(), result_labels().end(), label), result_labels().end()) << label;
    }
}

TEST(DnsblClassify, AZoneThatListsTheWorldIsNotBelieved) {
    Answer a = ok({"127.0.0.2"});
    a.control = Answer::Status::NxDomain;  // 127.0.0.1 not listed: as RFC 5782 says
    EXPECT_EQ(classify(a).kind, Kind::Listed);
    a.control = Answer::Status::Ok;
    a.control_a = {"127.0.0.2"};  // 127.0.0.1 listed: the zone lists everything
    EXPECT_EQ(classify(a).kind, Kind::Error);
    EXPECT_EQ(classify(a).label, "lists_the_world");
    a.control = Answer::Status::Timeout;  // could not check: not believed now
    EXPECT_EQ(classify(a).kind, Kind::Error);
    // the periodic test entries gate their zone
    ZoneCheck z;
    EXPECT_EQ(gated(classify(ok({"127.0.0.2"})), z).kind, Kind::Listed);  // unknown: gates nothing
    note_test_answer(z, ip("127.0.0.1"), classify(ok({"127.0.0.2"})));
    EXPECT_EQ(gated(classify(ok({"127.0.0.2"})), z).label, "lists_the_world");
    note_test_answer(z, ip("127.0.0.1"), classify(status(Answer::Status::ServFail)));  // an error says nothing
    EXPECT_EQ(gated(classify(ok({"127.0.0.2"})), z).kind, Kind::Error);
    note_test_answer(z, ip("127.0.0.1"), classify(status(Answer::Status::NxDomain)));
    EXPECT_EQ(gated(classify(ok({"127.0.0.2"})), z).kind, Kind::Listed);
    note_test_answer(z, ip("127.0.0.2"), classify(status(Answer::Status::NxDomain)));
    EXPECT_EQ(gated(classify(status(Answer::Status::NxDomain)), z).label, "test_entry_missing");
    EXPECT_TRUE(is_test_entry(ip("127.0.0.1")));
    EXPECT_FALSE(is_test_entry(ip("127.0.0.3")));
    EXPECT_EQ(test_lookups({{"a.example", false}}).size(), 2u);
    EXPECT_EQ(query_name(test_lookups({{"a.example", false}})[0].address, {"a.example", false}), "1.0.0.127.a.example");
}

TEST(DnsblScheduler, PacedAtTheRateAndOncePerInterval) {
    Scheduler s(10, 4);  // every lookup once per 10 s, at most 4 queries a second
    std::vector<Lookup> all;
    for (int i = 0; i < 20; ++i) all.push_back({ip(("192.0.2." + std::to_string(i)).c_str()), "a.example"});
    s.set_lookups(all, 0);
    std::map<Lookup, std::vector<int64_t>> seen;
    std::vector<int64_t> times;
    for (int64_t t = 0; t < 40'000; t += 10) {
        while (auto l = s.next(t)) {
            times.push_back(t);
            seen[*l].push_back(t);
            s.done(*l, true, 0, t);
        }
    }
    // the first round spread over the first interval (pacing may push it by 20 x 250 ms),
    // then once per 10 s each
    ASSERT_EQ(seen.size(), 20u);
    for (const auto& [l, ts] : seen) {
        EXPECT_LT(ts.front(), 15'000) << l.address.to_string();
        ASSERT_GE(ts.size(), 3u) << l.address.to_string();
        for (size_t i = 1; i < ts.size(); ++i) {
            EXPECT_GE(ts[i] - ts[i - 1], 10'000);
            EXPECT_LE(ts[i] - ts[i - 1], 15'000);
        }
    }
    for (size_t i = 4; i < times.size(); ++i) EXPECT_GE(times[i] - times[i - 4], 1000) << "more than 4 queries in 1 s";
}

TEST(DnsblScheduler, RateStretchesTheIntervalInFlightAndErrors) {
    Scheduler s(1, 2);
    std::vector<Lookup> all;
    for (int i = 0; i < 10; ++i) all.push_back({ip(("192.0.2." + std::to_string(i)).c_str()), "a.example"});
    s.set_lookups(all, 0);
    int n = 0;
    for (int64_t t = 0; t < 10'000; t += 1)
        while (auto l = s.next(t)) ++n;  // never done: each handed out once only
    EXPECT_EQ(n, 10);
    EXPECT_EQ(s.in_flight(), 10u);
    EXPECT_EQ(s.next(100'000), std::nullopt);
    s.done(all[0], false, 0, 10'000);  // an error: tried again after min(interval, 5 min)
    EXPECT_EQ(s.next(10'999), std::nullopt);
    EXPECT_EQ(s.next(11'000), all[0]);
    s.done(all[0], true, 7200, 11'000);  // a TTL of 2 h keeps the answer past the interval
    EXPECT_EQ(*s.wake_at(11'001), 11'000 + 7'200'000);
    s.spend(11'000);  // a TXT query: the next query waits its turn
    s.set_lookups({all[1]}, 11'000);  // the rest dropped, answers in flight ignored
    s.done(all[2], true, 0, 11'000);
    EXPECT_EQ(s.size() + s.in_flight(), 1u);
}

const Lookup kX{ip("203.0.113.7"), "zen.example"};
const Holder kA{Holder::Kind::Vm, "a", "acme"}, kB{Holder::Kind::Vm, "b", "beta"};

Verdict listed_v() { return classify(ok({"127.0.0.2"}, {"spam source"})); }
Verdict clean_v() { return classify(status(Answer::Status::NxDomain)); }
Verdict error_v() { return classify(status(Answer::Status::ServFail)); }

TEST(DnsblListings, AListingDuringTheTenureIsCharged) {
    Listings l;
    EXPECT_EQ(l.apply(kX, kA, clean_v(), 100).change, Change::None);
    auto o = l.apply(kX, kA, listed_v(), 200);
    EXPECT_EQ(o.change, Change::Listed);
    EXPECT_TRUE(o.charge);
    EXPECT_EQ(o.state.reason, "spam source");
    EXPECT_EQ(o.state.since_unix, 200);
    // still listed: nothing new, nothing charged again
    EXPECT_EQ(l.apply(kX, kA, listed_v(), 300).change, Change::None);
    EXPECT_EQ(l.counts(), (std::map<std::pair<std::string, std::string>, size_t>{{{"zen.example", "vm"}, 1}}));
    // errors change nothing: no false delisting
    for (auto v : {error_v(), classify(ok({"127.255.255.254"})), classify(ok({"198.51.100.80"}))})
        EXPECT_EQ(l.apply(kX, kA, v, 350).change, Change::None);
    EXPECT_EQ(l.listed().size(), 1u);
    auto d = l.apply(kX, kA, clean_v(), 400);
    EXPECT_EQ(d.change, Change::Delisted);
    EXPECT_TRUE(l.listed().empty());
    ASSERT_EQ(l.ended_in(kX.address, 0).size(), 1u);
    EXPECT_EQ(l.ended_in(kX.address, 0)[0], (PastListing{kX, "vm:a", "spam source", 200, 400, true}));
    EXPECT_TRUE(l.ended_in(kX.address, 401).empty());
}

TEST(DnsblListings, AListingThatPredatesTheHolderChargesNobody) {
    Listings l;
    // first lookup ever: already listed, so not proven to be a's doing
    auto first = l.apply(kX, kA, listed_v(), 100);
    EXPECT_EQ(first.change, Change::Listed);
    EXPECT_FALSE(first.charge);
    EXPECT_TRUE(first.state.predates);
    // a listed address handed to b: announced again for b (predates b), not charged
    auto moved = l.apply(kX, kB, listed_v(), 200);
    EXPECT_EQ(moved.change, Change::Listed);
    EXPECT_FALSE(moved.charge);
    EXPECT_EQ(moved.previous_holder, "vm:a");
    EXPECT_EQ(moved.state.since_unix, 100);
    // errors never touch the error-free state, not even the holder
    EXPECT_EQ(l.apply(kX, kA, error_v(), 250).state.holder, "vm:b");
    // delisted, clean under b, listed again: now it is b's
    EXPECT_EQ(l.apply(kX, kB, clean_v(), 300).change, Change::Delisted);
    EXPECT_TRUE(l.apply(kX, kB, listed_v(), 400).charge);
    // quarantine egress and unheld addresses are never charged
    const Lookup q{ip("192.0.2.25"), "zen.example"};
    l.apply(q, Holder{Holder::Kind::Quarantine, "", ""}, clean_v(), 100);
    auto ql = l.apply(q, Holder{Holder::Kind::Quarantine, "", ""}, listed_v(), 200);
    EXPECT_EQ(ql.change, Change::Listed);
    EXPECT_FALSE(ql.charge);
    EXPECT_EQ(l.counts().at({"zen.example", "quarantine"}), 1u);
}

TEST(DnsblListings, ARestartDoesNotChargeTwice) {
    Listings l;
    l.apply(kX, kA, clean_v(), 100);
    ASSERT_TRUE(l.apply(kX, kA, listed_v(), 200).charge);
    auto back = Listings::from_json(json::parse(l.to_json().dump()));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->states(), l.states());
    auto again = back->apply(kX, kA, listed_v(), 300);
    EXPECT_EQ(again.change, Change::None);
    EXPECT_FALSE(again.charge);
    // a clean tenure survives too: the listing after the restart is charged once
    Listings c;
    c.apply(kX, kA, clean_v(), 100);
    auto c2 = Listings::from_json(c.to_json());
    EXPECT_TRUE(c2->apply(kX, kA, listed_v(), 200).charge);
    EXPECT_FALSE(Listings::from_json(json::parse(R"({"states": [{"address": "10.0.0.0/8"}], "past": []})")));
    EXPECT_FALSE(Listings::from_json(json::parse(R"({"states": 3})")));
}

TEST(DnsblListings, AnAddressNoLongerMonitoredEndsItsListing) {
    Listings l;
    l.apply(kX, kA, listed_v(), 100);
    l.retain({}, 500);
    EXPECT_TRUE(l.states().empty());
    ASSERT_EQ(l.ended_in(kX.address, 0).size(), 1u);
    EXPECT_EQ(l.ended_in(kX.address, 0)[0].to_unix, 500);
}

}  // namespace
}  // namespace smtpgov::dnsbl
