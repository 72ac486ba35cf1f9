// core/address_fleet: buckets and their key ranges (IPv4 and IPv6), the record one host
// writes per bucket (encoding, bounds), strict decoding of what other hosts wrote, and
// the merge of their evidence into this host's ip.check / ip.show answer.
#include "core/address_fleet.h"

#include <gtest/gtest.h>

using nlohmann::json;
using namespace smtpgov;
using namespace smtpgov::addrfleet;

namespace {

IpPrefix P(const char* s) { return IpPrefix::parse(s).value(); }

const fleet::Keys kKeys{"/sg"};

dnsbl::Verdict listed(const char* reason) { return {dnsbl::Kind::Listed, {"127.0.0.2"}, reason, "", false, "listed"}; }
dnsbl::Verdict clean() { return {dnsbl::Kind::NotListed, {}, "", "", false, "not_listed"}; }

// A host's history: vm-a held 203.0.113.7 (and a /16), one complaint, one listing now.
struct HostA {
    AddressHistory h;
    dnsbl::Listings l;
    HostA() {
        h.update({{"vm-a", "acme", {P("203.0.113.7"), P("10.1.0.0/16"), P("2001:db8:1:2::/64")}}}, 1000);
        h.add_complaint({P("203.0.113.7"), 5000, 5100, "vm-a", "acme", "abuse", "fbl.example"});
        const dnsbl::Holder vm{dnsbl::Holder::Kind::Vm, "vm-a", "acme"};
        l.apply({P("203.0.113.7"), "zen.test"}, vm, clean(), 2000);
        l.apply({P("203.0.113.7"), "zen.test"}, vm, listed("spam source"), 6000);
    }
};

std::vector<std::pair<std::string, std::string>> kvs_of(const std::map<std::string, std::string>& recs,
                                                        const std::string& host) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [bucket, v] : recs) out.emplace_back(record_key(kKeys, bucket, host), v);
    return out;
}

json local_check(const char* addr) {
    return {{"address", addr}, {"tainted", false}, {"taint_days", 90}, {"complaints_in_window", 0},
            {"dnsbl", json::array()}, {"reasons", json::array()}};
}

}  // namespace

TEST(AddressFleet, BucketsAreFixedWidthIPv4Slash24AndIPv6Slash48) {
    EXPECT_EQ(bucket_of(P("203.0.113.7")), "v4/203.000.113");
    EXPECT_EQ(bucket_of(P("10.1.2.0/24")), "v4/010.001.002");
    EXPECT_EQ(bucket_of(P("10.1.2.128/25")), "v4/010.001.002");
    EXPECT_FALSE(bucket_of(P("10.1.0.0/23")));  // wider than a bucket
    EXPECT_EQ(bucket_of(P("2001:db8:1:2::1")), "v6/2001:0db8:0001");
    EXPECT_EQ(bucket_of(P("2001:db8:1::/48")), "v6/2001:0db8:0001");
    EXPECT_EQ(bucket_of(P("::1")), "v6/0000:0000:0000");
    EXPECT_FALSE(bucket_of(P("2001:db8::/32")));
    EXPECT_TRUE(wider_than_bucket(P("0.0.0.0/0")));
    EXPECT_FALSE(wider_than_bucket(P("2001:db8:1:2::/64")));
}

