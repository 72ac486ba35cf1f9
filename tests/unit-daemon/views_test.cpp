// Auto entries, interface hot-plug and fill counts, and reads that change nothing.
#include "fixture.h"

namespace sgt {
namespace {


TEST(AutoId, NamesInterfacesAndSources) {
    EXPECT_EQ(auto_id(auto_key(7), "vnet7"), "if:vnet7");
    EXPECT_EQ(auto_id(auto_key(7), ""), "if:#7");
    std::string addr;
    EXPECT_EQ(auto_id(auto_key(3, 4, "203.0.113.9"), "eth0", &addr), "ip:203.0.113.9");
    EXPECT_EQ(addr, "203.0.113.9");
    EXPECT_EQ(auto_id(auto_key(3, 6, "2001:db8:1:2::"), "eth0"), "ip:2001:db8:1:2::/64");
}

TEST(Feed, FirstReadingPrimesAndResetCountersCountAnew) {
    VmRuntime rt;
    sg_vm_stats s{};
    s.syn[SG_VERDICT_THROTTLE] = 100;
    EXPECT_EQ(feed(rt, s, 1'000'000'000).over, 0u);
    s.syn[SG_VERDICT_THROTTLE] = 130;
    s.spoofed = 4;
    Deltas d = feed(rt, s, 2'000'000'000);
    EXPECT_EQ(d.over, 30u);
    EXPECT_EQ(d.spoofed, 4u);
    EXPECT_GT(rt.rate, 0);
    s = sg_vm_stats{};
    s.syn[SG_VERDICT_BLOCK] = 5;  // the slot was reset: its counters restart from zero
    EXPECT_EQ(feed(rt, s, 3'000'000'000).over, 5u);
}

// Over-limit events carry cumulative totals; the daemon logs what each adds. Whatever the
// order the events come in, the differences and what the counter gained after the last
// one add up to the counter exactly.
TEST(OverSinceEvent, CumulativeCountsBecomeDeltasThatAddUp) {
    VmRuntime rt;
    EXPECT_EQ(over_since_event(rt, 1), 1u) << "nothing read yet: all of it";
    EXPECT_EQ(over_since_event(rt, 1001), 1000u);
    EXPECT_EQ(over_since_event(rt, 1501), 500u);
    EXPECT_EQ(over_since_event(rt, 7), 7u) << "reset slot: counts anew";
    uint64_t sum = 0;
    VmRuntime fresh;
    for (uint64_t c : {3u, 40u, 41u, 900u})
        sum += over_since_event(fresh, c);
    const uint64_t final_counter = 1000;
    EXPECT_EQ(sum + (final_counter - fresh.over_at_event), final_counter);
}

TEST(OverSinceEvent, FirstEventIsComparedWithTheLastReading) {
    VmRuntime rt;
    sg_vm_stats s{};
    s.syn[SG_VERDICT_THROTTLE] = 5000;  // a VM over its limit before the daemon started
    feed(rt, s, 1'000'000'000);
    EXPECT_EQ(over_since_event(rt, 5040), 40u);
    EXPECT_EQ(over_since_event(rt, 5100), 60u);
}

class ViewsTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        host.links = {{"vnet1", 11}, {"vnet7", 17}, {"gw0", 20}};
    }
    size_t status_fill(const char* map) { return call({{"cmd", "status"}})["maps"][map]["used"]; }
};

TEST_F(ViewsTest, AutoEntryEscalatesIntoTheAutoPolicyMapAndRecoversOutOfIt) {
    start(policy({vm("vm-a", {{"interface", "vnet1"}})}));
    maps.set_auto(auto_key(17), refused(0));
    sweep();
    maps.set_auto(auto_key(17), refused(3000));
    clock.advance_s(1);
    sweep();
    json v = call({{"cmd", "vm.show"}, {"id", "if:vnet7"}});
    EXPECT_EQ(v["tier"], "blocked");
    EXPECT_TRUE(v["auto"]);
    auto e = maps.get<sg_vm_policy>(MapId::AutoPolicy, auto_key(17));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->tier, SG_TIER_BLOCKED);
    EXPECT_EQ(status_fill("sg_auto_policy"), 1u);
    call({{"cmd", "vm.set_tier"}, {"id", "if:vnet7"}, {"tier", "ok"}});
    EXPECT_FALSE(maps.get<sg_vm_policy>(MapId::AutoPolicy, auto_key(17)));
    EXPECT_EQ(status_fill("sg_auto_policy"), 0u);
}

TEST_F(ViewsTest, EvictedAutoEntriesAreForgottenOnlyWhenNothingRestrictsThem) {
    start(policy({vm("vm-a", {{"interface", "vnet1"}})}));
    maps.set_auto(auto_key(17), refused(0));
    maps.set_auto(auto_key(20, 4, "198.51.100.9"), refused(0));
    sweep();
    call({{"cmd", "vm.set_tier"}, {"id", "ip:198.51.100.9"}, {"tier", "throttled"}});
    maps.evict_auto(auto_key(17));
    maps.evict_auto(auto_key(20, 4, "198.51.100.9"));
    sweep();
    EXPECT_EQ(refusal(raw({{"cmd", "vm.show"}, {"id", "if:vnet7"}})), "not_found");
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "ip:198.51.100.9"}})["tier"], "throttled");
}

// The fill counts status reports are the maps' own, after hot-plug, unplug and apply.
TEST_F(ViewsTest, FillCountsFollowHotPlugUnplugAndApply) {
    gateways = {"gw*", "vnet3*"};
    start(policy({vm("vm-a", {{"interface", "vnet1"}}), vm("vm-gw", {{"addresses", {"192.0.2.0/24"}}})}));
    auto check = [&](const char* when) {
        json m = call({{"cmd", "status"}})["maps"];
        EXPECT_EQ(m["sg_ifaces"]["used"], maps.count(MapId::Ifaces)) << when;
        EXPECT_EQ(m["sg_vm_policy"]["used"], maps.count(MapId::VmPolicy)) << when;
        EXPECT_EQ(m["sg_vm_v4"]["used"], maps.count(MapId::VmV4)) << when;
        EXPECT_EQ(m["sg_vm_v6"]["used"], maps.count(MapId::VmV6)) << when;
    };
    check("start");
    host.links["vnet30"] = 30;
    host.links["vnet31"] = 31;
    ctl->iface_up("vnet30", 30);
    ctl->iface_up("vnet31", 31);
    EXPECT_EQ(maps.count(MapId::Ifaces), 4u);  // vnet1 (VM), gateways gw0, vnet30, vnet31 (vnet7: unclaimed)
    check("hot-plug");
    host.links.erase("vnet30");
    ctl->iface_down(30);
    check("unplug");
    ASSERT_TRUE(apply(policy({vm("vm-a", {{"interface", "vnet1"}, {"addresses", {"2001:db8::/64"}}})}))["ok"]);
    check("apply");
}

TEST_F(ViewsTest, AVmsInterfaceAppearingNamesItsSlot) {
    start(policy({vm("vm-a", {{"interface", "vnet5"}})}));
    EXPECT_FALSE(maps.get<sg_iface>(MapId::Ifaces, uint32_t{15}));
    host.links["vnet5"] = 15;
    ctl->iface_up("vnet5", 15);
    auto e = maps.get<sg_iface>(MapId::Ifaces, uint32_t{15});
    ASSERT_TRUE(e);
    EXPECT_EQ(e->flags, SG_IFACE_HAS_VM);
    EXPECT_EQ(e->vm_slot, slot("vm-a"));
}

// vm show during a flood: fresh counters, and no score, tier, event, ticket or write.
TEST_F(ViewsTest, ReadsDuringAFloodDecideNothing) {
    start(policy({vm("vm-a", {{"interface", "vnet1"}})}));
    syn("vm-a", SG_VERDICT_THROTTLE, 5000);  // the flood, not yet swept
    const uint64_t writes = maps.writes();
    const size_t events = event_count();
    json v = call({{"cmd", "vm.show"}, {"id", "vm-a"}});
    EXPECT_EQ(v["syn"]["throttle"], 5000);   // the fresh reading is shown
    EXPECT_EQ(v["tier"], "ok");
    EXPECT_EQ(v["score"], 0);
    for (const char* cmd : {"status", "policy.get", "vm.list", "events"}) call({{"cmd", cmd}});
    call({{"cmd", "vm.list"}, {"tier", "ok"}});
    EXPECT_EQ(maps.writes(), writes);
    EXPECT_EQ(event_count(), events);
    EXPECT_TRUE(heard.empty());
    sweep();  // the sweep, not the read, decides
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "vm-a"}})["tier"], "blocked");
}

