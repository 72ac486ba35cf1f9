// The private network namespace of a test or benchmark process: test interfaces
// (veth) exist there only, so the machine's own devices are never seen or touched.
#pragma once

#include <string>

namespace sgt {

// Enters a fresh network namespace (once per process) and creates a veth device
// there, so BPF_PROG_TEST_RUN can use its ifindex. index 0: the kernel picks.
// Returns the ifindex of an existing device of that name unchanged.
int test_iface(const std::string& name, unsigned index = 0);

}  // namespace sgt
