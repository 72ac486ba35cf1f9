// smtpgov-bench-datapath: an over-limit VM flooded from one CPU and from two at once.
#pragma once

#include <cstdint>

namespace sgb {

// Prints ns/frame of the empty program (empty_xdp_fd) and of an over-limit SYN, on one
// CPU and on two CPUs flooding the same VM, `repeat` runs per sample.
void contention(uint32_t repeat, int empty_xdp_fd);

}  // namespace sgb