TEST(AddressFleet, KeysRoundTripAndRangesCoverExactlyTheBucketsOfAPrefix) {
    const std::string k = record_key(kKeys, "v6/2001:0db8:0001", "hv/01");
    EXPECT_EQ(k, "/sg/addresses/v6/2001:0db8:0001/hosts/hv%2F01");
    EXPECT_EQ(parse_key(kKeys, k), (std::pair<std::string, std::string>{"v6/2001:0db8:0001", "hv/01"}));
    EXPECT_EQ(parse_key(kKeys, record_key(kKeys, "wide", "a"))->first, "wide");
    EXPECT_FALSE(parse_key(kKeys, "/sg/addresses/v4/1.2.3/hosts/a"));       // not the one spelling
    EXPECT_FALSE(parse_key(kKeys, "/sg/addresses/v4/256.000.000/hosts/a"));  // no such bucket
    EXPECT_FALSE(parse_key(kKeys, "/sg/addresses/v4/001.002.003/hosts/"));
    EXPECT_FALSE(parse_key(kKeys, "/sg/tenants/_/vms/x"));
    auto in = [&](const IpPrefix& q, const std::string& bucket) {
        auto [b, e] = bucket_range(kKeys, q);
        const std::string key = record_key(kKeys, bucket, "zz");
        return b <= key && key < e;
    };
    EXPECT_TRUE(in(P("203.0.113.7"), "v4/203.000.113"));
    EXPECT_FALSE(in(P("203.0.113.7"), "v4/203.000.112"));
    EXPECT_FALSE(in(P("203.0.113.7"), "v4/203.000.114"));
    EXPECT_TRUE(in(P("203.0.112.0/20"), "v4/203.000.112"));
    EXPECT_TRUE(in(P("203.0.112.0/20"), "v4/203.000.127"));
    EXPECT_FALSE(in(P("203.0.112.0/20"), "v4/203.000.128"));
    EXPECT_FALSE(in(P("203.0.112.0/20"), "v4/203.000.111"));
    EXPECT_TRUE(in(P("2001:db8::/32"), "v6/2001:0db8:ffff"));
    EXPECT_FALSE(in(P("2001:db8::/32"), "v6/2001:0db9:0000"));
    EXPECT_FALSE(in(P("2001:db8::/32"), "wide"));
    EXPECT_FALSE(in(P("0.0.0.0/0"), "v6/0000:0000:0000"));  // families apart
}

TEST(AddressFleet, AHostsRecordsRoundTripPerBucket) {
    HostA a;
    auto recs = host_records(a.h, a.l, "hv-a");
    ASSERT_EQ(recs.size(), 3u);
    ASSERT_TRUE(recs.count("v4/203.000.113") && recs.count("v6/2001:0db8:0001") && recs.count("wide"));
    auto r = decode(kKeys, record_key(kKeys, "v4/203.000.113", "hv-a"), recs["v4/203.000.113"]);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->host, "hv-a");
    ASSERT_EQ(r->holdings.size(), 1u);
    EXPECT_EQ(r->holdings[0].vm, "vm-a");
    ASSERT_EQ(r->complaints.size(), 1u);
    EXPECT_EQ(r->complaints[0], a.h.complaints()[0]);
    ASSERT_EQ(r->listings.size(), 1u);
    EXPECT_EQ(r->listings[0].zone, "zen.test");
    EXPECT_EQ(r->listings[0].reason, "spam source");
    EXPECT_EQ(r->listings[0].since_unix, 6000);
    EXPECT_FALSE(r->listings[0].until_unix);
    auto w = decode(kKeys, record_key(kKeys, "wide", "hv-a"), recs["wide"]);
    ASSERT_TRUE(w) << w.error().message;
    ASSERT_EQ(w->holdings.size(), 1u);
    EXPECT_EQ(w->holdings[0].prefix, P("10.1.0.0/16"));
    // the same state gives the same text: unchanged buckets are never rewritten
    EXPECT_EQ(host_records(a.h, a.l, "hv-a"), recs);
}

