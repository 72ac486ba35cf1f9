// Steering decisions (DESIGN.md "Steering"): what sg_runtime holds, and what a steered
// VM gets while the proxy is down (fail_mode), decided in Tiers from the health
// checker's findings (a fake: the test reports as the checker would).
#include <arpa/inet.h>

#include "fixture.h"

namespace sgt {
namespace {

Endpoint ep(const char* s) { return Endpoint::parse(s).value(); }

json proxied(std::vector<json> vms, json proxy) { return policy(std::move(vms), {{"proxy", std::move(proxy)}}); }

class SteeringTest : public ControllerTest {
protected:
    sg_runtime runtime() { return maps.get<sg_runtime>(MapId::Runtime, uint32_t{0}).value_or(sg_runtime{}); }
    std::vector<TierChange> proxy_events() {
        std::vector<TierChange> out;
        for (const auto& ch : heard)
            if (ch.event.type.starts_with("proxy_")) out.push_back(ch);
        return out;
    }
};

TEST_F(SteeringTest, RuntimeCarriesPolicyAndProxy) {
    start(proxied({vm("a", {{"tier", "steered"}})},
                  {{"address", {"192.0.2.10:2525", "[2001:db8::10]:25"}}, {"ports", {25, 587}}, {"fail_mode", "block"}}));
    sg_runtime r = runtime();
    EXPECT_EQ(r.conn_per_vm, 4096u);
    EXPECT_EQ(r.flags, SG_RT_PROXY_V4 | SG_RT_PROXY_V6);  // counted up until a check says otherwise
    EXPECT_EQ((std::vector<uint8_t>{r.proxy_v4, r.proxy_v4 + 4}), (std::vector<uint8_t>{192, 0, 2, 10}));
    EXPECT_EQ(ntohs(r.proxy_v4_port), 2525);
    EXPECT_EQ(r.proxy_v6[0], 0x20);
    EXPECT_EQ(r.proxy_v6[15], 0x10);
    EXPECT_EQ(ntohs(r.proxy_v6_port), 25);
    ASSERT_EQ(r.n_proxy_ports, 2u);
    EXPECT_EQ(r.proxy_ports[0], 25);
    EXPECT_EQ(r.proxy_ports[1], 587);
    EXPECT_EQ(r.nofamily_tier, SG_TIER_BLOCKED);
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_STEERED);
    EXPECT_EQ(vm_entry("a").rate, 2u);  // the steered tier's limits (the throttled ones by default)

    apply(proxied({vm("a", {{"tier", "steered"}})}, {{"address", "192.0.2.10:25"}}));
    apply(policy({vm("a", {{"tier", "steered"}})}, {{"conn_per_vm", 7}}));
    EXPECT_EQ(runtime().conn_per_vm, 7u);
}

// No proxy at all: steered VMs get fail_mode (throttle by default), nothing is steered.
TEST_F(SteeringTest, NoProxyMeansFailMode) {
    start(policy({vm("a", {{"tier", "steered"}}), vm("b")}));
    EXPECT_EQ(runtime().flags, 0u);
    EXPECT_EQ(runtime().nofamily_tier, SG_TIER_THROTTLED);
    EXPECT_EQ(runtime().n_proxy_ports, 1u);
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_THROTTLED);
    EXPECT_EQ(vm_entry("b").tier, SG_TIER_OK);
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "a"}})["tier"], "steered");  // the tier it has
}

TEST_F(SteeringTest, ProxyDownAndBack) {
    start(proxied({vm("a", {{"tier", "steered"}}), vm("b"), vm("c", {{"tier", "blocked"}})},
                  {{"address", "192.0.2.10:25"}}));
    ASSERT_EQ(vm_entry("a").tier, SG_TIER_STEERED);
    heard.clear();
    ctl->proxy_health(ep("192.0.2.10:25"), false, "connect 192.0.2.10:25: Connection refused");
    EXPECT_EQ(runtime().flags, 0u);
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_THROTTLED);
    EXPECT_EQ(vm_entry("a").rate, 2u);
    EXPECT_EQ(vm_entry("b").tier, SG_TIER_OK);
    EXPECT_EQ(vm_entry("c").tier, SG_TIER_BLOCKED);
    ASSERT_EQ(heard.size(), 1u);
    const svc::Event& down = heard[0].event;
    EXPECT_EQ(down.type, "proxy_down");
    EXPECT_FALSE(heard[0].ticket);
    EXPECT_EQ(down.from, Tier::Steered);
    EXPECT_EQ(down.to, Tier::Throttled);
    EXPECT_EQ(down.reason, "connect 192.0.2.10:25: Connection refused");
    EXPECT_EQ(down.evidence["proxy"], "192.0.2.10:25");
    EXPECT_EQ(down.evidence["fail_mode"], "throttle");
    EXPECT_EQ(down.evidence["steered_vms"], 1);
    // the same finding again changes nothing and says nothing
    ctl->proxy_health(ep("192.0.2.10:25"), false, "still refused");
    EXPECT_EQ(heard.size(), 1u);
    // a VM that reaches steered meanwhile is enforced with the fail mode too
    call({{"cmd", "vm.set_tier"}, {"id", "b"}, {"tier", "steered"}});
    EXPECT_EQ(vm_entry("b").tier, SG_TIER_THROTTLED);
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "b"}})["tier"], "steered");

    heard.clear();
    ctl->proxy_health(ep("192.0.2.10:25"), true, "220 greeting");
    EXPECT_EQ(runtime().flags, SG_RT_PROXY_V4);
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_STEERED);
    EXPECT_EQ(vm_entry("b").tier, SG_TIER_STEERED);
    ASSERT_EQ(proxy_events().size(), 1u);
    EXPECT_EQ(proxy_events()[0].event.type, "proxy_up");
    EXPECT_EQ(proxy_events()[0].event.to, Tier::Steered);
    EXPECT_EQ(proxy_events()[0].event.evidence["steered_vms"], 2);
    // both are in the event log, in order
    auto log = ctl->events().recent(100);
    std::vector<std::string> types;
    for (const auto& e : log)
        if (e["type"].get<std::string>().starts_with("proxy_")) types.push_back(e["type"]);
    EXPECT_EQ(types, (std::vector<std::string>{"proxy_down", "proxy_up"}));
}

