// Policy apply: what the maps hold, all-or-nothing with a failure at every write,
// slots kept and reused, program swaps for new ports.
#include "fixture.h"

#include <cstring>

namespace sgt {
namespace {

json three_vms() {
    return policy({vm("vm-a", {{"interface", "vnet1"}, {"addresses", {"203.0.113.1", "2001:db8::/64"}}, {"rate", 100}}),
                   vm("vm-b", {{"interface", "vnet2"}, {"tenant", "acme"}}),
                   vm("vm-c", {{"addresses", {"198.51.100.0/24"}}})});
}

class ApplyTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        host.links = {{"vnet1", 11}, {"vnet2", 12}, {"vnet9", 19}};
        gateways = {"vnet9"};
    }
};

TEST_F(ApplyTest, StartWritesEveryVmPrefixAndInterface) {
    start(three_vms());
    EXPECT_EQ(maps.count(MapId::VmPolicy), 3u);
    EXPECT_EQ(maps.count(MapId::VmV4), 2u);
    EXPECT_EQ(maps.count(MapId::VmV6), 1u);
    // vnet1, vnet2 name VMs; vnet9 is a declared gateway (vm-c is found there by address).
    EXPECT_EQ(maps.count(MapId::Ifaces), 3u);
    auto gw = maps.get<sg_iface>(MapId::Ifaces, uint32_t{19});
    ASSERT_TRUE(gw);
    EXPECT_EQ(gw->flags, SG_IFACE_GATEWAY);
    auto v1 = maps.get<sg_iface>(MapId::Ifaces, uint32_t{11});
    ASSERT_TRUE(v1);
    EXPECT_EQ(v1->flags, SG_IFACE_HAS_VM);
    EXPECT_EQ(v1->vm_slot, slot("vm-a"));
    EXPECT_EQ(vm_entry("vm-a").rate, 100u);
    // vm-a's one IPv4 host address is compared inline by the datapath; vm-c's /24 is not
    EXPECT_EQ(vm_entry("vm-a").flags, SG_VMF_ACTIVE | SG_VMF_HAS_ADDRS | SG_VMF_ONE_V4);
    const uint8_t a_v4[4] = {203, 0, 113, 1};
    EXPECT_EQ(std::memcmp(vm_entry("vm-a").v4_addr, a_v4, 4), 0);
    EXPECT_EQ(vm_entry("vm-b").flags, SG_VMF_ACTIVE);
    EXPECT_EQ(vm_entry("vm-c").flags, SG_VMF_ACTIVE | SG_VMF_HAS_ADDRS);
}

TEST_F(ApplyTest, RemovedVmLeavesNothingBehind) {
    start(three_vms());
    const uint32_t a = slot("vm-a");
    json r = apply(policy({vm("vm-b", {{"interface", "vnet2"}})}));
    ASSERT_TRUE(r["ok"]) << r.dump();
    EXPECT_EQ(r["result"]["removed"], json({"vm-a", "vm-c"}));
    EXPECT_EQ(maps.get<sg_vm_policy>(MapId::VmPolicy, a)->flags, 0);  // deactivated
    EXPECT_EQ(maps.count(MapId::VmPolicy), 1u);
    EXPECT_EQ(maps.count(MapId::VmV4), 0u);
    EXPECT_EQ(maps.count(MapId::VmV6), 0u);
    EXPECT_EQ(maps.count(MapId::Ifaces), 2u);  // vm-b's interface and the declared gateway
    EXPECT_EQ(refusal(raw({{"cmd", "vm.show"}, {"id", "vm-a"}})), "not_found");
}

// Every write of an apply can fail: whichever it is, the maps are as before and the
// old policy stays in force.
TEST_F(ApplyTest, FailureAtEveryWriteRestoresTheOldMaps) {
    start(three_vms());
    const json next = policy({vm("vm-b", {{"interface", "vnet1"}, {"rate", 7}}),
                              vm("vm-d", {{"interface", "vnet2"}, {"addresses", {"192.0.2.0/28", "2001:db8:1::/48"}}})},
                             {{"defaults", {{"rate", 3}, {"burst", 4}}}});
    const uint64_t before_writes = maps.writes();
    const Contents before = maps.contents();
    const json before_policy = call({{"cmd", "policy.get"}});
    int failures = 0;
    for (uint64_t n = 1; n < 64; ++n) {
        maps.fail_write(n);
        json r = apply(next);
        if (r["ok"]) {  // n is past the last write: the apply went through
            EXPECT_GT(n, 3u);
            break;
        }
        ++failures;
        EXPECT_EQ(r["kind"], "runtime") << r.dump();
        EXPECT_NE(r["error"].get<std::string>().find("old policy stays in force"), std::string::npos) << r.dump();
        EXPECT_EQ(maps.contents(), before) << "after a failure at write " << n;
        EXPECT_EQ(call({{"cmd", "policy.get"}}), before_policy);
    }
    EXPECT_GT(failures, 8) << "writes counted: " << maps.writes() - before_writes;
    EXPECT_EQ(call({{"cmd", "policy.get"}})["vms"].size(), 2u);
    EXPECT_EQ(vm_entry("vm-b").rate, 7u);
}

