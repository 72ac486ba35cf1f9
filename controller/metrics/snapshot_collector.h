// Renders the latest sweep Snapshot as Prometheus metric families on every scrape.
//
// Kernel-backed counters (SYNs by verdict, replies, spoofed, datapath results) are
// rendered from the snapshot's absolute totals instead of being Increment()ed with
// deltas: the totals live in pinned BPF maps and survive daemon restarts, so a
// restarted exporter reports the same monotonic values the previous one did.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "core/view.h"

namespace smtpgov::metrics {

struct SeriesLimits {
    std::size_t max_vm_series = 0;  // 0 = unlimited
    bool only_escalated = false;    // export per-VM series only for VMs above tier ok
};

// The VMs that get per-VM series, in export order: VMs above tier ok first (highest
// rate first), then the rest by rate, cut at max_vm_series. Pure; exposed for tests.
std::vector<const VmView*> select_vm_series(const std::vector<VmView>& vms, const SeriesLimits& limits);
// The VMs that get a smtpgov_connection_evictions_total series: only those with
// evictions, most first, at most max_vm_series (0 = all). Pure.
std::vector<std::pair<std::string, uint64_t>> select_evictions(const std::vector<VmView>& vms,
                                                               const SeriesLimits& limits);

class SnapshotCollector : public prometheus::Collectable {
public:
    explicit SnapshotCollector(SeriesLimits limits) : limits_(limits) {}

    // Replaces the snapshot rendered by later scrapes. Thread-safe.
    void update(const Snapshot& snap);

    std::vector<prometheus::MetricFamily> Collect() const override;

private:
    // Only what scrapes render: with 100,000 VMs a full copy of the snapshot would
    // dominate the daemon's memory while at most max_vm_series VMs are exported.
    struct State {
        Snapshot snap;                                  // vms: the exported VMs, in export order
        std::size_t total_vms = 0;
        std::vector<std::pair<std::string, uint64_t>> evictions;  // VMs with evictions, most first, capped
    };

    static void render_steering(const State& st, std::vector<prometheus::MetricFamily>& out);

    SeriesLimits limits_;
    mutable std::mutex mu_;
    std::shared_ptr<const State> state_;  // null until the first update
};

}  // namespace smtpgov::metrics