TEST(AddressFleet, RecordsAreBoundedNewestKept) {
    AddressHistory h(100'000, 100'000);
    for (int i = 0; i < 300; ++i)
        h.add_complaint({P("203.0.113.9"), 10'000 + i, 20'000, "v", "", "abuse", ""});
    auto recs = host_records(h, dnsbl::Listings{}, "hv");
    auto r = decode(kKeys, record_key(kKeys, "v4/203.000.113", "hv"), recs["v4/203.000.113"]);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->complaints.size(), kMaxEntries);
    EXPECT_EQ(r->complaints.front().arrival_unix, 10'000 + 300 - int64_t(kMaxEntries));
    EXPECT_EQ(r->complaints.back().arrival_unix, 10'299);
}

TEST(AddressFleet, ARecordOfLongStringsIsCutToWhatReadersTake) {
    AddressHistory h(100'000, 100'000);
    const std::string big(5000, 'x');  // cut to kMaxText when written
    for (int i = 0; i < 256; ++i) h.add_complaint({P("203.0.113.9"), 10'000 + i, 20'000, big, big, big, big});
    auto recs = host_records(h, dnsbl::Listings{}, "hv");
    const std::string& v = recs["v4/203.000.113"];
    EXPECT_LE(v.size(), kMaxValueBytes);
    auto r = decode(kKeys, record_key(kKeys, "v4/203.000.113", "hv"), v);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_LT(r->complaints.size(), 256u);
    EXPECT_GT(r->complaints.size(), 10u);
    EXPECT_EQ(r->complaints.back().arrival_unix, 10'255);  // the newest kept
    EXPECT_EQ(r->complaints.back().vm.size(), kMaxText);
}

TEST(AddressFleet, MalformedRecordsAreRefusedWithTheirKeyAndReason) {
    const std::string key = record_key(kKeys, "v4/203.000.113", "hv-a");
    auto why = [&](const std::string& value, const std::string& k = "") {
        auto r = decode(kKeys, k.empty() ? key : k, value);
        EXPECT_FALSE(r);
        return r ? std::string() : r.error().message;
    };
    const std::string ok_tail = R"("holdings": [], "complaints": [], "listings": []})";
    EXPECT_NE(why("{not json").find(key + ": invalid JSON"), std::string::npos) << why("{not json");
    EXPECT_NE(why("[]").find("must be a JSON object"), std::string::npos);
    EXPECT_NE(why(R"({"version": 2, "host": "hv-a", )" + ok_tail).find("version: must be 1"), std::string::npos);
    EXPECT_NE(why(R"({"version": 1, "host": "hv-b", )" + ok_tail).find("the host the key names"), std::string::npos);
    EXPECT_NE(why(R"({"version": 1, "host": "hv-a", "host": "hv-a", )" + ok_tail).find("duplicate key"), std::string::npos);
    // an entry outside the bucket the key names: a host cannot taint another bucket's address
    const std::string outside = R"({"version": 1, "host": "hv-a", "holdings": [], "listings": [], "complaints": [
        {"address": "198.51.100.1", "arrival_unix": 1, "received_unix": 1, "vm": "v", "tenant": "",
         "feedback_type": "abuse", "reporting_mta": ""}]})";
    EXPECT_NE(why(outside).find("complaints/0/address: 198.51.100.1 is not in bucket 203.0.113.0/24"), std::string::npos)
        << why(outside);
    const std::string bad_time = R"({"version": 1, "host": "hv-a", "holdings": [], "complaints": [], "listings": [
        {"address": "203.0.113.1", "zone": "z", "reason": "", "holder": "none", "since_unix": "yesterday",
         "until_unix": null, "charged": false}]})";
    EXPECT_NE(why(bad_time).find("listings/0/since_unix: must be an integer"), std::string::npos) << why(bad_time);
    json many{{"version", 1}, {"host", "hv-a"}, {"holdings", json::array()}, {"listings", json::array()},
              {"complaints", json::array()}};
    for (size_t i = 0; i <= kMaxEntries; ++i) many["complaints"].push_back(1);
    EXPECT_NE(why(many.dump()).find("more than 256"), std::string::npos);
    EXPECT_NE(why(std::string(kMaxValueBytes + 1, ' ')).find("more than"), std::string::npos);
    const std::string wide_complaint = R"({"version": 1, "host": "hv-a", "holdings": [], "listings": [], "complaints": [{}]})";
    EXPECT_NE(why(wide_complaint, record_key(kKeys, "wide", "hv-a")).find("the wide record holds no complaints"),
              std::string::npos);
    // decode_all keeps the good ones, names the bad ones, and skips this host's own
    FleetRead fr = decode_all(kKeys, {{key, "{not json"}, {record_key(kKeys, "v4/203.000.113", "hv-b"),
                                       R"({"version": 1, "host": "hv-b", )" + ok_tail},
                                      {record_key(kKeys, "v4/203.000.113", "self"), "garbage"}}, "self");
    EXPECT_EQ(fr.records.size(), 1u);
    ASSERT_EQ(fr.refused.size(), 1u);
    EXPECT_EQ(fr.refused[0].first, key);
}

