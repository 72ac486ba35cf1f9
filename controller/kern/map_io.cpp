#include "kern/map_io.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>

namespace smtpgov::kern {
namespace {

constexpr uint32_t kChunk = 4096;
constexpr uint32_t kParallelFrom = 16384;
constexpr size_t kStatsStride = (sizeof(sg_vm_stats) + 7) / 8 * 8;  // per-CPU values are 8-byte aligned

std::string what(MapId id, const char* op) { return std::string(op) + " " + std::string(map_name(id)); }

// MapId::Ifaces is one logical table kept in two kernel maps (abi.h): the array
// sg_ifaces for ifindex < SG_MAX_IFACES, where an all-zero value means "no entry",
// and the hash sg_ifaces_big for larger ifindexes.
struct Route {
    MapId id;
    bool array_slot;  // an sg_ifaces array element: delete = write an empty entry
};

Route route(MapId id, const void* key) {
    if (id != MapId::Ifaces) return {id, false};
    uint32_t ifindex;
    std::memcpy(&ifindex, key, sizeof(ifindex));
    return ifindex < SG_MAX_IFACES ? Route{MapId::Ifaces, true} : Route{MapId::IfacesBig, false};
}

// Interfaces with an entry in either map.
Result<std::vector<uint32_t>> iface_keys(const Datapath& dp) {
    std::vector<uint32_t> keys(SG_MAX_IFACES), out;
    std::vector<sg_iface> values(SG_MAX_IFACES);
    __u32 count = SG_MAX_IFACES, token = 0;
    LIBBPF_OPTS(bpf_map_batch_opts, bo);
    int err = bpf_map_lookup_batch(dp.map_fd(MapId::Ifaces), nullptr, &token, keys.data(), values.data(), &count, &bo);
    if (err && errno != ENOENT) return Error::from_errno(what(MapId::Ifaces, "batch read"), errno);
    for (__u32 i = 0; i < count; ++i)
        if (values[i].flags) out.push_back(keys[i]);
    auto big = map_keys<uint32_t>(dp, MapId::IfacesBig);
    if (!big) return big.error();
    out.insert(out.end(), big->begin(), big->end());
    return out;
}

void sum_cpus(const unsigned char* base, sg_vm_stats& out) {
    out = sg_vm_stats{};
    for (int c = 0; c < possible_cpus(); ++c) {
        sg_vm_stats one;
        std::memcpy(&one, base + c * kStatsStride, sizeof(one));
        add_stats(out, one);
    }
}

// Reads slots [from, to) of sg_vm_stats into out[from..to).
Status read_stats_range(int fd, uint32_t from, uint32_t to, std::vector<uint32_t>& keys,
                        std::vector<unsigned char>& values, std::vector<sg_vm_stats>& out) {
    const size_t per_key = kStatsStride * possible_cpus();
    keys.resize(kChunk);
    values.resize(per_key * kChunk);
    uint32_t done = from;
    __u32 token = from ? from - 1 : 0;  // the batch token is the last key already read
    bool first = from == 0;
    while (done < to) {
        __u32 count = std::min(kChunk, to - done);
        LIBBPF_OPTS(bpf_map_batch_opts, bo);
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data(), values.data(), &count, &bo);
        if (err && errno != ENOENT) return Error::from_errno(what(MapId::VmStats, "batch read"), errno);
        for (__u32 i = 0; i < count; ++i)
            if (keys[i] >= from && keys[i] < to) sum_cpus(values.data() + i * per_key, out[keys[i]]);
        done += count;
        first = false;
        if (err || count == 0) break;  // ENOENT: the end of the array
    }
    return ok_status();
}

}  // namespace

void add_stats(sg_vm_stats& into, const sg_vm_stats& from) {
    for (int i = 0; i < SG_VERDICT_MAX; ++i) into.syn[i] += from.syn[i];
    into.spoofed += from.spoofed;
    into.rst_sent += from.rst_sent;
    for (int i = 0; i < SG_REPLY_MAX; ++i) into.replies[i] += from.replies[i];
}

