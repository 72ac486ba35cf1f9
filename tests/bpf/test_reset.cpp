// The RST+ACK answering a refused SYN: every field parsed back and checked, for
// plain, VLAN, QinQ, IPv4-with-options and IPv6-with-extension-header SYNs (one
// parameterised test per input).
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include "reference.h"
#include "table_test.h"

namespace sgt {
namespace {

constexpr uint32_t kSlot = 3;

uint16_t be16(const Bytes& f, size_t o) { return uint16_t(f[o] << 8 | f[o + 1]); }
uint32_t be32(const Bytes& f, size_t o) { return uint32_t(be16(f, o)) << 16 | be16(f, o + 2); }

struct Input {
    const char* desc;
    Packet pkt;
    size_t l2_len;
    int family;
    uint32_t payload;
};

void PrintTo(const Input& in, std::ostream* os) { *os << in.desc; }

// Checks the reply field by field against the SYN it answers.
void check_rst(const Bytes& syn, const Bytes& rst, const Input& in)
{
    const size_t l2 = in.l2_len, iplen = in.family == 4 ? 20 : 40, tcp = l2 + iplen;
    ASSERT_EQ(rst.size(), tcp + 20) << "nothing follows the TCP header";
    EXPECT_TRUE(std::equal(rst.begin(), rst.begin() + 6, syn.begin() + 6)) << "dst MAC = SYN's src MAC";
    EXPECT_TRUE(std::equal(rst.begin() + 6, rst.begin() + 12, syn.begin())) << "src MAC = SYN's dst MAC";
    EXPECT_TRUE(std::equal(rst.begin() + 12, rst.begin() + long(l2), syn.begin() + 12))
        << "VLAN tags and ethertype kept";
    auto c = sgref::classify(syn, {25, 465, 587});
    Bytes pseudo;
    if (in.family == 4) {
        EXPECT_EQ(rst[l2], 0x45);
        EXPECT_EQ(rst[l2 + 1], 0);
        EXPECT_EQ(be16(rst, l2 + 2), 40u);
        EXPECT_EQ(be16(rst, l2 + 4), 0u) << "id 0";
        EXPECT_EQ(be16(rst, l2 + 6), 0x4000u) << "DF, no fragment";
        EXPECT_EQ(rst[l2 + 8], 64) << "ttl";
        EXPECT_EQ(rst[l2 + 9], 6);
        EXPECT_EQ(inet_checksum(&rst[l2], 20), 0) << "IPv4 header checksum";
        EXPECT_EQ(Bytes(rst.begin() + long(l2) + 12, rst.begin() + long(l2) + 16), c.dst);
        EXPECT_EQ(Bytes(rst.begin() + long(l2) + 16, rst.begin() + long(l2) + 20), c.src);
        pseudo.assign(rst.begin() + long(l2) + 12, rst.begin() + long(l2) + 20);
        pseudo.insert(pseudo.end(), {0, 6, 0, 20});
    } else {
        EXPECT_EQ(be32(rst, l2), 0x60000000u) << "version 6, no traffic class or flow label";
        EXPECT_EQ(be16(rst, l2 + 4), 20u);
        EXPECT_EQ(rst[l2 + 6], 6) << "no extension headers";
        EXPECT_EQ(rst[l2 + 7], 64) << "hop limit";
        EXPECT_EQ(Bytes(rst.begin() + long(l2) + 8, rst.begin() + long(l2) + 24), c.dst);
        EXPECT_EQ(Bytes(rst.begin() + long(l2) + 24, rst.begin() + long(l2) + 40), c.src);
        pseudo.assign(rst.begin() + long(l2) + 8, rst.begin() + long(l2) + 40);
        pseudo.insert(pseudo.end(), {0, 0, 0, 20, 0, 0, 0, 6});
    }
    EXPECT_EQ(be16(rst, tcp), c.dport);
    EXPECT_EQ(be16(rst, tcp + 2), c.sport);
    EXPECT_EQ(be32(rst, tcp + 4), 0u) << "seq";
    EXPECT_EQ(be32(rst, tcp + 8), uint32_t(c.seq + 1 + in.payload)) << "ack = seq + 1 + payload";
    EXPECT_EQ(rst[tcp + 12], 0x50) << "doff 5";
    EXPECT_EQ(rst[tcp + 13], kRst | kAck);
    EXPECT_EQ(be16(rst, tcp + 14), 0u) << "window";
    EXPECT_EQ(be16(rst, tcp + 18), 0u) << "urgent pointer";
    EXPECT_EQ(inet_checksum(&rst[tcp], 20, inet_sum(pseudo.data(), pseudo.size())), 0)
        << "TCP checksum incl. pseudo header";
    EXPECT_EQ(rst, sgref::reset_for(syn, c)) << "reference RST bytes";
}

std::vector<Input> inputs()
{
    auto v4 = [] { return Packet().eth().ipv4("10.1.0.2", "198.51.100.7"); };
    auto v6 = [] { return Packet().eth().ipv6("2001:db8:1::2", "2001:db8:ff::7"); };
    return {
        {"IPv4", v4().tcp(40000, 25).syn().seq(1000), 14, 4, 0},
        {"IPv6", v6().tcp(40001, 587).syn().seq(7), 14, 6, 0},
        {"VLAN IPv4", v4().vlan(100).tcp(40002, 465).syn(), 18, 4, 0},
        {"QinQ IPv6", v6().vlan(10, 0x88a8).vlan(20).tcp(40003, 25).syn(), 22, 6, 0},
        {"IPv4 with 40 bytes of options, TCP options and payload",
         v4().ip_options(40).tcp(40004, 25).tcp_options(20).syn().payload("EHLO x"), 14, 4, 6},
        {"IPv6 with extension headers and a first fragment",
         v6().ext(0).ext(43, 24).ext(60).fragment(0, true).tcp(40005, 25).syn().payload(Bytes(100, 'a')),
         14, 6, 100},
        {"VLAN IPv4 with sequence number wrap", v4().vlan(5).tcp(40006, 25).syn().seq(0xffffffff), 18, 4, 0},
        {"IPv4 with Ethernet padding", v4().tcp(40007, 25).syn().l2_padding(6), 14, 4, 0},
    };
}

class Reset : public ::testing::Test {
protected:
    void SetUp() override
    {
        ifindex_ = test_iface("sgr0");
        dp_.iface(ifindex_, SG_IFACE_HAS_VM, kSlot);
    }
    int ifindex_ = 0;
    TestDatapath dp_;
};

class BlockedTier : public TableTest<Input> {
protected:
    void SetUp() override
    {
        ifindex_ = test_iface("sgr0");
        dp().iface(ifindex_, SG_IFACE_HAS_VM, kSlot);
        dp().vm(kSlot, policy(SG_TIER_BLOCKED, 100, 100, SG_ACT_DROP, SG_ACT_RESET));
    }
    int ifindex_ = 0;
};

TEST_P(BlockedTier, AnswersWithRst)
{
    const Input& in = GetParam();
    Bytes syn = in.pkt.build();
    Global before = dp().global();
    sg_vm_stats vm_before = dp().stats(kSlot);
    XdpRun r = dp().xdp(syn, ifindex_);
    ASSERT_EQ(r.action, uint32_t(XDP_TX));
    check_rst(syn, r.out, in);
    Global d = delta(dp().global(), before);
    EXPECT_EQ(d[SG_RES_SMTP_SYN], 1u);
    EXPECT_EQ(d[SG_RES_RST_SENT], 1u);
    EXPECT_EQ(dp().stats(kSlot).rst_sent - vm_before.rst_sent, 1u);
    EXPECT_EQ(dp().stats(kSlot).syn[SG_VERDICT_BLOCK] - vm_before.syn[SG_VERDICT_BLOCK], 1u);
}

INSTANTIATE_TEST_SUITE_P(Inputs, BlockedTier, ::testing::ValuesIn(inputs()), RowName());

TEST_F(Reset, OverLimitWithResetActionAnswersWithRst)
{
    dp_.vm(kSlot, policy(SG_TIER_OK, 1, 1, SG_ACT_RESET));
    Bytes syn = Packet().eth().vlan(42).ipv4("10.1.0.2", "198.51.100.7").tcp(40000, 25).syn().build();
    EXPECT_EQ(dp_.xdp(syn, ifindex_).action, uint32_t(XDP_PASS));
    XdpRun r = dp_.xdp(syn, ifindex_);
    ASSERT_EQ(r.action, uint32_t(XDP_TX));
    check_rst(syn, r.out, {"over limit", Packet(), 18, 4, 0});
    EXPECT_EQ(dp_.stats(kSlot).syn[SG_VERDICT_THROTTLE], 1u);
    EXPECT_EQ(dp_.stats(kSlot).rst_sent, 1u);
}

TEST_F(Reset, AutoEntryRstIsCountedOnTheEntry)
{
    TestDatapath dp;
    int ifx = test_iface("sgr1");
    dp.defaults(SG_DEFAULTS_SOURCE, policy(SG_TIER_BLOCKED, 0, 0, SG_ACT_DROP, SG_ACT_RESET));
    Bytes syn = Packet().eth().ipv6("2001:db8::2", "2001:db8:ff::7").tcp(40000, 25).syn().build();
    XdpRun r = dp.xdp(syn, ifx);
    ASSERT_EQ(r.action, uint32_t(XDP_TX));
    check_rst(syn, r.out, {"auto", Packet(), 14, 6, 0});
    auto e = dp.auto_vm(auto_key(ifx));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->stats.rst_sent, 1u);
    EXPECT_EQ(e->stats.syn[SG_VERDICT_BLOCK], 1u);
}

}  // namespace
}  // namespace sgt
