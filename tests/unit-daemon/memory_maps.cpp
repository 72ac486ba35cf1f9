#include "memory_maps.h"

#include <cerrno>
#include <string>

namespace sgt {

using smtpgov::Error;
using smtpgov::ok_status;
using smtpgov::kern::kMaps;
using smtpgov::kern::map_name;

namespace {

const smtpgov::kern::MapInfo& info(MapId id) { return kMaps[static_cast<size_t>(id)]; }

bool all_zero(const Bytes& b) {
    for (uint8_t c : b)
        if (c) return false;
    return true;
}

}  // namespace

bool MemoryMaps::is_array(MapId id) const {
    return id == MapId::VmPolicy || id == MapId::VmBucket || id == MapId::VmStats || id == MapId::Defaults ||
           id == MapId::Global || id == MapId::Runtime;
}

Status MemoryMaps::check_index(MapId id, const void* key) const {
    if (!is_array(id)) return ok_status();
    uint32_t idx;
    std::memcpy(&idx, key, sizeof(idx));
    uint32_t cap = info(id).capacity ? info(id).capacity : max_vms_;
    if (idx >= cap) return Error{E2BIG, std::string(map_name(id)) + ": index " + std::to_string(idx) + " out of range"};
    return ok_status();
}

Status MemoryMaps::count_write(MapId id) {
    ++writes_;
    if (fail_at_.erase(writes_)) return Error{EIO, "write " + std::string(map_name(id)) + ": Input/output error (injected)"};
    return ok_status();
}

Status MemoryMaps::update(MapId id, const void* key, const void* value) {
    if (auto s = check_index(id, key); !s) return s;
    if (auto s = count_write(id); !s) return s;
    Bytes v = bytes(value, info(id).value_size);
    Bytes k = bytes(key, info(id).key_size);
    if (id == MapId::Ifaces && all_zero(v)) data_[id].erase(k);  // an empty sg_ifaces entry is no entry
    else data_[id][k] = v;
    return ok_status();
}

Status MemoryMaps::remove(MapId id, const void* key) {
    if (auto s = count_write(id); !s) return s;
    if (is_array(id)) {
        data_[id][bytes(key, info(id).key_size)] = Bytes(info(id).value_size, 0);
        return ok_status();
    }
    data_[id].erase(bytes(key, info(id).key_size));
    return ok_status();
}

Result<bool> MemoryMaps::lookup(MapId id, const void* key, void* value) {
    if (auto s = check_index(id, key); !s) return s.error();
    if (id == MapId::Auto) {
        auto it = autos_.find(bytes(key, sizeof(sg_auto_key)));
        if (it == autos_.end()) return false;
        std::memcpy(value, &it->second, sizeof(sg_auto_vm));
        return true;
    }
    auto& m = data_[id];
    auto it = m.find(bytes(key, info(id).key_size));
    if (it == m.end()) {
        std::memset(value, 0, info(id).value_size);
        return is_array(id);  // array elements always exist
    }
    std::memcpy(value, it->second.data(), it->second.size());
    return true;
}

Result<std::vector<uint8_t>> MemoryMaps::keys(MapId id) {
    std::vector<uint8_t> out;
    if (id == MapId::Auto) {
        for (const auto& [k, v] : autos_) out.insert(out.end(), k.begin(), k.end());
        return out;
    }
    for (const auto& [k, v] : data_[id]) out.insert(out.end(), k.begin(), k.end());
    return out;
}

Status MemoryMaps::reset_slot(uint32_t slot) {
    if (auto s = count_write(MapId::VmBucket); !s) return s;
    data_[MapId::VmBucket].erase(bytes(&slot, sizeof(slot)));
    stats_.erase(slot);
    ++resets;
    return ok_status();
}

Status MemoryMaps::vm_stats(uint32_t n, std::vector<sg_vm_stats>& out) {
    out.assign(std::min(n, max_vms_), sg_vm_stats{});
    for (const auto& [slot, s] : stats_)
        if (slot < out.size()) out[slot] = s;
    return ok_status();
}

Result<sg_vm_stats> MemoryMaps::vm_stats_one(uint32_t slot) {
    if (slot >= max_vms_) return Error{E2BIG, "sg_vm_stats: slot out of range"};
    auto it = stats_.find(slot);
    return it == stats_.end() ? sg_vm_stats{} : it->second;
}

Status MemoryMaps::auto_entries(AutoEntries& out) {
    out.clear();
    for (const auto& [k, v] : autos_) {
        sg_auto_key key;
        std::memcpy(&key, k.data(), sizeof(key));
        out.emplace_back(key, v);
    }
    return ok_status();
}

Status MemoryMaps::vm_buckets(uint32_t n, std::vector<sg_bucket>& out) {
    out.assign(std::min(n, max_vms_), sg_bucket{});
    for (const auto& [k, v] : data_[MapId::VmBucket]) {
        uint32_t slot;
        std::memcpy(&slot, k.data(), sizeof slot);
        if (slot < out.size()) std::memcpy(&out[slot], v.data(), sizeof(sg_bucket));
    }
    return ok_status();
}

// Key order stands in for the kernel's bucket order; the cursor remembers the last key.
Status MemoryMaps::conn_entries(smtpgov::daemon::BatchCursor& c, uint32_t max, smtpgov::daemon::ConnEntries& out) {
    ++conn_batches;
    out.clear();
    auto& m = data_[MapId::Conn];
    auto it = c.started ? m.upper_bound(c.after) : m.begin();
    c.started = true;
    for (; it != m.end() && out.size() < max; ++it) {
        sg_conn_key k;
        sg_conn v;
        std::memcpy(&k, it->first.data(), sizeof k);
        std::memcpy(&v, it->second.data(), sizeof v);
        out.emplace_back(k, v);
        c.after = it->first;
    }
    c.done = it == m.end();
    return ok_status();
}

void MemoryMaps::set_auto(const sg_auto_key& k, const sg_auto_vm& v) { autos_[bytes(&k, sizeof(k))] = v; }
void MemoryMaps::evict_auto(const sg_auto_key& k) { autos_.erase(bytes(&k, sizeof(k))); }

size_t MemoryMaps::count(MapId id) const {
    if (id == MapId::Auto) return autos_.size();
    auto it = data_.find(id);
    if (it == data_.end()) return 0;
    if (!is_array(id)) return it->second.size();
    size_t n = 0;
    for (const auto& [k, v] : it->second) n += !all_zero(v);
    return n;
}

}  // namespace sgt