Status MapReader::vm_stats(const Datapath& dp, uint32_t n, std::vector<sg_vm_stats>& out) {
    const int fd = dp.map_fd(MapId::VmStats);
    n = std::min(n, dp.max_vms());
    out.resize(n);
    // The kernel copies per-CPU values element by element (~300 ns each): large arrays
    // are read in two halves at once.
    if (n < kParallelFrom) return read_stats_range(fd, 0, n, keys_, values_, out);
    const uint32_t half = n / 2;
    Status second = ok_status();
    std::thread helper([&] { second = read_stats_range(fd, half, n, keys2_, values2_, out); });
    Status first = read_stats_range(fd, 0, half, keys_, values_, out);
    helper.join();
    return first ? second : first;
}

Result<sg_vm_stats> MapReader::vm_stats_one(const Datapath& dp, uint32_t slot) {
    values_.resize(kStatsStride * possible_cpus());
    if (bpf_map_lookup_elem(dp.map_fd(MapId::VmStats), &slot, values_.data()) != 0)
        return Error::from_errno(what(MapId::VmStats, "read"), errno);
    sg_vm_stats s;
    sum_cpus(values_.data(), s);
    return s;
}

Status MapReader::auto_entries(const Datapath& dp, std::vector<std::pair<sg_auto_key, sg_auto_vm>>& out) {
    const int fd = dp.map_fd(MapId::Auto);
    out.clear();
    uint32_t chunk = 1024;
    __u32 token = 0;
    bool first = true;
    for (;;) {
        auto_keys_.resize(chunk);
        auto_values_.resize(chunk);
        __u32 count = chunk;
        LIBBPF_OPTS(bpf_map_batch_opts, bo);
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, auto_keys_.data(), auto_values_.data(),
                                       &count, &bo);
        if (err && errno == ENOSPC && chunk < (1u << 20)) {  // a hash bucket larger than the chunk
            chunk *= 2;
            continue;
        }
        if (err && errno != ENOENT) return Error::from_errno(what(MapId::Auto, "batch read"), errno);
        for (__u32 i = 0; i < count; ++i) out.emplace_back(auto_keys_[i], auto_values_[i]);
        first = false;
        if (err) break;  // ENOENT: all buckets visited
    }
    return ok_status();
}

Result<std::array<uint64_t, SG_RES_MAX>> MapReader::global(const Datapath& dp) {
    const int fd = dp.map_fd(MapId::Global);
    std::array<uint64_t, SG_RES_MAX> out{};
    std::vector<uint64_t> per_cpu(possible_cpus());
    for (uint32_t k = 0; k < SG_RES_MAX; ++k) {
        if (bpf_map_lookup_elem(fd, &k, per_cpu.data()) != 0)
            return Error::from_errno(what(MapId::Global, "read"), errno);
        for (uint64_t v : per_cpu) out[k] += v;
    }
    return out;
}

Status MapReader::vm_buckets(const Datapath& dp, uint32_t n, std::vector<sg_bucket>& out) {
    const int fd = dp.map_fd(MapId::VmBucket);
    n = std::min(n, dp.max_vms());
    out.assign(n, sg_bucket{});
    keys_.resize(kChunk);
    std::vector<sg_bucket> values(kChunk);
    __u32 token = 0;
    for (uint32_t done = 0; done < n;) {
        __u32 count = std::min(kChunk, n - done);
        LIBBPF_OPTS(bpf_map_batch_opts, bo);
        int err = bpf_map_lookup_batch(fd, done ? &token : nullptr, &token, keys_.data(), values.data(), &count, &bo);
        if (err && errno != ENOENT) return Error::from_errno(what(MapId::VmBucket, "batch read"), errno);
        for (__u32 i = 0; i < count; ++i)
            if (keys_[i] < n) out[keys_[i]] = values[i];
        done += count;
        if (err || count == 0) break;
    }
    return ok_status();
}

