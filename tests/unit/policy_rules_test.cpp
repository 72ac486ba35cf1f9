// One test per validation rule of the policy (DESIGN.md "Policy"): each names the JSON
// pointer of the problem, and a policy with several problems reports them all.
#include <gtest/gtest.h>

#include "core/policy.h"

using nlohmann::json;
using smtpgov::parse_policy;
using smtpgov::Problem;

namespace {

json vm(const std::string& id, const std::string& addr) { return {{"id", id}, {"addresses", {addr}}}; }

json base() { return {{"vms", {{{"id", "vm-1"}, {"interface", "vnet1"}}}}}; }

std::vector<Problem> problems_of(const json& doc) {
    auto out = parse_policy(doc);
    EXPECT_EQ(out.policy.has_value(), out.problems.empty());
    return out.problems;
}

// Expects a problem at exactly `path` whose reason contains `needle`.
::testing::AssertionResult has_problem(const json& doc, const std::string& path, const std::string& needle) {
    auto ps = problems_of(doc);
    std::string all;
    for (const auto& p : ps) {
        if (p.path == path && p.reason.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
        all += "\n  " + p.path + ": " + p.reason;
    }
    return ::testing::AssertionFailure() << "no problem at \"" << path << "\" containing \"" << needle
                                         << "\"; got:" << (all.empty() ? " none" : all);
}

}  // namespace

TEST(PolicyRules, MinimalPolicyIsValid) {
    auto out = parse_policy(base());
    ASSERT_TRUE(out.policy) << out.problems.size();
    EXPECT_EQ(out.policy->vms.size(), 1u);
    EXPECT_EQ(out.policy->smtp_ports, (std::vector<uint16_t>{25, 465, 587}));
    EXPECT_TRUE(parse_policy(json{{"vms", json::array()}}).policy);
}

TEST(PolicyRules, NotAnObject) {
    EXPECT_TRUE(has_problem(json::array(), "", "must be a JSON object"));
    EXPECT_TRUE(has_problem(json(42), "", "must be a JSON object"));
}

TEST(PolicyRules, SyntaxErrorNamesBytePosition) {
    auto out = smtpgov::parse_policy_text("{\"vms\": [}");
    ASSERT_EQ(out.problems.size(), 1u);
    EXPECT_EQ(out.problems[0].path, "");
    EXPECT_NE(out.problems[0].reason.find("invalid JSON at byte 10"), std::string::npos) << out.problems[0].reason;
}

TEST(PolicyRules, UnknownKeyAtEveryLevel) {
    json d = base();
    d["colour"] = 1;
    d["defaults"] = {{"rat", 1}};
    d["tiers"] = {{"throttled", {{"burts", 1}}}, {"blocked", {{"mode", "drop"}}}, {"jailed", {}}};
    d["proxy"] = {{"address", "192.0.2.1:25"}, {"fail", "pass"}};
    d["reputation"] = {{"thresholds", {{"warn", 1}}}, {"weights", {{"virus", 1}}}, {"x/y", 1}};
    d["vms"][0]["colour"] = "blue";
    EXPECT_TRUE(has_problem(d, "/colour", "unknown key"));
    EXPECT_TRUE(has_problem(d, "/defaults/rat", "unknown key"));
    EXPECT_TRUE(has_problem(d, "/tiers/throttled/burts", "unknown key"));
    EXPECT_TRUE(has_problem(d, "/tiers/blocked/mode", "unknown key"));
    EXPECT_TRUE(has_problem(d, "/tiers/jailed", "unknown key"));
    EXPECT_TRUE(has_problem(d, "/proxy/fail", "unknown key"));
    EXPECT_TRUE(has_problem(d, "/reputation/thresholds/warn", "unknown key"));
    EXPECT_TRUE(has_problem(d, "/reputation/weights/virus", "unknown key"));
    EXPECT_TRUE(has_problem(d, "/reputation/x~1y", "unknown key"));  // RFC 6901 escaping
    EXPECT_TRUE(has_problem(d, "/vms/0/colour", "unknown key"));
    EXPECT_EQ(problems_of(d).size(), 10u);  // whole validation: nothing stops early
}

TEST(PolicyRules, WrongType) {
    json d = base();
    d["smtp_ports"] = "25";
    d["defaults"] = {{"rate", "10"}, {"over_limit", 1}};
    d["tiers"] = 7;
    d["vms"][0]["tenant"] = 5;
    d["vms"][0]["addresses"] = "10.0.0.1";
    d["vms"].push_back("vm-2");
    EXPECT_TRUE(has_problem(d, "/smtp_ports", "must be an array"));
    EXPECT_TRUE(has_problem(d, "/defaults/rate", "must be a number"));
    EXPECT_TRUE(has_problem(d, "/defaults/over_limit", "must be a string"));
    EXPECT_TRUE(has_problem(d, "/tiers", "must be an object"));
    EXPECT_TRUE(has_problem(d, "/vms/0/tenant", "must be a string"));
    EXPECT_TRUE(has_problem(d, "/vms/0/addresses", "must be an array"));
    EXPECT_TRUE(has_problem(d, "/vms/1", "must be an object"));
    EXPECT_TRUE(has_problem(json{{"vms", json::object()}}, "/vms", "must be an array"));
}

TEST(PolicyRules, MissingVms) {
    EXPECT_TRUE(has_problem(json::object(), "/vms", "required"));
    EXPECT_TRUE(has_problem(json{{"vms", {{{"interface", "vnet1"}}}}}, "/vms/0/id", "required"));
}

TEST(PolicyRules, NegativeRateOrBurst) {
    json d = base();
    d["defaults"] = {{"rate", -1}};
    d["vms"][0]["burst"] = -5;
    d["tiers"] = {{"throttled", {{"rate", -0.5}}}};
    EXPECT_TRUE(has_problem(d, "/defaults/rate", "must be >= 0"));
    EXPECT_TRUE(has_problem(d, "/vms/0/burst", "must be >= 0"));
    EXPECT_TRUE(has_problem(d, "/tiers/throttled/rate", "must be >= 0"));
}

TEST(PolicyRules, AbsurdRateOrBurst) {
    json d = base();
    d["vms"][0]["rate"] = 1'000'001;
    d["vms"][0]["burst"] = 10'000'001;
    d["defaults"] = {{"unregistered_rate", 5e12}};
    EXPECT_TRUE(has_problem(d, "/vms/0/rate", "absurd"));
    EXPECT_TRUE(has_problem(d, "/vms/0/burst", "absurd"));
    EXPECT_TRUE(has_problem(d, "/defaults/unregistered_rate", "absurd"));
    json ok = base();
    ok["vms"][0]["rate"] = 1'000'000;
    ok["vms"][0]["burst"] = 10'000'000;
    EXPECT_TRUE(parse_policy(ok).policy);
}

TEST(PolicyRules, FractionalRate) { 
    json d = base();
    d["vms"][0]["rate"] = 2.5;
    EXPECT_TRUE(has_problem(d, "/vms/0/rate", "whole number"));
}

TEST(PolicyRules, BurstZeroWithPositiveRate) {
    json d = base();
    d["defaults"] = {{"rate", 10}, {"burst", 0}};
    d["tiers"] = {{"throttled", {{"burst", 0}}}};
    d["vms"][0]["burst"] = 0;
    EXPECT_TRUE(has_problem(d, "/defaults/burst", "nothing could ever pass"));
    EXPECT_TRUE(has_problem(d, "/tiers/throttled/burst", "nothing could ever pass"));
    EXPECT_TRUE(has_problem(d, "/vms/0/burst", "nothing could ever pass"));
    // rate 0 with burst 0 is a deliberate "refuse everything"
    json refuse = base();
    refuse["vms"][0]["rate"] = 0;
    refuse["vms"][0]["burst"] = 0;
    EXPECT_TRUE(parse_policy(refuse).policy);
    // a VM rate > 0 that inherits a default burst of 0
    json inherit = base();
    inherit["defaults"] = {{"rate", 0}, {"burst", 0}};
    inherit["vms"][0]["rate"] = 5;
    EXPECT_TRUE(has_problem(inherit, "/vms/0/burst", "inherited from defaults"));
}

TEST(PolicyRules, InvalidAddressOrPrefix) {
    json d = base();
    d["vms"][0]["addresses"] = {"203.0.113.300", "10.0.0.0/33", "2001:db8::/129", "example.org", 7};
    EXPECT_TRUE(has_problem(d, "/vms/0/addresses/0", "invalid address"));
    EXPECT_TRUE(has_problem(d, "/vms/0/addresses/1", "bad prefix length"));
    EXPECT_TRUE(has_problem(d, "/vms/0/addresses/2", "bad prefix length"));
    EXPECT_TRUE(has_problem(d, "/vms/0/addresses/3", "invalid address"));
    EXPECT_TRUE(has_problem(d, "/vms/0/addresses/4", "must be a string"));
}

TEST(PolicyRules, HostBitsSet) {
    json d = base();
    d["vms"][0]["addresses"] = {"10.0.0.1/24", "2001:db8::1/64"};
    EXPECT_TRUE(has_problem(d, "/vms/0/addresses/0", "did you mean 10.0.0.0/24"));
    EXPECT_TRUE(has_problem(d, "/vms/0/addresses/1", "did you mean 2001:db8::/64"));
}

TEST(PolicyRules, VmNeedsInterfaceOrAddress) {
    EXPECT_TRUE(has_problem(json{{"vms", {{{"id", "a"}}}}}, "/vms/0", "an interface, a libvirt domain or at least one address"));
    EXPECT_TRUE(has_problem(json{{"vms", {{{"id", "a"}, {"addresses", json::array()}}}}}, "/vms/0",
                            "a libvirt domain or at least one"));
}

TEST(PolicyRules, BadVmIdOrInterfaceName) {
    json d = {{"vms",
               {{{"id", "if:vnet3"}, {"interface", "vnet3"}},
                {{"id", "has space"}, {"interface", "vnet4"}},
                {{"id", std::string(65, 'a')}, {"interface", "a/b"}},
                {{"id", ""}, {"interface", "sixteen-chars-xx"}},
                {{"id", "ok.id_1-x"}, {"interface", "eth0:1"}}}}};
    EXPECT_TRUE(has_problem(d, "/vms/0/id", "reserved"));
    EXPECT_TRUE(has_problem(d, "/vms/1/id", "1-64 characters"));
    EXPECT_TRUE(has_problem(d, "/vms/2/id", "1-64 characters"));
    EXPECT_TRUE(has_problem(d, "/vms/2/interface", "not a valid interface name"));
    EXPECT_TRUE(has_problem(d, "/vms/3/id", "1-64 characters"));
    EXPECT_TRUE(has_problem(d, "/vms/3/interface", "not a valid interface name"));
    EXPECT_TRUE(has_problem(d, "/vms/4/interface", "not a valid interface name"));
    EXPECT_EQ(problems_of(d).size(), 7u);
}

TEST(PolicyRules, DuplicateVmId) {
    json d = {{"vms", {vm("a", "10.0.0.1"), vm("b", "10.0.0.2"), vm("a", "10.0.0.3")}}};
    EXPECT_TRUE(has_problem(d, "/vms/2/id", "duplicate VM id \"a\" (first at /vms/0)"));
}

TEST(PolicyRules, InterfaceClaimedTwice) {
    json d = {{"vms", {{{"id", "a"}, {"interface", "vnet3"}}, {{"id", "b"}, {"interface", "vnet3"}}}}};
    EXPECT_TRUE(has_problem(d, "/vms/1/interface", "already claimed by /vms/0"));
}

TEST(PolicyRules, OverlappingPrefixesBetweenVms) {
    json d = {{"vms",
               {vm("a", "10.0.0.0/8"), vm("b", "10.1.2.3"), vm("c", "2001:db8::/32"), vm("d", "2001:db8:5::/48"),
                vm("e", "192.0.2.0/25"), vm("f", "192.0.2.128/25"), vm("g", "10.1.2.3")}}};
    EXPECT_TRUE(has_problem(d, "/vms/1/addresses/0", "overlaps 10.0.0.0/8 of VM \"a\""));
    EXPECT_TRUE(has_problem(d, "/vms/3/addresses/0", "overlaps 2001:db8::/32 of VM \"c\""));
    EXPECT_TRUE(has_problem(d, "/vms/6/addresses/0", "overlaps 10.1.2.3"));
    EXPECT_EQ(problems_of(d).size(), 3u);  // e and f are adjacent, not overlapping
    // one VM may list nested or repeated prefixes of its own
    json own = {{"vms", {{{"id", "a"}, {"addresses", {"10.0.0.0/8", "10.1.0.0/16", "10.1.0.0/16"}}}}}};
    EXPECT_TRUE(parse_policy(own).policy);
}

TEST(PolicyRules, UnknownTier) {
    json d = base();
    d["vms"][0]["tier"] = "jailed";
    EXPECT_TRUE(has_problem(d, "/vms/0/tier", "unknown tier \"jailed\""));
}

TEST(PolicyRules, UnknownAction) {
    json d = base();
    d["defaults"] = {{"over_limit", "reject"}};
    d["tiers"] = {{"blocked", {{"action", "tarpit"}}}};
    d["proxy"] = {{"address", "192.0.2.1:25"}, {"fail_mode", "shrug"}};
    EXPECT_TRUE(has_problem(d, "/defaults/over_limit", "unknown action \"reject\""));
    EXPECT_TRUE(has_problem(d, "/tiers/blocked/action", "unknown action \"tarpit\""));
    EXPECT_TRUE(has_problem(d, "/proxy/fail_mode", "unknown fail_mode"));
}

namespace {
json with_proxy(json proxy, json ports = nullptr) {
    json d = base();
    d["proxy"] = std::move(proxy);
    if (!ports.is_null()) d["smtp_ports"] = std::move(ports);
    return d;
}
}  // namespace

TEST(PolicyRules, BadProxyAddress) {
    EXPECT_TRUE(has_problem(with_proxy({{"address", "192.0.2.10"}}), "/proxy/address", "missing port"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", "192.0.2.10:0"}}), "/proxy/address", "port 0"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", "proxy.example:25"}}), "/proxy/address", "bad host"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", "2001:db8::1:25"}}), "/proxy/address", "[IPv6]:PORT"));
    EXPECT_TRUE(has_problem(with_proxy({{"fail_mode", "block"}}), "/proxy/address", "required"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", json::array()}}), "/proxy/address", "one IPv4 and/or one IPv6"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", 25}}), "/proxy/address", "must be a list"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", {"192.0.2.10:25", "192.0.2.11:25"}}}), "/proxy/address/1",
                            "a second IPv4 proxy"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", {"[::1]:25"}}}), "/proxy/address/0", "loopback"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", "127.0.0.1:25"}}), "/proxy/address", "loopback"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", "0.0.0.0:25"}}), "/proxy/address", "unspecified"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", {"192.0.2.1:25", "[ff02::1]:25", "x"}}}), "/proxy/address",
                            "one IPv4 and/or one IPv6"));
    auto ok = parse_policy(with_proxy({{"address", "[2001:db8::10]:25"}, {"fail_mode", "block"}}));
    ASSERT_TRUE(ok.policy);
    EXPECT_EQ(ok.policy->proxy->fail_mode, smtpgov::FailMode::Block);
    EXPECT_FALSE(ok.policy->proxy->v4);
    auto both = parse_policy(with_proxy({{"address", {"[2001:db8::10]:25", "192.0.2.10:25"}}}));
    ASSERT_TRUE(both.policy);
    EXPECT_EQ(both.policy->proxy->addresses().size(), 2u);
}

