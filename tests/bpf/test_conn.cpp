// The connection table (DESIGN.md "Connections the datapath tracks"; docs/internals.md
// "Connections"): entries of passed SYNs and what they hold, a SYN sent again, a tuple
// reused, the VM's segments moving the entry, and the per-owner cap: a VM past
// conn_per_vm evicts its own oldest entries, never another VM's.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <time.h>

#include <set>

#include "flow.h"
#include "test_datapath.h"

namespace sgt {
namespace {

constexpr uint32_t kSlot = 1, kOtherSlot = 2;

uint64_t clock_ns(clockid_t clock)
{
    timespec ts{};
    clock_gettime(clock, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

class Conn : public ::testing::Test {
protected:
    void SetUp() override
    {
        hv_ = test_iface("sgn-hv");
        hv2_ = test_iface("sgn-hv2");
        gw_ = test_iface("sgn-gw");
        other_ = test_iface("sgn-x");
        dp_.iface(hv_, SG_IFACE_HAS_VM, kSlot);
        dp_.iface(hv2_, SG_IFACE_HAS_VM, kOtherSlot);
        dp_.iface(gw_, SG_IFACE_GATEWAY);
        for (uint32_t s : {kSlot, kOtherSlot})
            dp_.vm(s, policy(SG_TIER_OK, 1000000, 1000000));
        dp_.defaults(SG_DEFAULTS_SOURCE, policy(SG_TIER_OK, 1000000, 1000000));
        dp_.defaults(SG_DEFAULTS_AGGREGATE, policy(SG_TIER_OK, 1000000, 1000000));
    }
    uint32_t xdp(const Bytes& f, int ifx) const { return dp_.xdp(f, ifx).action; }
    size_t owned_by(uint32_t slot) const
    {
        size_t n = 0;
        for (auto& [k, c] : dp_.conns())
            n += c.slot == slot;
        return n;
    }
    int hv_ = 0, hv2_ = 0, gw_ = 0, other_ = 0;
    TestDatapath dp_;
};

TEST_F(Conn, PassedSynCreatesAnEntry)
{
    Flow f;
    // a SYN's clock is bpf_ktime_get_coarse_ns(): the same timekeeping as CLOCK_MONOTONIC_COARSE
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC_COARSE);
    Global before = dp_.global();
    ASSERT_EQ(xdp(f.syn(), hv_), uint32_t(XDP_PASS));
    uint64_t t1 = clock_ns(CLOCK_MONOTONIC_COARSE);
    auto c = dp_.conn(f.key(hv_));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->slot, kSlot);
    EXPECT_EQ(c->ring_idx, 0u);
    EXPECT_EQ(c->state, SG_CONN_SYN_SENT);
    EXPECT_EQ(c->flags, 0);
    EXPECT_EQ(c->vm_isn, f.isn);
    EXPECT_EQ(c->vm_nxt, f.isn + 1);
    EXPECT_GE(c->created_ns, t0);
    EXPECT_LE(c->created_ns, t1);
    EXPECT_EQ(c->last_ns, c->created_ns);
    sg_auto_key zero{};
    EXPECT_EQ(std::memcmp(&c->owner_key, &zero, sizeof(zero)), 0) << "a slot owner has no auto key";
    Global d = delta(dp_.global(), before);
    EXPECT_EQ(d[SG_RES_CONN_NEW], 1u);
    EXPECT_EQ(dp_.bucket(kSlot).conn_seq, 1u);
    EXPECT_EQ(dp_.ring_count(), 1u);
    EXPECT_EQ(dp_.nat_count(), 0u) << "only steered flows are NAT-indexed";
}

TEST_F(Conn, SynPayloadIsSentToo)
{
    Flow f;
    ASSERT_EQ(xdp(f.out().syn().seq(f.isn).payload("0123456789").build(), hv_), uint32_t(XDP_PASS));
    EXPECT_EQ(dp_.conn(f.key(hv_))->vm_nxt, f.isn + 11) << "TFO: SYN + 10 bytes";
}

TEST_F(Conn, SynAgainReusesItsEntry)
{
    Flow f;
    xdp(f.syn(), hv_);
    Global before = dp_.global();
    ASSERT_EQ(xdp(f.syn(), hv_), uint32_t(XDP_PASS));
    EXPECT_EQ(delta(dp_.global(), before)[SG_RES_CONN_NEW], 0u);
    EXPECT_EQ(dp_.bucket(kSlot).conn_seq, 1u) << "no second ring slot";
    EXPECT_EQ(dp_.conns().size(), 1u);
    EXPECT_EQ(dp_.stats(kSlot).syn[SG_VERDICT_PASS], 2u) << "every SYN is judged";
}

TEST_F(Conn, SynWithAnotherIsnIsANewConnection)
{
    Flow f, again = f;
    again.isn = 555555;
    xdp(f.syn(), hv_);
    xdp(f.vm_data("EHLO x"), hv_);
    xdp(again.syn(), hv_);
    auto c = dp_.conn(f.key(hv_));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->vm_isn, again.isn);
    EXPECT_EQ(c->vm_nxt, again.isn + 1);
    EXPECT_EQ(c->ring_idx, 1u);
    EXPECT_EQ(dp_.ring_count(), 1u) << "the old ring slot went with the old connection";
}

TEST_F(Conn, VmSegmentsMoveTheEntry)
{
    Flow f;
    xdp(f.syn(), hv_);
    xdp(f.vm_data(std::string(100, 'x')), hv_);
    EXPECT_EQ(dp_.conn(f.key(hv_))->vm_nxt, f.isn + 101);
    xdp(f.vm_data(std::string(10, 'x')), hv_);   // a retransmission moves nothing back
    EXPECT_EQ(dp_.conn(f.key(hv_))->vm_nxt, f.isn + 101);
    xdp(f.vm_fin(100), hv_);
    auto c = dp_.conn(f.key(hv_));
    EXPECT_EQ(c->vm_nxt, f.isn + 102) << "FIN takes a sequence number";
    EXPECT_TRUE(c->flags & SG_CONNF_FIN_VM);
    EXPECT_GE(c->last_ns, c->created_ns);
    xdp(f.vm_rst(101), hv_);
    EXPECT_FALSE(dp_.conn(f.key(hv_))) << "a RST from the VM ends it";
    EXPECT_EQ(dp_.ring_count(), 0u);
}

TEST_F(Conn, OnlyPassedSmtpSynsAreTracked)
{
    dp_.vm(kOtherSlot, policy(SG_TIER_BLOCKED, 10, 10));
    EXPECT_EQ(xdp(Flow{}.syn(), hv2_), uint32_t(XDP_DROP));
    dp_.vm(kSlot, policy(SG_TIER_OK, 0, 0));
    EXPECT_EQ(xdp(Flow{}.syn(), hv_), uint32_t(XDP_DROP)) << "over the limit";
    xdp(Flow{.port = 443}.syn(), hv_);
    xdp(Flow{.port = 443}.vm_data("GET /"), hv_);
    xdp(Flow{}.vm_data("EHLO x"), hv_);   // no SYN seen: passes untracked
    EXPECT_TRUE(dp_.conns().empty());
}

TEST_F(Conn, AutoOwnersAreNamedByTheirKey)
{
    Flow f, g{.vm = "192.0.2.9"}, h{.vm = "2001:db8:9:1::5", .server = "2001:db8:ff::7"};
    xdp(f.syn(), other_);
    xdp(g.syn(), gw_);
    xdp(h.syn(), gw_);
    auto c = dp_.conn(f.key(other_));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->slot, SG_SLOT_NONE);
    sg_auto_key k = auto_key(other_);
    EXPECT_EQ(std::memcmp(&c->owner_key, &k, sizeof(k)), 0);
    c = dp_.conn(g.key(gw_));
    ASSERT_TRUE(c);
    k = auto_key(gw_, 4, "192.0.2.9");
    EXPECT_EQ(std::memcmp(&c->owner_key, &k, sizeof(k)), 0) << "the source entry, not the aggregate";
    c = dp_.conn(h.key(gw_));
    ASSERT_TRUE(c);
    k = auto_key(gw_, 6, "2001:db8:9:1::");
    EXPECT_EQ(std::memcmp(&c->owner_key, &k, sizeof(k)), 0) << "IPv6 sources are owned per /64";
    EXPECT_EQ(dp_.auto_vm(auto_key(gw_, 4, "192.0.2.9"))->bucket.conn_seq, 1u);
}

