// core/fleet: the key layout, the split of a fleet policy and its serial rules, the
// host status and reputation records, the conflict rule, tenant floors, the outbox.
#include "core/fleet.h"

#include <gtest/gtest.h>

using nlohmann::json;
using namespace smtpgov;
using namespace smtpgov::fleet;

namespace {

json vm(const std::string& id, const std::string& host, const std::string& tenant = "acme") {
    return {{"id", id}, {"tenant", tenant}, {"host", host}, {"interface", "vnet-" + id}};
}

json policy(std::vector<json> vms) {
    return {{"defaults", {{"rate", 10}, {"burst", 20}}}, {"vms", vms}};
}

Split must_split(const json& p, const json& global = json(), const std::map<std::string, json>& hosts = {}) {
    std::vector<Problem> problems;
    auto s = split(p, global, hosts, problems);
    EXPECT_TRUE(s) << (problems.empty() ? "" : problems[0].path + ": " + problems[0].reason);
    return s ? *s : Split{};
}

// What etcd holds after an apply of s on top of `hosts`.
std::map<std::string, json> stored(std::map<std::string, json> hosts, const Split& s) {
    for (auto& [h, v] : s.hosts) hosts[h] = v;
    for (auto& h : s.dropped) hosts.erase(h);
    return hosts;
}

TEST(FleetKeys, EscapeRoundTripsEveryByte) {
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    const std::string e = escape(all);
    EXPECT_EQ(unescape(e), all);
    EXPECT_EQ(e.find('/'), std::string::npos);
    EXPECT_EQ(escape("vm-1.a_b"), "vm-1.a_b");
    EXPECT_EQ(escape("a/b c"), "a%2Fb%20c");
    EXPECT_EQ(unescape("%2f%2F"), "//");
    EXPECT_EQ(unescape("100%"), "100%");  // a '%' without two hex digits stays
    EXPECT_EQ(unescape("%4"), "%4");
    EXPECT_EQ(unescape("%zz"), "%zz");
}

TEST(FleetKeys, LayoutAndParse) {
    Keys k{"/sg"};
    EXPECT_EQ(k.policy_global(), "/sg/policy/global");
    EXPECT_EQ(k.policy_host("hv/1"), "/sg/policy/hosts/hv%2F1");
    EXPECT_EQ(k.host_live("hv-1"), "/sg/hosts/hv-1/live");
    EXPECT_EQ(k.vm("", "vm-1"), "/sg/tenants/_/vms/vm-1");
    EXPECT_EQ(k.vm("a/b", "vm-1"), "/sg/tenants/a%2Fb/vms/vm-1");

    auto p = k.parse_vm(k.vm("a/b", "vm 1"));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->first, "a/b");
    EXPECT_EQ(p->second, "vm 1");
    p = k.parse_vm(k.vm("", "x"));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->first, "");
    EXPECT_FALSE(k.parse_vm("/sg/tenants/acme/vms/"));           // no id
    EXPECT_FALSE(k.parse_vm("/sg/tenants/acme/vms/a/b"));        // a raw '/' in the id
    EXPECT_FALSE(k.parse_vm("/sg/tenants/acme/other/x"));
    EXPECT_FALSE(k.parse_vm("/other/tenants/acme/vms/x"));
    EXPECT_FALSE(k.parse_vm("/sgx/tenants/acme/vms/x"));

    auto h = k.parse_host(k.host_status("hv/1"));
    ASSERT_TRUE(h);
    EXPECT_EQ(h->first, "hv/1");
    EXPECT_EQ(h->second, "status");
    EXPECT_FALSE(k.parse_host("/sg/hosts/hv-1/other"));
    EXPECT_FALSE(k.parse_host("/sg/hosts/hv-1"));
    EXPECT_FALSE(k.parse_host("/sg/hosts/hv-1/x/live"));
}

// A tenant literally named "_" is not the tenant-less VMs' "_".
TEST(FleetKeys, TenantUnderscoreIsNotNoTenant) {
    Keys k;
    EXPECT_NE(k.vm("_", "vm-1"), k.vm("", "vm-1"));
    auto p = k.parse_vm(k.vm("_", "vm-1"));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->first, "_");
    p = k.parse_vm(k.vm("", "vm-1"));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->first, "");
}