// DESIGN: "while it is down, proxy.fail_mode applies (throttle or block)"; never fail open.
TEST(PolicyRules, FailModePassIsRefused) {
    EXPECT_TRUE(has_problem(with_proxy({{"address", "192.0.2.10:25"}, {"fail_mode", "pass"}}), "/proxy/fail_mode",
                            "never fails open"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", "192.0.2.10:25"}, {"fail_mode", 1}}), "/proxy/fail_mode",
                            "must be a string"));
}

TEST(PolicyRules, ProxyPortsAreSmtpPorts) {
    json px = {{"address", "192.0.2.10:25"}, {"ports", {25, 2525}}};
    EXPECT_TRUE(has_problem(with_proxy(px), "/proxy/ports/1", "not one of /smtp_ports"));
    EXPECT_TRUE(parse_policy(with_proxy(px, {25, 2525})).policy);
    EXPECT_TRUE(has_problem(with_proxy({{"address", "192.0.2.10:25"}, {"ports", json::array()}}), "/proxy/ports",
                            "at least one port"));
    EXPECT_TRUE(has_problem(with_proxy({{"address", "192.0.2.10:25"}, {"ports", {25, 25}}}), "/proxy/ports/1",
                            "duplicate port"));
    // the default [25] must itself be an SMTP port
    EXPECT_TRUE(has_problem(with_proxy({{"address", "192.0.2.10:25"}}, {587}), "/proxy/ports", "required"));
}