// A VM opening 10 x conn_per_vm connections keeps its last conn_per_vm; the evictions are
// its own, counted in its bucket; another VM's connections (steered too) are intact.
TEST_F(Conn, PerOwnerCapEvictsOnlyTheOwnersOldest)
{
    constexpr uint32_t kCap = 64, kOpened = 10 * kCap;
    sg_runtime rt{};
    rt.conn_per_vm = kCap;
    rt.flags = SG_RT_PROXY_V4;
    std::memcpy(rt.proxy_v4, addr("192.0.2.10").data(), 4);
    rt.proxy_v4_port = htobe16(25);
    dp_.runtime(rt);
    // the other VM: 10 connections, 5 of them steered
    std::vector<Flow> others;
    for (uint16_t i = 0; i < 10; i++) {
        dp_.vm(kOtherSlot, policy(i < 5 ? SG_TIER_STEERED : SG_TIER_OK, 1000000, 1000000));
        others.push_back(Flow{.vm = "10.9.0.2", .vm_port = uint16_t(50000 + i)});
        ASSERT_EQ(xdp(others.back().syn(), hv2_), uint32_t(XDP_PASS));
    }
    dp_.vm(kOtherSlot, policy(SG_TIER_OK, 1000000, 1000000));
    Global before = dp_.global();
    for (uint32_t i = 0; i < kOpened; i++)
        ASSERT_EQ(xdp(Flow{.vm_port = uint16_t(1024 + i)}.syn(), hv_), uint32_t(XDP_PASS));
    Global d = delta(dp_.global(), before);
    EXPECT_EQ(d[SG_RES_CONN_NEW], kOpened);
    EXPECT_EQ(d[SG_RES_CONN_EVICTED], kOpened - kCap);
    EXPECT_EQ(dp_.bucket(kSlot).conn_evicted, kOpened - kCap);
    EXPECT_EQ(dp_.bucket(kOtherSlot).conn_evicted, 0u);
    EXPECT_EQ(owned_by(kSlot), kCap);
    for (uint32_t i = kOpened - kCap; i < kOpened; i++)
        EXPECT_TRUE(dp_.conn(Flow{.vm_port = uint16_t(1024 + i)}.key(hv_))) << "the newest are kept: " << i;
    for (uint16_t i = 0; i < 10; i++) {
        auto c = dp_.conn(others[i].key(hv2_));
        ASSERT_TRUE(c) << "the other VM's connection " << i;
        EXPECT_EQ(bool(c->flags & SG_CONNF_STEERED), i < 5);
        if (i < 5) {
            EXPECT_TRUE(dp_.nat(others[i].nat_key())) << "its NAT index too";
        }
        // and its packets still go where they went
        XdpRun r = dp_.xdp(others[i].vm_data("DATA"), hv2_);
        EXPECT_EQ(r.action, uint32_t(XDP_PASS));
        EXPECT_EQ(Bytes(r.out.begin() + 30, r.out.begin() + 34), addr(i < 5 ? "192.0.2.10" : "198.51.100.7"));
    }
    EXPECT_EQ(dp_.ring_count(), kCap + 10);
}

