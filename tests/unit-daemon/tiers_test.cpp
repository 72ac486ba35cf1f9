// Tier decisions and their one announcement: policy pins, operator pins, reports,
// counters over a restart, the over-limit fast path; the map follows each decision.
#include "fixture.h"

namespace sgt {
namespace {

class TiersTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        host.links = {{"vnet1", 11}, {"vnet2", 12}};
    }
    json two_vms(json a_extra = json::object()) {
        json a = {{"interface", "vnet1"}, {"tenant", "acme"}};
        a.update(a_extra);
        return policy({vm("vm-a", a), vm("vm-b", {{"interface", "vnet2"}})});
    }
    std::string tier(const std::string& id) { return call({{"cmd", "vm.show"}, {"id", id}})["tier"]; }
};

TEST_F(TiersTest, PolicyPinReachesTheMapAndIsAnnouncedOnce) {
    start(two_vms({{"tier", "blocked"}}));
    EXPECT_EQ(vm_entry("vm-a").tier, SG_TIER_BLOCKED);
    ASSERT_EQ(heard.size(), 1u);
    EXPECT_EQ(heard[0].event.vm, "vm-a");
    EXPECT_EQ(heard[0].event.tenant, "acme");
    EXPECT_TRUE(heard[0].ticket);
    restart();  // the pin is already in force: nothing new to announce
    EXPECT_EQ(heard.size(), 1u);
}

TEST_F(TiersTest, DroppingAPolicyPinFallsBackToTheEarnedTier) {
    start(two_vms({{"tier", "throttled"}}));
    ASSERT_TRUE(apply(two_vms())["ok"]);
    EXPECT_EQ(tier("vm-a"), "ok");
    EXPECT_EQ(vm_entry("vm-a").tier, SG_TIER_OK);
    EXPECT_EQ(heard.back().event.reason, "pin_cleared");
}

TEST_F(TiersTest, OperatorPinWritesTheTierWithTheTiersLimits) {
    start(two_vms());
    call({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "throttled"}});
    sg_vm_policy e = vm_entry("vm-a");
    EXPECT_EQ(e.tier, SG_TIER_THROTTLED);
    EXPECT_EQ(e.rate, 2u);  // the throttled tier's default limits
    EXPECT_FALSE(heard.back().ticket);
    call({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}});
    EXPECT_TRUE(heard.back().ticket);
    EXPECT_EQ(heard.back().event.to, Tier::Blocked);
}

TEST_F(TiersTest, TimedPinExpiresOnASweep) {
    start(two_vms());
    call({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}, {"for_s", 60}});
    clock.advance_s(61);
    sweep();
    EXPECT_EQ(tier("vm-a"), "ok");
    EXPECT_EQ(vm_entry("vm-a").tier, SG_TIER_OK);
    EXPECT_EQ(heard.back().event.reason, "pin_expired");
}

TEST_F(TiersTest, ClearRemovesTheOperatorPin) {
    start(two_vms());
    call({{"cmd", "vm.set_tier"}, {"id", "vm-b"}, {"tier", "steered"}});
    json v = call({{"cmd", "vm.clear"}, {"id", "vm-b"}});
    EXPECT_TRUE(v["pin"].is_null());
    EXPECT_EQ(v["tier"], "ok");
    EXPECT_EQ(vm_entry("vm-b").tier, SG_TIER_OK);
}

TEST_F(TiersTest, SpamReportsEscalateAndRaiseOneTicket) {
    start(two_vms());
    json v = call({{"cmd", "report"}, {"kind", "spam"}, {"id", "vm-b"}, {"count", 9}});  // 9 x 50 = 450
    EXPECT_EQ(v["tier"], "steered");
    EXPECT_EQ(vm_entry("vm-b").tier, SG_TIER_THROTTLED);  // no proxy in this policy: fail_mode throttle
    ASSERT_EQ(heard.size(), 1u);
    EXPECT_TRUE(heard[0].ticket);
    EXPECT_EQ(event_count(), 2u);  // the change and its ticket
}

TEST_F(TiersTest, RefusedSynsEscalateOnTheSweep) {
    start(two_vms());
    syn("vm-a", SG_VERDICT_THROTTLE, 60);  // over-limit weight 1: score 60 > 50
    clock.advance_s(1);
    sweep();
    EXPECT_EQ(tier("vm-a"), "throttled");
    EXPECT_EQ(vm_entry("vm-a").tier, SG_TIER_THROTTLED);
    EXPECT_EQ(heard.back().event.evidence["syn"]["throttle"], 60);
}

TEST_F(TiersTest, CountersAreFedAcrossARestartWithoutDoubleCounting) {
    start(two_vms());
    syn("vm-a", SG_VERDICT_THROTTLE, 40);
    sweep();
    const double score = call({{"cmd", "vm.show"}, {"id", "vm-a"}})["score"];
    EXPECT_NEAR(score, 40, 0.5);
    restart();  // the kernel counters stay; the new reading only primes
    sweep();
    EXPECT_NEAR(call({{"cmd", "vm.show"}, {"id", "vm-a"}})["score"].get<double>(), score, 0.5);
    syn("vm-a", SG_VERDICT_BLOCK, 20);  // new refusals after the restart do count
    sweep();
    EXPECT_NEAR(call({{"cmd", "vm.show"}, {"id", "vm-a"}})["score"].get<double>(), 60, 0.5);
    EXPECT_EQ(tier("vm-a"), "throttled");
}

TEST_F(TiersTest, EscalatedTierSurvivesARestart) {
    start(two_vms());
    call({{"cmd", "report"}, {"kind", "complaint"}, {"id", "vm-a"}, {"count", 11}});  // 2200: blocked
    ASSERT_EQ(tier("vm-a"), "blocked");
    restart();
    EXPECT_EQ(tier("vm-a"), "blocked");
    EXPECT_EQ(vm_entry("vm-a").tier, SG_TIER_BLOCKED);
}

TEST_F(TiersTest, OverLimitEventEscalatesWithoutWaitingForASweep) {
    start(two_vms());
    syn("vm-b", SG_VERDICT_THROTTLE, 500);
    sg_event ev{};
    ev.type = SG_EV_OVER_LIMIT;
    ev.slot = slot("vm-b");
    ev.ts_ns = mono_ns();
    ctl->on_event(ev);
    EXPECT_TRUE(ctl->hot());
    EXPECT_EQ(tier("vm-b"), "steered");
    EXPECT_TRUE(heard.back().event.evidence.contains("trigger_ts_ns"));
}

TEST_F(TiersTest, ARemovedVmForgetsItsReputation) {
    start(two_vms());
    call({{"cmd", "report"}, {"kind", "complaint"}, {"id", "vm-b"}, {"count", 11}});
    ASSERT_TRUE(apply(policy({vm("vm-a", {{"interface", "vnet1"}})}))["ok"]);
    ASSERT_TRUE(apply(two_vms())["ok"]);  // a new VM under the old id starts clean
    EXPECT_EQ(tier("vm-b"), "ok");
    EXPECT_EQ(vm_entry("vm-b").tier, SG_TIER_OK);
}

}  // namespace
}  // namespace sgt
