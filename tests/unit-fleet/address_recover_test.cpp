// core/address_fleet recover: a host's own records read back from etcd at start give
// back what a lost state dir took (holdings, complaints, listings as ended), change
// nothing after a plain restart, and never override what the local history knows.
#include "core/address_fleet.h"

#include <gtest/gtest.h>

using namespace smtpgov;
using namespace smtpgov::addrfleet;

namespace {

IpPrefix P(const char* s) { return IpPrefix::parse(s).value(); }

const fleet::Keys kKeys{"/sg"};
const IpPrefix kX = P("203.0.113.7");
const dnsbl::Holder kVmA{dnsbl::Holder::Kind::Vm, "vm-a", "acme"};

dnsbl::Verdict listed() { return {dnsbl::Kind::Listed, {"127.0.0.2"}, "spam source", "", false, "listed"}; }
dnsbl::Verdict clean() { return {dnsbl::Kind::NotListed, {}, "", "", false, "not_listed"}; }

// What host "ha" shared: vm-a held X (and a /16) since 1000, one complaint, X listed
// since 6000 and still listed.
struct Shared {
    AddressHistory h;
    dnsbl::Listings l;
    Shared() {
        h.update({{"vm-a", "acme", {kX, P("10.1.0.0/16")}}}, 1000);
        h.add_complaint({kX, 5000, 5100, "vm-a", "acme", "abuse", "fbl.example"});
        l.apply({kX, "zen.test"}, kVmA, clean(), 2000);
        l.apply({kX, "zen.test"}, kVmA, listed(), 6000);
    }
    // the records as etcd holds them, decoded as the agent decodes them
    std::vector<HostRecord> records() const {
        std::vector<HostRecord> out;
        for (const auto& [bucket, v] : host_records(h, l, "ha")) out.push_back(decode(kKeys, record_key(kKeys, bucket, "ha"), v).value());
        return out;
    }
};

}  // namespace

TEST(AddressRecover, ALostStateDirComesBackFromTheHostsOwnRecords) {
    const Shared before;
    AddressHistory h;  // the state dir lost: the start reopened vm-a's holdings at 9000
    dnsbl::Listings l;
    h.update({{"vm-a", "acme", {kX, P("10.1.0.0/16")}}}, 9000);
    const Recovered r = recover(h, l, before.records(), 9000);
    EXPECT_EQ(r.holdings, 2u);  // both held since 1000 again
    EXPECT_EQ(r.complaints, 1u);
    EXPECT_EQ(r.listings, 1u);
    ASSERT_TRUE(h.holder_at(kX, 1500));
    EXPECT_EQ(h.holder_at(kX, 1500)->vm, "vm-a");
    EXPECT_EQ(h.holdings().size(), 2u);  // no second holding of the same tenure
    ASSERT_EQ(h.complaints_of(kX).size(), 1u);
    EXPECT_EQ(h.complaints_of(kX)[0], before.h.complaints()[0]);
    // the listing in force when shared ends now: the next lookup says whether it holds
    const auto past = l.ended_in(kX, 0);
    ASSERT_EQ(past.size(), 1u);
    EXPECT_EQ(past[0].from_unix, 6000);
    EXPECT_EQ(past[0].to_unix, 9000);
    EXPECT_EQ(past[0].holder, "vm:vm-a");
    EXPECT_TRUE(past[0].charged);
    // what this host writes next holds everything it wrote before
    const auto again = host_records(h, l, "ha");
    for (const HostRecord& old : before.records()) {
        const HostRecord now = decode(kKeys, record_key(kKeys, bucket_of(old.holdings.at(0).prefix).value_or("wide"), "ha"),
                                      again.at(bucket_of(old.holdings.at(0).prefix).value_or("wide")))
                                   .value();
        EXPECT_EQ(now.holdings, old.holdings);
        EXPECT_EQ(now.complaints, old.complaints);
    }
    // recovering twice changes nothing
    EXPECT_EQ(recover(h, l, before.records(), 9500).total(), 0u);
}

TEST(AddressRecover, APlainRestartRecoversNothing) {
    Shared s;
    const auto recs = s.records();
    const auto h0 = s.h.to_json(), l0 = s.l.to_json();
    EXPECT_EQ(recover(s.h, s.l, recs, 9000).total(), 0u);
    EXPECT_EQ(s.h.to_json(), h0);
    EXPECT_EQ(s.l.to_json(), l0);
}

TEST(AddressRecover, WhatTheLocalHistoryKnowsWins) {
    Shared s;
    const auto recs = s.records();  // etcd lags: vm-a still holds X there, X still listed
    s.h.update({}, 7000);           // here vm-a gave X (and the /16) up at 7000
    s.l.apply({kX, "zen.test"}, kVmA, clean(), 7000);  // and X was delisted at 7000
    const auto h0 = s.h.to_json(), l0 = s.l.to_json();
    EXPECT_EQ(recover(s.h, s.l, recs, 9000).total(), 0u);
    EXPECT_EQ(s.h.to_json(), h0);
    EXPECT_EQ(s.l.to_json(), l0);
    EXPECT_FALSE(s.h.holder_at(kX, 8000));
}

TEST(AddressRecover, AHoldingNoLongerInForceEndsWhereTheNextOneBegan) {
    const Shared before;
    AddressHistory h;  // lost state; X went to vm-b while this host was down
    dnsbl::Listings l;
    h.update({{"vm-b", "beta", {kX}}}, 9000);
    EXPECT_EQ(recover(h, l, before.records(), 9500).holdings, 2u);
    EXPECT_EQ(h.holder_at(kX, 8999)->vm, "vm-a");
    EXPECT_EQ(h.holder_at(kX, 9000)->vm, "vm-b");  // never two holders at once
    // the /16 has no later holder: closed at the recovery
    EXPECT_EQ(h.holder_at(P("10.1.2.3"), 9499)->vm, "vm-a");
    EXPECT_FALSE(h.holder_at(P("10.1.2.3"), 9500));
}

TEST(AddressRecover, AListingStillInForceHereIsNotAddedAsEnded) {
    const Shared before;
    dnsbl::Listings l = before.l;  // the listing state survived, the history did not
    AddressHistory h;
    h.update({{"vm-a", "acme", {kX, P("10.1.0.0/16")}}}, 9000);
    const Recovered r = recover(h, l, before.records(), 9000);
    EXPECT_EQ(r.listings, 0u);
    EXPECT_TRUE(l.ended_in(kX, 0).empty());
    EXPECT_EQ(l.listed_in(kX).size(), 1u);
}
