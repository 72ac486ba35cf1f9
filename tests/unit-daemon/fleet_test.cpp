// The controller's side of the fleet and tenant-wide tiers (daemon/fleet_sync.cpp):
// tenant floors from summed scores, fleet policies applied or refused, a migrated VM's
// record imported before its maps are written, another host's pin taken in, and what
// a sweep hands the fleet agent.
#include "fixture.h"

namespace sgt {
namespace {

class FleetTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        host.links = {{"vnet1", 11}, {"vnet2", 12}, {"vnet3", 13}};
    }
    static json rep() {
        return {{"half_life_s", 100},
                {"min_dwell_s", 0},
                {"hysteresis", 0.5},
                {"thresholds", {{"throttled", 500}, {"steered", 1000}, {"blocked", 2000}}},
                {"tenant_thresholds", {{"throttled", 500}, {"steered", 5000}, {"blocked", 10000}}}};
    }
    json three(const std::string& third_tenant = "other") {
        return policy({vm("a", {{"interface", "vnet1"}, {"tenant", "acme"}}),
                       vm("b", {{"interface", "vnet2"}, {"tenant", "acme"}}),
                       vm("c", {{"interface", "vnet3"}, {"tenant", third_tenant}})},
                      {{"reputation", rep()}});
    }
    std::string tier(const std::string& id) { return call({{"cmd", "vm.show"}, {"id", id}})["tier"]; }
    void complain(const std::string& id, int n = 1) {
        call({{"cmd", "report"}, {"kind", "complaint"}, {"id", id}, {"count", n}});
    }
    fleet::Record record(const std::string& id, const std::string& tenant, double score, Tier earned,
                         std::optional<Pin> pin = std::nullopt) {
        fleet::Record r;
        r.vm = id;
        r.tenant = tenant;
        r.state = {score, clock.wall_ms(), earned, clock.wall_ms(), pin};
        r.tier = pin ? pin->tier : earned;
        r.updated_by = "hv-02";
        r.updated_at_ms = clock.wall_ms();
        return r;
    }
};

TEST_F(FleetTest, TenantScoresSumToAFloorForEveryVmOfTheTenant) {
    start(three());
    complain("a");  // 200 each: under the VMs' own threshold (500)
    sweep();
    EXPECT_EQ(tier("a"), "ok");
    complain("b");
    complain("c");  // another tenant: not in acme's sum
    sweep();
    EXPECT_EQ(tier("a"), "ok");  // 400 < 500
    complain("b");               // acme: 600
    sweep();
    EXPECT_EQ(tier("a"), "throttled");
    EXPECT_EQ(tier("b"), "throttled");
    EXPECT_EQ(tier("c"), "ok");
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_THROTTLED);
    EXPECT_EQ(heard.back().event.reason, "tenant");
    // the sum decays below threshold * (1 - hysteresis) = 250: the floor goes
    clock.advance_s(200);  // 600 -> 150
    sweep();
    EXPECT_EQ(tier("a"), "ok");
    EXPECT_EQ(vm_entry("b").tier, SG_TIER_OK);
}

TEST_F(FleetTest, WithoutTenantThresholdsTenantsAreNotSummed) {
    json p = three();
    p["reputation"].erase("tenant_thresholds");
    start(p);
    complain("a", 2);
    complain("b", 2);  // 400 + 400: no floor
    sweep();
    EXPECT_EQ(tier("a"), "ok");
}

TEST_F(FleetTest, OtherHostsRecordsCountInTheTenantSum) {
    fleet_host = "hv-01";
    start(policy({}));
    ASSERT_TRUE(ctl->apply_fleet_policy(three(), 1, 10, {record("far", "acme", 450, Tier::Ok)}));
    complain("a");  // 200 + 450 elsewhere
    sweep();
    EXPECT_EQ(tier("a"), "throttled");
    EXPECT_EQ(tier("b"), "throttled");
    EXPECT_EQ(tier("c"), "ok");
}

TEST_F(FleetTest, AMigratedVmContinuesFromItsRecordBeforeItsMapsAreWritten) {
    fleet_host = "hv-01";
    start(policy({}));
    auto r = ctl->apply_fleet_policy(three(), 1, 10, {record("a", "acme", 2500, Tier::Blocked)});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(vm_entry("a").tier, SG_TIER_BLOCKED);  // written blocked by the apply itself
    EXPECT_EQ(tier("a"), "blocked");
    EXPECT_EQ(tier("b"), "ok");
    bool announced = false;
    for (const auto& h : heard) announced |= h.event.vm == "a" && h.event.reason == "fleet";
    EXPECT_TRUE(announced);
}

