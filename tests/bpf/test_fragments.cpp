// What cannot be classified (DESIGN.md "What counts"; rules in bpf/lib/parsing.h):
// one table row per rule and tier. A VM pinned to `blocked` (drop) or an `ok` VM with
// room in its bucket sends one frame; the row names the XDP action, the one global
// result, and the verdict the VM is charged with (none unless the frame is judged).
// Tiny first fragments, TCP at offset 1, IPv6 chains past the walk bound, first
// fragments whose later headers are cut and VLAN stacks past two tags are refused for
// every VM; a first fragment holding the whole TCP header is judged like any SYN;
// every other fragment passes untouched. The reference classifier agrees on each row.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include "reference.h"
#include "table_test.h"

namespace sgt {
namespace {

constexpr uint32_t kSlot = 2;
constexpr int kNone = -1;   // not judged: no verdict charged

struct Row {
    std::string desc;
    Bytes frame;
    uint8_t tier;      // SG_TIER_OK (bucket never runs dry) or SG_TIER_BLOCKED (drop)
    uint32_t action;
    sg_result result;
    int verdict;       // enum sg_verdict charged to the VM, or kNone
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.desc; }

Packet v4() { return Packet().eth().ipv4("10.1.0.2", "198.51.100.7"); }
Packet v6() { return Packet().eth().ipv6("2001:db8:1::2", "2001:db8:ff::7"); }
Bytes pad(size_t n) { return Bytes(n, 0x41); }

Row refused(std::string d, Bytes f, uint8_t tier = SG_TIER_BLOCKED)
{
    return {std::move(d), std::move(f), tier, XDP_DROP, SG_RES_REFUSED, kNone};
}
Row passed(std::string d, Bytes f, sg_result r, uint8_t tier = SG_TIER_BLOCKED)
{
    return {std::move(d), std::move(f), tier, XDP_PASS, r, kNone};
}
Row blocked(std::string d, Bytes f) { return {std::move(d), std::move(f), SG_TIER_BLOCKED, XDP_DROP, SG_RES_SMTP_SYN, SG_VERDICT_BLOCK}; }
Row judged_ok(std::string d, Bytes f) { return {std::move(d), std::move(f), SG_TIER_OK, XDP_PASS, SG_RES_SMTP_SYN, SG_VERDICT_PASS}; }

// Set a byte of a built frame (malformed headers the builder does not make).
Bytes with(Bytes f, size_t off, uint8_t v)
{
    f.at(off) = v;
    return f;
}

std::vector<Row> rows()
{
    std::vector<Row> r;
    constexpr size_t kTcp4 = 14 + 20, kFrag6 = 14 + 40 + 8;   // where TCP starts

    // an IPv4 first fragment of TCP must hold the whole TCP header
    Bytes tiny16 = v4().fragment(0, true).tcp(40000, 25).syn().slice(0, 16).build();
    r.push_back(refused("IPv4 SYN in 16-byte fragments (hping3 -f): first fragment refused", tiny16));
    r.push_back(refused("IPv4 16-byte first fragment refused for an ok VM too", tiny16, SG_TIER_OK));
    r.push_back(refused("IPv4 first fragment of 8 TCP bytes", v4().fragment(0, true).tcp(40000, 25).syn().slice(0, 8).build()));
    r.push_back(refused("IPv4 first fragment of 0 TCP bytes", v4().fragment(0, true).tcp(40000, 25).syn().slice(0, 0).build()));
    r.push_back(refused("IPv4 first fragment with the fixed header, options cut",
                        v4().fragment(0, true).tcp(40000, 25).tcp_options(20).syn().slice(0, 24).build()));
    r.push_back(refused("IPv4 first fragment with TCP doff 4",
                        with(v4().fragment(0, true).tcp(40000, 25).syn().payload(pad(8)).build(), kTcp4 + 12, 0x40)));
    r.push_back(refused("IPv4 tiny first fragment of non-SMTP TCP refused too",
                        v4().fragment(0, true).tcp(40000, 443).ack().slice(0, 16).build(), SG_TIER_OK));
    r.push_back(refused("IPv4 tiny first fragment with IP options",
                        v4().ip_options(20).fragment(0, true).tcp(40000, 25).syn().slice(0, 16).build()));
    r.push_back(passed("IPv4 first fragment truncated below its total length (no receiver takes it)",
                       [] { Bytes f = v4().fragment(0, true).tcp(40000, 25).syn().payload(pad(16)).build();
                            f.resize(f.size() - 4); return f; }(), SG_RES_UNPARSED));

    // a first fragment holding the whole TCP header is classified and judged
    Bytes whole4 = v4().fragment(0, true).tcp(40000, 25).syn().payload(pad(16)).slice(0, 24).build();
    r.push_back(blocked("IPv4 SYN first fragment with the whole header: blocked VM", whole4));
    r.push_back(judged_ok("IPv4 SYN first fragment with the whole header: ok VM", whole4));
    r.push_back(blocked("IPv4 SYN first fragment with the whole header and options",
                        v4().fragment(0, true).tcp(40000, 587).tcp_options(20).syn().payload(pad(16)).slice(0, 40).build()));
    r.push_back(blocked("IPv4 SYN first fragment of exactly the header",
                        v4().fragment(0, true).tcp(40000, 465).syn().payload(pad(8)).slice(0, 20).build()));
    r.push_back(passed("IPv4 ACK first fragment with the whole header (an established flow)",
                       v4().fragment(0, true).tcp(40000, 25).ack().payload(pad(1500)).slice(0, 1480).build(), SG_RES_NON_SMTP));

    // IPv4 TCP at offset 1 can rewrite a first fragment's data offset and flags
    Bytes off1 = v4().fragment(1, false).tcp(40000, 25).syn().slice(8).build();
    r.push_back(refused("IPv4 TCP fragment at offset 1", off1));
    r.push_back(refused("IPv4 TCP fragment at offset 1 refused for an ok VM too", off1, SG_TIER_OK));
    r.push_back(refused("IPv4 TCP offset 1 overlapping a whole first fragment (RFC 1858)",
                        v4().fragment(1, true).tcp(40000, 25).syn().payload(pad(8)).slice(8, 24).build()));
    r.push_back(passed("IPv4 UDP fragment at offset 1", v4().fragment(1, false).udp(5000, 25).payload(pad(16)).slice(8).build(), SG_RES_FRAGMENT));

    // ordinary non-first fragments pass: from offset 2 they cannot reach ports or flags
    r.push_back(passed("IPv4 TCP fragment at offset 2", v4().fragment(2, false).tcp(40000, 25).syn().slice(16).build(), SG_RES_FRAGMENT));
    r.push_back(passed("IPv4 TCP fragment at offset 185 (an established flow)",
                       v4().fragment(185, true).tcp(40000, 25).ack().payload(pad(3000)).slice(1480, 1480).build(), SG_RES_FRAGMENT));
    r.push_back(passed("IPv4 TCP last fragment at the largest offset", v4().fragment(8191, false).l4(6).payload(pad(8)).build(), SG_RES_FRAGMENT));

    // fragmented UDP passes, both families
    r.push_back(passed("IPv4 UDP first fragment", v4().fragment(0, true).udp(5000, 53).payload(pad(3000)).slice(0, 1480).build(), SG_RES_NON_TCP));
    r.push_back(passed("IPv4 UDP tiny first fragment (not TCP)", v4().fragment(0, true).udp(5000, 25).payload(pad(100)).slice(0, 4).build(), SG_RES_NON_TCP));
    r.push_back(passed("IPv4 UDP middle fragment", v4().fragment(185, true).udp(5000, 53).payload(pad(4000)).slice(1480, 1480).build(), SG_RES_FRAGMENT));
    r.push_back(passed("IPv6 UDP first fragment", v6().fragment(0, true).udp(5000, 53).payload(pad(3000)).slice(0, 1448).build(), SG_RES_NON_TCP));
    r.push_back(passed("IPv6 UDP last fragment", v6().fragment(181, false).udp(5000, 53).payload(pad(3000)).slice(1448).build(), SG_RES_FRAGMENT));

    // an IPv6 chain longer than the walk bound may hide TCP behind it
    Packet over = v6(), at = v6(), over_udp = v6();
    for (int i = 0; i <= SG_MAX_V6_EXT_HDRS; i++) {
        over.ext(60);
        over_udp.ext(60);
        if (i < SG_MAX_V6_EXT_HDRS)
            at.ext(i % 2 ? 0 : 60);
    }
    Bytes chain7 = over.tcp(40000, 25).syn().build();
    r.push_back(refused("IPv6 SYN behind 7 extension headers", chain7));
    r.push_back(refused("IPv6 SYN behind 7 extension headers refused for an ok VM too", chain7, SG_TIER_OK));
    r.push_back(refused("IPv6 UDP behind 7 extension headers refused too", over_udp.udp(5000, 53).build(), SG_TIER_OK));
    r.push_back(blocked("IPv6 SYN behind 6 extension headers (the bound) is judged", at.tcp(40000, 25).syn().build()));
    r.push_back(passed("IPv6 non-first fragment header early in a long chain",
                       v6().ext(60).fragment(100, true).ext(60).ext(60).ext(60).ext(60).ext(60).ext(60).tcp(40000, 25).syn().build(),
                       SG_RES_FRAGMENT));

    // an IPv6 first fragment must hold the rest of the chain and the whole TCP header
    Bytes tiny6 = v6().fragment(0, true).tcp(40000, 25).syn().slice(0, 8).build();
    r.push_back(refused("IPv6 first fragment with 8 TCP bytes", tiny6));
    r.push_back(refused("IPv6 first fragment with 8 TCP bytes refused for an ok VM too", tiny6, SG_TIER_OK));
    r.push_back(refused("IPv6 first fragment with the fixed header, options cut",
                        v6().fragment(0, true).tcp(40000, 25).tcp_options(12).syn().slice(0, 24).build()));
    r.push_back(refused("IPv6 first fragment with the chain cut after the fragment header",
                        with(v6().fragment(0, true).ext(60, 16).tcp(40000, 25).syn().build(), kFrag6 + 1, 5)));
    r.push_back(passed("IPv6 chain cut without a fragment header (no receiver takes it)",
                       with(v6().ext(60, 16).tcp(40000, 25).syn().build(), 14 + 40 + 1, 5), SG_RES_UNPARSED));
    Bytes whole6 = v6().fragment(0, true).tcp(40000, 25).syn().payload(pad(16)).slice(0, 24).build();
    r.push_back(blocked("IPv6 SYN first fragment with the whole header: blocked VM", whole6));
    r.push_back(judged_ok("IPv6 SYN first fragment with the whole header: ok VM", whole6));
    r.push_back(blocked("IPv6 SYN atomic fragment", v6().fragment(0, false).tcp(40000, 25).syn().build()));
    r.push_back(passed("IPv6 ACK first fragment (an established flow)",
                       v6().fragment(0, true).tcp(40000, 25).ack().payload(pad(3000)).slice(0, 1448).build(), SG_RES_NON_SMTP));

    // IPv6 non-first fragments pass: the first fragment holds the TCP header, and
    // receivers discard overlapping fragments (RFC 5722)
    r.push_back(passed("IPv6 TCP non-first fragment at offset 1", v6().fragment(1, false).tcp(40000, 25).syn().slice(8).build(), SG_RES_FRAGMENT));
    r.push_back(passed("IPv6 TCP non-first fragment at offset 181 (an established flow)",
                       v6().fragment(181, true).tcp(40000, 25).ack().payload(pad(3000)).slice(1448, 1448).build(), SG_RES_FRAGMENT));

    // VLAN stacks: two tags walked, a third refused
    r.push_back(refused("three VLAN tags", v4().vlan(1).vlan(2).vlan(3).tcp(40000, 25).syn().build()));
    r.push_back(refused("three VLAN tags refused for an ok VM too, whatever they carry",
                        Packet().eth().vlan(1).vlan(2).vlan(3).ethertype(0x0806).payload(pad(28)).build(), SG_TIER_OK));
    r.push_back(blocked("QinQ SYN first fragment with the whole header",
                        v4().vlan(10, 0x88a8).vlan(20).fragment(0, true).tcp(40000, 25).syn().payload(pad(8)).slice(0, 24).build()));
    r.push_back(refused("QinQ IPv6 tiny first fragment",
                        v6().vlan(10, 0x88a8).vlan(20).fragment(0, true).tcp(40000, 25).syn().slice(0, 16).build()));
    return r;
}

class Fragments : public TableTest<Row> {
protected:
    void SetUp() override
    {
        ifindex_ = test_iface("sgf0");
        dp().iface(ifindex_, SG_IFACE_HAS_VM, kSlot);
    }
    int ifindex_ = 0;
};

TEST_P(Fragments, Frame)
{
    const Row& r = GetParam();
    dp().vm(kSlot, r.tier == SG_TIER_BLOCKED ? policy(SG_TIER_BLOCKED, 0, 0)
                                             : policy(SG_TIER_OK, 1000000, 1000000));
    Global before = dp().global();
    sg_vm_stats vm_before = dp().stats(kSlot);
    XdpRun run = dp().xdp(r.frame, ifindex_);
    EXPECT_EQ(run.action, r.action);
    EXPECT_EQ(run.out, r.frame) << "the frame is never modified";
    Global want{};
    want[r.result] = 1;
    // a passed SYN also gets a connection entry: test_conn.cpp checks those results
    Global got = classes_only(delta(dp().global(), before));
    EXPECT_EQ(got, want) << "got " << describe(got) << ", want " << describe(want);
    sg_vm_stats vm_after = dp().stats(kSlot);
    for (int v = 0; v < SG_VERDICT_MAX; v++)
        EXPECT_EQ(vm_after.syn[v] - vm_before.syn[v], v == r.verdict ? 1u : 0u) << "verdict " << v;
    EXPECT_EQ(sgref::classify(r.frame, {25, 465, 587}).result, r.result) << "the reference classifier";
}

INSTANTIATE_TEST_SUITE_P(Rows, Fragments, ::testing::ValuesIn(rows()), RowName());

}  // namespace
}  // namespace sgt
