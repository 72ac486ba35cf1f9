// Owner of the loaded smtpgov BPF object (skeleton smtpgov.skel.h): rodata ports,
// per-VM array sizes, map pins reused on open so that a restarted or upgraded
// daemon continues with the same counters, buckets and tiers.
#pragma once

#include <bpf/libbpf.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "kern/bpffs.h"
#include "core/unique_fd.h"
#include "kern/map_ids.h"

struct smtpgov_bpf;

namespace smtpgov::kern {


inline constexpr std::string_view kXdpProgName = "smtpgov_xdp";
inline constexpr std::string_view kTcProgName = "smtpgov_tc_reply";

struct DatapathOptions {
    // Empty: a private, unpinned instance (tests, benchmarks: BPF_PROG_TEST_RUN only):
    // no pin is reused, commit_pins() pins nothing, and it cannot be attached.
    std::string bpffs = "/sys/fs/bpf/smtpgov";
    uint32_t max_vms = 0;                 // 0: SG_DEFAULT_MAX_VMS
    std::vector<uint16_t> smtp_ports;     // empty: 25, 465, 587
    uint32_t bench_stop = 0;              // enum sg_bench_stop: benchmarks only, unpinned
    bool bench_prealloc_conn = false;     // sg_conn, sg_conn_ring preallocated: benchmarks only
};

// Closes a bpf_object that was opened but is owned by nobody else (libxdp clones).
struct BpfObjectCloser {
    void operator()(bpf_object* o) const { bpf_object__close(o); }
};
using BpfObjectPtr = std::unique_ptr<bpf_object, BpfObjectCloser>;

class Datapath {
public:
    // Opens the embedded object, sizes it, reuses every compatible pinned map (unless
    // opts.bpffs is empty), loads.
    // Maps that had no pin yet are pinned only by commit_pins(), after attach succeeded.
    static Result<Datapath> load(const DatapathOptions& opts);

    Datapath(Datapath&&) noexcept;
    Datapath& operator=(Datapath&&) noexcept;
    ~Datapath();

    // A new instance of the programs (new rodata ports) on this instance's maps:
    // the caller swaps links to it, then drops the old instance.
    Result<Datapath> reload(const std::vector<uint16_t>& smtp_ports) const;

    Status commit_pins();
    // Names of the maps that were created by this load (not adopted from pins).
    const std::vector<std::string>& new_maps() const { return new_maps_; }
    bool adopted() const { return pinned() && new_maps_.empty(); }
    bool pinned() const { return !opts_.bpffs.empty(); }

    int map_fd(MapId id) const;
    uint32_t map_max_entries(MapId id) const;
    int xdp_prog_fd() const;
    int tc_prog_fd() const;
    uint32_t xdp_prog_id() const;
    uint32_t tc_prog_id() const;
    uint32_t max_vms() const { return opts_.max_vms; }
    const std::vector<uint16_t>& smtp_ports() const { return opts_.smtp_ports; }
    const PinLayout& pins() const { return pins_; }

    // An unloaded copy of the object sharing this instance's maps and rodata, for
    // libxdp, which must load the XDP program itself to put it behind its dispatcher.
    Result<BpfObjectPtr> open_clone() const;

    // Unpins every map pin under <bpffs>/maps (the maps live on while fds hold them).
    static Status remove_map_pins(const PinLayout& pins);

private:
    Datapath() = default;
    bpf_map* map(MapId id) const;  // the skeleton's typed member
    Status open_skeleton();
    Status reuse_pins();
    Status reuse_fds(const Datapath& from);
    Status finish_load();

    smtpgov_bpf* skel_ = nullptr;
    DatapathOptions opts_;
    PinLayout pins_{""};
    std::vector<std::string> new_maps_;
    std::vector<std::string> replaced_maps_;  // pins of an older shape, replaced at commit
};

// Number of possible CPUs (per-CPU map value stride), cached.
int possible_cpus();

}  // namespace smtpgov::kern
