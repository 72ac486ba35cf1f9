// The one owner of VM identity: the registered VMs of the policy in force with their map
// slots, the auto entries the datapath created, and each VM's controller-side runtime
// (last counter reading, smoothed rate, sampled remote replies). One index id <-> slot
// (registered) or id <-> sg_auto_key (auto entries); nothing else keeps VM identity.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/policy.h"
#include "daemon/state_store.h"
#include "smtpgov/abi.h"

namespace smtpgov::daemon {

struct VmRuntime {
    sg_vm_stats last{};          // counter totals at the previous reading
    bool primed = false;         // `last` holds a reading
    uint64_t read_ns = 0;        // CLOCK_MONOTONIC of that reading
    double rate = 0;             // smoothed SYN/s
    uint64_t trigger_ns = 0;     // ts_ns of the over-limit event not yet answered by an escalation
    std::vector<std::string> samples;  // recent remote reply lines
    uint64_t conn_evicted = 0;   // own connection entries the datapath evicted (sg_bucket)
    uint64_t over_at_event = 0;  // the last over-limit event's count (cumulative throttled SYNs)
    bool over_event_seen = false;
};

// What one reading added since the previous one (the reputation signals).
struct Deltas {
    uint64_t over = 0;    // refused SYNs: over the bucket or blocked
    uint64_t spoofed = 0;
    uint64_t rejects = 0; // 4xx, 5xx and RST answers
};

// Takes a counter reading: updates the smoothed rate and returns what is new. The
// first reading only primes; counters that went backwards (a reset slot) count anew.
Deltas feed(VmRuntime& rt, const sg_vm_stats& cur, uint64_t now_ns);

// An over-limit event carries the VM's throttled SYNs so far (cumulative, summed over
// CPUs by the datapath). Returns how many are new since the previous event: the first
// one the daemon sees is compared with its last counter reading (all of it before any),
// and a count that went backwards (a reset slot, a re-created auto entry) counts anew.
uint64_t over_since_event(VmRuntime& rt, uint64_t cumulative);

struct AutoVm {
    sg_auto_key key{};
    std::string interface;  // name of key.ifindex when it was seen
    std::string address;    // "" for a per-interface entry
    VmRuntime rt;
};

// "if:<name>" for a per-interface entry, "ip:<addr>" (v6: "<addr>/64") for a source
// on a gateway; an interface without a name shows as "#<ifindex>".
std::string auto_id(const sg_auto_key& k, const std::string& ifname, std::string* address = nullptr);

class VmTable {
public:
    using IfName = std::function<std::string(uint32_t ifindex)>;  // "" when there is none
    VmTable(uint32_t capacity, IfName ifname) : slots_(capacity), ifname_(std::move(ifname)) {}

    void set_ifname(IfName f) { ifname_ = std::move(f); }
    const Policy& policy() const { return policy_; }
    const SlotTable& slots() const { return slots_; }
    size_t size() const { return policy_.vms.size() + autos_.size(); }

    // Start-up: the slots remembered from the last run (slots.json).
    void restore_slots(SlotTable s) { slots_ = std::move(s); }
    // The slots `p` would get: VMs that stay keep theirs. ENOSPC when they do not fit.
    Result<SlotTable> slots_for(const Policy& p) const;
    // Slots that change owner between the slots in force and `next`.
    std::set<uint32_t> given_to_new(const SlotTable& next) const;
    std::set<uint32_t> freed(const SlotTable& next) const;
    // Commit: `p` with `slots` is in force; runtimes of the `reset` slots start over.
    void adopt(Policy p, SlotTable slots, const std::set<uint32_t>& reset);

    const Vm* vm(const std::string& id) const;
    std::optional<uint32_t> slot_of(const std::string& id) const { return slots_.find(id); }
    const Vm* at_slot(uint32_t slot) const;
    VmRuntime* slot_runtime(uint32_t slot);  // nullptr when no registered VM holds it
    VmRuntime* runtime(const std::string& id);
    const VmRuntime* runtime(const std::string& id) const;

    // The auto entry for `key`, created on first sight; returns its id.
    std::string note_auto(const sg_auto_key& key, AutoVm** out = nullptr);
    const AutoVm* find_auto(const std::string& id) const;
    const std::map<std::string, AutoVm>& autos() const { return autos_; }
    // Forgets auto entries that are not in `seen` and that `keep` does not hold on to.
    void prune_autos(const std::set<std::string>& seen, const std::function<bool(const std::string&)>& keep);
    void forget_auto(const std::string& id);

    // Unregistered interfaces (`if:<name>`) that went away while escalated, and since
    // when (mono ns): they keep their tier for auto_hold_s, then start clean.
    void hold(const std::string& id, uint64_t since_ns) { held_.emplace(id, since_ns); }
    void release(const std::string& id) { held_.erase(id); }
    std::vector<std::string> held_longer_than(uint64_t hold_ns, uint64_t now_ns) const;

private:
    Policy policy_;
    SlotTable slots_;
    IfName ifname_;
    std::unordered_map<std::string, size_t> index_;  // id -> policy_.vms index
    std::vector<int32_t> by_slot_;                   // slot -> policy_.vms index, -1 free
    std::vector<VmRuntime> rt_;                      // by slot
    std::map<std::string, AutoVm> autos_;            // by id
    std::map<std::string, uint64_t> held_;           // if:<name> id -> gone since (mono ns)
};

}  // namespace smtpgov::daemon
