// Counter readings: the periodic sweep over every VM's per-CPU counters and the auto
// entries, and the fast path that follows a VM for a while after the datapath reported
// it over its limit (its counters re-read every few ms). Readings feed the reputation's
// signals; deciding tiers is left to the caller (Tiers::evaluate).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <utility>
#include <string>
#include <vector>

#include "core/tiers.h"
#include "daemon/maps.h"
#include "daemon/vm_table.h"

namespace smtpgov::daemon {

class Sweeper {
public:
    static constexpr uint64_t kHotWindowNs = 300'000'000;  // follow a VM this long after its event
    static constexpr uint64_t kHotIntervalNs = 5'000'000;  // re-read a hot VM's counters this often

    // Whether an auto entry's counters are evidence against it. A gateway's aggregate
    // entry ({ifindex, family 0} on a gateway interface) is a shared cap on every
    // unregistered sender behind it, not a VM: it is never scored.
    using Scored = std::function<bool(const sg_auto_key&)>;

    Sweeper(Maps& maps, VmTable& vms, Tiers& tiers, Scored scored)
        : maps_(maps), vms_(vms), tiers_(tiers), scored_(std::move(scored)) {}

    // Reads every counter and feeds the reputation; auto entries the datapath evicted
    // are forgotten once nothing restricts them.
    Status sweep(uint64_t now_ns, int64_t now_ms);
    static constexpr size_t kMaxHot = 256;  // VMs followed at once; others wait for the sweep

    struct EventOutcome {
        std::string blocklist;  // a sampled reply names it
        std::string over_limit; // the VM an over-limit record was about, read at once
    };
    // A ring-buffer record. An over-limit record reads the VM at once and makes it hot
    // (while fewer than kMaxHot are): the work per record is bounded.
    EventOutcome on_event(const sg_event& ev, uint64_t now_ns, int64_t now_ms);
    void hot_tick(uint64_t now_ns, int64_t now_ms);
    bool hot() const { return !hot_slots_.empty() || !hot_autos_.empty(); }
    std::vector<std::string> hot_ids() const;
    // Slots whose VMs left the policy are followed no more.
    void forget_slots(const std::set<uint32_t>& slots) {
        for (uint32_t s : slots) hot_slots_.erase(s);
    }
    // A fresh reading of one VM's counters that feeds nothing (reads stay reads).
    Result<sg_vm_stats> read(const std::string& id);

    // True once after the reputation took a signal (it needs persisting).
    bool take_dirty() { return std::exchange(dirty_, false); }
    const GlobalCounters& results() const { return results_; }
    size_t auto_entries() const { return auto_buf_.size(); }  // sg_auto at the last sweep
    uint64_t events_received() const { return events_received_; }

private:
    void feed_one(const std::string& id, VmRuntime& rt, const sg_vm_stats& cur, uint64_t now_ns, int64_t now_ms,
                  bool scored = true);
    void read_slot(uint32_t slot, uint64_t now_ns, int64_t now_ms);
    void read_auto(const std::string& id, uint64_t now_ns, int64_t now_ms);

    Maps& maps_;
    VmTable& vms_;
    Tiers& tiers_;
    Scored scored_;
    std::vector<sg_vm_stats> stats_buf_;
    std::vector<sg_bucket> bucket_buf_;
    AutoEntries auto_buf_;
    GlobalCounters results_{};
    std::map<uint32_t, uint64_t> hot_slots_;          // slot -> hot until (mono ns)
    std::map<std::string, uint64_t> hot_autos_;       // auto id -> hot until
    uint64_t events_received_ = 0;
    bool dirty_ = false;
};

}  // namespace smtpgov::daemon
