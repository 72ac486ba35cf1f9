// The TC return-path program: remote SMTP replies (SYN-ACK, RST, 2xx/4xx/5xx)
// counted per VM, 4xx/5xx lines sampled into ring-buffer events; never interferes.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "test_datapath.h"

#ifndef SG_REJECTIONS_TSV
#error "SG_REJECTIONS_TSV must name the rejection corpus"
#endif

namespace sgt {
namespace {

constexpr uint32_t kSlot = 1;

// A segment from a remote SMTP server back to a VM.
Packet from_server(const std::string& vm = "10.1.0.2", uint16_t sport = 25)
{
    return Packet().eth(kGwMac, kVmMac).ipv4("198.51.100.7", vm).tcp(sport, 40000);
}

Bytes text_reply(const std::string& line, const std::string& vm = "10.1.0.2")
{
    return from_server(vm).ack().flags(kAck | kPsh).payload(line).build();
}

class Reply : public ::testing::Test {
protected:
    void SetUp() override
    {
        hv_ = test_iface("sgt-hv");
        gw_ = test_iface("sgt-gw");
        other_ = test_iface("sgt-x");
        dp_.iface(hv_, SG_IFACE_HAS_VM, kSlot);
        dp_.vm(kSlot, policy(SG_TIER_OK, 100, 100));
    }
    void tc(const Bytes& f, int ifx) const { EXPECT_EQ(dp_.tc(f, ifx), TC_ACT_OK) << "never interferes"; }
    int hv_ = 0, gw_ = 0, other_ = 0;
    TestDatapath dp_;
};

TEST_F(Reply, CountsEachKindPerVm)
{
    tc(from_server().syn().ack().build(), hv_);
    tc(Packet().eth().ipv6("2001:db8:ff::7", "2001:db8:1::2").tcp(587, 40000).syn().ack().build(), hv_);
    tc(from_server().rst().ack().build(), hv_);
    tc(text_reply("220 mx.example.net ESMTP ready\r\n"), hv_);
    tc(text_reply("250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n"), hv_);
    tc(text_reply("451 4.7.1 Greylisted, try again later\r\n"), hv_);
    tc(text_reply("550 5.7.1 Service unavailable; client [10.1.0.2] blocked using zen.spamhaus.org\r\n"), hv_);
    tc(text_reply("354 go ahead\r\n"), hv_);                          // neither 2xx, 4xx nor 5xx
    tc(text_reply("2x0 not a reply code\r\n"), hv_);
    tc(text_reply("55"), hv_);                                        // too short for a code
    tc(from_server("10.1.0.2", 80).ack().payload("550 not smtp\r\n").build(), hv_);
    tc(Packet().eth().ipv4("10.1.0.2", "198.51.100.7").tcp(40000, 25).ack().payload("550 x\r\n").build(), hv_);
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
    tc(text_reply(line + "\r\n220 trailing\r\n"), hv_);
    tc(text_reply("554 second reply in the same 100 ms\r\n"), hv_);
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
    tc(text_reply("421 4.7.0 Too many connections\n"), hv_);
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
    tc(text_reply(line + "\r\n"), hv_);
    auto events = dp_.drain_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].text_len, SG_REPLY_TEXT_MAX);
    EXPECT_EQ(std::string(events[0].text, SG_REPLY_TEXT_MAX), line.substr(0, SG_REPLY_TEXT_MAX));
}

TEST_F(Reply, GatewayUsesDestinationAndNeverCreatesAutoEntries)
{
    dp_.iface(gw_, SG_IFACE_GATEWAY);
    dp_.defaults(SG_DEFAULTS_SOURCE, policy(SG_TIER_OK, 100, 100));
    dp_.defaults(SG_DEFAULTS_AGGREGATE, policy(SG_TIER_OK, 100, 100));
    dp_.vm(2, policy(SG_TIER_OK, 100, 100));
    dp_.route("10.2.0.0", 16, 2);
    tc(from_server("10.2.3.4").syn().ack().build(), gw_);
    EXPECT_EQ(dp_.stats(2).replies[SG_REPLY_SYNACK], 1u);
    tc(text_reply("550 no\r\n", "192.0.2.9"), gw_);
    EXPECT_EQ(dp_.auto_count(), 0u) << "replies never create auto entries";
    // once the source sent a SYN through the gateway, its auto entry gets the replies
    dp_.xdp(Packet().eth().ipv4("192.0.2.9", "198.51.100.7").tcp(40000, 25).syn().build(), gw_);
    tc(text_reply("550 5.7.1 blocked\r\n", "192.0.2.9"), gw_);
    auto e = dp_.auto_vm(auto_key(gw_, 4, "192.0.2.9"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->stats.replies[SG_REPLY_5XX], 1u);
    auto events = dp_.drain_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].slot, SG_SLOT_NONE);
    EXPECT_EQ(events[0].key.ifindex, uint32_t(gw_));
    EXPECT_EQ(events[0].key.family, 4);
    EXPECT_EQ(Bytes(events[0].key.addr, events[0].key.addr + 4), addr("192.0.2.9"));
}

TEST_F(Reply, UnclaimedInterfaceCountsOnItsExistingAutoEntryOnly)
{
    tc(from_server().syn().ack().build(), other_);
    EXPECT_EQ(dp_.auto_count(), 0u);
    dp_.xdp(Packet().eth().ipv4("10.1.0.2", "198.51.100.7").tcp(40000, 25).syn().build(), other_);
    tc(from_server().syn().ack().build(), other_);
    auto e = dp_.auto_vm(auto_key(other_));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->stats.replies[SG_REPLY_SYNACK], 1u);
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
        std::string vm = "10.3." + std::to_string(slot / 256) + "." + std::to_string(slot % 256);
        dp_.vm(slot, policy(SG_TIER_OK, 10, 10));
        dp_.route(vm, 32, slot);
        tc(text_reply(line + "\r\n", vm), gw_);
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