TEST_F(FleetTest, AnInvalidFleetPolicyIsRefusedAndTheOldOneStays) {
    fleet_host = "hv-01";
    start(policy({}));
    ASSERT_TRUE(ctl->apply_fleet_policy(three(), 1, 10, {}));
    json bad = three();
    bad["defaults"] = {{"rate", -1}};
    auto r = ctl->apply_fleet_policy(bad, 2, 11, {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("/defaults/rate"), std::string::npos) << r.error().message;
    EXPECT_EQ(call({{"cmd", "policy.get"}})["vms"].size(), 3u);
    auto t = ctl->fleet_tick();
    EXPECT_EQ(t.status.policy_serial, 1);
    EXPECT_EQ(t.status.refused_serial, 2);
    EXPECT_EQ(heard.back().event.type, "fleet_policy_refused");
}

TEST_F(FleetTest, APinSetOnAnotherHostHoldsHere) {
    fleet_host = "hv-01";
    start(policy({}));
    ASSERT_TRUE(ctl->apply_fleet_policy(three(), 1, 10, {}));
    ctl->fleet_records({record("b", "acme", 0, Tier::Ok, Pin{Tier::Blocked, std::nullopt})});
    EXPECT_EQ(tier("b"), "blocked");
    EXPECT_EQ(vm_entry("b").tier, SG_TIER_BLOCKED);
    // our own echo changes nothing
    fleet::Record own = record("a", "acme", 0, Tier::Ok, Pin{Tier::Blocked, std::nullopt});
    own.updated_by = "hv-01";
    ctl->fleet_records({own});
    EXPECT_EQ(tier("a"), "ok");
}

// etcd away while an operator pinned b from another machine: after the reconnect the
// agent reads the policy (same serial) and the records whole; b was here all along, so
// no migration imports it, and the pin must still hold.
TEST_F(FleetTest, APinSetWhileThisHostWasAwayHoldsAfterTheReadWhole) {
    fleet_host = "hv-01";
    start(policy({}));
    ASSERT_TRUE(ctl->apply_fleet_policy(three(), 1, 10, {}));
    EXPECT_EQ(tier("b"), "ok");
    ASSERT_TRUE(ctl->apply_fleet_policy(three(), 1, 10, {record("b", "acme", 0, Tier::Ok, Pin{Tier::Blocked, std::nullopt})}));
    EXPECT_EQ(tier("b"), "blocked");
    EXPECT_EQ(vm_entry("b").tier, SG_TIER_BLOCKED);
    // so does a refused policy's: the records are the fleet's whatever the policy says
    json bad = three();
    bad["defaults"] = {{"rate", -1}};
    ASSERT_FALSE(ctl->apply_fleet_policy(bad, 2, 11, {record("c", "other", 0, Tier::Ok, Pin{Tier::Steered, std::nullopt})}));
    EXPECT_EQ(tier("c"), "steered");
}

// The operator pins b here while another writer's record of b, written before, is on
// its way (the watcher's or the writer's): the pin holds; a record written after wins.
TEST_F(FleetTest, APinSetHereOutlivesAnOlderRecordFromAnotherWriter) {
    fleet_host = "hv-01";
    start(policy({}));
    ASSERT_TRUE(ctl->apply_fleet_policy(three(), 1, 10, {}));
    fleet::Record older = record("b", "acme", 0, Tier::Ok);
    clock.advance_s(1);
    call({{"cmd", "vm.set_tier"}, {"id", "b"}, {"tier", "blocked"}});
    EXPECT_EQ(tier("b"), "blocked");
    ctl->fleet_records({older});
    EXPECT_EQ(tier("b"), "blocked");
    EXPECT_EQ(vm_entry("b").tier, SG_TIER_BLOCKED);
    clock.advance_s(1);
    ctl->fleet_records({record("b", "acme", 0, Tier::Ok)});  // an operator cleared it elsewhere since
    EXPECT_EQ(tier("b"), "ok");
}

TEST_F(FleetTest, LocalPolicyApplyIsRefusedOnAFleetHost) {
    fleet_host = "hv-01";
    start(policy({}));
    EXPECT_EQ(refusal(raw({{"cmd", "policy.apply"}, {"policy", three()}})), "usage");
}

TEST_F(FleetTest, ASweepHandsTheAgentThisHostsRecordsAndStatus) {
    fleet_host = "hv-01";
    start(policy({}));
    ASSERT_TRUE(ctl->apply_fleet_policy(three(), 7, 42, {}));
    complain("c", 3);
    sweep();
    auto t = ctl->fleet_tick();
    ASSERT_EQ(t.records.size(), 3u);
    EXPECT_EQ(t.tenants, (std::set<std::string>{"acme", "other"}));
    EXPECT_EQ(t.status.policy_serial, 7);
    EXPECT_EQ(t.status.policy_revision, 42);
    EXPECT_EQ(t.status.vms, 3u);
    const fleet::Record& c = t.records[2];
    EXPECT_EQ(c.vm, "c");
    EXPECT_EQ(c.tier, Tier::Throttled);
    EXPECT_NEAR(c.state.score, 600, 1);
    EXPECT_EQ(c.updated_by, "hv-01");
    // a VM that left this host is named once
    ASSERT_TRUE(ctl->apply_fleet_policy(policy({vm("a", {{"interface", "vnet1"}, {"tenant", "acme"}})},
                                               {{"reputation", rep()}}),
                                        8, 43, {}));
    EXPECT_EQ(ctl->fleet_tick().gone, (std::vector<std::string>{"b", "c"}));
    EXPECT_TRUE(ctl->fleet_tick().gone.empty());
}

}  // namespace
}  // namespace sgt
