// The TC return-path program: remote SMTP replies (SYN-ACK, RST, 2xx/4xx/5xx) counted
// for the owner of the connection they answer, 4xx/5xx lines sampled into ring-buffer
// events; never interferes. Replies need a connection the VM opened (test_evidence.cpp
// tables the window rules); here: the kinds, sampling, and who gets the evidence.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "flow.h"
#include "test_datapath.h"

#ifndef SG_REJECTIONS_TSV
#error "SG_REJECTIONS_TSV must name the rejection corpus"
#endif

namespace sgt {
namespace {

constexpr uint32_t kSlot = 1;

class Reply : public ::testing::Test {
protected:
    void SetUp() override
    {
        hv_ = test_iface("sgt-hv");
        gw_ = test_iface("sgt-gw");
        other_ = test_iface("sgt-x");
        dp_.iface(hv_, SG_IFACE_HAS_VM, kSlot);
        dp_.vm(kSlot, policy(SG_TIER_OK, 100, 100));
        dp_.defaults(SG_DEFAULTS_SOURCE, policy(SG_TIER_OK, 100, 100));
        dp_.defaults(SG_DEFAULTS_AGGREGATE, policy(SG_TIER_OK, 100, 100));
    }
    void tc(const Bytes& f, int ifx) const { EXPECT_EQ(dp_.tc(f, ifx), TC_ACT_OK) << "never interferes"; }
    // The VM dials f through ifx and the server accepts: replies on it are evidence.
    void open(const Flow& f, int ifx) const
    {
        ASSERT_EQ(dp_.xdp(f.syn(), ifx).action, uint32_t(XDP_PASS));
        tc(f.synack(), ifx);
    }
    // A session's replies, one after the other in the server's stream.
    void replies(const Flow& f, int ifx, const std::vector<std::string>& lines) const
    {
        uint32_t off = 0;
        for (const std::string& l : lines) {
            tc(f.reply(l, off), ifx);
            off += uint32_t(l.size());
        }
    }
    int hv_ = 0, gw_ = 0, other_ = 0;
    TestDatapath dp_;
};

TEST_F(Reply, CountsEachKindPerVm)
{
    Flow a, b{.vm = "2001:db8:1::2", .server = "2001:db8:ff::7", .port = 587}, c{.vm_port = 40002};
    open(a, hv_);
    open(b, hv_);
    dp_.xdp(c.syn(), hv_);
    tc(c.in().flags(kRst | kAck).seq(0).ackno(c.isn + 1).build(), hv_);
    replies(a, hv_, {"220 mx.example.net ESMTP ready\r\n", "250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                     "451 4.7.1 Greylisted, try again later\r\n",
                     "550 5.7.1 Service unavailable; client [10.1.0.2] blocked using zen.spamhaus.org\r\n",
                     "354 go ahead\r\n",            // neither 2xx, 4xx nor 5xx
                     "2x0 not a reply code\r\n", "55"});   // "55": too short for a code
    tc(Flow{.port = 80}.reply("550 not smtp\r\n"), hv_);
    tc(Packet().eth().ethertype(0x0806).build(), hv_);
    sg_vm_stats s = dp_.stats(kSlot);
    EXPECT_EQ(s.replies[SG_REPLY_SYNACK], 2u);
    EXPECT_EQ(s.replies[SG_REPLY_RST], 1u);
    EXPECT_EQ(s.replies[SG_REPLY_2XX], 2u);
    EXPECT_EQ(s.replies[SG_REPLY_4XX], 1u);
    EXPECT_EQ(s.replies[SG_REPLY_5XX], 1u);
}

TEST_F(Reply, RejectionLineSampledAtMostOncePer100ms)
{
    const std::string line = "550 5.7.1 Service unavailable; client [10.1.0.2] blocked using zen.spamhaus.org";
    Flow f;
    open(f, hv_);
    replies(f, hv_, {line + "\r\n220 trailing\r\n", "554 second reply in the same 100 ms\r\n"});
    auto events = dp_.drain_events();
    ASSERT_EQ(events.size(), 1u);
    const sg_event& ev = events[0];
    EXPECT_EQ(ev.type, uint32_t(SG_EV_REPLY));
    EXPECT_EQ(ev.slot, kSlot);
    EXPECT_EQ(ev.reply_code, 550);
    EXPECT_EQ(std::string(ev.text, ev.text_len), line) << "the line stops at CR";
    for (size_t i = ev.text_len; i < SG_REPLY_TEXT_MAX; i++)
        EXPECT_EQ(ev.text[i], 0) << "byte " << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(110));
    uint32_t off = uint32_t(line.size() + 16 + 38);
    tc(f.reply("421 4.7.0 Too many connections\n", off), hv_);
    events = dp_.drain_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].reply_code, 421);
    EXPECT_EQ(std::string(events[0].text, events[0].text_len), "421 4.7.0 Too many connections");
    EXPECT_EQ(dp_.stats(kSlot).replies[SG_REPLY_5XX], 2u);
    EXPECT_EQ(dp_.stats(kSlot).replies[SG_REPLY_4XX], 1u);
}

