// Policy model: defaults, JSON round trip, diff, effective limits, and validation speed.
#include <gtest/gtest.h>

#include <chrono>

#include "core/policy.h"

using nlohmann::json;
using namespace smtpgov;

namespace {

json full_doc() {
    return json::parse(R"({
      "smtp_ports": [25, 2525],
      "defaults": {"rate": 10, "burst": 20, "over_limit": "reset", "unregistered_burst": 50},
      "tiers": {"throttled": {"rate": 2, "burst": 5}, "steered": {"rate": 1}, "blocked": {"action": "drop"}},
      "conn_per_vm": 512,
      "proxy": {"address": ["192.0.2.10:2525", "[2001:db8::25]:25"], "fail_mode": "block", "ports": [25, 2525],
                "check_interval_s": 2, "egress": ["198.51.100.77", "2001:db8:e::1"]},
      "reputation": {"half_life_s": 300, "thresholds": {"throttled": 10, "steered": 100, "blocked": 1000.5},
                     "hysteresis": 0.25, "min_dwell_s": 60,
                     "weights": {"over_limit": 0.5, "spoofed": 3, "remote_reject": 1, "spam_report": 40, "complaint": 90}},
      "vms": [
        {"id": "vm-101", "tenant": "acme", "interface": "vnet3",
         "addresses": ["203.0.113.7", "2001:db8:1::/64"], "rate": 100, "burst": 200, "tier": "ok"},
        {"id": "vm-102", "addresses": ["198.51.100.0/28"], "burst": 3},
        {"id": "vm-103", "interface": "tap0"}
      ]})");
}

Policy parsed(const json& doc) {
    auto out = parse_policy(doc);
    for (const auto& p : out.problems) ADD_FAILURE() << p.path << ": " << p.reason;
    return out.policy.value_or(Policy{});
}

}  // namespace

TEST(PolicyModel, DefaultsWhenOmitted) {
    Policy p = parsed({{"vms", {{{"id", "a"}, {"interface", "vnet0"}}}}});
    EXPECT_EQ(p.defaults.rate, 10u);
    EXPECT_EQ(p.defaults.burst, 20u);
    EXPECT_EQ(p.defaults.over_limit, Action::Drop);
    EXPECT_EQ(unregistered_limits(p), (LimitPair{100, 200}));
    EXPECT_EQ(p.tiers.throttled, (LimitPair{2, 5}));
    EXPECT_EQ(steered_limits(p), (LimitPair{2, 5}));
    EXPECT_EQ(blocked_action(p), Action::Reset);
    EXPECT_FALSE(p.proxy);
    EXPECT_EQ(fail_mode(p), FailMode::Throttle);  // no proxy: steered VMs are throttled
    EXPECT_EQ(p.conn_per_vm, 4096u);
    EXPECT_EQ(p.reputation.half_life_s, 600);
    EXPECT_EQ(p.reputation.hysteresis, 0.5);
    EXPECT_EQ(p.reputation.min_dwell_s, 30);
    EXPECT_LT(p.reputation.thresholds.throttled, p.reputation.thresholds.steered);
}

TEST(PolicyModel, ParsesEveryField) {
    Policy p = parsed(full_doc());
    EXPECT_EQ(p.smtp_ports, (std::vector<uint16_t>{25, 2525}));
    EXPECT_EQ(over_limit_action(p), Action::Reset);
    EXPECT_EQ(unregistered_limits(p), (LimitPair{100, 50}));
    EXPECT_EQ(steered_limits(p), (LimitPair{1, 5}));
    EXPECT_EQ(blocked_action(p), Action::Drop);
    EXPECT_EQ(p.conn_per_vm, 512u);
    ASSERT_TRUE(p.proxy);
    ASSERT_TRUE(p.proxy->v4 && p.proxy->v6);
    EXPECT_EQ(p.proxy->v4->to_string(), "192.0.2.10:2525");
    EXPECT_EQ(p.proxy->v6->to_string(), "[2001:db8::25]:25");
    EXPECT_EQ(p.proxy->fail_mode, FailMode::Block);
    EXPECT_EQ(fail_tier(fail_mode(p)), Tier::Blocked);
    EXPECT_EQ(p.proxy->ports, (std::vector<uint16_t>{25, 2525}));
    EXPECT_EQ(p.proxy->check_interval_s, 2u);
    ASSERT_EQ(p.proxy->egress.size(), 2u);
    EXPECT_EQ(p.proxy->egress[1].to_string(), "2001:db8:e::1");
    EXPECT_EQ(p.reputation.thresholds.blocked, 1000.5);
    EXPECT_EQ(p.reputation.weights.of(Signal::Complaint), 90);
    const Vm* vm = p.find("vm-101");
    ASSERT_NE(vm, nullptr);
    EXPECT_EQ(vm->tenant, "acme");
    EXPECT_EQ(vm->interface, "vnet3");
    ASSERT_EQ(vm->addresses.size(), 2u);
    EXPECT_EQ(vm->addresses[1].to_string(), "2001:db8:1::/64");
    EXPECT_EQ(vm->tier, Tier::Ok);
    EXPECT_EQ(p.find("nope"), nullptr);
}

TEST(PolicyModel, JsonRoundTrip) {
    for (const json& doc : {full_doc(), json{{"vms", json::array()}}}) {
        Policy p = parsed(doc);
        json rendered = to_json(p);
        auto again = parse_policy(rendered);
        ASSERT_TRUE(again.policy) << rendered.dump();
        EXPECT_EQ(*again.policy, p);
        EXPECT_EQ(to_json(*again.policy), rendered);
    }
}

