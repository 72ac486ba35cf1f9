// Maps in memory, for running the controller without a kernel: element I/O with the
// kernel's semantics (array maps always hold every index; sg_ifaces is one logical
// table whose empty entries do not exist), counters a test sets as the datapath would,
// and writes that fail on demand.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "daemon/maps.h"

namespace sgt {

using smtpgov::Result;
using smtpgov::Status;
using smtpgov::daemon::AutoEntries;
using smtpgov::daemon::GlobalCounters;
using smtpgov::daemon::MapId;
using Bytes = std::vector<uint8_t>;
using Contents = std::map<MapId, std::map<Bytes, Bytes>>;

class MemoryMaps final : public smtpgov::daemon::Maps {
public:
    explicit MemoryMaps(uint32_t max_vms = 64) : max_vms_(max_vms) {}

    // The nth element write (update, remove or slot reset) from now on fails with EIO;
    // several may be armed at once.
    void fail_write(uint64_t nth) { fail_at_.insert(writes_ + nth); }
    uint64_t writes() const { return writes_; }

    // The datapath's side: counters and auto entries.
    void set_stats(uint32_t slot, const sg_vm_stats& s) { stats_[slot] = s; }
    void set_auto(const sg_auto_key& k, const sg_auto_vm& v);
    void evict_auto(const sg_auto_key& k);
    void set_global(const GlobalCounters& g) { global_ = g; }

    // Entries in use (array maps: non-zero values; sg_ifaces and sg_ifaces_big as one).
    size_t count(MapId id) const;
    Contents contents() const { return data_; }
    template <typename V, typename K>
    std::optional<V> get(MapId id, const K& key) const {
        V v{};
        auto it = data_.find(id);
        if (it == data_.end()) return std::nullopt;
        auto e = it->second.find(bytes(&key, sizeof(K)));
        if (e == it->second.end()) return std::nullopt;
        std::memcpy(&v, e->second.data(), sizeof(V));
        return v;
    }

    uint32_t max_vms() const override { return max_vms_; }
    Status update(MapId id, const void* key, const void* value) override;
    Status remove(MapId id, const void* key) override;
    Result<bool> lookup(MapId id, const void* key, void* value) override;
    Result<std::vector<uint8_t>> keys(MapId id) override;
    Status reset_slot(uint32_t slot) override;
    Status vm_stats(uint32_t n, std::vector<sg_vm_stats>& out) override;
    Result<sg_vm_stats> vm_stats_one(uint32_t slot) override;
    Status auto_entries(AutoEntries& out) override;
    Status vm_buckets(uint32_t n, std::vector<sg_bucket>& out) override;
    Status conn_entries(smtpgov::daemon::BatchCursor& c, uint32_t max, smtpgov::daemon::ConnEntries& out) override;
    Result<GlobalCounters> global() override { return global_; }

    uint64_t resets = 0;       // reset_slot calls that succeeded
    uint64_t conn_batches = 0;  // conn_entries calls

private:
    static Bytes bytes(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        return Bytes(b, b + n);
    }
    Status count_write(MapId id);
    bool is_array(MapId id) const;
    Status check_index(MapId id, const void* key) const;

    uint32_t max_vms_;
    Contents data_;
    std::map<uint32_t, sg_vm_stats> stats_;
    std::map<Bytes, sg_auto_vm> autos_;
    GlobalCounters global_{};
    uint64_t writes_ = 0;
    std::set<uint64_t> fail_at_;
};

}  // namespace sgt