Status MapReader::conn_entries(const Datapath& dp, bool first, uint32_t& token, uint32_t max,
                               std::vector<std::pair<sg_conn_key, sg_conn>>& out, bool& done) {
    const int fd = dp.map_fd(MapId::Conn);
    out.clear();
    done = false;
    uint32_t chunk = std::max<uint32_t>(max, 1);
    for (;;) {
        conn_keys_.resize(chunk);
        conn_values_.resize(chunk);
        __u32 count = chunk, next = 0;
        LIBBPF_OPTS(bpf_map_batch_opts, bo);
        __u32 in = token;
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &in, &next, conn_keys_.data(), conn_values_.data(),
                                       &count, &bo);
        if (err && errno == ENOSPC && chunk < (1u << 20)) {  // one hash bucket larger than the chunk
            chunk *= 2;
            continue;
        }
        if (err && errno != ENOENT) return Error::from_errno(what(MapId::Conn, "batch read"), errno);
        for (__u32 i = 0; i < count; ++i) out.emplace_back(conn_keys_[i], conn_values_[i]);
        done = err != 0;  // ENOENT: every bucket visited
        token = next;
        return ok_status();
    }
}

Status map_update(const Datapath& dp, MapId id, const void* key, const void* value) {
    id = route(id, key).id;
    if (bpf_map_update_elem(dp.map_fd(id), key, value, BPF_ANY) != 0) return Error::from_errno(what(id, "write"), errno);
    return ok_status();
}

Status map_delete(const Datapath& dp, MapId id, const void* key) {
    Route r = route(id, key);
    if (r.array_slot) {
        sg_iface none{};
        return map_update(dp, id, key, &none);
    }
    if (bpf_map_delete_elem(dp.map_fd(r.id), key) != 0 && errno != ENOENT)
        return Error::from_errno(what(r.id, "delete from"), errno);
    return ok_status();
}

Result<bool> map_lookup(const Datapath& dp, MapId id, const void* key, void* value) {
    Route r = route(id, key);
    if (bpf_map_lookup_elem(dp.map_fd(r.id), key, value) == 0)
        return !r.array_slot || static_cast<const sg_iface*>(value)->flags != 0;
    if (errno == ENOENT) return false;
    return Error::from_errno(what(r.id, "read"), errno);
}

template <typename K>
Result<std::vector<K>> map_keys(const Datapath& dp, MapId id) {
    if constexpr (std::is_same_v<K, uint32_t>)
        if (id == MapId::Ifaces) return iface_keys(dp);
    std::vector<K> keys;
    K cur{}, next{};
    const int fd = dp.map_fd(id);
    bool first = true;
    while (bpf_map_get_next_key(fd, first ? nullptr : &cur, &next) == 0) {
        keys.push_back(next);
        cur = next;
        first = false;
        if (keys.size() > (1u << 22)) return Error::msg(what(id, "list") + ": too many keys");
    }
    if (errno != ENOENT) return Error::from_errno(what(id, "list"), errno);
    return keys;
}

template Result<std::vector<uint32_t>> map_keys<uint32_t>(const Datapath&, MapId);
template Result<std::vector<sg_lpm_v4>> map_keys<sg_lpm_v4>(const Datapath&, MapId);
template Result<std::vector<sg_lpm_v6>> map_keys<sg_lpm_v6>(const Datapath&, MapId);
template Result<std::vector<sg_auto_key>> map_keys<sg_auto_key>(const Datapath&, MapId);

Status reset_slot(const Datapath& dp, uint32_t slot) {
    sg_bucket b{};
    if (auto s = map_update(dp, MapId::VmBucket, &slot, &b); !s) return s;
    std::vector<unsigned char> zeros(kStatsStride * possible_cpus(), 0);
    return map_update(dp, MapId::VmStats, &slot, zeros.data());
}

}  // namespace smtpgov::kern