TEST(FleetSplit, EveryVmNeedsAHostAndPolicyProblemsAreKept) {
    std::vector<Problem> problems;
    json p = policy({vm("vm-1", "hv-a"), {{"id", "vm-2"}, {"interface", "vnet2"}}});
    p["vms"][0]["rate"] = -1;
    EXPECT_FALSE(split(p, json(), {}, problems));
    bool host = false, rate = false;
    for (auto& pr : problems) {
        host |= pr.path == "/vms/1/host";
        rate |= pr.path == "/vms/0/rate";
    }
    EXPECT_TRUE(host);
    EXPECT_TRUE(rate);
    EXPECT_FALSE(split(policy({{{"id", "vm-3"}, {"host", ""}, {"interface", "v"}}}), json(), {}, problems));
    EXPECT_FALSE(split(json::array(), json(), {}, problems));
}

// Interface and domain names are per hypervisor: every host has its vnet0. Within one
// host they are still unique; VM ids are unique fleet-wide.
TEST(FleetSplit, InterfaceNamesAreUniquePerHostNotFleetWide) {
    json a = vm("vm-1", "hv-a"), b = vm("vm-2", "hv-b"), c = vm("vm-3", "hv-b");
    a["interface"] = b["interface"] = "vnet0";
    must_split(policy({a, b}));
    c["interface"] = "vnet0";
    std::vector<Problem> problems;
    EXPECT_FALSE(split(policy({a, b, c}), json(), {}, problems));
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].path, "/vms/2/interface");
    EXPECT_NE(problems[0].reason.find("/vms/1 on host hv-b"), std::string::npos) << problems[0].reason;
    json d = vm("vm-1", "hv-c");
    EXPECT_FALSE(split(policy({a, d}), json(), {}, problems));  // the same id on two hosts
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].path, "/vms/1/id");
}

TEST(FleetSplit, FirstApplyWritesEveryHostAtSerialOne) {
    Split s = must_split(policy({vm("vm-1", "hv-a"), vm("vm-2", "hv-b"), vm("vm-3", "hv-a")}));
    EXPECT_EQ(s.serial, 1);
    ASSERT_EQ(s.hosts.size(), 2u);
    EXPECT_EQ(s.hosts["hv-a"]["serial"], 1);
    EXPECT_EQ(s.hosts["hv-a"]["vms"].size(), 2u);
    EXPECT_EQ(s.hosts["hv-b"]["vms"][0]["id"], "vm-2");
    EXPECT_TRUE(s.dropped.empty());
    EXPECT_FALSE(s.global.contains("vms"));
    EXPECT_EQ(s.global["fleet"]["serial"], 1);
    EXPECT_EQ(s.global["fleet"]["hosts"], (json{{"hv-a", 1}, {"hv-b", 1}}));
    EXPECT_EQ(s.global["defaults"]["rate"], 10);
}

TEST(FleetSplit, UnchangedHostsKeepTheirSerialChangedAndDroppedOnesDoNot) {
    Split s1 = must_split(policy({vm("vm-1", "hv-a"), vm("vm-2", "hv-b"), vm("vm-3", "hv-c")}));
    auto hosts = stored({}, s1);
    // vm-2 moves to hv-a (live migration), hv-b has no VM left, hv-c unchanged.
    Split s2 = must_split(policy({vm("vm-1", "hv-a"), vm("vm-2", "hv-a"), vm("vm-3", "hv-c")}), s1.global, hosts);
    EXPECT_EQ(s2.serial, 2);
    ASSERT_EQ(s2.hosts.size(), 1u);
    EXPECT_TRUE(s2.hosts.count("hv-a"));
    EXPECT_EQ(s2.dropped, (std::set<std::string>{"hv-b"}));
    EXPECT_EQ(s2.global["fleet"]["hosts"], (json{{"hv-a", 2}, {"hv-c", 1}}));

    // The same policy again: a new serial, no host value rewritten.
    hosts = stored(hosts, s2);
    Split s3 = must_split(policy({vm("vm-1", "hv-a"), vm("vm-2", "hv-a"), vm("vm-3", "hv-c")}), s2.global, hosts);
    EXPECT_EQ(s3.serial, 3);
    EXPECT_TRUE(s3.hosts.empty());
    EXPECT_TRUE(s3.dropped.empty());
    EXPECT_EQ(s3.global["fleet"]["hosts"], (json{{"hv-a", 2}, {"hv-c", 1}}));
}

// A host value that does not carry the serial the global value names (left by an apply
// that lost its lock) is rewritten, never taken as unchanged.
TEST(FleetSplit, AHalfWrittenHostValueIsRewritten) {
    Split s1 = must_split(policy({vm("vm-1", "hv-a")}));
    auto hosts = stored({}, s1);
    hosts["hv-a"]["serial"] = 2;  // an apply wrote serial 2 here and never wrote its global
    Split s2 = must_split(policy({vm("vm-1", "hv-a")}), s1.global, hosts);
    EXPECT_EQ(s2.serial, 2);
    ASSERT_TRUE(s2.hosts.count("hv-a"));
    EXPECT_EQ(s2.hosts["hv-a"]["serial"], 2);
}

