// A restart never relaxes a tier: a lost or stale state dir is made good from what the
// pinned maps still enforce. And the over-limit fast path does bounded work.
#include <arpa/inet.h>

#include <filesystem>
#include <fstream>

#include "fixture.h"

namespace sgt {
namespace {

class RecoveryTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        host.links = {{"vnet1", 11}, {"vnet2", 12}, {"vnet7", 17}};
    }
    json two_vms() {
        return policy({vm("vm-a", {{"interface", "vnet1"}}), vm("vm-b", {{"addresses", {"198.51.100.0/28"}}})});
    }
    std::string tier(const std::string& id) { return call({{"cmd", "vm.show"}, {"id", id}})["tier"]; }
    void block(const std::string& id) { call({{"cmd", "report"}, {"kind", "complaint"}, {"id", id}, {"count", 11}}); }
};

TEST_F(RecoveryTest, ALostStateDirKeepsEveryTierAndSlot) {
    start(two_vms());
    block("vm-a");
    block("vm-b");
    sg_auto_key k{};
    k.ifindex = 17;
    sg_auto_vm v{};
    maps.set_auto(k, v);
    sweep();
    call({{"cmd", "vm.set_tier"}, {"id", "if:vnet7"}, {"tier", "throttled"}});
    const uint32_t a = slot("vm-a"), b = slot("vm-b");
    ctl.reset();
    for (const char* f : {"policy.json", "slots.json", "reputation.json"}) std::filesystem::remove(dir + "/" + f);
    restart();
    EXPECT_EQ(slot("vm-a"), a);  // from vm-a's interface entry
    EXPECT_EQ(slot("vm-b"), b);  // from vm-b's prefix in the LPM trie
    EXPECT_EQ(tier("vm-a"), "blocked");
    EXPECT_EQ(tier("vm-b"), "blocked");
    EXPECT_EQ(vm_entry("vm-a").tier, SG_TIER_BLOCKED);
    EXPECT_EQ(tier("if:vnet7"), "throttled");
    EXPECT_EQ(maps.get<sg_vm_policy>(MapId::AutoPolicy, k)->tier, SG_TIER_THROTTLED);
}

TEST_F(RecoveryTest, AStaleReputationFileIsMadeGoodFromTheMaps) {
    start(two_vms());
    const std::string rep = dir + "/reputation.json";
    ASSERT_TRUE(ctl->persist_reputation());
    std::filesystem::copy_file(rep, dir + "/old.json");
    block("vm-a");
    ctl.reset();
    std::filesystem::copy_file(dir + "/old.json", rep, std::filesystem::copy_options::overwrite_existing);
    restart();
    EXPECT_EQ(tier("vm-a"), "blocked");
    EXPECT_EQ(vm_entry("vm-a").tier, SG_TIER_BLOCKED);
    EXPECT_GE(call({{"cmd", "vm.show"}, {"id", "vm-a"}})["score"].get<double>(), 2000);
}

// A burst of tier changes costs one reputation write, not one per change.
TEST_F(RecoveryTest, TierChangesArePersistedCoalesced) {
    start(two_vms());
    auto saved_tier = [&] {  // (file times are too coarse for a test that takes 3 ms)
        std::ifstream in(dir + "/reputation.json");
        return json::parse(in)["vms"]["vm-a"]["tier"].get<std::string>();
    };
    syn("vm-a", SG_VERDICT_THROTTLE, 100);
    sweep();  // escalates; written at most once a second
    EXPECT_EQ(saved_tier(), "throttled");
    syn("vm-a", SG_VERDICT_THROTTLE, 1000);
    sweep();  // escalates again within the second: not yet written
    EXPECT_EQ(tier("vm-a"), "steered");
    EXPECT_EQ(saved_tier(), "throttled");
    clock.advance_s(1.5);
    sweep();
    EXPECT_EQ(saved_tier(), "steered");
}

// An over-limit record evaluates its own VM only: another VM's expired pin waits for
// the sweep (the work per record does not grow with the number of VMs).
TEST_F(RecoveryTest, AnOverLimitRecordEvaluatesItsVmOnly) {
    start(two_vms());
    call({{"cmd", "vm.set_tier"}, {"id", "vm-b"}, {"tier", "blocked"}, {"for_s", 1}});
    clock.advance_s(2);
    syn("vm-a", SG_VERDICT_THROTTLE, 500);
    sg_event ev{};
    ev.type = SG_EV_OVER_LIMIT;
    ev.slot = slot("vm-a");
    ctl->on_event(ev);
    EXPECT_EQ(tier("vm-a"), "steered");
    EXPECT_EQ(tier("vm-b"), "blocked");
    sweep();
    EXPECT_EQ(tier("vm-b"), "ok");
}

TEST_F(RecoveryTest, TheHotSetIsBounded) {
    host.links["gw0"] = 20;
    gateways = {"gw0"};
    start(two_vms());
    for (uint32_t i = 0; i < Sweeper::kMaxHot + 100; ++i) {
        sg_event ev{};
        ev.type = SG_EV_OVER_LIMIT;
        ev.slot = SG_SLOT_NONE;
        ev.key.ifindex = 20;
        ev.key.family = 4;
        uint32_t a = htonl(0xc6336400u + i);  // 198.51.100.0 + i
        std::memcpy(ev.key.addr, &a, 4);
        sg_auto_vm v{};
        v.stats.syn[SG_VERDICT_THROTTLE] = 10;
        maps.set_auto(ev.key, v);
        ctl->on_event(ev);
    }
    EXPECT_TRUE(ctl->hot());
    EXPECT_EQ(ctl->hot_count(), Sweeper::kMaxHot);
}

}  // namespace
}  // namespace sgt
