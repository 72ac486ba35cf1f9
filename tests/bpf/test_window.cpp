// The window rules of the return path (bpf/lib/window.h), tabled on the pure function
// the TC program runs: which remote segments are acceptable on a tracked connection,
// and what remote_nxt becomes. test_evidence.cpp runs the same rules through the
// program and the maps.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "window.h"
}
#include "table_test.h"

namespace sgt {
namespace {

constexpr uint8_t F = SG_WIN_FIN, S = SG_WIN_SYN, R = SG_WIN_RST, A = SG_WIN_ACK;
constexpr uint32_t kIsn = 1000, kSent = 100, kNxt = 70051, W = SG_CONN_WINDOW;

struct Row {
    std::string desc;
    uint8_t state;
    uint32_t isn, vm_nxt, remote_nxt;   // the connection
    sg_win_seg seg;
    int want;
    uint32_t want_nxt;
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.desc; }

// A connection waiting for its SYN-ACK: the VM sent its SYN only.
Row syn_sent(std::string d, sg_win_seg s, int want, uint32_t nxt = 0)
{
    return {std::move(d), SG_CONN_SYN_SENT, kIsn, kIsn + 1, 0, s, want, nxt};
}

// An established connection: the VM sent kSent bytes, the remote up to kNxt.
Row est(std::string d, sg_win_seg s, int want, uint32_t nxt = kNxt)
{
    return {std::move(d), SG_CONN_ESTABLISHED, kIsn, kIsn + 1 + kSent, kNxt, s, want, nxt};
}

std::vector<Row> rows()
{
    const uint32_t ack = kIsn + 1, all = kIsn + 1 + kSent;
    return {
        syn_sent("SYN-ACK acknowledging the SYN", {70000, ack, 0, S | A}, SG_WIN_SYNACK, 70001),
        syn_sent("SYN-ACK acknowledging one byte short", {70000, kIsn, 0, S | A}, SG_WIN_OUTSIDE),
        syn_sent("SYN-ACK acknowledging one byte past the SYN", {70000, ack + 1, 0, S | A}, SG_WIN_OUTSIDE),
        syn_sent("SYN alone (simultaneous open) is no answer", {70000, ack, 0, S}, SG_WIN_OUTSIDE),
        syn_sent("SYN-ACK with the ACK flag clear", {70000, ack, 0, S}, SG_WIN_OUTSIDE),
        syn_sent("RST+ACK acknowledging the SYN (RFC 5961)", {0, ack, 0, R | A}, SG_WIN_RESET),
        syn_sent("RST without ACK, right number in the field", {0, ack, 0, R}, SG_WIN_OUTSIDE),
        syn_sent("RST+ACK with a wrong ack", {0, ack + 5, 0, R | A}, SG_WIN_OUTSIDE),
        syn_sent("RST+ACK acknowledging the ISN itself", {0, kIsn, 0, R | A}, SG_WIN_OUTSIDE),
        syn_sent("data before any SYN-ACK", {70001, ack, 20, A}, SG_WIN_OUTSIDE),
        syn_sent("SYN-ACK+RST is a RST", {70000, ack, 0, S | A | R}, SG_WIN_RESET),
        {"SYN-ACK to a SYN with 10 bytes (TFO) acknowledging them", SG_CONN_SYN_SENT, kIsn, kIsn + 11, 0,
         {70000, kIsn + 11, 0, S | A}, SG_WIN_SYNACK, 70001},
        {"SYN-ACK across the sequence wrap", SG_CONN_SYN_SENT, 0xffffffff, 0, 0, {5, 0, 0, S | A},
         SG_WIN_SYNACK, 6},
        {"SYN-ACK acknowledging the pre-wrap ISN", SG_CONN_SYN_SENT, 0xffffffff, 0, 0,
         {5, 0xffffffff, 0, S | A}, SG_WIN_OUTSIDE, 0},

        est("data at remote_nxt", {kNxt, all, 20, A}, SG_WIN_NEW, kNxt + 20),
        est("data acknowledging only the SYN", {kNxt, ack, 20, A}, SG_WIN_NEW, kNxt + 20),
        est("data acknowledging the ISN (before the SYN)", {kNxt, kIsn, 20, A}, SG_WIN_OUTSIDE),
        est("data acknowledging a byte the VM never sent", {kNxt, all + 1, 20, A}, SG_WIN_OUTSIDE),
        est("data without ACK", {kNxt, all, 20, 0}, SG_WIN_OUTSIDE),
        est("retransmission wholly behind remote_nxt", {kNxt - 10, all, 5, A}, SG_WIN_OLD),
        est("retransmission ending at remote_nxt", {kNxt - 10, all, 10, A}, SG_WIN_OLD),
        est("overlap: ends past remote_nxt", {kNxt - 10, all, 20, A}, SG_WIN_NEW, kNxt + 10),
        est("ahead of remote_nxt, inside the window (a loss before us)", {kNxt + 1000, all, 10, A}, SG_WIN_NEW,
            kNxt + 1010),
        est("starting at remote_nxt plus the window", {kNxt + W, all, 10, A}, SG_WIN_OUTSIDE),
        est("starting just inside the window", {kNxt + W - 1, all, 1, A}, SG_WIN_NEW, kNxt + W),
        est("starting at remote_nxt minus the window", {kNxt - W, all, 0, A}, SG_WIN_OLD),
        est("starting before remote_nxt minus the window", {kNxt - W - 1, all, 10, A}, SG_WIN_OUTSIDE),
        est("pure ACK", {kNxt, all, 0, A}, SG_WIN_OLD),
        est("FIN at remote_nxt takes a sequence number", {kNxt, all, 0, A | F}, SG_WIN_NEW, kNxt + 1),
        est("data and FIN", {kNxt, all, 5, A | F}, SG_WIN_NEW, kNxt + 6),
        est("RST at remote_nxt", {kNxt, 0, 0, R}, SG_WIN_RESET),
        est("RST at the window's last byte", {kNxt + W - 1, 0, 0, R}, SG_WIN_RESET),
        est("RST at remote_nxt plus the window", {kNxt + W, 0, 0, R}, SG_WIN_OUTSIDE),
        est("RST one byte before remote_nxt", {kNxt - 1, 0, 0, R | A}, SG_WIN_OUTSIDE),
        est("retransmitted SYN-ACK", {70000, ack, 0, S | A}, SG_WIN_OLD),
        est("SYN-ACK with another sequence number", {kNxt + 5000, ack, 0, S | A}, SG_WIN_OUTSIDE),
        {"data across the sequence wrap", SG_CONN_ESTABLISHED, kIsn, kIsn + 1, 0xfffffff0,
         {0xfffffff0, kIsn + 1, 32, A}, SG_WIN_NEW, 0x10},
        {"RST across the sequence wrap", SG_CONN_ESTABLISHED, kIsn, kIsn + 1, 0xfffffff0, {0x100, 0, 0, R},
         SG_WIN_RESET, 0xfffffff0},
    };
}

class Window : public ::testing::TestWithParam<Row> {};

TEST_P(Window, Judged)
{
    const Row& r = GetParam();
    uint32_t nxt = 0xdeadbeef;
    EXPECT_EQ(sg_window(r.state, r.isn, r.vm_nxt, r.remote_nxt, &r.seg, &nxt), r.want);
    EXPECT_EQ(nxt, r.want_nxt) << "remote_nxt after it";
}

INSTANTIATE_TEST_SUITE_P(Rows, Window, ::testing::ValuesIn(rows()), RowName());

}  // namespace
}  // namespace sgt