TEST_F(Conn, AutoOwnersHaveTheirOwnCap)
{
    sg_runtime rt{};
    rt.conn_per_vm = 8;
    dp_.runtime(rt);
    for (uint16_t i = 0; i < 20; i++) {
        xdp(Flow{.vm = "192.0.2.9", .vm_port = uint16_t(2000 + i)}.syn(), gw_);
        xdp(Flow{.vm = "192.0.2.10", .vm_port = uint16_t(2000 + i)}.syn(), gw_);
    }
    xdp(Flow{.vm_port = 9}.syn(), hv_);
    EXPECT_EQ(dp_.auto_vm(auto_key(gw_, 4, "192.0.2.9"))->bucket.conn_evicted, 12u);
    EXPECT_EQ(dp_.auto_vm(auto_key(gw_, 4, "192.0.2.10"))->bucket.conn_evicted, 12u);
    EXPECT_EQ(dp_.auto_vm(auto_key(gw_))->bucket.conn_evicted, 0u);
    EXPECT_EQ(dp_.conns().size(), 8u + 8u + 1u);
}

TEST_F(Conn, ConnPerVmZeroReadsAsTheDefault)
{
    for (uint32_t i = 0; i <= SG_CONN_PER_VM_DEFAULT; i++)
        xdp(Flow{.vm_port = uint16_t(1024 + i)}.syn(), hv_);
    EXPECT_EQ(dp_.bucket(kSlot).conn_evicted, 1u);
    EXPECT_FALSE(dp_.conn(Flow{.vm_port = 1024}.key(hv_))) << "the oldest went";
    EXPECT_EQ(owned_by(kSlot), size_t(SG_CONN_PER_VM_DEFAULT));
}