// A host value no global value names (a failed apply wrote it for a host not in the
// policy) is deleted by the next apply instead of lingering.
TEST(FleetSplit, AStrayHostValueIsDropped) {
    Split s1 = must_split(policy({vm("vm-1", "hv-a")}));
    auto hosts = stored({}, s1);
    hosts["hv-x"] = {{"serial", 2}, {"vms", json::array({vm("vm-9", "hv-x")})}};
    Split s2 = must_split(policy({vm("vm-1", "hv-a")}), s1.global, hosts);
    EXPECT_EQ(s2.dropped, (std::set<std::string>{"hv-x"}));
}

TEST(FleetAssemble, OnlyMatchingSerialsGoTogether) {
    Split s1 = must_split(policy({vm("vm-1", "hv-a"), vm("vm-2", "hv-b")}));
    std::string waiting;
    auto p = assemble(s1.global, s1.hosts["hv-a"], "hv-a", waiting);
    ASSERT_TRUE(p);
    EXPECT_EQ((*p)["vms"].size(), 1u);
    EXPECT_FALSE(p->contains("fleet"));
    EXPECT_EQ((*p)["defaults"]["rate"], 10);

    // An apply in progress: the host value is already at serial 2, the global at 1.
    Split s2 = must_split(policy({vm("vm-1", "hv-a"), vm("vm-3", "hv-a"), vm("vm-2", "hv-b")}), s1.global,
                          stored({}, s1));
    EXPECT_FALSE(assemble(s1.global, s2.hosts["hv-a"], "hv-a", waiting));
    EXPECT_NE(waiting.find("serial 2"), std::string::npos) << waiting;
    // ... or the global is ahead of the host value.
    EXPECT_FALSE(assemble(s2.global, s1.hosts["hv-a"], "hv-a", waiting));
    EXPECT_FALSE(assemble(s2.global, json(), "hv-a", waiting));
    // hv-b's value did not change: the new global goes with its old value.
    EXPECT_TRUE(assemble(s2.global, s1.hosts["hv-b"], "hv-b", waiting));
    // A host with no VM in the fleet policy gets the global settings and no VMs.
    p = assemble(s2.global, json(), "hv-z", waiting);
    ASSERT_TRUE(p);
    EXPECT_EQ((*p)["vms"], json::array());
    EXPECT_FALSE(assemble(json(), json(), "hv-a", waiting));
    EXPECT_EQ(serial_of(s2.global), 2);
    EXPECT_EQ(serial_of(json()), 0);
}

TEST(FleetJoin, RoundTripsThePolicyAndSkipsMismatchedValues) {
    json p = policy({vm("vm-1", "hv-a"), vm("vm-2", "hv-b"), vm("vm-3", "hv-a")});
    Split s1 = must_split(p);
    auto hosts = stored({}, s1);
    json back = join(s1.global, hosts);
    EXPECT_EQ(back["defaults"], p["defaults"]);
    EXPECT_FALSE(back.contains("fleet"));
    std::set<std::string> ids;
    for (auto& v : back["vms"]) ids.insert(v["id"].get<std::string>());
    EXPECT_EQ(ids, (std::set<std::string>{"vm-1", "vm-2", "vm-3"}));
    // Re-applying what join gave changes no host value.
    Split again = must_split(back, s1.global, hosts);
    EXPECT_TRUE(again.hosts.empty());
    // A host value of another serial is not part of the policy in force.
    hosts["hv-b"]["serial"] = 7;
    EXPECT_EQ(join(s1.global, hosts)["vms"].size(), 2u);
}

TEST(FleetHostStatus, JsonRoundTrip) {
    HostStatus s;
    s.host = "hv-a";
    s.version = "1.2";
    s.policy_serial = 4;
    s.policy_revision = 99;
    s.applied_at_ms = 1700000000123;
    s.refused_serial = 5;
    s.refused_reason = "/vms/0/rate: bad";
    s.vms = 100;
    s.tiers = {90, 5, 3, 2};
    s.last_sweep_ms = 1700000000200;
    s.last_seen_ms = 1700000000300;
    auto back = host_status_from_json(to_json(s));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, s);
    HostStatus none;
    none.host = "x";
    EXPECT_TRUE(to_json(none)["refused"].is_null());
    EXPECT_FALSE(host_status_from_json(json{{"vms", 1}}));
}

