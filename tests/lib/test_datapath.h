// The datapath as tests and benchmarks drive it: a private, unpinned instance of the
// production smtpgov::kern::Datapath, seeded and read through the production map I/O
// (kern/map_io.h), with helpers that throw instead of returning errors.
#pragma once

#include <smtpgov/abi.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kern/datapath.h"
#include "netns.h"
#include "packet.h"
#include "prog_run.h"

namespace sgt {

// sg_global summed over CPUs, indexed by enum sg_result.
using Global = std::array<uint64_t, SG_RES_MAX>;

sg_vm_policy policy(uint8_t tier, uint32_t rate, uint32_t burst, uint8_t over = SG_ACT_DROP,
                    uint8_t block = SG_ACT_DROP, uint8_t flags = SG_VMF_ACTIVE);
// An auto entry key: the interface's aggregate (family 0) or one source (IPv6: its /64).
sg_auto_key auto_key(int ifindex, uint8_t family = 0, const std::string& addr = "");
Global delta(const Global& after, const Global& before);
// Only the per-frame classes and the results before the connection table's
// (SG_RES_CONN_NEW and later zeroed): classification tests leave those to test_conn.
Global classes_only(Global g);
std::string describe(const Global& g);  // "smtp_syn=1 rst_sent=1", names from kResultNames

class TestDatapath {
public:
    // ports empty: 25, 465, 587; bench_stop (enum sg_bench_stop) and prealloc_conn
    // (sg_conn, sg_conn_ring preallocated): the benchmark's variants only
    explicit TestDatapath(const std::vector<uint16_t>& ports = {}, uint32_t bench_stop = SG_STOP_NONE,
                          bool prealloc_conn = false);

    const smtpgov::kern::Datapath& kern() const { return dp_; }

    XdpRun xdp(const Bytes& frame, int ifindex, uint32_t repeat = 1) const;
    int tc(const Bytes& frame, int ifindex) const;
    TcRun tc_run(const Bytes& frame, int ifindex, uint32_t repeat = 1) const;  // with the frame out

    // Policy seeding (sg_ifaces or sg_ifaces_big by ifindex, as the daemon writes them).
    void iface(int ifindex, uint32_t flags, uint32_t slot = 0) const;
    void vm(uint32_t slot, const sg_vm_policy& pol) const;
    void defaults(uint32_t idx, const sg_vm_policy& pol) const;
    void auto_policy(const sg_auto_key& key, const sg_vm_policy& pol) const;
    void route(const std::string& prefix, uint32_t len, uint32_t slot) const;  // v4 or v6
    void reset_slot(uint32_t slot) const;  // bucket and counters zeroed
    void runtime(const sg_runtime& rt) const;   // sg_runtime[0]

    Global global() const;
    sg_vm_stats stats(uint32_t slot) const;  // summed over CPUs
    std::vector<sg_vm_stats> stats_per_cpu(uint32_t slot) const;
    std::vector<sg_event> drain_events() const;  // everything in sg_events so far
    sg_bucket bucket(uint32_t slot) const;
    std::optional<sg_auto_vm> auto_vm(const sg_auto_key& key) const;
    size_t auto_count() const;

    // The connection table (keys walked with libbpf: the controller's map_io has no
    // iterator for these key types, and needs none).
    std::optional<sg_conn> conn(const sg_conn_key& key) const;
    std::vector<std::pair<sg_conn_key, sg_conn>> conns() const;
    std::optional<sg_conn_key> nat(const sg_conn_nat_key& key) const;
    size_t nat_count() const;
    size_t ring_count() const;

private:
    void update(smtpgov::kern::MapId id, const void* key, const void* value) const;
    bool lookup(smtpgov::kern::MapId id, const void* key, void* value) const;

    smtpgov::kern::Datapath dp_;
};

}  // namespace sgt
