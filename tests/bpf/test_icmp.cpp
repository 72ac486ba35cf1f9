// ICMP errors about steered flows, on their way to the VM (bpf/lib/icmp.h): the quoted
// segment is the VM's as rewritten to the proxy; after TC it is the VM's as it sent it
// (destination, port, quoted IPv4 header checksum, quoted TCP checksum when quoted),
// an outer source that is the proxy becomes the dialled server, and the ICMP checksum
// (ICMPv6: with its pseudo-header) holds. The proxy's address never reaches the VM.
// Each row's expected frame is built from scratch and compared byte for byte.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include "flow.h"
#include "steer_setup.h"
#include "table_test.h"

namespace sgt {
namespace {

constexpr uint32_t kSteered = 1;

struct Row {
    std::string desc;
    Flow flow;
    std::string sender;     // who sends the error ("proxy": the proxy itself)
    uint8_t type, code;
    uint32_t rest;
    size_t quoted;          // bytes of the offending datagram quoted
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.desc; }

const Flow k4{.vm_port = 41000}, k6{.vm = "2001:db8:1::2", .server = "2001:db8:ff::7", .vm_port = 41000};

std::vector<Row> rows()
{
    return {
        {"IPv4 fragmentation needed from a router, whole segment quoted", k4, "203.0.113.1", 3, 4, 1400, 1000},
        {"IPv4 port unreachable from the proxy itself", k4, "proxy", 3, 3, 0, 1000},
        {"IPv4 time exceeded quoting 8 bytes of TCP (RFC 792)", k4, "203.0.113.1", 11, 0, 0, 28},
        {"IPv4 quote holding the TCP checksum but not the whole segment", k4, "203.0.113.1", 3, 1, 0, 40},
        {"IPv6 packet too big from the proxy itself", k6, "proxy", 2, 0, 1280, 1000},
        {"IPv6 unreachable from a router", k6, "2001:db8:eeee::1", 1, 3, 0, 1000},
        {"IPv6 time exceeded quoting 8 bytes of TCP", k6, "2001:db8:eeee::1", 3, 0, 0, 48},
    };
}

// The ICMP error from `from` to the VM quoting d (cut to `quoted` bytes).
Bytes icmp_error(const Row& r, const std::string& from, const Bytes& d)
{
    Bytes quote(d.begin(), d.begin() + long(std::min(r.quoted, d.size())));
    Packet p;
    p.eth(kGwMac, kVmMac);
    if (r.flow.v6())
        p.ipv6(from, r.flow.vm);
    else
        p.ipv4(from, r.flow.vm);
    return p.icmp(r.type, r.code, r.rest).payload(quote).build();
}

class Icmp : public TableTest<Row> {
protected:
    void SetUp() override
    {
        hv_ = test_iface("sgi-hv");
        dp().iface(hv_, SG_IFACE_HAS_VM, kSteered);
        dp().vm(kSteered, policy(SG_TIER_STEERED, 1000000, 1000000));
        dp().runtime(proxy_runtime());
    }
    int hv_ = 0;
};

TEST_P(Icmp, ErrorAboutASteeredFlowIsTranslated)
{
    const Row& r = GetParam();
    Flow f = r.flow;
    const std::string proxy = f.v6() ? kProxy6 : kProxy4;
    Flow steered = f;
    steered.server = proxy;
    steered.port = kProxyPort;
    const std::string data(600, 'm');
    ASSERT_EQ(dp().xdp(f.syn(), hv_).action, uint32_t(XDP_PASS));
    // what the VM sent, and what left towards the proxy
    Bytes sent = f.out().flags(kAck | kPsh).seq(f.isn + 1).ackno(1).payload(data).datagram();
    Bytes rewritten = steered.out().flags(kAck | kPsh).seq(f.isn + 1).ackno(1).payload(data).datagram();
    XdpRun out = dp().xdp(f.out().flags(kAck | kPsh).seq(f.isn + 1).ackno(1).payload(data).build(), hv_);
    ASSERT_EQ(Bytes(out.out.begin() + 14, out.out.end()), rewritten) << "the steered segment as the proxy got it";

    const std::string from = r.sender == "proxy" ? proxy : r.sender;
    const std::string shown = r.sender == "proxy" ? f.server : r.sender;
    TcRun t = dp().tc_run(icmp_error(r, from, rewritten), hv_);
    EXPECT_EQ(t.action, TC_ACT_OK);
    EXPECT_EQ(t.out, icmp_error(r, shown, sent)) << "the error about what the VM sent, from whom it may know";
    EXPECT_EQ(checksum_errors(t.out), "");
    Bytes p = addr(proxy);
    EXPECT_EQ(std::search(t.out.begin(), t.out.end(), p.begin(), p.end()), t.out.end())
        << "the proxy's address appears nowhere";
}

INSTANTIATE_TEST_SUITE_P(Rows, Icmp, ::testing::ValuesIn(rows()), RowName());

TEST(IcmpOther, ErrorsAboutOtherFlowsAreUntouched)
{
    int hv = test_iface("sgi-hv");
    TestDatapath dp;
    dp.iface(hv, SG_IFACE_HAS_VM, kSteered);
    dp.vm(kSteered, policy(SG_TIER_OK, 1000000, 1000000));
    dp.runtime(proxy_runtime());
    Flow f = k4;
    dp.xdp(f.syn(), hv);   // tracked, not steered
    Row r{"", f, "", 3, 4, 1400, 1000};
    Bytes seg = f.out().flags(kAck).seq(f.isn + 1).payload("x").datagram();
    std::vector<Bytes> frames = {
        icmp_error(r, "203.0.113.1", seg),                  // about an unsteered flow
        icmp_error(Row{"", f, "", 0, 0, 0, 1000}, "203.0.113.1", seg),   // an echo reply, not an error
        Packet().eth(kGwMac, kVmMac).ipv4("203.0.113.1", f.vm).icmp(3, 1).payload(Bytes(4, 0)).build(),   // short quote
    };
    Flow steered_elsewhere = f;
    steered_elsewhere.server = kProxy4;
    steered_elsewhere.port = kProxyPort;
    steered_elsewhere.vm_port = 1;   // quotes a flow to the proxy nobody steered
    frames.push_back(icmp_error(r, kProxy4, steered_elsewhere.out().flags(kAck).payload("x").datagram()));
    for (const Bytes& frame : frames)
        EXPECT_EQ(dp.tc_run(frame, hv).out, frame);
}

}  // namespace
}  // namespace sgt