TEST(PolicyRules, ProxyIntervalAndEgress) {
    json px = {{"address", "192.0.2.10:25"}};
    auto at = [&](const char* key, json v) {
        json p = px;
        p[key] = std::move(v);
        return with_proxy(p);
    };
    EXPECT_TRUE(has_problem(at("check_interval_s", 0), "/proxy/check_interval_s", ">= 1"));
    EXPECT_TRUE(has_problem(at("check_interval_s", 1.5), "/proxy/check_interval_s", "whole number"));
    EXPECT_TRUE(has_problem(at("check_interval_s", 86400), "/proxy/check_interval_s", "<= 3600"));
    EXPECT_TRUE(has_problem(at("egress", "192.0.2.99"), "/proxy/egress", "must be a list"));
    EXPECT_TRUE(has_problem(at("egress", {"192.0.2.0/24"}), "/proxy/egress/0", "not a prefix"));
    EXPECT_TRUE(has_problem(at("egress", {"192.0.2.99", "192.0.2.99"}), "/proxy/egress/1", "duplicate"));
    EXPECT_TRUE(has_problem(at("egress", {"nope"}), "/proxy/egress/0", "not an address"));
    EXPECT_TRUE(has_problem(at("egress", {"127.0.0.2"}), "/proxy/egress/0", "loopback"));
    EXPECT_TRUE(has_problem(at("colour", 1), "/proxy/colour", "unknown key"));
}