TEST_F(SteeringTest, FailModeBlock) {
    start(proxied({vm("a", {{"tier", "steered"}})}, {{"address", "192.0.2.10:25"}, {"fail_mode", "block"}}));
    ctl->proxy_health(ep("192.0.2.10:25"), false, "timeout");
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_BLOCKED);
    EXPECT_EQ(vm_entry("a").rate, 0u);
    ASSERT_EQ(proxy_events().size(), 1u);
    EXPECT_EQ(proxy_events()[0].event.to, Tier::Blocked);
}

// One family down: its steered SYNs get the fail mode in the datapath (sg_runtime); the
// VM stays steered for the other family.
TEST_F(SteeringTest, OneFamilyDown) {
    start(proxied({vm("a", {{"tier", "steered"}})}, {{"address", {"192.0.2.10:25", "[2001:db8::10]:25"}}}));
    ctl->proxy_health(ep("[2001:db8::10]:25"), false, "no greeting within 2000 ms");
    EXPECT_EQ(runtime().flags, SG_RT_PROXY_V4);
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_STEERED);
    ASSERT_EQ(proxy_events().size(), 1u);
    EXPECT_EQ(proxy_events()[0].event.evidence["family"], "ipv6");
    EXPECT_EQ(proxy_events()[0].event.evidence["steering"], true);
    ctl->proxy_health(ep("192.0.2.10:25"), false, "refused");
    EXPECT_EQ(runtime().flags, 0u);
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_THROTTLED);
    // a family without a proxy has no health to report
    apply(proxied({vm("a", {{"tier", "steered"}})}, {{"address", "192.0.2.10:25"}}));
    heard.clear();
    ctl->proxy_health(ep("[2001:db8::10]:25"), false, "x");
    EXPECT_TRUE(proxy_events().empty());
}

// A proxy moved to a new address counts as up until its first check; the checker is
// told what to probe.
TEST_F(SteeringTest, NewProxyAddressStartsUp) {
    start(proxied({vm("a", {{"tier", "steered"}})}, {{"address", "192.0.2.10:25"}, {"check_interval_s", 2}}));
    EXPECT_EQ(ctl->proxy_targets().interval_s, 2u);
    ASSERT_EQ(ctl->proxy_targets().endpoints.size(), 1u);
    ctl->proxy_health(ep("192.0.2.10:25"), false, "refused");
    ASSERT_EQ(vm_entry("a").tier, SG_TIER_THROTTLED);
    apply(proxied({vm("a", {{"tier", "steered"}})}, {{"address", "192.0.2.10:25"}, {"fail_mode", "throttle"}}));
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_THROTTLED) << "same proxy: still down";
    apply(proxied({vm("a", {{"tier", "steered"}})}, {{"address", "192.0.2.11:25"}}));
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_STEERED);
    EXPECT_EQ(runtime().flags, SG_RT_PROXY_V4);
    ctl->proxy_health(ep("192.0.2.10:25"), false, "a check of the old proxy, late");
    EXPECT_EQ(runtime().flags, SG_RT_PROXY_V4) << "a finding about the old address changes nothing";
    EXPECT_EQ(ctl->proxy_targets().endpoints[0].to_string(), "192.0.2.11:25");
    apply(policy({vm("a", {{"tier", "steered"}})}));
    EXPECT_TRUE(ctl->proxy_targets().endpoints.empty());
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_THROTTLED);
}

// The proxy's state is the controller's, not the maps': a failed sg_runtime write is
// logged and retried by the next sweep.
TEST_F(SteeringTest, RuntimeWriteFailureIsRetried) {
    start(proxied({vm("a", {{"tier", "steered"}})}, {{"address", "192.0.2.10:25"}}));
    maps.fail_write(1);
    ctl->proxy_health(ep("192.0.2.10:25"), false, "refused");
    EXPECT_EQ(runtime().flags, SG_RT_PROXY_V4) << "the failed write";
    sweep();
    EXPECT_EQ(runtime().flags, 0u);
}

}  // namespace
}  // namespace sgt