Record rec(double score, Tier earned, Tier tier, std::optional<Pin> pin = std::nullopt, int64_t at = 1'000'000) {
    Record r;
    r.vm = "vm-1";
    r.tenant = "acme";
    r.state.score = score;
    r.state.score_unix_ms = at;
    r.state.earned = earned;
    r.state.since_unix_ms = at;
    r.state.pin = pin;
    r.tier = tier;
    r.updated_by = "hv-a";
    r.updated_at_ms = at;
    return r;
}

TEST(FleetRecord, JsonRoundTripAndValidation) {
    Record r = rec(12.5, Tier::Throttled, Tier::Steered, Pin{Tier::Steered, 5'000'000});
    auto back = record_from_json(to_json(r), "acme", "vm-1");
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, r);
    Record nopin = rec(0, Tier::Ok, Tier::Ok);
    back = record_from_json(to_json(nopin), "acme", "vm-1");
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, nopin);
    json bad = to_json(r);
    bad["score"] = -1;
    EXPECT_FALSE(record_from_json(bad, "acme", "vm-1"));
    bad = to_json(r);
    bad["tier"] = "purple";
    EXPECT_FALSE(record_from_json(bad, "acme", "vm-1"));
    bad = to_json(r);
    bad.erase("earned");
    EXPECT_FALSE(record_from_json(bad, "acme", "vm-1"));
}