TEST(PolicyRules, ConnPerVm) {
    json d = base();
    for (auto [v, why] : {std::pair{json(0), ">= 1"}, {json(65537), "<= 65536"}, {json(-1), ">= 0"},
                          {json("4096"), "must be a number"}}) {
        d["conn_per_vm"] = v;
        EXPECT_TRUE(has_problem(d, "/conn_per_vm", why)) << v.dump();
    }
    d["conn_per_vm"] = 65536;
    ASSERT_TRUE(parse_policy(d).policy);
    EXPECT_EQ(parse_policy(d).policy->conn_per_vm, 65536u);
}

TEST(PolicyRules, BadPorts) {
    auto with_ports = [](json ports) {
        json d = base();
        d["smtp_ports"] = std::move(ports);
        return d;
    };
    EXPECT_TRUE(has_problem(with_ports({25, 587, 25}), "/smtp_ports/2", "duplicate port 25"));
    EXPECT_TRUE(has_problem(with_ports({0}), "/smtp_ports/0", "port 0"));
    EXPECT_TRUE(has_problem(with_ports({25, 65536}), "/smtp_ports/1", "absurd"));
    EXPECT_TRUE(has_problem(with_ports(json::array()), "/smtp_ports", "at least one port"));
    json many = json::array();
    for (int p = 1; p <= 17; ++p) many.push_back(p);
    EXPECT_TRUE(has_problem(with_ports(many), "/smtp_ports", "at most 16"));
    many.erase(many.size() - 1);
    EXPECT_TRUE(parse_policy(with_ports(many)).policy);
}

