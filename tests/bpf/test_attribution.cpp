// Attribution of new SMTP connections: hypervisor and gateway interfaces,
// spoofed sources, LPM longest match, auto entries, tiers (one parameterised test
// per tier and action), random-source floods.
#include <cstring>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <time.h>

#include <random>

#include "table_test.h"

namespace sgt {
namespace {

Bytes syn4(const std::string& src, uint16_t dport = 25)
{
    return Packet().eth().ipv4(src, "198.51.100.7").tcp(40000, dport).syn().build();
}

Bytes syn6(const std::string& src)
{
    return Packet().eth().ipv6(src, "2001:db8:ff::7").tcp(40000, 25).syn().build();
}

double now_s()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

class Attribution : public ::testing::Test {
protected:
    void SetUp() override
    {
        hv_ = test_iface("sga-hv");
        gw_ = test_iface("sga-gw");
        other_ = test_iface("sga-x");
        dp_.defaults(SG_DEFAULTS_SOURCE, policy(SG_TIER_OK, 1000, 1000));
        dp_.defaults(SG_DEFAULTS_AGGREGATE, policy(SG_TIER_OK, 100000, 100000));
    }
    uint64_t syn(uint32_t slot, int verdict) const { return dp_.stats(slot).syn[verdict]; }
    int hv_ = 0, gw_ = 0, other_ = 0;
    TestDatapath dp_;
};

TEST_F(Attribution, HypervisorInterfaceNamesTheVm)
{
    dp_.iface(hv_, SG_IFACE_HAS_VM, 7);
    dp_.vm(7, policy(SG_TIER_OK, 100, 100));
    Global before = dp_.global();
    EXPECT_EQ(dp_.xdp(syn4("203.0.113.9"), hv_).action, uint32_t(XDP_PASS));
    EXPECT_EQ(dp_.xdp(syn6("2001:db8:5::1"), hv_).action, uint32_t(XDP_PASS));
    EXPECT_EQ(syn(7, SG_VERDICT_PASS), 2u);
    Global d = delta(dp_.global(), before);
    EXPECT_EQ(d[SG_RES_SMTP_SYN], 2u);
    EXPECT_EQ(d[SG_RES_SPOOFED], 0u) << "no registered addresses: no spoof check";
    EXPECT_EQ(d[SG_RES_AUTO_NEW], 0u);
    EXPECT_EQ(dp_.auto_count(), 0u);
}

TEST_F(Attribution, InterfaceWithIfindexBeyondTheArrayUsesTheHash)
{
    // ifindexes are allocated cyclically up to INT_MAX: a long-lived hypervisor passes 65536
    const int big = test_iface("sga-big", SG_MAX_IFACES + 4464);
    ASSERT_EQ(big, SG_MAX_IFACES + 4464);
    dp_.iface(big, SG_IFACE_HAS_VM, 9);
    dp_.vm(9, policy(SG_TIER_OK, 100, 100));
    EXPECT_EQ(dp_.xdp(syn4("203.0.113.9"), big).action, uint32_t(XDP_PASS));
    EXPECT_EQ(syn(9, SG_VERDICT_PASS), 1u);
    EXPECT_EQ(dp_.auto_count(), 0u) << "the big interface is a registered VM, not an auto entry";
    // an array slot written as all-zero reads as "no entry": the SYN goes to an auto entry
    dp_.iface(hv_, 0, 0);
    EXPECT_EQ(dp_.xdp(syn4("203.0.113.9"), hv_).action, uint32_t(XDP_PASS));
    EXPECT_EQ(dp_.auto_count(), 1u);
    EXPECT_EQ(syn(0, SG_VERDICT_PASS), 0u) << "slot 0 must not be charged for an empty array entry";
}

TEST_F(Attribution, SpoofedSourceCountsAgainstTheInterfaceVm)
{
    dp_.iface(hv_, SG_IFACE_HAS_VM, 7);
    dp_.vm(7, policy(SG_TIER_OK, 100, 100, SG_ACT_DROP, SG_ACT_DROP, SG_VMF_ACTIVE | SG_VMF_HAS_ADDRS));
    dp_.vm(8, policy(SG_TIER_OK, 100, 100));
    dp_.route("203.0.113.0", 24, 7);
    dp_.route("203.0.113.128", 25, 8);
    dp_.route("2001:db8:7::", 48, 7);
    Global before = dp_.global();
    dp_.xdp(syn4("203.0.113.9"), hv_);          // own address
    dp_.xdp(syn6("2001:db8:7::99"), hv_);       // own prefix
    dp_.xdp(syn4("203.0.113.200"), hv_);        // longer prefix owned by VM 8
    dp_.xdp(syn4("192.0.2.1"), hv_);            // nobody's
    dp_.xdp(syn6("2001:db8:8::1"), hv_);        // nobody's
    sg_vm_stats s = dp_.stats(7);
    EXPECT_EQ(s.syn[SG_VERDICT_PASS], 5u) << "spoofed SYNs still count against the VM";
    EXPECT_EQ(s.spoofed, 3u);
    EXPECT_EQ(delta(dp_.global(), before)[SG_RES_SPOOFED], 3u);
    EXPECT_EQ(dp_.stats(8).syn[SG_VERDICT_PASS], 0u);
}

TEST_F(Attribution, OneIpv4AddressIsComparedInlineAndIpv6StillByLpm)
{
    // what the daemon writes for a VM with one IPv4 host address and an IPv6 prefix
    sg_vm_policy pol = policy(SG_TIER_OK, 100, 100, SG_ACT_DROP, SG_ACT_DROP,
                              SG_VMF_ACTIVE | SG_VMF_HAS_ADDRS | SG_VMF_ONE_V4);
    const uint8_t own[4] = {203, 0, 113, 9};
    std::memcpy(pol.v4_addr, own, 4);
    dp_.iface(hv_, SG_IFACE_HAS_VM, 7);
    dp_.vm(7, pol);
    dp_.vm(8, policy(SG_TIER_OK, 100, 100));
    dp_.route("203.0.113.9", 32, 7);
    dp_.route("203.0.113.10", 32, 8);
    dp_.route("2001:db8:7::", 48, 7);
    Global before = dp_.global();
    dp_.xdp(syn4("203.0.113.9"), hv_);          // its address: inline, not spoofed
    dp_.xdp(syn4("203.0.113.10"), hv_);         // VM 8's address
    dp_.xdp(syn4("192.0.2.1"), hv_);            // nobody's
    dp_.xdp(syn6("2001:db8:7::99"), hv_);       // own IPv6 prefix (LPM)
    dp_.xdp(syn6("2001:db8:8::1"), hv_);        // nobody's (LPM)
    sg_vm_stats s = dp_.stats(7);
    EXPECT_EQ(s.syn[SG_VERDICT_PASS], 5u);
    EXPECT_EQ(s.spoofed, 3u);
    EXPECT_EQ(delta(dp_.global(), before)[SG_RES_SPOOFED], 3u);
    // the inline address is what decides: another address in it makes the VM's own source foreign
    const uint8_t other[4] = {203, 0, 113, 77};
    std::memcpy(pol.v4_addr, other, 4);
    dp_.vm(7, pol);
    dp_.xdp(syn4("203.0.113.9"), hv_);
    EXPECT_EQ(dp_.stats(7).spoofed, 4u);
}

TEST_F(Attribution, InactiveSlotAndUnknownInterfaceUseOneAutoEntry)
{
    dp_.iface(hv_, SG_IFACE_HAS_VM, 9);   // slot 9 never activated
    Global before = dp_.global();
    dp_.xdp(syn4("203.0.113.9"), hv_);
    dp_.xdp(syn4("192.0.2.44"), hv_);      // the source is not trusted: same entry
    dp_.xdp(syn6("2001:db8::1"), other_);  // interface not in sg_ifaces
    Global d = delta(dp_.global(), before);
    EXPECT_EQ(d[SG_RES_AUTO_NEW], 2u);
    auto hv = dp_.auto_vm(auto_key(hv_));
    auto other = dp_.auto_vm(auto_key(other_));
    ASSERT_TRUE(hv && other);
    EXPECT_EQ(hv->stats.syn[SG_VERDICT_PASS], 2u);
    EXPECT_EQ(other->stats.syn[SG_VERDICT_PASS], 1u);
    EXPECT_GT(hv->first_seen_ns, 0u);
    EXPECT_GE(hv->last_seen_ns, hv->first_seen_ns);
    EXPECT_EQ(syn(9, SG_VERDICT_PASS), 0u);
}

TEST_F(Attribution, GatewayLongestPrefixMatch)
{
    dp_.iface(gw_, SG_IFACE_GATEWAY);
    dp_.vm(2, policy(SG_TIER_OK, 100, 100));
    dp_.vm(3, policy(SG_TIER_OK, 100, 100));
    dp_.route("10.0.0.0", 8, 2);
    dp_.route("10.1.0.0", 16, 3);
    dp_.route("2001:db8::", 32, 2);
    dp_.route("2001:db8:1::", 48, 3);
    dp_.xdp(syn4("10.1.2.3"), gw_);
    dp_.xdp(syn4("10.2.0.1"), gw_);
    dp_.xdp(syn6("2001:db8:1::5"), gw_);
    dp_.xdp(syn6("2001:db8:2::5"), gw_);
    dp_.xdp(syn6("2001:db8:1:ffff::1"), gw_);
    EXPECT_EQ(syn(2, SG_VERDICT_PASS), 2u);
    EXPECT_EQ(syn(3, SG_VERDICT_PASS), 3u);
    EXPECT_EQ(dp_.auto_count(), 0u);
}

TEST_F(Attribution, GatewayUnknownSourceGetsSourceAndAggregateEntries)
{
    dp_.iface(gw_, SG_IFACE_GATEWAY);
    dp_.vm(4, policy(SG_TIER_OK, 100, 100));   // inactive LPM target below
    dp_.vm(5, policy(SG_TIER_OK, 100, 100, SG_ACT_DROP, SG_ACT_DROP, 0));
    dp_.route("100.64.0.0", 10, 5);
    Global before = dp_.global();
    dp_.xdp(syn4("192.0.2.1"), gw_);
    dp_.xdp(syn4("192.0.2.1"), gw_);
    dp_.xdp(syn6("2001:db8:9:1::1"), gw_);
    dp_.xdp(syn6("2001:db8:9:1::2"), gw_);       // same /64: same entry
    dp_.xdp(syn4("100.64.0.1"), gw_);            // matches an inactive slot: auto
    EXPECT_EQ(delta(dp_.global(), before)[SG_RES_AUTO_NEW], 4u);
    auto v4 = dp_.auto_vm(auto_key(gw_, 4, "192.0.2.1"));
    auto v6 = dp_.auto_vm(auto_key(gw_, 6, "2001:db8:9:1::"));
    auto inactive = dp_.auto_vm(auto_key(gw_, 4, "100.64.0.1"));
    auto agg = dp_.auto_vm(auto_key(gw_));
    ASSERT_TRUE(v4 && v6 && inactive && agg);
    EXPECT_EQ(v4->stats.syn[SG_VERDICT_PASS], 2u);
    EXPECT_EQ(v6->stats.syn[SG_VERDICT_PASS], 2u);
    EXPECT_EQ(inactive->stats.syn[SG_VERDICT_PASS], 1u);
    EXPECT_EQ(agg->stats.syn[SG_VERDICT_PASS], 5u) << "the aggregate judged every SYN";
    EXPECT_EQ(syn(5, SG_VERDICT_PASS), 0u);
}

struct TierRow {
    const char* desc;
    sg_vm_policy pol;
    uint32_t action;
    int verdict;
    uint64_t rst;
};

void PrintTo(const TierRow& r, std::ostream* os) { *os << r.desc; }

const TierRow kTierRows[] = {
    {"ok within bucket", policy(SG_TIER_OK, 10, 10), XDP_PASS, SG_VERDICT_PASS, 0},
    {"throttled over bucket, drop", policy(SG_TIER_THROTTLED, 0, 5), XDP_DROP, SG_VERDICT_THROTTLE, 0},
    {"throttled over bucket, reset", policy(SG_TIER_THROTTLED, 0, 5, SG_ACT_RESET), XDP_TX, SG_VERDICT_THROTTLE, 1},
    // no proxy configured (sg_runtime empty): a steered SYN passes under its bucket;
    // steering itself is test_steer.cpp's
    {"steered within bucket, no proxy", policy(SG_TIER_STEERED, 10, 10), XDP_PASS, SG_VERDICT_PASS, 0},
    {"steered over bucket", policy(SG_TIER_STEERED, 0, 10), XDP_DROP, SG_VERDICT_THROTTLE, 0},
    {"blocked, drop", policy(SG_TIER_BLOCKED, 10, 10), XDP_DROP, SG_VERDICT_BLOCK, 0},
    {"blocked, reset", policy(SG_TIER_BLOCKED, 10, 10, SG_ACT_DROP, SG_ACT_RESET), XDP_TX, SG_VERDICT_BLOCK, 1},
};

class TiersAndActions : public TableTest<TierRow> {
protected:
    void SetUp() override
    {
        hv_ = test_iface("sga-hv");
        dp().defaults(SG_DEFAULTS_SOURCE, policy(SG_TIER_OK, 1000, 1000));
        dp().defaults(SG_DEFAULTS_AGGREGATE, policy(SG_TIER_OK, 100000, 100000));
        dp().iface(hv_, SG_IFACE_HAS_VM, 11);
    }
    int hv_ = 0;
};

TEST_P(TiersAndActions, Syn)
{
    const TierRow& r = GetParam();
    dp().vm(11, r.pol);
    sg_vm_stats before = dp().stats(11);
    Global gbefore = dp().global();
    EXPECT_EQ(dp().xdp(syn4("203.0.113.9"), hv_).action, r.action);
    sg_vm_stats after = dp().stats(11);
    for (int v = 0; v < SG_VERDICT_MAX; v++)
        EXPECT_EQ(after.syn[v] - before.syn[v], v == r.verdict ? 1u : 0u) << "verdict " << v;
    EXPECT_EQ(after.rst_sent - before.rst_sent, r.rst);
    EXPECT_EQ(delta(dp().global(), gbefore)[SG_RES_RST_SENT], r.rst);
}

INSTANTIATE_TEST_SUITE_P(Rows, TiersAndActions, ::testing::ValuesIn(kTierRows), RowName());

TEST_F(Attribution, AutoPolicyOverridesDefaults)
{
    dp_.iface(gw_, SG_IFACE_GATEWAY);
    dp_.auto_policy(auto_key(gw_, 4, "192.0.2.66"), policy(SG_TIER_BLOCKED, 10, 10));
    EXPECT_EQ(dp_.xdp(syn4("192.0.2.66"), gw_).action, uint32_t(XDP_DROP));
    EXPECT_EQ(dp_.xdp(syn4("192.0.2.67"), gw_).action, uint32_t(XDP_PASS));
    EXPECT_EQ(dp_.auto_vm(auto_key(gw_, 4, "192.0.2.66"))->stats.syn[SG_VERDICT_BLOCK], 1u);
    // a refused source never reaches the aggregate
    EXPECT_EQ(dp_.auto_vm(auto_key(gw_))->stats.syn[SG_VERDICT_PASS], 1u);
}

TEST_F(Attribution, RandomSourceFloodLeavesRegisteredVmAloneAndAggregateCapsIt)
{
    constexpr uint32_t kAggRate = 50, kAggBurst = 100, kFlood = 20000;
    dp_.iface(gw_, SG_IFACE_GATEWAY);
    dp_.vm(3, policy(SG_TIER_OK, 10, 20));
    dp_.route("10.1.0.0", 16, 3);
    dp_.defaults(SG_DEFAULTS_SOURCE, policy(SG_TIER_OK, 1, 5));
    dp_.defaults(SG_DEFAULTS_AGGREGATE, policy(SG_TIER_OK, kAggRate, kAggBurst));
    std::mt19937 rng(20240601);
    uint64_t passed = 0;
    double t0 = now_s();
    for (uint32_t i = 0; i < kFlood; i++) {
        uint32_t a = rng() | 0x80000000u;   // never inside 10.1.0.0/16
        std::string src = std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
                          std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
        passed += dp_.xdp(syn4(src), gw_).action == XDP_PASS;
    }
    double elapsed = now_s() - t0;
    EXPECT_GE(passed, kAggBurst);
    EXPECT_LE(double(passed), kAggBurst + kAggRate * elapsed + 1) << "elapsed " << elapsed << " s";
    EXPECT_LE(dp_.auto_count(), size_t(SG_MAX_AUTO));
    sg_vm_stats s = dp_.stats(3);
    sg_bucket b = dp_.bucket(3);
    for (int v = 0; v < SG_VERDICT_MAX; v++)
        EXPECT_EQ(s.syn[v], 0u);
    EXPECT_EQ(b.tat_ns, 0u);
    EXPECT_EQ(b.last_event_ns, 0u) << "no over-limit event of its own";
    // the registered VM still has its whole burst
    for (int i = 0; i < 20; i++)
        EXPECT_EQ(dp_.xdp(syn4("10.1.0.5"), gw_).action, uint32_t(XDP_PASS));
    EXPECT_EQ(dp_.stats(3).syn[SG_VERDICT_PASS], 20u);
}

}  // namespace
}  // namespace sgt
