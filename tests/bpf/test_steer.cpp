// Steering, mode nat (DESIGN.md "Steering"): a steered VM's new connections to a proxy
// port go to the proxy of their family (XDP rewrites destination address and port,
// checksums fixed incrementally and recomputed here, VLAN tags, IP options and
// extension headers kept), the whole flow follows, and TC rewrites the proxy's answers
// back to the server the VM dialled, counting none of them as evidence. What cannot be
// steered is refused. ICMP errors: test_icmp.cpp.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <functional>

#include "flow.h"
#include "reference.h"
#include "steer_setup.h"
#include "table_test.h"

namespace sgt {
namespace {

constexpr uint32_t kSteered = 1, kOk = 2;

// Frames of one connection in one shape (tags, options, extension headers): from the
// VM to remote:rport, or (to_vm) from remote:rport back to the VM, TCP flags still unset.
struct Shape {
    std::string vm;
    std::vector<std::pair<uint16_t, uint16_t>> vlans = {};   // vid, tpid
    size_t ip_options = 0, tcp_options = 0;
    std::vector<std::pair<uint8_t, size_t>> exts = {};       // IPv6 extension headers

    Packet frame(bool to_vm, const std::string& remote, uint16_t rport) const
    {
        Packet p;
        p.eth(to_vm ? kGwMac : kVmMac, to_vm ? kVmMac : kGwMac);
        for (auto& [vid, tpid] : vlans)
            p.vlan(vid, tpid);
        const std::string& src = to_vm ? remote : vm;
        const std::string& dst = to_vm ? vm : remote;
        if (vm.find(':') != std::string::npos)
            p.ipv6(src, dst);
        else
            p.ipv4(src, dst).ip_options(ip_options);
        for (auto& [type, len] : exts)
            p.ext(type, len);
        return p.tcp(to_vm ? rport : 40000, to_vm ? 40000 : rport).tcp_options(tcp_options);
    }
};

struct Row {
    std::string desc;
    Shape shape;
    std::string server, proxy;
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.desc; }

std::vector<Row> rows()
{
    const std::string v4 = "10.1.0.2", v6 = "2001:db8:1::2", s4 = "198.51.100.7", s6 = "2001:db8:ff::7";
    return {
        {"IPv4", {v4}, s4, kProxy4},
        {"IPv4 behind a VLAN tag", {v4, {{100, 0x8100}}}, s4, kProxy4},
        {"IPv4 behind QinQ", {v4, {{10, 0x88a8}, {20, 0x8100}}}, s4, kProxy4},
        {"IPv4 with IP and TCP options", {v4, {}, 12, 20}, s4, kProxy4},
        {"IPv6", {v6}, s6, kProxy6},
        {"IPv6 behind a VLAN tag", {v6, {{7, 0x8100}}}, s6, kProxy6},
        {"IPv6 behind QinQ with extension headers", {v6, {{10, 0x88a8}, {20, 0x8100}}, 0, 8, {{0, 8}, {60, 16}}}, s6,
         kProxy6},
    };
}

class Steering : public TableTest<Row> {
protected:
    void SetUp() override
    {
        hv_ = test_iface("sgs-hv");
        dp().iface(hv_, SG_IFACE_HAS_VM, kSteered);
        dp().vm(kSteered, policy(SG_TIER_STEERED, 1000000, 1000000));
        dp().runtime(proxy_runtime());
    }
    int hv_ = 0;
};

// One steered session: SYN, the proxy's SYN-ACK, the VM's data, the proxy's rejection,
// the VM's RST. Every rewritten frame equals the one built for its new addresses.
TEST_P(Steering, WholeFlowBothWays)
{
    const Row& r = GetParam();
    const Shape& s = r.shape;
    const uint32_t isn = 1000, pisn = 90000;
    const std::string ehlo = "EHLO vm\r\n", reject = "554 5.7.1 spam\r\n";
    Flow f{.vm = s.vm, .server = r.server, .isn = isn, .server_isn = pisn};
    sg_vm_stats before = dp().stats(kSteered);
    dp().drain_events();

    // the SYN goes to the proxy, keyed by the destination as dialled
    XdpRun run = dp().xdp(s.frame(false, r.server, 25).syn().seq(isn).build(), hv_);
    ASSERT_EQ(run.action, uint32_t(XDP_PASS));
    EXPECT_EQ(run.out, s.frame(false, r.proxy, kProxyPort).syn().seq(isn).build()) << "only address and port change";
    EXPECT_EQ(checksum_errors(run.out), "");
    EXPECT_EQ(dp().stats(kSteered).syn[SG_VERDICT_STEER] - before.syn[SG_VERDICT_STEER], 1u);
    auto e = dp().conn(f.key(hv_));
    ASSERT_TRUE(e);
    EXPECT_TRUE(e->flags & SG_CONNF_STEERED);
    Bytes proxy = addr(r.proxy);
    EXPECT_EQ(Bytes(e->proxy_addr, e->proxy_addr + proxy.size()), proxy);
    EXPECT_EQ(be16toh(e->proxy_port), kProxyPort);
    EXPECT_TRUE(names(dp().nat(f.nat_key()), f.key(hv_))) << "the NAT index names the client ADDR:PORT";

    // the proxy's SYN-ACK reaches the VM as the server's
    TcRun back = dp().tc_run(s.frame(true, r.proxy, kProxyPort).flags(kSyn | kAck).seq(pisn).ackno(isn + 1).build(), hv_);
    EXPECT_EQ(back.action, TC_ACT_OK);
    EXPECT_EQ(back.out, s.frame(true, r.server, 25).flags(kSyn | kAck).seq(pisn).ackno(isn + 1).build());
    EXPECT_EQ(checksum_errors(back.out), "");
    EXPECT_EQ(dp().conn(f.key(hv_))->state, SG_CONN_ESTABLISHED);

    // the VM's data follows to the proxy
    run = dp().xdp(s.frame(false, r.server, 25).flags(kAck | kPsh).seq(isn + 1).ackno(pisn + 1).payload(ehlo).build(), hv_);
    EXPECT_EQ(run.out, s.frame(false, r.proxy, kProxyPort).flags(kAck | kPsh).seq(isn + 1).ackno(pisn + 1).payload(ehlo).build());
    EXPECT_EQ(checksum_errors(run.out), "");

    // the proxy's rejection comes back as the server's, and is no evidence
    const uint32_t acked = isn + 1 + uint32_t(ehlo.size());
    back = dp().tc_run(s.frame(true, r.proxy, kProxyPort).flags(kAck | kPsh).seq(pisn + 1).ackno(acked).payload(reject).build(), hv_);
    EXPECT_EQ(back.out, s.frame(true, r.server, 25).flags(kAck | kPsh).seq(pisn + 1).ackno(acked).payload(reject).build());
    EXPECT_EQ(checksum_errors(back.out), "");
    sg_vm_stats after = dp().stats(kSteered);
    for (int kind = 0; kind < SG_REPLY_MAX; kind++)
        EXPECT_EQ(after.replies[kind], before.replies[kind]) << "the proxy's answers are not remote evidence: " << kind;
    EXPECT_TRUE(dp().drain_events().empty()) << "and are not sampled";
    EXPECT_EQ(dp().conn(f.key(hv_))->remote_nxt, pisn + 1 + reject.size()) << "but the window follows them";

    // the VM's RST goes to the proxy too, and ends the flow and its NAT index
    run = dp().xdp(s.frame(false, r.server, 25).flags(kRst).seq(acked).build(), hv_);
    EXPECT_EQ(run.out, s.frame(false, r.proxy, kProxyPort).flags(kRst).seq(acked).build());
    EXPECT_FALSE(dp().conn(f.key(hv_)));
    EXPECT_FALSE(dp().nat(f.nat_key()));
}

INSTANTIATE_TEST_SUITE_P(Rows, Steering, ::testing::ValuesIn(rows()), RowName());

class Steer : public ::testing::Test {
protected:
    void SetUp() override
    {
        hv_ = test_iface("sgs-hv");
        hv2_ = test_iface("sgs-hv2");
        dp_.iface(hv_, SG_IFACE_HAS_VM, kSteered);
        dp_.iface(hv2_, SG_IFACE_HAS_VM, kOk);
        dp_.vm(kSteered, policy(SG_TIER_STEERED, 1000000, 1000000));
        dp_.vm(kOk, policy(SG_TIER_OK, 1000000, 1000000));
        dp_.runtime(proxy_runtime());
    }
    // Where a frame from the VM went: its destination address and port.
    static std::pair<Bytes, uint16_t> dst_of(const Bytes& f)
    {
        auto c = sgref::classify(f, {});
        return {c.dst, c.dport};
    }
    static std::pair<Bytes, uint16_t> proxy4() { return {addr(kProxy4), kProxyPort}; }
    int hv_ = 0, hv2_ = 0;
    TestDatapath dp_;
};

TEST_F(Steer, SteeredFlowStaysSteeredWhenTheTierGoesBackToOk)
{
    Flow f;
    dp_.xdp(f.syn(), hv_);
    dp_.vm(kSteered, policy(SG_TIER_OK, 1000000, 1000000));
    XdpRun r = dp_.xdp(f.vm_data("MAIL FROM:<a@b>\r\n"), hv_);
    EXPECT_EQ(r.action, uint32_t(XDP_PASS));
    EXPECT_EQ(dst_of(r.out), proxy4()) << "a steered flow stays steered until it ends";
    EXPECT_EQ(dst_of(dp_.xdp(f.syn(), hv_).out), proxy4()) << "its SYN sent again too";
    Flow next{.vm_port = 40001};
    r = dp_.xdp(next.syn(), hv_);
    EXPECT_EQ(r.out, next.syn()) << "a new connection follows the new tier";
    EXPECT_FALSE(dp_.conn(next.key(hv_))->flags & SG_CONNF_STEERED);
}

TEST_F(Steer, OkIsNeverSteered)
{
    Flow f{.vm = "10.9.0.2"};
    XdpRun r = dp_.xdp(f.syn(), hv2_);
    EXPECT_EQ(r.out, f.syn());
    EXPECT_EQ(dp_.xdp(f.vm_data("EHLO x"), hv2_).out, f.vm_data("EHLO x"));
    EXPECT_EQ(dp_.conn(f.key(hv2_))->flags, 0);
    EXPECT_EQ(dp_.stats(kOk).syn[SG_VERDICT_PASS], 1u);
    // nor its untracked segments, nor a flow that was never steered once the VM is
    dp_.vm(kOk, policy(SG_TIER_STEERED, 1000000, 1000000));
    EXPECT_EQ(dp_.xdp(f.vm_data("DATA"), hv2_).out, f.vm_data("DATA"));
    EXPECT_EQ(dp_.xdp(f.syn(), hv2_).out, f.syn()) << "its SYN sent again keeps its entry";
}

// 465 and 587 carry TLS and AUTH a store-and-forward proxy cannot honour: the bucket only.
TEST_F(Steer, OtherSmtpPortsPassUnderTheSteeredLimits)
{
    Flow f{.port = 587};
    XdpRun r = dp_.xdp(f.syn(), hv_);
    EXPECT_EQ(r.action, uint32_t(XDP_PASS));
    EXPECT_EQ(r.out, f.syn());
    auto e = dp_.conn(f.key(hv_));
    ASSERT_TRUE(e) << "tracked";
    EXPECT_EQ(e->flags, 0);
    EXPECT_EQ(dp_.stats(kSteered).syn[SG_VERDICT_PASS], 1u);
    EXPECT_EQ(dp_.stats(kSteered).syn[SG_VERDICT_STEER], 0u);
    dp_.vm(kSteered, policy(SG_TIER_STEERED, 0, 0));
    EXPECT_EQ(dp_.xdp(Flow{.vm_port = 40001, .port = 587}.syn(), hv_).action, uint32_t(XDP_DROP)) << "over the bucket";
    EXPECT_EQ(dp_.xdp(Flow{.vm_port = 40002}.syn(), hv_).action, uint32_t(XDP_DROP)) << "the bucket comes first";
    EXPECT_EQ(dp_.stats(kSteered).syn[SG_VERDICT_THROTTLE], 2u);
}

TEST_F(Steer, ConfiguredProxyPorts)
{
    sg_runtime rt = proxy_runtime();
    rt.proxy_ports[0] = 587;
    rt.proxy_ports[1] = 465;
    rt.n_proxy_ports = 2;
    dp_.runtime(rt);
    EXPECT_EQ(dst_of(dp_.xdp(Flow{.port = 465}.syn(), hv_).out), proxy4());
    EXPECT_EQ(dp_.xdp(Flow{.port = 25}.syn(), hv_).out, Flow{.port = 25}.syn());
}

TEST_F(Steer, SteeredPacketWithoutItsEntryIsDropped)
{
    Flow f;
    Global before = dp_.global();
    EXPECT_EQ(dp_.xdp(f.vm_data("DATA"), hv_).action, uint32_t(XDP_DROP)) << "never to the server it was meant for";
    EXPECT_EQ(dp_.xdp(f.vm_fin(), hv_).action, uint32_t(XDP_DROP));
    EXPECT_EQ(delta(dp_.global(), before)[SG_RES_STEER_LOST], 2u);
    EXPECT_EQ(dp_.xdp(Flow{.port = 587}.vm_data("DATA"), hv_).action, uint32_t(XDP_PASS)) << "not a proxy port";
    EXPECT_EQ(dp_.xdp(Flow{.vm = "10.9.0.2"}.vm_data("DATA"), hv2_).action, uint32_t(XDP_PASS)) << "an ok VM";
    // the entry evicted, or idle and deleted by the controller: the same
    dp_.xdp(f.syn(), hv_);
    sg_conn_key k = f.key(hv_);
    ASSERT_EQ(bpf_map_delete_elem(dp_.kern().map_fd(smtpgov::kern::MapId::Conn), &k), 0);
    EXPECT_EQ(dp_.xdp(f.vm_data("DATA"), hv_).action, uint32_t(XDP_DROP));
}

TEST_F(Steer, FragmentsOfASteeredVmsTcpAreRefused)
{
    Packet v4 = Packet().eth().ipv4("10.1.0.2", "198.51.100.7");
    Packet v6 = Packet().eth().ipv6("2001:db8:1::2", "2001:db8:ff::7");
    Bytes pad(3000, 'x');
    std::vector<std::pair<std::string, Bytes>> tcp = {
        {"IPv4 first fragment", Packet(v4).fragment(0, true).tcp(40000, 25).ack().payload(pad).slice(0, 1480).build()},
        {"IPv4 later fragment", Packet(v4).fragment(185, true).tcp(40000, 25).ack().payload(pad).slice(1480, 1480).build()},
        {"IPv4 SYN in a first fragment", Packet(v4).fragment(0, true).tcp(40000, 25).syn().payload(pad).slice(0, 24).build()},
        {"IPv6 first fragment", Packet(v6).fragment(0, true).tcp(40000, 25).ack().payload(pad).slice(0, 1448).build()},
        {"IPv6 later fragment", Packet(v6).fragment(181, false).tcp(40000, 25).ack().payload(pad).slice(1448).build()},
        {"IPv6 atomic fragment", Packet(v6).fragment(0, false).tcp(40000, 443).ack().build()},
    };
    for (auto& [desc, frame] : tcp) {
        Global before = dp_.global();
        EXPECT_EQ(dp_.xdp(frame, hv_).action, uint32_t(XDP_DROP)) << desc;
        EXPECT_EQ(delta(dp_.global(), before)[SG_RES_STEER_FRAG], 1u) << desc;
        EXPECT_EQ(dp_.xdp(frame, hv2_).action, uint32_t(XDP_PASS)) << desc << ", from an ok VM";
    }
    EXPECT_EQ(dp_.stats(kSteered).syn[SG_VERDICT_STEER] + dp_.stats(kSteered).syn[SG_VERDICT_PASS], 0u)
        << "a refused fragment is not judged";
    Bytes udp = Packet(v4).fragment(0, true).udp(5000, 53).payload(pad).slice(0, 1480).build();
    EXPECT_EQ(dp_.xdp(udp, hv_).action, uint32_t(XDP_PASS)) << "UDP fragments are not TCP";
}

struct NoFamily {
    uint8_t tier;
    uint8_t block_action;
    uint32_t action;
    int verdict;
};

TEST_F(Steer, FamilyWithoutProxyGetsTheFailMode)
{
    Flow f{.vm = "2001:db8:1::2", .server = "2001:db8:ff::7"};
    for (NoFamily n : {NoFamily{SG_TIER_THROTTLED, SG_ACT_DROP, XDP_PASS, SG_VERDICT_PASS},
                       NoFamily{SG_TIER_BLOCKED, SG_ACT_DROP, XDP_DROP, SG_VERDICT_BLOCK},
                       NoFamily{SG_TIER_BLOCKED, SG_ACT_RESET, XDP_TX, SG_VERDICT_BLOCK}}) {
        SCOPED_TRACE("nofamily_tier " + std::to_string(n.tier) + ", block action " + std::to_string(n.block_action));
        dp_.runtime(proxy_runtime(4, n.tier));
        dp_.vm(kSteered, policy(SG_TIER_STEERED, 1000000, 1000000, SG_ACT_DROP, n.block_action));
        sg_vm_stats before = dp_.stats(kSteered);
        f.vm_port++;
        XdpRun r = dp_.xdp(f.syn(), hv_);
        EXPECT_EQ(r.action, n.action);
        EXPECT_EQ(dp_.stats(kSteered).syn[n.verdict] - before.syn[n.verdict], 1u);
        EXPECT_EQ(bool(dp_.conn(f.key(hv_))), n.action == XDP_PASS) << "a passed SYN is tracked";
        if (n.action == XDP_PASS) {
            EXPECT_EQ(r.out, f.syn()) << "passed as it was";
            EXPECT_EQ(dp_.xdp(f.vm_data("DATA"), hv_).action, uint32_t(XDP_PASS)) << "its flow is not lost";
        }
        if (n.action == XDP_TX) {
            EXPECT_EQ(dp_.stats(kSteered).rst_sent - before.rst_sent, 1u);
        }
    }
    // without any proxy, a steered VM's untracked segments are not lost steered flows
    dp_.runtime(sg_runtime{});
    EXPECT_EQ(dp_.xdp(Flow{.vm_port = 1}.vm_data("DATA"), hv_).action, uint32_t(XDP_PASS));
}

// The proxy knows a client by ADDR:PORT: two live steered flows cannot share one.
TEST_F(Steer, ClientAddressInUseByAnotherSteeredFlowIsRefused)
{
    Flow a, b{.server = "198.51.100.99"};   // the same client ADDR:PORT, on two interfaces
    dp_.vm(kOk, policy(SG_TIER_STEERED, 1000000, 1000000));
    ASSERT_EQ(dp_.xdp(a.syn(), hv_).action, uint32_t(XDP_PASS));
    Global before = dp_.global();
    EXPECT_EQ(dp_.xdp(b.syn(), hv2_).action, uint32_t(XDP_DROP));
    EXPECT_EQ(delta(dp_.global(), before)[SG_RES_NAT_CONFLICT], 1u);
    EXPECT_FALSE(dp_.conn(b.key(hv2_)));
    EXPECT_TRUE(names(dp_.nat(a.nat_key()), a.key(hv_))) << "the live flow keeps its index";
    // once it ended, the address is free
    dp_.xdp(a.vm_rst(), hv_);
    EXPECT_EQ(dp_.xdp(b.syn(), hv2_).action, uint32_t(XDP_PASS));
    EXPECT_TRUE(names(dp_.nat(b.nat_key()), b.key(hv2_)));
    // an unsteered flow of the same client address does not conflict
    dp_.vm(kSteered, policy(SG_TIER_OK, 1000000, 1000000));
    EXPECT_EQ(dp_.xdp(Flow{.server = "198.51.100.100"}.syn(), hv_).action, uint32_t(XDP_PASS));
}

// The reverse NAT needs the steered flow: the proxy's segments to anything else, and
// the dialled server's own segments on a steered flow, go through untouched.
TEST_F(Steer, ReverseNatOnlyForTheSteeredFlow)
{
    Flow f, proxy{.server = kProxy4, .port = kProxyPort};
    dp_.xdp(f.syn(), hv_);
    Global before = dp_.global();
    Bytes to_other_port = Flow{.server = kProxy4, .vm_port = 40001, .port = kProxyPort}.synack();
    EXPECT_EQ(dp_.tc_run(to_other_port, hv_).out, to_other_port) << "no flow of that client";
    EXPECT_EQ(dp_.tc_run(proxy.synack(), hv2_).out, proxy.synack()) << "another interface";
    EXPECT_EQ(delta(dp_.global(), before)[SG_RES_REPLY_UNTRACKED], 2u);
    EXPECT_EQ(dp_.tc_run(f.synack(), hv_).out, f.synack()) << "the dialled server never saw a SYN";
    EXPECT_EQ(delta(dp_.global(), before)[SG_RES_REPLY_OUTSIDE], 1u);
    EXPECT_EQ(dp_.conn(f.key(hv_))->state, SG_CONN_SYN_SENT);
    EXPECT_EQ(dp_.stats(kSteered).replies[SG_REPLY_SYNACK], 0u);
    // the proxy's own RST in window ends the flow (and reaches the VM as the server's)
    TcRun r = dp_.tc_run(proxy.in().flags(kRst | kAck).ackno(f.isn + 1).build(), hv_);
    EXPECT_EQ(r.out, f.in().flags(kRst | kAck).ackno(f.isn + 1).build());
    EXPECT_FALSE(dp_.conn(f.key(hv_)));
    EXPECT_FALSE(dp_.nat(f.nat_key()));
    EXPECT_EQ(dp_.stats(kSteered).replies[SG_REPLY_RST], 0u) << "the proxy's RST is no evidence";
}

// The controller clears a family's flag while its proxy is down: new steered SYNs get the
// fail mode, flows steered before keep going both ways (the proxy on port 2525, and on 25).
TEST_F(Steer, SteeredFlowKeepsItsReverseNatWhileTheProxyIsDown)
{
    for (uint16_t proxy_port : {kProxyPort, uint16_t(25)}) {
        SCOPED_TRACE("proxy port " + std::to_string(proxy_port));
        sg_runtime rt = proxy_runtime();
        rt.proxy_v4_port = htobe16(proxy_port);
        dp_.runtime(rt);
        Flow f{.vm_port = uint16_t(41000 + proxy_port)}, proxy = f;
        proxy.server = kProxy4;
        proxy.port = proxy_port;
        ASSERT_EQ(dst_of(dp_.xdp(f.syn(), hv_).out), std::make_pair(addr(kProxy4), proxy_port));
        rt.flags &= ~uint32_t(SG_RT_PROXY_V4);   // down
        dp_.runtime(rt);
        EXPECT_EQ(dp_.tc_run(proxy.synack(), hv_).out, f.synack()) << "still the server the VM dialled";
        EXPECT_EQ(dst_of(dp_.xdp(f.vm_data("EHLO x"), hv_).out), std::make_pair(addr(kProxy4), proxy_port));
        Flow next = f;
        next.vm_port++;
        EXPECT_EQ(dp_.xdp(next.syn(), hv_).out, next.syn()) << "a new SYN gets the fail mode (throttled: passed)";
    }
}

}  // namespace
}  // namespace sgt