TEST_F(Reply, LongLineIsCutAtTheSampleSize)
{
    std::string line = "554 " + std::string(200, 'z');
    Flow f;
    open(f, hv_);
    tc(f.reply(line + "\r\n"), hv_);
    auto events = dp_.drain_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].text_len, SG_REPLY_TEXT_MAX);
    EXPECT_EQ(std::string(events[0].text, SG_REPLY_TEXT_MAX), line.substr(0, SG_REPLY_TEXT_MAX));
}

TEST_F(Reply, GatewayEvidenceGoesToTheOwnerAndNeverCreatesAutoEntries)
{
    dp_.iface(gw_, SG_IFACE_GATEWAY);
    dp_.vm(2, policy(SG_TIER_OK, 100, 100));
    dp_.route("10.2.0.0", 16, 2);
    open(Flow{.vm = "10.2.3.4"}, gw_);
    EXPECT_EQ(dp_.stats(2).replies[SG_REPLY_SYNACK], 1u);
    Flow unknown{.vm = "192.0.2.9"};
    tc(unknown.synack(), gw_);
    tc(unknown.reply("550 no\r\n"), gw_);
    EXPECT_EQ(dp_.auto_count(), 0u) << "replies never create auto entries";
    // once the source dialled through the gateway, its auto entry owns the connection
    open(unknown, gw_);
    tc(unknown.reply("550 5.7.1 blocked\r\n"), gw_);
    // forged: a bare RST and a rejection from another port, a RST far out of window
    tc(unknown.in().flags(kRst).seq(1).build(), gw_);
    tc(Flow{.vm = "192.0.2.9", .port = 587}.reply("554 5.7.1 forged\r\n"), gw_);
    tc(unknown.in().flags(kRst).seq(unknown.server_isn + 1 + 3 * SG_CONN_WINDOW).build(), gw_);
    auto e = dp_.auto_vm(auto_key(gw_, 4, "192.0.2.9"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->stats.replies[SG_REPLY_SYNACK], 1u);
    EXPECT_EQ(e->stats.replies[SG_REPLY_5XX], 1u);
    EXPECT_EQ(e->stats.replies[SG_REPLY_RST], 0u) << "forged RSTs change nothing";
    auto agg = dp_.auto_vm(auto_key(gw_));
    ASSERT_TRUE(agg);
    EXPECT_EQ(agg->stats.replies[SG_REPLY_5XX], 0u) << "the aggregate owns no connection";
    auto events = dp_.drain_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].slot, SG_SLOT_NONE);
    EXPECT_EQ(events[0].key.ifindex, uint32_t(gw_));
    EXPECT_EQ(events[0].key.family, 4);
    EXPECT_EQ(Bytes(events[0].key.addr, events[0].key.addr + 4), addr("192.0.2.9"));
}

