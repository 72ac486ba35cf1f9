// Table-driven classification: every frame lands in exactly one of the seven
// per-frame classes, and only new SMTP connections reach the VM's counters
// (fragments and every refusal rule in detail: test_fragments.cpp).
// Each table row and each truncated base frame is its own parameterised test.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <map>

#include "reference.h"
#include "table_test.h"

namespace sgt {
namespace {

constexpr uint32_t kSlot = 1;

struct Case {
    std::string desc;
    Bytes frame;
    uint32_t action;
    std::map<sg_result, uint64_t> global;
    std::array<uint64_t, SG_VERDICT_MAX> syn;   // per-VM delta by verdict
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.desc; }

Packet v4() { return Packet().eth().ipv4("10.1.0.2", "198.51.100.7"); }
Packet v6() { return Packet().eth().ipv6("2001:db8:1::2", "2001:db8:ff::7"); }

Case smtp(std::string d, Bytes f) { return {std::move(d), std::move(f), XDP_PASS, {{SG_RES_SMTP_SYN, 1}}, {1, 0, 0, 0}}; }
Case other(std::string d, Bytes f, sg_result r) { return {std::move(d), std::move(f), XDP_PASS, {{r, 1}}, {0, 0, 0, 0}}; }
Case refused(std::string d, Bytes f) { return {std::move(d), std::move(f), XDP_DROP, {{SG_RES_REFUSED, 1}}, {0, 0, 0, 0}}; }

std::vector<Case> cases()
{
    std::vector<Case> c;
    for (uint16_t port : {25, 465, 587}) {
        c.push_back(smtp("IPv4 SYN to " + std::to_string(port), v4().tcp(40000, port).syn().build()));
        c.push_back(smtp("IPv6 SYN to " + std::to_string(port), v6().tcp(40000, port).syn().build()));
    }
    c.push_back(other("SYN-ACK", v4().tcp(40000, 25).syn().ack().build(), SG_RES_NON_SMTP));
    c.push_back(other("ACK", v4().tcp(40000, 25).ack().build(), SG_RES_NON_SMTP));
    c.push_back(other("FIN", v4().tcp(40000, 25).fin().ack().build(), SG_RES_NON_SMTP));
    c.push_back(other("RST", v4().tcp(40000, 25).rst().build(), SG_RES_NON_SMTP));
    c.push_back(other("SYN+FIN is no connection attempt", v4().tcp(40000, 25).syn().fin().build(), SG_RES_NON_SMTP));
    c.push_back(other("SYN+RST is no connection attempt", v4().tcp(40000, 25).syn().rst().build(), SG_RES_NON_SMTP));
    c.push_back(smtp("SYN with ECE|CWR (ECN setup)", v4().tcp(40000, 25).syn().ece().cwr().build()));
    c.push_back(smtp("SYN with PSH", v4().tcp(40000, 587).syn().flags(kSyn | kPsh).build()));
    c.push_back(other("SYN to port 80", v4().tcp(40000, 80).syn().build(), SG_RES_NON_SMTP));
    c.push_back(other("SYN from port 25", v4().tcp(25, 40000).syn().build(), SG_RES_NON_SMTP));
    c.push_back(other("IPv6 SYN to port 443", v6().tcp(40000, 443).syn().build(), SG_RES_NON_SMTP));
    c.push_back(other("UDP to 25", v4().udp(40000, 25).payload("hello").build(), SG_RES_NON_TCP));
    c.push_back(other("IPv6 UDP to 25", v6().udp(40000, 25).build(), SG_RES_NON_TCP));
    c.push_back(other("ICMP", v4().l4(1).payload(Bytes(8, 0)).build(), SG_RES_NON_TCP));
    c.push_back(other("IPv6 ESP", v6().l4(50).payload(Bytes(16, 0)).build(), SG_RES_NON_TCP));
    c.push_back(other("ARP", Packet().eth().ethertype(0x0806).build(), SG_RES_NON_IP));
    c.push_back(other("LLDP", Packet().eth().ethertype(0x88cc).build(), SG_RES_NON_IP));
    c.push_back(other("bare Ethernet header", Bytes(14, 0), SG_RES_NON_IP));
    c.push_back(smtp("VLAN 100", v4().vlan(100).tcp(40000, 25).syn().build()));
    c.push_back(smtp("QinQ 802.1ad + 802.1Q", v4().vlan(10, 0x88a8).vlan(20).tcp(40000, 25).syn().build()));
    c.push_back(smtp("QinQ IPv6", v6().vlan(10, 0x88a8).vlan(20).tcp(40000, 465).syn().build()));
    c.push_back(refused("three VLAN tags", v4().vlan(1).vlan(2).vlan(3).tcp(40000, 25).syn().build()));
    c.push_back(other("VLAN ARP", Packet().eth().vlan(7).ethertype(0x0806).build(), SG_RES_NON_IP));
    c.push_back(smtp("IPv4 with 40 bytes of options", v4().ip_options(40).tcp(40000, 25).syn().build()));
    c.push_back(smtp("IPv4 first fragment (MF, offset 0)", v4().fragment(0, true).tcp(40000, 25).syn().build()));
    c.push_back(other("IPv4 non-first fragment", v4().fragment(185, true).tcp(40000, 25).syn().build(), SG_RES_FRAGMENT));
    c.push_back(other("IPv4 last fragment of UDP", v4().fragment(3, false).udp(1, 25).build(), SG_RES_FRAGMENT));
    c.push_back(refused("IPv4 tiny first fragment", v4().fragment(0, true).tcp(40000, 25).syn().slice(0, 16).build()));
    c.push_back(refused("IPv4 TCP fragment at offset 1", v4().fragment(1, false).tcp(40000, 25).syn().slice(8).build()));
    c.push_back(other("IPv4 version 5", v4().ip_version(5).tcp(40000, 25).syn().build(), SG_RES_UNPARSED));
    for (uint8_t e : {0, 43, 60, 44})
        c.push_back(smtp("IPv6 ext header " + std::to_string(e), v6().ext(e, e == 44 ? 8 : 16).tcp(40000, 25).syn().build()));
    c.push_back(smtp("IPv6 first fragment", v6().ext(0).fragment(0, true).tcp(40000, 25).syn().build()));
    c.push_back(other("IPv6 non-first fragment", v6().fragment(100, false).tcp(40000, 25).syn().build(), SG_RES_FRAGMENT));
    Packet six = v6(), seven = v6();
    for (int i = 0; i < SG_MAX_V6_EXT_HDRS; i++)
        six.ext(60);
    for (int i = 0; i < SG_MAX_V6_EXT_HDRS + 1; i++)
        seven.ext(60);
    c.push_back(smtp("IPv6 chain of 6 ext headers", six.tcp(40000, 25).syn().build()));
    c.push_back(refused("IPv6 chain longer than the bound", seven.tcp(40000, 25).syn().build()));
    c.push_back(other("IPv6 version 4", v6().ip_version(4).tcp(40000, 25).syn().build(), SG_RES_UNPARSED));
    c.push_back(smtp("TCP options (40 bytes)", v4().tcp(40000, 25).tcp_options(40).syn().build()));
    c.push_back(smtp("SYN with payload (TFO)", v4().tcp(40000, 25).syn().payload("EHLO").build()));
    c.push_back(smtp("Ethernet padding after the datagram", v4().tcp(40000, 25).syn().l2_padding(6).build()));
    Bytes doff4 = v4().tcp(40000, 25).syn().build();
    doff4[14 + 20 + 12] = 0x40;
    c.push_back(other("TCP doff 4", doff4, SG_RES_UNPARSED));
    Bytes ihl4 = v4().tcp(40000, 25).syn().build();
    ihl4[14] = 0x44;
    c.push_back(other("IPv4 ihl 4", ihl4, SG_RES_UNPARSED));
    Bytes longtot = v4().tcp(40000, 25).syn().build();
    longtot[14 + 3] += 1;
    c.push_back(other("IPv4 total length beyond the frame", longtot, SG_RES_UNPARSED));
    return c;
}

// The frames come from a registered VM whose bucket never runs dry.
template <class Row>
class OneVm : public TableTest<Row> {
protected:
    void SetUp() override
    {
        ifindex_ = test_iface("sgc0");
        this->dp().iface(ifindex_, SG_IFACE_HAS_VM, kSlot);
        this->dp().vm(kSlot, policy(SG_TIER_OK, 1000000, 1000000));
    }
    int ifindex_ = 0;
};

class ClassifyTable : public OneVm<Case> {};

TEST_P(ClassifyTable, Frame)
{
    const Case& c = GetParam();
    Global before = dp().global();
    sg_vm_stats vm_before = dp().stats(kSlot);
    XdpRun r = dp().xdp(c.frame, ifindex_);
    EXPECT_EQ(r.action, c.action);
    EXPECT_EQ(r.out, c.frame) << "a passed frame is never modified";
    Global want{};
    for (auto& [res, n] : c.global)
        want[res] = n;
    // a passed SYN also gets a connection entry: test_conn.cpp checks those results
    Global got = classes_only(delta(dp().global(), before));
    EXPECT_EQ(got, want) << "got " << describe(got) << ", want " << describe(want);
    sg_vm_stats vm_after = dp().stats(kSlot);
    for (int v = 0; v < SG_VERDICT_MAX; v++)
        EXPECT_EQ(vm_after.syn[v] - vm_before.syn[v], c.syn[v]) << "verdict " << v;
    // the reference classifier agrees on every table row
    EXPECT_EQ(sgref::classify(c.frame, {25, 465, 587}).result, c.global.begin()->first);
}

INSTANTIATE_TEST_SUITE_P(Rows, ClassifyTable, ::testing::ValuesIn(cases()), RowName());

struct Base {
    std::string desc;
    Packet pkt;
};

void PrintTo(const Base& b, std::ostream* os) { *os << b.desc; }

std::vector<Base> truncation_bases()
{
    return {
        {"IPv4 TCP", v4().tcp(40000, 25).syn().payload("x")},
        {"VLAN IPv4 options TCP options",
         v4().vlan(5).ip_options(12).tcp(40000, 25).tcp_options(8).syn().payload("x")},
        {"QinQ IPv6 extension chain",
         v6().vlan(10, 0x88a8).vlan(20).ext(0).ext(43, 24).ext(44).ext(60).tcp(40000, 587).syn().payload("x")},
        {"IPv4 UDP", v4().udp(5, 25).payload("x")},
        // a frame cut short is not a tiny fragment: its datagram is incomplete, no receiver takes it
        {"IPv4 first fragment", v4().fragment(0, true).tcp(40000, 25).syn().payload("x")},
        {"IPv6 first fragment", v6().fragment(0, true).ext(60).tcp(40000, 25).syn().payload("x")},
    };
}

class Truncated : public OneVm<Base> {};

TEST_P(Truncated, AtEveryHeaderBoundary)
{
    const Packet& p = GetParam().pkt;
    Bytes full = p.build();
    for (auto& [name, end] : p.boundaries()) {
        for (size_t len : {end, end - 1}) {
            if (len >= full.size() || len < 14)
                continue;   // BPF_PROG_TEST_RUN refuses frames shorter than Ethernet
            SCOPED_TRACE(name + " truncated to " + std::to_string(len));
            Bytes f(full.begin(), full.begin() + long(len));
            Global before = dp().global();
            EXPECT_EQ(dp().xdp(f, ifindex_).action, uint32_t(XDP_PASS));
            Global want{};
            want[SG_RES_UNPARSED] = 1;
            EXPECT_EQ(delta(dp().global(), before), want) << describe(delta(dp().global(), before));
            EXPECT_EQ(sgref::classify(f, {25, 465, 587}).result, SG_RES_UNPARSED);
        }
    }
    EXPECT_EQ(dp().stats(kSlot).syn[SG_VERDICT_PASS], 0u);
}

INSTANTIATE_TEST_SUITE_P(Bases, Truncated, ::testing::ValuesIn(truncation_bases()), RowName());

TEST(Classify, ConfiguredPortsReplaceDefaults)
{
    int ifindex = test_iface("sgc0");
    TestDatapath custom({2525});
    custom.iface(ifindex, SG_IFACE_HAS_VM, kSlot);
    custom.vm(kSlot, policy(SG_TIER_OK, 1000, 1000));
    Global before = custom.global();
    custom.xdp(v4().tcp(40000, 2525).syn().build(), ifindex);
    custom.xdp(v4().tcp(40000, 25).syn().build(), ifindex);
    Global d = delta(custom.global(), before);
    EXPECT_EQ(d[SG_RES_SMTP_SYN], 1u);
    EXPECT_EQ(d[SG_RES_NON_SMTP], 1u);
}

}  // namespace
}  // namespace sgt
