// core/AddressHistory: holdings from policy changes, lookups in time, prefixes,
// complaints, the bound and the persisted form.
#include <gtest/gtest.h>

#include "core/address_history.h"

using namespace smtpgov;

namespace {

IpPrefix P(const char* s) { return IpPrefix::parse(s).value(); }

HolderNow H(const char* vm, const char* tenant, std::vector<const char*> prefixes) {
    HolderNow h{vm, tenant, {}};
    for (const char* p : prefixes) h.prefixes.push_back(P(p));
    return h;
}

}  // namespace

TEST(AddressHistory, AThenBHoldAnAddress) {
    AddressHistory h;
    EXPECT_TRUE(h.update({H("a", "acme", {"203.0.113.7"})}, 1000));
    EXPECT_FALSE(h.update({H("a", "acme", {"203.0.113.7"})}, 1500));  // nothing changed
    EXPECT_TRUE(h.update({H("b", "beta", {"203.0.113.7"})}, 2000));
    const IpPrefix addr = P("203.0.113.7");
    EXPECT_FALSE(h.holder_at(addr, 999));  // before anyone
    EXPECT_EQ(h.holder_at(addr, 1000)->vm, "a");
    EXPECT_EQ(h.holder_at(addr, 1999)->vm, "a");
    EXPECT_EQ(h.holder_at(addr, 2000)->vm, "b");  // [from, to): the change instant is B's
    EXPECT_EQ(h.holder_at(addr, 2000)->tenant, "beta");
    EXPECT_EQ(h.holder_at(addr, 1'000'000)->vm, "b");
    EXPECT_FALSE(h.holder_at(P("203.0.113.8"), 1500));
    auto all = h.holdings_of(addr);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].vm, "a");
    EXPECT_EQ(all[0].to_unix, 2000);
    EXPECT_TRUE(all[1].open());
    // B gives it up: nobody after that
    EXPECT_TRUE(h.update({}, 3000));
    EXPECT_EQ(h.holder_at(addr, 2999)->vm, "b");
    EXPECT_FALSE(h.holder_at(addr, 3000));
}

TEST(AddressHistory, AddressInsideAPrefixAndTheLongestPrefixWins) {
    AddressHistory h;
    h.update({H("net", "t1", {"2001:db8::/64", "198.51.100.0/24"}), H("host", "t2", {"198.51.100.9"})}, 100);
    EXPECT_EQ(h.holder_at(P("2001:db8::1234"), 150)->vm, "net");
    EXPECT_EQ(h.holder_at(P("2001:db8::1234"), 150)->prefix.to_string(), "2001:db8::/64");
    EXPECT_FALSE(h.holder_at(P("2001:db8:0:1::1"), 150));
    EXPECT_EQ(h.holder_at(P("198.51.100.10"), 150)->vm, "net");
    EXPECT_EQ(h.holder_at(P("198.51.100.9"), 150)->vm, "host");
    // a prefix query sees the holdings inside it and around it
    EXPECT_EQ(h.holdings_of(P("198.51.100.0/25")).size(), 2u);
    EXPECT_EQ(h.holdings_of(P("198.51.100.9")).size(), 2u);
    EXPECT_EQ(h.holdings_of(P("2001:db8::1")).size(), 1u);
}

TEST(AddressHistory, TenantChangeClosesAndReopens) {
    AddressHistory h;
    h.update({H("a", "old", {"192.0.2.1"})}, 10);
    EXPECT_TRUE(h.update({H("a", "new", {"192.0.2.1"})}, 20));
    EXPECT_EQ(h.holder_at(P("192.0.2.1"), 15)->tenant, "old");
    EXPECT_EQ(h.holder_at(P("192.0.2.1"), 25)->tenant, "new");
}

TEST(AddressHistory, ComplaintsPerAddressAndPerVm) {
    AddressHistory h;
    h.add_complaint({P("192.0.2.1"), 50, 60, "a", "t", "abuse", "dns; x"});
    h.add_complaint({P("192.0.2.1"), 40, 61, "b", "t", "abuse", ""});
    h.add_complaint({P("192.0.2.2"), 45, 62, "a", "t", "fraud", ""});
    auto c = h.complaints_of(P("192.0.2.1"));
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(c[0].arrival_unix, 40);  // oldest arrival first
    EXPECT_EQ(h.complaints_of(P("192.0.2.0/24")).size(), 3u);
    EXPECT_EQ(h.complaints_of(P("192.0.2.3")).size(), 0u);
    EXPECT_EQ(h.complaints_against("a"), 2u);
    EXPECT_EQ(h.complaints_against("c"), 0u);
}

TEST(AddressHistory, BoundedOpenHoldingsNeverDropped) {
    AddressHistory h(3, 2);
    h.update({H("a", "", {"192.0.2.1"})}, 1);
    h.update({H("b", "", {"192.0.2.1"})}, 2);  // a closed at 2
    h.update({H("c", "", {"192.0.2.1"})}, 3);  // b closed at 3
    h.update({H("d", "", {"192.0.2.1"}), H("e", "", {"192.0.2.2"})}, 4);  // c closed; 5 holdings
    ASSERT_EQ(h.holdings().size(), 3u);
    EXPECT_FALSE(h.holder_at(P("192.0.2.1"), 1));  // the ones that ended first went
    EXPECT_EQ(h.holder_at(P("192.0.2.1"), 3)->vm, "c");
    EXPECT_EQ(h.holder_at(P("192.0.2.2"), 4)->vm, "e");
    for (int i = 0; i < 5; ++i) h.add_complaint({P("192.0.2.1"), 100 - i, 0, "d", "", "abuse", ""});
    ASSERT_EQ(h.complaints().size(), 2u);
    EXPECT_EQ(h.complaints()[0].arrival_unix, 99);  // the newest arrivals stay
    EXPECT_EQ(h.complaints()[1].arrival_unix, 100);
}

TEST(AddressHistory, JsonRoundTrip) {
    AddressHistory h;
    h.update({H("a", "acme", {"203.0.113.7", "2001:db8::/64"})}, 1000);
    h.update({H("b", "beta", {"203.0.113.7"})}, 2000);
    h.add_complaint({P("203.0.113.7"), 1500, 3000, "a", "acme", "abuse", "dns; fbl"});
    auto back = AddressHistory::from_json(nlohmann::json::parse(h.to_json().dump()));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->holdings(), h.holdings());
    EXPECT_EQ(back->complaints(), h.complaints());
    EXPECT_FALSE(AddressHistory::from_json(nlohmann::json{{"holdings", 1}}));
    EXPECT_FALSE(AddressHistory::from_json(nlohmann::json::parse(
        R"({"holdings": [{"prefix": "nope", "vm": "a", "tenant": "", "from_unix": 1, "to_unix": null}], "complaints": []})")));
}