// A proxy written the short way (one string, defaults) renders in full, as a list.
TEST(PolicyModel, ProxyShortFormRendersInFull) {
    Policy p = parsed({{"proxy", {{"address", "192.0.2.10:25"}}}, {"vms", json::array()}});
    EXPECT_EQ(to_json(p)["proxy"], json::parse(R"({"address": ["192.0.2.10:25"], "fail_mode": "throttle",
        "ports": [25], "check_interval_s": 5, "egress": []})"));
    EXPECT_EQ(to_json(p)["conn_per_vm"], 4096);
}

TEST(PolicyModel, LimitsForEachTier) {
    Policy p = parsed(full_doc());
    const Vm& big = *p.find("vm-101");    // 100/200
    const Vm& small = *p.find("vm-102");  // default rate 10, own burst 3
    const Vm& plain = *p.find("vm-103");  // defaults 10/20
    EXPECT_EQ(limits_for(p, big, Tier::Ok), (LimitPair{100, 200}));
    EXPECT_EQ(limits_for(p, big, Tier::Throttled), (LimitPair{2, 5}));
    EXPECT_EQ(limits_for(p, big, Tier::Steered), (LimitPair{1, 5}));
    EXPECT_EQ(limits_for(p, big, Tier::Blocked), (LimitPair{0, 0}));
    EXPECT_EQ(limits_for(p, small, Tier::Ok), (LimitPair{10, 3}));
    EXPECT_EQ(limits_for(p, small, Tier::Throttled), (LimitPair{2, 3}));  // its own burst is tighter
    EXPECT_EQ(limits_for(p, plain, Tier::Ok), (LimitPair{10, 20}));
    EXPECT_EQ(default_limits_for(p, Tier::Throttled), (LimitPair{2, 5}));
}

TEST(PolicyModel, DiffNamesWhatChanged) {
    Policy old = parsed(full_doc());
    json doc = full_doc();
    doc["smtp_ports"] = {25};
    doc["proxy"]["ports"] = {25};
    doc["vms"][0]["tenant"] = "other";
    doc["vms"][0]["addresses"] = {"203.0.113.7"};
    doc["vms"][0].erase("tier");
    doc["vms"].erase(1);                                          // vm-102 removed
    doc["vms"].push_back({{"id", "vm-200"}, {"interface", "vnet9"}});  // added
    doc["defaults"]["rate"] = 12;                                 // vm-103 inherits it
    Policy neu = parsed(doc);
    PolicyDiff d = diff(old, neu);
    EXPECT_EQ(d.added, std::vector<std::string>{"vm-200"});
    EXPECT_EQ(d.removed, std::vector<std::string>{"vm-102"});
    ASSERT_EQ(d.changed.size(), 2u);
    EXPECT_EQ(d.changed[0], (VmChange{"vm-101", {"tenant", "addresses", "tier"}}));
    EXPECT_EQ(d.changed[1], (VmChange{"vm-103", {"rate"}}));
    EXPECT_TRUE(d.ports_changed);
    EXPECT_EQ(d.sections_changed, (std::vector<std::string>{"defaults", "proxy"}));
    json more = doc;
    more["conn_per_vm"] = 100;
    more["proxy"]["check_interval_s"] = 9;
    EXPECT_EQ(diff(neu, parsed(more)).sections_changed, (std::vector<std::string>{"conn_per_vm", "proxy"}));
    EXPECT_EQ(to_json(d), json::parse(R"({"added":["vm-200"],"removed":["vm-102"],
        "changed":[{"id":"vm-101","fields":["tenant","addresses","tier"]},{"id":"vm-103","fields":["rate"]}],
        "ports_changed":true})"));
    EXPECT_TRUE(diff(neu, neu).empty());
    Policy reordered = old;
    reordered.smtp_ports = {2525, 25};
    EXPECT_FALSE(diff(old, reordered).ports_changed);
}

TEST(PolicyModel, ProblemsRenderAsJson) {
    auto out = parse_policy(json{{"vms", {{{"id", "a"}, {"interface", "vnet0"}, {"rate", -1}}}}});
    EXPECT_EQ(to_json(out.problems), json::parse(R"([{"path":"/vms/0/rate","reason":"must be >= 0"}])"));
}

// 100,000 VMs with one v4 and one v6 address each, validated well under a second, and
// the sort-and-sweep still finds a single overlap planted at the end.
TEST(PolicyModel, HundredThousandVmsValidate) {
    constexpr int kVms = 100'000;
    json vms = json::array();
    for (int i = 0; i < kVms; ++i) {
        std::string v4 = "10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) + "." +
                         std::to_string(i & 255);
        char v6[64];
        std::snprintf(v6, sizeof v6, "2001:db8:%x:%x::/64", i >> 16, i & 0xffff);
        vms.push_back({{"id", "vm-" + std::to_string(i)}, {"interface", "v" + std::to_string(i)},
                       {"addresses", {v4, v6}}});
    }
    auto t0 = std::chrono::steady_clock::now();
    auto ok = parse_policy({{"vms", vms}});
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(ok.policy);
    // reported, not asserted: a wall-clock bound fails on a loaded CI machine
    RecordProperty("validate_100k_ms", static_cast<int>(secs * 1000));

    vms.push_back({{"id", "late"}, {"addresses", {"10.0.0.0/24"}}});
    auto bad = parse_policy({{"vms", vms}});
    ASSERT_EQ(bad.problems.size(), 256u);  // every /32 inside 10.0.0.0/24 is reported once
    EXPECT_NE(bad.problems[0].reason.find("of VM \"late\""), std::string::npos) << bad.problems[0].reason;
}