TEST(AddressFleet, AnotherHostsComplaintOrListingTaintsTheAddressHere) {
    HostA a;
    FleetRead fr = decode_all(kKeys, kvs_of(host_records(a.h, a.l, "hv-a"), "hv-a"), "hv-b");
    ASSERT_TRUE(fr.refused.empty());
    const int64_t now = 6000 + 86400;
    json j = merge(local_check("203.0.113.7"), fr, P("203.0.113.7"), "hv-b", now, 90, false);
    EXPECT_TRUE(j["tainted"].get<bool>());
    EXPECT_EQ(j["complaints_in_window"], 1);
    ASSERT_EQ(j["dnsbl"].size(), 1u);
    EXPECT_EQ(j["dnsbl"][0]["host"], "hv-a");
    EXPECT_TRUE(j["dnsbl"][0]["listed_now"].get<bool>());
    ASSERT_EQ(j["reasons"].size(), 2u);
    EXPECT_NE(j["reasons"][0].get<std::string>().find("recorded by host hv-a"), std::string::npos);
    EXPECT_EQ(j["fleet"]["hosts"], json::array({"hv-a", "hv-b"}));
    // a neighbour in the same bucket is clean; outside the window the complaint no longer taints
    EXPECT_FALSE(merge(local_check("203.0.113.8"), fr, P("203.0.113.8"), "hv-b", now, 90, false)["tainted"].get<bool>());
    dnsbl::Listings none;
    FleetRead only_complaint = decode_all(kKeys, kvs_of(host_records(a.h, none, "hv-a"), "hv-a"), "hv-b");
    EXPECT_TRUE(merge(local_check("203.0.113.7"), only_complaint, P("203.0.113.7"), "hv-b", 5000 + 89 * 86400, 90, false)["tainted"].get<bool>());
    EXPECT_FALSE(merge(local_check("203.0.113.7"), only_complaint, P("203.0.113.7"), "hv-b", 5000 + 91 * 86400, 90, false)["tainted"].get<bool>());
    // a prefix question counts what is inside it
    EXPECT_TRUE(merge(local_check("203.0.113.0/24"), fr, P("203.0.113.0/24"), "hv-b", now, 90, false)["tainted"].get<bool>());
}

TEST(AddressFleet, ShowNamesTheHostOfEveryEntryAndTheRemoteHolder) {
    HostA a;
    FleetRead fr = decode_all(kKeys, kvs_of(host_records(a.h, a.l, "hv-a"), "hv-a"), "hv-b");
    json local = local_check("203.0.113.7");
    local["holder"] = nullptr;
    local["history"] = json::array({{{"prefix", "203.0.113.7"}, {"vm", "old"}, {"tenant", ""}, {"from_unix", 10}, {"to_unix", 900}}});
    local["complaints"] = json::array();
    json j = merge(local, fr, P("203.0.113.7"), "hv-b", 7000, 90, true);
    ASSERT_EQ(j["history"].size(), 2u);
    EXPECT_EQ(j["history"][0]["host"], "hv-b");  // oldest first
    EXPECT_EQ(j["history"][1]["host"], "hv-a");
    EXPECT_EQ(j["holder"]["vm"], "vm-a");
    EXPECT_EQ(j["holder"]["host"], "hv-a");
    ASSERT_EQ(j["complaints"].size(), 1u);
    EXPECT_EQ(j["complaints"][0]["host"], "hv-a");
    // a holder here stays the holder shown
    local["holder"] = local["history"][0];
    EXPECT_EQ(merge(local, fr, P("203.0.113.7"), "hv-b", 7000, 90, true)["holder"]["host"], "hv-b");
}

TEST(AddressFleet, AListingThatEndedWhenTheAddressLeftStillTaintsWithinTheWindow) {
    HostA a;
    a.l.retain({}, 8000);  // the address moved away: no longer monitored here
    FleetRead fr = decode_all(kKeys, kvs_of(host_records(a.h, a.l, "hv-a"), "hv-a"), "hv-b");
    json j = merge(local_check("203.0.113.7"), fr, P("203.0.113.7"), "hv-b", 8000 + 86400, 1, false);
    ASSERT_EQ(j["dnsbl"].size(), 1u);
    EXPECT_FALSE(j["dnsbl"][0]["listed_now"].get<bool>());
    EXPECT_EQ(j["dnsbl"][0]["to_unix"], 8000);
    EXPECT_TRUE(j["tainted"].get<bool>());
}