TEST(PolicyRules, ThresholdsNotIncreasing) {
    json d = base();
    d["reputation"] = {{"thresholds", {{"throttled", 50}, {"steered", 50}, {"blocked", 2000}}}};
    EXPECT_TRUE(has_problem(d, "/reputation/thresholds", "strictly increasing"));
    d["reputation"] = {{"thresholds", {{"blocked", 300}}}};  // below the default steered (400)
    EXPECT_TRUE(has_problem(d, "/reputation/thresholds", "strictly increasing"));
    d["reputation"] = {{"thresholds", {{"throttled", 0}}}};
    EXPECT_TRUE(has_problem(d, "/reputation/thresholds/throttled", "must be > 0"));
}

TEST(PolicyRules, HysteresisOutOfRange) {
    json d = base();
    d["reputation"] = {{"hysteresis", 0.95}};
    EXPECT_TRUE(has_problem(d, "/reputation/hysteresis", "must be <= 0.9"));
    d["reputation"] = {{"hysteresis", -0.1}};
    EXPECT_TRUE(has_problem(d, "/reputation/hysteresis", "must be >= 0"));
    d["reputation"] = {{"hysteresis", 0}};
    EXPECT_TRUE(parse_policy(d).policy);
}

TEST(PolicyRules, HalfLifeNotPositive) {
    json d = base();
    d["reputation"] = {{"half_life_s", 0}};
    EXPECT_TRUE(has_problem(d, "/reputation/half_life_s", "must be > 0"));
    d["reputation"] = {{"half_life_s", -600}};
    EXPECT_TRUE(has_problem(d, "/reputation/half_life_s", "must be > 0"));
    d["reputation"] = {{"min_dwell_s", -1}, {"weights", {{"complaint", -3}}}};
    EXPECT_TRUE(has_problem(d, "/reputation/min_dwell_s", "must be >= 0"));
    EXPECT_TRUE(has_problem(d, "/reputation/weights/complaint", "must be >= 0"));
}

TEST(PolicyRules, EveryProblemIsReported) {
    json d = {{"smtp_ports", {25, 25}},
              {"defaults", {{"rate", -1}}},
              {"reputation", {{"hysteresis", 2}}},
              {"vms", {vm("a", "10.0.0.0/8"), vm("a", "10.0.0.1/8"), {{"id", "b"}, {"tier", "x"}}}}};
    auto ps = problems_of(d);
    EXPECT_EQ(ps.size(), 7u);  // dup port, rate, hysteresis, host bits, dup id, tier, no iface/address
}