TEST_F(ApplyTest, FailedRollbackIsReportedNotDropped) {
    start(three_vms());
    // Writes 1-2 reset the new VMs' slots, 3-5 put their entries; 6 fails and 7, the
    // first undo, fails too.
    maps.fail_write(6);
    maps.fail_write(7);
    json r = apply(policy({vm("vm-x", {{"interface", "vnet1"}}), vm("vm-y", {{"interface", "vnet2"}})}));
    ASSERT_FALSE(r["ok"]);
    EXPECT_NE(r["error"].get<std::string>().find("restoring the old entries failed too"), std::string::npos)
        << r["error"];
}

TEST_F(ApplyTest, VmsKeepTheirSlotsAndNewOnesReuseFreedSlots) {
    start(three_vms());
    const uint32_t a = slot("vm-a"), b = slot("vm-b"), c = slot("vm-c");
    const uint64_t resets = maps.resets;
    ASSERT_TRUE(apply(policy({vm("vm-b"), vm("vm-c"), vm("vm-new")}))["ok"]);
    EXPECT_EQ(slot("vm-b"), b);
    EXPECT_EQ(slot("vm-c"), c);
    EXPECT_EQ(slot("vm-new"), a);               // the lowest free slot: vm-a's
    EXPECT_EQ(maps.resets, resets + 1);         // its bucket and counters start from zero
}

TEST_F(ApplyTest, SlotsSurviveARestart) {
    start(three_vms());
    ASSERT_TRUE(apply(policy({vm("vm-c"), vm("vm-b")}))["ok"]);
    const uint32_t b = slot("vm-b"), c = slot("vm-c");
    restart();
    EXPECT_EQ(slot("vm-b"), b);
    EXPECT_EQ(slot("vm-c"), c);
    EXPECT_EQ(call({{"cmd", "policy.get"}})["vms"].size(), 2u);  // the persisted policy wins over the file
}

TEST_F(ApplyTest, MoreVmsThanSlotsIsRefusedAndNothingChanges) {
    start(three_vms());
    std::vector<json> many;
    for (uint32_t i = 0; i <= maps.max_vms(); ++i) many.push_back(vm("vm-" + std::to_string(i)));
    const Contents before = maps.contents();
    json r = apply(policy(many));
    EXPECT_EQ(r["kind"], "validation") << r.dump();
    EXPECT_EQ(maps.contents(), before);
}

TEST_F(ApplyTest, NewPortsFailingToLoadChangeNothing) {
    start(three_vms());
    host.fail_load = EPERM;
    const Contents before = maps.contents();
    json r = apply(policy({vm("vm-a")}, {{"smtp_ports", {25, 2525}}}));
    EXPECT_EQ(r["kind"], "runtime");
    EXPECT_NE(r["error"].get<std::string>().find("new smtp_ports"), std::string::npos);
    EXPECT_EQ(maps.contents(), before);
    EXPECT_EQ(host.swaps, 0);
}

TEST_F(ApplyTest, FailedProgramSwapPutsTheOldMapsBack) {
    start(three_vms());
    host.fail_swap = EBUSY;
    const Contents before = maps.contents();
    json r = apply(policy({vm("vm-z", {{"interface", "vnet2"}})}, {{"smtp_ports", {2525}}}));
    ASSERT_FALSE(r["ok"]);
    EXPECT_NE(r["error"].get<std::string>().find("swap programs"), std::string::npos);
    EXPECT_EQ(maps.contents(), before);
    EXPECT_EQ(host.drops, 1);
    EXPECT_EQ(call({{"cmd", "policy.get"}})["vms"][0]["id"], "vm-a");
}

TEST_F(ApplyTest, NewPortsAreSwappedIn) {
    start(three_vms());
    json r = apply(policy({vm("vm-a")}, {{"smtp_ports", {2525, 25}}}));
    ASSERT_TRUE(r["ok"]) << r.dump();
    EXPECT_TRUE(r["result"]["ports_changed"]);
    EXPECT_EQ(host.swaps, 1);
    EXPECT_EQ(host.attached_ports, (std::vector<uint16_t>{2525, 25}));
}

TEST_F(ApplyTest, DefaultsReachTheDefaultsMap) {
    start(policy({vm("vm-a")}, {{"defaults", {{"rate", 3}, {"burst", 9}}}}));
    auto src = maps.get<sg_vm_policy>(MapId::Defaults, uint32_t{SG_DEFAULTS_SOURCE});
    ASSERT_TRUE(src);
    EXPECT_EQ(src->rate, 3u);
    EXPECT_EQ(src->burst, 9u);
}

}  // namespace
}  // namespace sgt
