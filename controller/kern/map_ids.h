// The one table of smtpgov's kernel maps: the id the controller uses, the name in the
// BPF object (and under <bpffs>/maps), and the capacity status and metrics report.
// No libbpf here, so pure-logic code and unit tests can name maps too.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "smtpgov/abi.h"

namespace smtpgov::kern {

enum class MapId : unsigned {
    Ifaces, VmV4, VmV6, VmPolicy, Defaults, VmBucket, VmStats, Auto, AutoPolicy, Global, Events, IfacesBig,
    Runtime, Conn, ConnRing, ConnNat, Count
};

struct MapInfo {
    MapId id;
    std::string_view name;
    uint32_t capacity;    // 0: sized at load (max_vms) or not a keyed map
    uint32_t key_size;    // 0: no keys (ring buffer)
    uint32_t value_size;  // per CPU for per-CPU maps
};

inline constexpr std::array<MapInfo, static_cast<size_t>(MapId::Count)> kMaps{{
    {MapId::Ifaces, "sg_ifaces", SG_MAX_IFACES, sizeof(__u32), sizeof(sg_iface)},
    {MapId::VmV4, "sg_vm_v4", SG_MAX_PREFIXES, sizeof(sg_lpm_v4), sizeof(__u32)},
    {MapId::VmV6, "sg_vm_v6", SG_MAX_PREFIXES, sizeof(sg_lpm_v6), sizeof(__u32)},
    {MapId::VmPolicy, "sg_vm_policy", 0, sizeof(__u32), sizeof(sg_vm_policy)},
    {MapId::Defaults, "sg_defaults", SG_DEFAULTS_MAX, sizeof(__u32), sizeof(sg_vm_policy)},
    {MapId::VmBucket, "sg_vm_bucket", 0, sizeof(__u32), sizeof(sg_bucket)},
    {MapId::VmStats, "sg_vm_stats", 0, sizeof(__u32), sizeof(sg_vm_stats)},
    {MapId::Auto, "sg_auto", SG_MAX_AUTO, sizeof(sg_auto_key), sizeof(sg_auto_vm)},
    {MapId::AutoPolicy, "sg_auto_policy", SG_MAX_AUTO, sizeof(sg_auto_key), sizeof(sg_vm_policy)},
    {MapId::Global, "sg_global", SG_RES_MAX, sizeof(__u32), sizeof(__u64)},
    {MapId::Events, "sg_events", 0, 0, 0},
    {MapId::IfacesBig, "sg_ifaces_big", SG_MAX_IFACES_BIG, sizeof(__u32), sizeof(sg_iface)},
    {MapId::Runtime, "sg_runtime", 1, sizeof(__u32), sizeof(sg_runtime)},
    {MapId::Conn, "sg_conn", SG_CONN_MAX, sizeof(sg_conn_key), sizeof(sg_conn)},
    {MapId::ConnRing, "sg_conn_ring", SG_CONN_MAX, sizeof(sg_conn_ring_key), sizeof(sg_conn_key)},
    {MapId::ConnNat, "sg_conn_nat", SG_CONN_MAX, sizeof(sg_conn_nat_key), sizeof(sg_conn_key)},
}};

constexpr std::string_view map_name(MapId id) { return kMaps[static_cast<size_t>(id)].name; }

}  // namespace smtpgov::kern
