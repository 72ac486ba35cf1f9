// The daemon's one road to the kernel maps. KernelMaps (kernel_maps.h) is the real
// thing; tests use an in-memory implementation that can fail the Nth write.
// MapId::Ifaces is one logical table here (the kern layer splits it in two maps).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "core/result.h"
#include "kern/map_ids.h"
#include "smtpgov/abi.h"

namespace smtpgov::daemon {

using kern::MapId;
using AutoEntries = std::vector<std::pair<sg_auto_key, sg_auto_vm>>;
using GlobalCounters = std::array<uint64_t, SG_RES_MAX>;
using ConnEntries = std::vector<std::pair<sg_conn_key, sg_conn>>;

// Where a walk over a hash map stopped: the kernel's batch position (a bucket index) in
// `token`, or the last key read (in-memory maps) in `after`. `done`: the walk is over.
struct BatchCursor {
    bool started = false, done = false;
    uint32_t token = 0;
    std::vector<uint8_t> after;
};

class Maps {
public:
    virtual ~Maps() = default;
    virtual uint32_t max_vms() const = 0;

    // Element I/O. remove() of a missing key is fine; lookup() says whether it was there.
    virtual Status update(MapId id, const void* key, const void* value) = 0;
    virtual Status remove(MapId id, const void* key) = 0;
    virtual Result<bool> lookup(MapId id, const void* key, void* value) = 0;
    // Every key of a hash/LPM map, or the entries in use of sg_ifaces; key_size bytes each.
    virtual Result<std::vector<uint8_t>> keys(MapId id) = 0;
    // A slot given to a new VM starts from a full bucket and zero counters.
    virtual Status reset_slot(uint32_t slot) = 0;

    // Counters (the kernel writes them; per-CPU values summed).
    virtual Status vm_stats(uint32_t n, std::vector<sg_vm_stats>& out) = 0;  // slots [0, n)
    virtual Result<sg_vm_stats> vm_stats_one(uint32_t slot) = 0;
    virtual Status auto_entries(AutoEntries& out) = 0;
    // Slots [0, n) of sg_vm_bucket (the owners' connection counters).
    virtual Status vm_buckets(uint32_t n, std::vector<sg_bucket>& out) = 0;
    // Up to `max` sg_conn entries from where `cursor` stopped (entries deleted or added
    // meanwhile may be missed or seen once more); sets cursor.done at the end.
    virtual Status conn_entries(BatchCursor& cursor, uint32_t max, ConnEntries& out) = 0;
    virtual Result<GlobalCounters> global() = 0;
};

// Typed view of Maps::keys().
template <typename K>
Result<std::vector<K>> map_keys(Maps& maps, MapId id) {
    auto raw = maps.keys(id);
    if (!raw) return raw.error();
    std::vector<K> out(raw->size() / sizeof(K));
    if (!out.empty()) std::memcpy(out.data(), raw->data(), out.size() * sizeof(K));
    return out;
}

}  // namespace smtpgov::daemon
