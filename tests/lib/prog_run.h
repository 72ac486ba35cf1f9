// BPF_PROG_TEST_RUN of an XDP or TC program on one frame, for tests and benchmarks.
#pragma once

#include <cstdint>

#include "packet.h"

namespace sgt {

struct XdpRun {
    uint32_t action = 0;
    Bytes out;                 // the frame as the program left it
    uint32_t duration_ns = 0;  // the kernel's mean per repeat
};

// Runs prog_fd `repeat` times on frame as if received on ifindex; throws on error.
XdpRun run_xdp(int prog_fd, const Bytes& frame, int ifindex, uint32_t repeat = 1);
struct TcRun {
    int action = 0;            // TC_ACT_*
    Bytes out;                 // the frame as the program left it
    uint32_t duration_ns = 0;  // the kernel's mean per repeat
};

// Runs a TC program `repeat` times on frame as if seen on ifindex; throws on error.
TcRun run_tc_frame(int prog_fd, const Bytes& frame, int ifindex, uint32_t repeat = 1);
// Runs a TC program once on frame as if seen on ifindex; returns its TC_ACT_* code.
int run_tc(int prog_fd, const Bytes& frame, int ifindex);

}  // namespace sgt