// sg_conn full (SG_CONN_MAX entries: 8 owners x 65,536): a passed SYN still passes,
// untracked; a steered one is refused, so that no steered flow goes untracked.
TEST_F(Conn, FullTablePassesUntrackedAndRefusesSteering)
{
    constexpr uint32_t kOwners = SG_CONN_MAX / SG_CONN_PER_VM_MAX;
    sg_runtime rt{};
    rt.conn_per_vm = SG_CONN_PER_VM_MAX;
    rt.flags = SG_RT_PROXY_V4;
    std::memcpy(rt.proxy_v4, addr("192.0.2.10").data(), 4);
    rt.proxy_v4_port = htobe16(25);
    dp_.runtime(rt);
    for (uint32_t o = 0; o <= kOwners; o++) {
        dp_.vm(10 + o, policy(SG_TIER_OK, 4000000000u, 4000000000u));
        dp_.route("10.20." + std::to_string(o) + ".0", 24, 10 + o);
    }
    for (uint32_t o = 0; o < kOwners; o++)
        for (uint32_t i = 0; i < SG_CONN_PER_VM_MAX; i++) {
            Flow f{.vm = "10.20." + std::to_string(o) + "." + std::to_string(1 + i / 65536),
                   .vm_port = uint16_t(i % 65536)};
            ASSERT_EQ(xdp(f.syn(), gw_), uint32_t(XDP_PASS));
        }
    Global before = dp_.global();
    Flow late{.vm = "10.20." + std::to_string(kOwners) + ".1"};
    EXPECT_EQ(xdp(late.syn(), gw_), uint32_t(XDP_PASS)) << "passed, untracked";
    EXPECT_FALSE(dp_.conn(late.key(gw_)));
    dp_.vm(10 + kOwners, policy(SG_TIER_STEERED, 4000000000u, 4000000000u));
    late.vm_port++;
    EXPECT_EQ(xdp(late.syn(), gw_), uint32_t(XDP_DROP)) << "a steered SYN that cannot be followed";
    Global d = delta(dp_.global(), before);
    EXPECT_EQ(d[SG_RES_CONN_FULL], 2u);
    EXPECT_EQ(d[SG_RES_CONN_NEW], 0u);
    EXPECT_EQ(dp_.ring_count(), size_t(SG_CONN_MAX)) << "no ring slot without its entry";
    // an owner at its cap still replaces its own oldest: the table stays usable
    dp_.vm(10, policy(SG_TIER_STEERED, 4000000000u, 4000000000u));
    XdpRun r = dp_.xdp(Flow{.vm = "10.20.0.1", .vm_port = 1, .isn = 5}.syn(), gw_);
    EXPECT_EQ(r.action, uint32_t(XDP_PASS)) << "a new ISN on a tracked tuple: its own entry goes first";
}

}  // namespace
}  // namespace sgt