TEST(AddressFleet, TheFleetsHolderOfAnAddressAtATime) {
    AddressHistory h;
    h.update({{"old", "t1", {P("203.0.113.0/24")}}}, 1000);
    h.update({{"new", "t2", {P("203.0.113.0/24")}}, {"narrow", "t3", {P("203.0.113.8/29")}}}, 2000);
    FleetRead fr = decode_all(kKeys, kvs_of(host_records(h, dnsbl::Listings{}, "hv-a"), "hv-a"), "hv-b");
    EXPECT_FALSE(holder_at(fr, P("203.0.113.9"), 999));
    EXPECT_EQ(holder_at(fr, P("203.0.113.9"), 1500)->first.vm, "old");
    auto now = holder_at(fr, P("203.0.113.9"), 2500);
    ASSERT_TRUE(now);
    EXPECT_EQ(now->first.vm, "narrow");  // the longest prefix
    EXPECT_EQ(now->second, "hv-a");
    EXPECT_EQ(holder_at(fr, P("203.0.113.200"), 2500)->first.vm, "new");
    EXPECT_FALSE(holder_at(fr, P("198.51.100.1"), 2500));
}

TEST(AddressFleet, AListingInForceAgesOutWhenItsHostStopsConfirmingIt) {
    HostA a;  // X listed since 6000, last seen listed at 6000: checked_unix 0 (that UTC day)
    auto recs = host_records(a.h, a.l, "hv-a");
    FleetRead fr = decode_all(kKeys, kvs_of(recs, "hv-a"), "hv-b");
    ASSERT_EQ(fr.records.at(0).listings.at(0).checked_unix, 0);
    const IpPrefix x = P("203.0.113.7");
    const int64_t day = 86400;
    // within the window of its last confirmation (and a day's slack): listed now
    json j = merge(local_check("203.0.113.7"), fr, x, "hv-b", 91 * day, 90, false);
    EXPECT_TRUE(j["tainted"].get<bool>());
    EXPECT_EQ(j["dnsbl"].at(0)["checked_unix"], 0);
    // its host stopped writing (taken out of the fleet): no longer evidence after that
    j = merge(local_check("203.0.113.7"), fr, x, "hv-b", 91 * day + 1, 90, false);
    EXPECT_FALSE(j["tainted"].get<bool>()) << j.dump();
    EXPECT_TRUE(j["dnsbl"].empty());
    // a host that still looks it up confirms it: the record changes once a day
    a.l.apply({x, "zen.test"}, {dnsbl::Holder::Kind::Vm, "vm-a", "acme"}, listed("spam source"), 90 * day + 5);
    auto again = host_records(a.h, a.l, "hv-a");
    EXPECT_NE(again, recs);
    FleetRead fresh = decode_all(kKeys, kvs_of(again, "hv-a"), "hv-b");
    EXPECT_EQ(fresh.records.at(0).listings.at(0).checked_unix, 90 * day);
    EXPECT_TRUE(merge(local_check("203.0.113.7"), fresh, x, "hv-b", 91 * day + 1, 90, false)["tainted"].get<bool>());
    a.l.apply({x, "zen.test"}, {dnsbl::Holder::Kind::Vm, "vm-a", "acme"}, listed("spam source"), 90 * day + 3600);
    EXPECT_EQ(host_records(a.h, a.l, "hv-a"), again);  // the same day: nothing to write
    // a record from an older version (no checked_unix) counts as listed now, as it did
    auto old = kvs_of(recs, "hv-a");
    for (auto& [key, value] : old) {
        json v = json::parse(value);
        for (json& l : v["listings"]) l.erase("checked_unix");
        value = v.dump();
    }
    FleetRead older = decode_all(kKeys, old, "hv-b");
    ASSERT_TRUE(older.refused.empty());
    EXPECT_TRUE(merge(local_check("203.0.113.7"), older, x, "hv-b", 1000 * day, 90, false)["tainted"].get<bool>());
    // only a listing in force has one
    json ended = json::parse(recs.begin()->second);
    ended["listings"][0]["until_unix"] = 7000;
    EXPECT_FALSE(decode(kKeys, kvs_of(recs, "hv-a").begin()->first, ended.dump()));
}
