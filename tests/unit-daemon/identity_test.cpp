// Identity: the source address is trusted only on declared gateways, a gateway's
// aggregate cap is no VM, and an escalated unregistered interface keeps its tier across
// a recreated tap for auto_hold_s and then starts clean.
#include "fixture.h"

namespace sgt {
namespace {


class IdentityTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        host.links = {{"vnet1", 11}, {"vnet7", 17}, {"gw0", 20}};
    }
    // if:vnet7 floods and is blocked
    void block_vnet7() {
        maps.set_auto(auto_key(17), refused(0));
        sweep();
        maps.set_auto(auto_key(17), refused(5000));
        sweep();
        ASSERT_EQ(call({{"cmd", "vm.show"}, {"id", "if:vnet7"}})["tier"], "blocked");
        ASSERT_TRUE(maps.get<sg_vm_policy>(MapId::AutoPolicy, auto_key(17)));
    }
    void recreate_vnet7(int new_ifindex) {
        ctl->iface_down(17);
        maps.evict_auto(auto_key(17));
        host.links["vnet7"] = new_ifindex;
        ctl->iface_up("vnet7", new_ifindex);
    }
};

// An address-only VM no longer turns unclaimed interfaces into gateways: a tenant there
// cannot send SYNs under that VM's address and have them counted against it.
TEST_F(IdentityTest, GatewaysAreDeclaredNeverInferred) {
    start(policy({vm("vm-a", {{"interface", "vnet1"}}), vm("vm-addr", {{"addresses", {"198.51.100.7"}}})}));
    EXPECT_FALSE(maps.get<sg_iface>(MapId::Ifaces, uint32_t{17}));
    EXPECT_FALSE(maps.get<sg_iface>(MapId::Ifaces, uint32_t{20}));
    gateways = {"gw*"};
    restart();
    auto gw = maps.get<sg_iface>(MapId::Ifaces, uint32_t{20});
    ASSERT_TRUE(gw);
    EXPECT_EQ(gw->flags, SG_IFACE_GATEWAY);
    EXPECT_FALSE(maps.get<sg_iface>(MapId::Ifaces, uint32_t{17}));
}

TEST_F(IdentityTest, AVmsOwnInterfaceWinsOverAGatewayPattern) {
    gateways = {"vnet*"};
    start(policy({vm("vm-a", {{"interface", "vnet1"}})}));
    EXPECT_EQ(maps.get<sg_iface>(MapId::Ifaces, uint32_t{11})->flags, SG_IFACE_HAS_VM);
    EXPECT_EQ(maps.get<sg_iface>(MapId::Ifaces, uint32_t{17})->flags, SG_IFACE_GATEWAY);
}

// A random-source flood behind a gateway fills the aggregate cap; that must not escalate
// the aggregate (it would throttle every unregistered sender behind the gateway).
TEST_F(IdentityTest, AGatewaysAggregateIsNeverEscalated) {
    gateways = {"gw0"};
    start(policy({vm("vm-a", {{"interface", "vnet1"}})}));
    maps.set_auto(auto_key(20), refused(0));
    maps.set_auto(auto_key(20, 4, "203.0.113.5"), refused(0));
    sweep();
    maps.set_auto(auto_key(20), refused(50000));
    maps.set_auto(auto_key(20, 4, "203.0.113.5"), refused(3000));
    sg_event ev{};
    ev.type = SG_EV_OVER_LIMIT;
    ev.slot = SG_SLOT_NONE;
    ev.key = auto_key(20);
    ctl->on_event(ev);
    EXPECT_FALSE(ctl->hot());
    sweep();
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "if:gw0"}})["tier"], "ok");
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "if:gw0"}})["score"], 0);
    EXPECT_FALSE(maps.get<sg_vm_policy>(MapId::AutoPolicy, auto_key(20)));
    // the source that flooded is escalated on its own
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "ip:203.0.113.5"}})["tier"], "blocked");
}

TEST_F(IdentityTest, ARecreatedTapKeepsItsTierUnderItsNewIfindex) {
    start(policy({vm("vm-a", {{"interface", "vnet1"}})}));
    block_vnet7();
    recreate_vnet7(27);
    EXPECT_FALSE(maps.get<sg_vm_policy>(MapId::AutoPolicy, auto_key(17)));  // the old ifindex may be reused
    auto e = maps.get<sg_vm_policy>(MapId::AutoPolicy, auto_key(27));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->tier, SG_TIER_BLOCKED);
    sweep();
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "if:vnet7"}})["tier"], "blocked");
}

TEST_F(IdentityTest, AGoneInterfaceStartsCleanAfterTheHold) {
    hold_s = 0;
    start(policy({vm("vm-a", {{"interface", "vnet1"}})}));
    block_vnet7();
    ctl->iface_down(17);
    maps.evict_auto(auto_key(17));
    host.links.erase("vnet7");
    sweep();
    EXPECT_EQ(refusal(raw({{"cmd", "vm.show"}, {"id", "if:vnet7"}})), "not_found");
    EXPECT_EQ(heard.back().event.reason, "hold_expired");
    EXPECT_TRUE(heard.back().ticket);  // a recovery from blocked
    host.links["vnet7"] = 37;          // the next customer who gets the name
    ctl->iface_up("vnet7", 37);
    EXPECT_FALSE(maps.get<sg_vm_policy>(MapId::AutoPolicy, auto_key(37)));
}

TEST_F(IdentityTest, AnInterfaceGoneWhileTheDaemonWasDownIsHeldToo) {
    start(policy({vm("vm-a", {{"interface", "vnet1"}})}));
    block_vnet7();
    ctl.reset();  // the daemon stops; the tap goes away meanwhile
    maps.evict_auto(auto_key(17));
    host.links.erase("vnet7");
    restart();
    EXPECT_FALSE(maps.get<sg_vm_policy>(MapId::AutoPolicy, auto_key(17)));  // dead ifindex: entry removed
    host.links["vnet7"] = 47;
    ctl->iface_up("vnet7", 47);
    EXPECT_EQ(maps.get<sg_vm_policy>(MapId::AutoPolicy, auto_key(47))->tier, SG_TIER_BLOCKED);
}

TEST_F(IdentityTest, ARegisteredVmKeepsItsTierOnARecreatedTap) {
    start(policy({vm("vm-a", {{"interface", "vnet1"}})}));
    call({{"cmd", "report"}, {"kind", "complaint"}, {"id", "vm-a"}, {"count", 11}});
    const uint32_t s = slot("vm-a");
    ctl->iface_down(11);
    host.links["vnet1"] = 51;
    ctl->iface_up("vnet1", 51);
    auto e = maps.get<sg_iface>(MapId::Ifaces, uint32_t{51});
    ASSERT_TRUE(e);
    EXPECT_EQ(e->vm_slot, s);
    EXPECT_FALSE(maps.get<sg_iface>(MapId::Ifaces, uint32_t{11}));
    EXPECT_EQ(vm_entry("vm-a").tier, SG_TIER_BLOCKED);
}

}  // namespace
}  // namespace sgt
