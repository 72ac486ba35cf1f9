// Test harness: a private network namespace with dummy devices, and an RAII owner
// of the smtpgov skeleton with helpers to seed maps and run the programs.
#pragma once

#include <smtpgov/abi.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "packet.h"

struct smtpgov_bpf;

namespace sgt {

// Enters a fresh network namespace (once per process) and creates a veth device
// there, so BPF_PROG_TEST_RUN can use its ifindex; the machine's devices are never seen.
int test_iface(const std::string& name, unsigned index = 0);  // index 0: the kernel picks

struct XdpRun {
    uint32_t action = 0;
    Bytes out;
    uint32_t duration_ns = 0;
};

using Global = std::array<uint64_t, SG_RES_MAX>;

sg_vm_policy policy(uint8_t tier, uint32_t rate, uint32_t burst, uint8_t over = SG_ACT_DROP,
                    uint8_t block = SG_ACT_DROP, uint8_t flags = SG_VMF_ACTIVE);

class Datapath {
public:
    explicit Datapath(const std::vector<uint16_t>& ports = {});
    ~Datapath();
    Datapath(const Datapath&) = delete;
    Datapath& operator=(const Datapath&) = delete;

    smtpgov_bpf* skel() const { return skel_; }
    int xdp_fd() const;
    int tc_fd() const;
    int map_fd(const char* name) const;

    XdpRun xdp(const Bytes& frame, int ifindex, uint32_t repeat = 1) const;
    int tc(const Bytes& frame, int ifindex) const;

    void iface(int ifindex, uint32_t flags, uint32_t slot = 0) const;
    void vm(uint32_t slot, const sg_vm_policy& pol) const;
    void defaults(uint32_t idx, const sg_vm_policy& pol) const;
    void auto_policy(const sg_auto_key& key, const sg_vm_policy& pol) const;
    void route(const std::string& prefix, uint32_t len, uint32_t slot) const;  // v4 or v6

    Global global() const;
    sg_vm_stats stats(uint32_t slot) const;   // summed over CPUs
    std::vector<sg_vm_stats> stats_per_cpu(uint32_t slot) const;
    std::vector<sg_event> drain_events() const;   // everything in sg_events so far
    sg_bucket bucket(uint32_t slot) const;
    std::optional<sg_auto_vm> auto_vm(const sg_auto_key& key) const;
    size_t auto_count() const;

private:
    smtpgov_bpf* skel_ = nullptr;
};

sg_auto_key auto_key(int ifindex, uint8_t family = 0, const std::string& addr = "");
Global delta(const Global& after, const Global& before);
std::string describe(const Global& g);

}  // namespace sgt