TEST(FleetRecord, ScoreDecaysByHalfLife) {
    Record r = rec(100, Tier::Throttled, Tier::Throttled);
    EXPECT_DOUBLE_EQ(score_at(r, r.state.score_unix_ms, 600), 100);
    EXPECT_NEAR(score_at(r, r.state.score_unix_ms + 600'000, 600), 50, 1e-9);
    EXPECT_DOUBLE_EQ(score_at(r, r.state.score_unix_ms - 5, 600), 100);  // never grows backwards
}

TEST(FleetResolve, HigherScoreAndEarnedTierWinAPartitionNeverLaundersAScore) {
    const int64_t now = 2'000'000;
    Record ours = rec(10, Tier::Ok, Tier::Ok, std::nullopt, now);
    Record theirs = rec(500, Tier::Steered, Tier::Steered, std::nullopt, now);
    Record out = resolve(ours, theirs, false, now, 600);
    EXPECT_DOUBLE_EQ(out.state.score, 500);
    EXPECT_EQ(out.state.earned, Tier::Steered);
    EXPECT_EQ(out.tier, Tier::Steered);
    EXPECT_EQ(out.updated_at_ms, now);
    // Symmetric in the score.
    out = resolve(theirs, ours, false, now, 600);
    EXPECT_DOUBLE_EQ(out.state.score, 500);
    EXPECT_EQ(out.tier, Tier::Steered);
}

TEST(FleetResolve, PinIsOursOnlyWhenWeChangedIt) {
    const int64_t now = 2'000'000;
    Record ours = rec(0, Tier::Ok, Tier::Blocked, Pin{Tier::Blocked, std::nullopt}, now);
    Record theirs = rec(0, Tier::Ok, Tier::Ok, std::nullopt, now);
    Record out = resolve(ours, theirs, true, now, 600);
    ASSERT_TRUE(out.state.pin);
    EXPECT_EQ(out.tier, Tier::Blocked);
    out = resolve(ours, theirs, false, now, 600);  // we did not touch the pin: theirs (none)
    EXPECT_FALSE(out.state.pin);
}

// An operator cleared a pin here while another host still wrote the pinned tier: the
// tier in force follows the earned tier, not the cleared pin's.
TEST(FleetResolve, AClearedPinDoesNotLeaveItsTierBehind) {
    const int64_t now = 2'000'000;
    Record ours = rec(0, Tier::Ok, Tier::Ok, std::nullopt, now);
    Record theirs = rec(0, Tier::Ok, Tier::Blocked, Pin{Tier::Blocked, std::nullopt}, now);
    Record out = resolve(ours, theirs, true, now, 600);
    EXPECT_FALSE(out.state.pin);
    EXPECT_EQ(out.tier, Tier::Ok);
    // The other way round: they cleared it, we still had it and did not change it.
    out = resolve(theirs, ours, false, now, 600);
    EXPECT_FALSE(out.state.pin);
    EXPECT_EQ(out.tier, Tier::Ok);
}

TEST(FleetTenantFloor, ThresholdsAndHysteresis) {
    Thresholds t;  // 50, 400, 2000
    EXPECT_EQ(tenant_floor(0, t, Tier::Ok, 0.5), Tier::Ok);
    EXPECT_EQ(tenant_floor(49.9, t, Tier::Ok, 0.5), Tier::Ok);
    EXPECT_EQ(tenant_floor(50, t, Tier::Ok, 0.5), Tier::Throttled);
    EXPECT_EQ(tenant_floor(2500, t, Tier::Throttled, 0.5), Tier::Blocked);
    // Down only below threshold * (1 - hysteresis): blocked holds to 1000.
    EXPECT_EQ(tenant_floor(1500, t, Tier::Blocked, 0.5), Tier::Blocked);
    EXPECT_EQ(tenant_floor(1000, t, Tier::Blocked, 0.5), Tier::Blocked);
    EXPECT_EQ(tenant_floor(999, t, Tier::Blocked, 0.5), Tier::Steered);
    EXPECT_EQ(tenant_floor(30, t, Tier::Throttled, 0.5), Tier::Throttled);
    EXPECT_EQ(tenant_floor(24, t, Tier::Throttled, 0.5), Tier::Ok);
}

TEST(FleetOutbox, CleanVmsAreNotWrittenEscalationsAreUrgent) {
    Outbox box(1000);
    const int64_t t0 = 1'700'000'000'000;
    box.offer(rec(0.5, Tier::Ok, Tier::Ok, std::nullopt, t0), 600);
    EXPECT_EQ(box.pending(), 0u);  // absent means clean
    box.offer(rec(60, Tier::Throttled, Tier::Throttled, std::nullopt, t0), 600);
    auto w = box.take(t0);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].rec.tier, Tier::Throttled);
    EXPECT_FALSE(w[0].pin_changed);
    box.written(w[0].rec);
    // Only decay since: nothing to write.
    Record decayed = rec(30, Tier::Throttled, Tier::Throttled, std::nullopt, t0 + 600'000);
    box.offer(decayed, 600);
    EXPECT_EQ(box.pending(), 0u);
}

TEST(FleetOutbox, ScoreChangesWaitForTheIntervalTierChangesDoNot) {
    Outbox box(1000);
    const int64_t t0 = 1'700'000'000'000;
    box.offer(rec(60, Tier::Throttled, Tier::Throttled, std::nullopt, t0), 600);
    auto w = box.take(t0);
    ASSERT_EQ(w.size(), 1u);
    box.written(w[0].rec);
    // A score change within the tier: queued, written at the next interval only.
    box.offer(rec(80, Tier::Throttled, Tier::Throttled, std::nullopt, t0 + 100), 600);
    EXPECT_EQ(box.pending(), 1u);
    EXPECT_TRUE(box.take(t0 + 500).empty());
    // Coalesced: the latest offer is what gets written.
    box.offer(rec(90, Tier::Throttled, Tier::Throttled, std::nullopt, t0 + 600), 600);
    w = box.take(t0 + 1000);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_DOUBLE_EQ(w[0].rec.state.score, 90);
    box.written(w[0].rec);
    // A tier change goes out at once, inside the interval.
    box.offer(rec(450, Tier::Steered, Tier::Steered, std::nullopt, t0 + 1100), 600);
    w = box.take(t0 + 1100);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].rec.tier, Tier::Steered);
}

TEST(FleetOutbox, PinChangesAreFlaggedAndRetriesKeepNewerOffers) {
    Outbox box(1000);
    const int64_t t0 = 1'700'000'000'000;
    box.offer(rec(0, Tier::Ok, Tier::Blocked, Pin{Tier::Blocked, std::nullopt}, t0), 600);
    auto w = box.take(t0);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_TRUE(w[0].pin_changed);
    EXPECT_EQ(w[0].rec.vm, "vm-1");  // the record is whole after take()
    // etcd away: retried with the next take.
    box.retry(w[0]);
    EXPECT_EQ(box.pending(), 1u);
    auto again = box.take(t0 + 10);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_TRUE(again[0].pin_changed);
    box.written(again[0].rec);
    // A retry does not replace a newer offer.
    box.offer(rec(0, Tier::Ok, Tier::Ok, std::nullopt, t0 + 20), 600);  // pin cleared
    box.retry(again[0]);
    auto last = box.take(t0 + 30);
    ASSERT_EQ(last.size(), 1u);
    EXPECT_FALSE(last[0].rec.state.pin);
    EXPECT_TRUE(last[0].pin_changed);
    box.forget("vm-1");
    EXPECT_FALSE(box.last("vm-1"));
    EXPECT_EQ(box.pending(), 0u);
}

}  // namespace