TEST_F(ViewsTest, StatusCountsEveryVmByTierOnce) {
    start(policy({vm("vm-a", {{"tier", "blocked"}}), vm("vm-b")}));
    maps.set_auto(auto_key(17), refused(0));
    sweep();
    json s = call({{"cmd", "status"}});
    EXPECT_EQ(s["vms"], 3);
    EXPECT_EQ(s["tiers"], json({{"ok", 2}, {"throttled", 0}, {"steered", 0}, {"blocked", 1}}));
    EXPECT_EQ(ctl->tier_counts(), (std::array<size_t, 4>{2, 0, 0, 1}));
}

TEST_F(ViewsTest, VmListFiltersAndSortsByRate) {
    start(policy({vm("vm-a", {{"tenant", "acme"}}), vm("vm-b", {{"tenant", "acme"}}), vm("vm-c")}));
    syn("vm-b", SG_VERDICT_PASS, 10);
    clock.advance_s(1);
    sweep();
    syn("vm-b", SG_VERDICT_PASS, 10);
    sweep();
    json l = call({{"cmd", "vm.list"}, {"tenant", "acme"}});
    ASSERT_EQ(l.size(), 2u);
    EXPECT_EQ(l[0]["id"], "vm-b");
    EXPECT_EQ(call({{"cmd", "vm.list"}, {"tier", "blocked"}}).size(), 0u);
}

}  // namespace
}  // namespace sgt