TEST_F(Reply, UnclaimedInterfaceCountsOnItsAutoEntry)
{
    Flow f;
    tc(f.synack(), other_);
    EXPECT_EQ(dp_.auto_count(), 0u);
    open(f, other_);
    auto e = dp_.auto_vm(auto_key(other_));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->stats.replies[SG_REPLY_SYNACK], 1u);
}

// Evidence follows the connection's owner, not what the interface names now.
TEST_F(Reply, EvidenceGoesToWhoOpenedTheConnection)
{
    Flow f;
    open(f, hv_);
    dp_.vm(3, policy(SG_TIER_OK, 100, 100));
    dp_.iface(hv_, SG_IFACE_HAS_VM, 3);
    tc(f.reply("554 5.7.1 rejected\r\n"), hv_);
    EXPECT_EQ(dp_.stats(kSlot).replies[SG_REPLY_5XX], 1u);
    EXPECT_EQ(dp_.stats(3).replies[SG_REPLY_5XX], 0u);
    ASSERT_EQ(dp_.drain_events().at(0).slot, kSlot);
}

// An auto owner gone from the LRU gets nothing, and is not created again by a reply.
TEST_F(Reply, EvidenceForAVanishedAutoOwnerIsDropped)
{
    Flow f;
    open(f, other_);
    ASSERT_EQ(dp_.auto_count(), 1u);
    sg_auto_key k = auto_key(other_);
    ASSERT_EQ(bpf_map_delete_elem(dp_.kern().map_fd(smtpgov::kern::MapId::Auto), &k), 0);
    Global before = dp_.global();
    tc(f.reply("554 5.7.1 rejected\r\n"), other_);
    EXPECT_EQ(dp_.auto_count(), 0u);
    EXPECT_TRUE(dp_.drain_events().empty());
    EXPECT_EQ(delta(dp_.global(), before)[SG_RES_REPLY_OUTSIDE], 0u) << "in window: accepted, owner gone";
}

// Every rejection of the shared corpus, each to its own VM, is counted and sampled verbatim.
TEST_F(Reply, RejectionCorpus)
{
    std::ifstream in(SG_REJECTIONS_TSV);
    ASSERT_TRUE(in) << SG_REJECTIONS_TSV;
    dp_.iface(gw_, SG_IFACE_GATEWAY);
    std::map<uint32_t, std::string> want;
    std::string row;
    uint32_t slot = 100;
    while (std::getline(in, row)) {
        if (row.empty() || row[0] == '#')
            continue;
        std::istringstream cols(row);
        std::string share, text;
        std::getline(cols, share, '\t');
        std::getline(cols, text, '\t');
        std::string line = (text.find("deferred") != std::string::npos ? "421 " : "554 ") + text;
        Flow f{.vm = "10.3." + std::to_string(slot / 256) + "." + std::to_string(slot % 256)};
        dp_.vm(slot, policy(SG_TIER_OK, 10, 10));
        dp_.route(f.vm, 32, slot);
        open(f, gw_);
        tc(f.reply(line + "\r\n"), gw_);
        want[slot++] = line.substr(0, SG_REPLY_TEXT_MAX);
    }
    ASSERT_GE(want.size(), 10u);
    auto events = dp_.drain_events();
    ASSERT_EQ(events.size(), want.size());
    for (const sg_event& ev : events) {
        ASSERT_TRUE(want.count(ev.slot)) << ev.slot;
        EXPECT_EQ(std::string(ev.text, ev.text_len), want[ev.slot]);
        EXPECT_EQ(ev.reply_code, want[ev.slot][0] == '4' ? 421 : 554);
        sg_vm_stats s = dp_.stats(ev.slot);
        EXPECT_EQ(s.replies[SG_REPLY_4XX] + s.replies[SG_REPLY_5XX], 1u);
    }
}

}  // namespace
}  // namespace sgt
