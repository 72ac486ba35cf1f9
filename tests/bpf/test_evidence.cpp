// Evidence only from what answers the VM (DESIGN.md "Connections the datapath tracks"):
// the window rules (window.h, tabled in test_window.cpp) run through the TC program on
// a connection the VM opened through XDP. Each row opens its own connection in its own
// VM slot, brings it to a state, then sends one segment towards the VM and checks what
// changed: the VM's reply counters (sg_vm_stats), sg_global, the ring buffer, the entry,
// and that no auto entry appeared. Forged segments (wrong interface, address or port,
// outside the window) change nothing but their sg_global result.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <array>
#include <map>

#include "flow.h"
#include "table_test.h"

namespace sgt {
namespace {

enum Iface { kHv, kOther };
enum Entry { kGone, kSynSent, kEstablished };

struct Step {
    bool to_vm;      // TC (towards the VM) or XDP (from it)
    Bytes frame;
    Iface iface = kHv;
};

struct Row {
    std::string desc;
    std::vector<Step> setup;
    Step seg;
    std::map<int, uint64_t> replies;          // sg_reply_kind -> delta
    std::map<sg_result, uint64_t> results;    // sg_global delta of the tested segment
    Entry entry;
    size_t events = 0;
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.desc; }

Step vm(Bytes f) { return {false, std::move(f)}; }
Step remote(Bytes f, Iface i = kHv) { return {true, std::move(f), i}; }

const std::string kGreeting = "220 mx.example.net ESMTP\r\n";
const std::string kReject = "554 5.7.1 blocked using zen.spamhaus.org\r\n";

std::vector<Row> rows()
{
    Flow f;
    Flow other_server = f, other_port = f, from_587 = f;
    other_server.server = "198.51.100.8";
    other_port.vm_port = 40001;
    from_587.port = 587;
    const uint32_t g = uint32_t(kGreeting.size());
    // SYN_SENT, then ESTABLISHED, then after the greeting and the VM's EHLO (6 bytes)
    std::vector<Step> sent{vm(f.syn())};
    std::vector<Step> est{vm(f.syn()), remote(f.synack())};
    std::vector<Step> talk{vm(f.syn()), remote(f.synack()), remote(f.reply(kGreeting)), vm(f.vm_data("EHLO x", 0, g))};
    const uint32_t ack_all = f.isn + 1 + 6;
    Bytes rst_acking_syn = f.in().flags(kRst | kAck).seq(0).ackno(f.isn + 1).build();
    return {
        {"SYN-ACK acknowledging the SYN counts once", sent, remote(f.synack()), {{SG_REPLY_SYNACK, 1}}, {}, kEstablished},
        {"SYN-ACK with a wrong ack changes nothing", sent,
         remote(f.in().flags(kSyn | kAck).seq(f.server_isn).ackno(f.isn + 7).build()), {}, {{SG_RES_REPLY_OUTSIDE, 1}}, kSynSent},
        {"retransmitted SYN-ACK is not counted again", est, remote(f.synack()), {}, {}, kEstablished},
        {"RST+ACK answering the SYN counts and ends it", sent, remote(rst_acking_syn), {{SG_REPLY_RST, 1}}, {}, kGone},
        {"RST without ACK in SYN_SENT changes nothing", sent,
         remote(f.in().flags(kRst).seq(0).ackno(f.isn + 1).build()), {}, {{SG_RES_REPLY_OUTSIDE, 1}}, kSynSent},
        {"RST+ACK with a wrong ack in SYN_SENT changes nothing", sent,
         remote(f.in().flags(kRst | kAck).seq(0).ackno(f.isn + 2).build()), {}, {{SG_RES_REPLY_OUTSIDE, 1}}, kSynSent},
        {"RST in window ends an established connection", talk,
         remote(f.in().flags(kRst).seq(f.server_isn + 1 + g + 100).build()), {{SG_REPLY_RST, 1}}, {}, kGone},
        {"RST outside the window changes nothing", talk,
         remote(f.in().flags(kRst).seq(f.server_isn + 1 + g + SG_CONN_WINDOW).build()), {},
         {{SG_RES_REPLY_OUTSIDE, 1}}, kEstablished},
        {"RST behind remote_nxt changes nothing", talk, remote(f.in().flags(kRst).seq(f.server_isn + g).build()), {},
         {{SG_RES_REPLY_OUTSIDE, 1}}, kEstablished},
        {"greeting counts 2xx", est, remote(f.reply(kGreeting)), {{SG_REPLY_2XX, 1}}, {}, kEstablished},
        {"rejection counts 5xx and is sampled", talk, remote(f.reply(kReject, g, 6)), {{SG_REPLY_5XX, 1}}, {},
         kEstablished, 1},
        {"retransmitted greeting is not counted again", talk, remote(f.reply(kGreeting)), {}, {}, kEstablished},
        {"reply acknowledging bytes the VM never sent", talk, remote(f.reply(kReject, g, 7)), {},
         {{SG_RES_REPLY_OUTSIDE, 1}}, kEstablished},
        {"reply acknowledging the VM's ISN", talk,
         remote(f.in().flags(kAck | kPsh).seq(f.server_isn + 1 + g).ackno(f.isn).payload(kReject).build()), {},
         {{SG_RES_REPLY_OUTSIDE, 1}}, kEstablished},
        {"reply without ACK", talk,
         remote(f.in().flags(kPsh).seq(f.server_isn + 1 + g).payload(kReject).build()), {}, {{SG_RES_REPLY_OUTSIDE, 1}},
         kEstablished},
        {"reply far outside the window", talk, remote(f.reply(kReject, g + 3 * SG_CONN_WINDOW, 6)), {},
         {{SG_RES_REPLY_OUTSIDE, 1}}, kEstablished},
        {"reply before the SYN-ACK", sent, remote(f.reply(kReject)), {}, {{SG_RES_REPLY_OUTSIDE, 1}}, kSynSent},
        {"reply ahead of remote_nxt inside the window counts", talk, remote(f.reply(kReject, g + 1000, 6)),
         {{SG_REPLY_5XX, 1}}, {}, kEstablished, 1},
        {"FIN from the server is accepted, nothing counted", talk,
         remote(f.in().flags(kAck | kFin).seq(f.server_isn + 1 + g).ackno(ack_all).build()), {}, {}, kEstablished},
        {"forged: rejection from another interface", talk, remote(f.reply(kReject, g, 6), kOther), {},
         {{SG_RES_REPLY_UNTRACKED, 1}}, kEstablished},
        {"forged: rejection from another server address", talk, remote(other_server.reply(kReject, g, 6)), {},
         {{SG_RES_REPLY_UNTRACKED, 1}}, kEstablished},
        {"forged: rejection to another VM port", talk, remote(other_port.reply(kReject, g, 6)), {},
         {{SG_RES_REPLY_UNTRACKED, 1}}, kEstablished},
        {"forged: rejection from another SMTP port", talk, remote(from_587.reply(kReject, g, 6)), {},
         {{SG_RES_REPLY_UNTRACKED, 1}}, kEstablished},
        {"forged: SYN-ACK to a VM that dialled nobody", {}, remote(f.synack()), {}, {{SG_RES_REPLY_UNTRACKED, 1}}, kGone},
        {"forged: bare RST from port 25 to a VM that dialled nobody", {}, remote(f.in().flags(kRst).seq(1).build()), {},
         {{SG_RES_REPLY_UNTRACKED, 1}}, kGone},
        {"forged: rejection to a VM that dialled nobody", {}, remote(f.reply(kReject)), {},
         {{SG_RES_REPLY_UNTRACKED, 1}}, kGone},
        {"segment from a non-SMTP port is not looked at", talk,
         remote(Flow{.port = 443}.reply(kReject)), {}, {}, kEstablished},
    };
}

class Evidence : public TableTest<Row> {
protected:
    void SetUp() override
    {
        hv_ = test_iface("sge-hv");
        other_ = test_iface("sge-x");
        // each row its own VM: counters, samples and connections never meet
        slot_ = next_slot_++;
        dp().vm(slot_, policy(SG_TIER_OK, 1000000, 1000000));
        dp().iface(hv_, SG_IFACE_HAS_VM, slot_);
        dp().drain_events();
    }
    void send(const Step& s) const
    {
        int ifx = s.iface == kHv ? hv_ : other_;
        if (s.to_vm)
            ASSERT_EQ(dp().tc(s.frame, ifx), TC_ACT_OK) << "the return path never interferes";
        else
            ASSERT_EQ(dp().xdp(s.frame, ifx).action, uint32_t(XDP_PASS));
    }
    int hv_ = 0, other_ = 0;
    uint32_t slot_ = 0;
    static inline uint32_t next_slot_ = 100;
};

TEST_P(Evidence, Segment)
{
    const Row& r = GetParam();
    for (const Step& s : r.setup)
        send(s);
    dp().drain_events();
    sg_vm_stats before = dp().stats(slot_);
    Global gbefore = dp().global();
    size_t autos = dp().auto_count();
    send(r.seg);
    sg_vm_stats after = dp().stats(slot_);
    for (int k = 0; k < SG_REPLY_MAX; k++) {
        uint64_t want = r.replies.count(k) ? r.replies.at(k) : 0;
        EXPECT_EQ(after.replies[k] - before.replies[k], want) << "reply kind " << k;
    }
    Global want{}, got = delta(dp().global(), gbefore);
    for (auto& [res, n] : r.results)
        want[res] = n;
    want[SG_RES_NON_SMTP] = got[SG_RES_NON_SMTP];   // the XDP classes are not the return path's
    EXPECT_EQ(got, want) << "got " << describe(got) << ", want " << describe(want);
    EXPECT_EQ(dp().drain_events().size(), r.events) << "sampled reply lines";
    EXPECT_EQ(dp().auto_count(), autos) << "the return path never creates auto entries";
    auto c = dp().conn(Flow{}.key(hv_));
    if (r.entry == kGone) {
        EXPECT_FALSE(c) << "the connection ended (or never was)";
    } else {
        ASSERT_TRUE(c);
        EXPECT_EQ(c->state, r.entry == kEstablished ? SG_CONN_ESTABLISHED : SG_CONN_SYN_SENT);
        EXPECT_EQ(c->slot, slot_) << "owned by the VM that opened it";
    }
    // the row's connection is gone before the next row's VM takes the interface
    if (c) {
        Flow f;
        dp().xdp(f.vm_rst(6), hv_);
    }
}

INSTANTIATE_TEST_SUITE_P(Rows, Evidence, ::testing::ValuesIn(rows()), RowName());

}  // namespace
}  // namespace sgt
