// Reads and writes of the smtpgov maps: batched reads of the per-VM counters and the
// auto entries (one syscall per few thousand slots), per-CPU sums, typed element I/O.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "core/result.h"
#include "kern/datapath.h"
#include "smtpgov/abi.h"

namespace smtpgov::kern {

// sg_vm_stats summed over CPUs.
void add_stats(sg_vm_stats& into, const sg_vm_stats& from);

// Owns the scratch buffers of the batched reads so that a sweep allocates nothing.
class MapReader {
public:
    // Slots [0, n) of sg_vm_stats, per-CPU values summed; out is resized to n.
    Status vm_stats(const Datapath& dp, uint32_t n, std::vector<sg_vm_stats>& out);
    // One slot (the mini-sweep after an over-limit event).
    Result<sg_vm_stats> vm_stats_one(const Datapath& dp, uint32_t slot);
    // Every sg_auto entry.
    Status auto_entries(const Datapath& dp, std::vector<std::pair<sg_auto_key, sg_auto_vm>>& out);
    // sg_global, summed.
    Result<std::array<uint64_t, SG_RES_MAX>> global(const Datapath& dp);
    // Slots [0, n) of sg_vm_bucket; out is resized to n.
    Status vm_buckets(const Datapath& dp, uint32_t n, std::vector<sg_bucket>& out);
    // Up to max sg_conn entries from the batch position `token` (first: from the start);
    // token becomes the next position; `done` is set once the table is walked.
    Status conn_entries(const Datapath& dp, bool first, uint32_t& token, uint32_t max,
                        std::vector<std::pair<sg_conn_key, sg_conn>>& out, bool& done);

private:
    std::vector<uint32_t> keys_, keys2_;
    std::vector<unsigned char> values_, values2_;
    std::vector<sg_auto_key> auto_keys_;
    std::vector<sg_auto_vm> auto_values_;
    std::vector<sg_conn_key> conn_keys_;
    std::vector<sg_conn> conn_values_;
};

// Typed element access; errors carry the map name.
Status map_update(const Datapath& dp, MapId id, const void* key, const void* value);
Status map_delete(const Datapath& dp, MapId id, const void* key);  // a missing key is fine
// nullopt when the key is absent.
Result<bool> map_lookup(const Datapath& dp, MapId id, const void* key, void* value);

template <typename K>
Result<std::vector<K>> map_keys(const Datapath& dp, MapId id);

// Zeroes a slot's bucket and per-CPU counters (a slot given to a new VM).
Status reset_slot(const Datapath& dp, uint32_t slot);

}  // namespace smtpgov::kern
