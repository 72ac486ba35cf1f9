#include "kern/datapath.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "smtpgov/abi.h"
#include "smtpgov.skel.h"  // only this translation unit embeds the BPF object

namespace smtpgov::kern {
namespace {

// The skeleton's typed member for each map id (kMaps); open_skeleton checks the names.
bpf_map* skel_map(const smtpgov_bpf* s, MapId id) {
    switch (id) {
    case MapId::Ifaces: return s->maps.sg_ifaces;
    case MapId::VmV4: return s->maps.sg_vm_v4;
    case MapId::VmV6: return s->maps.sg_vm_v6;
    case MapId::VmPolicy: return s->maps.sg_vm_policy;
    case MapId::Defaults: return s->maps.sg_defaults;
    case MapId::VmBucket: return s->maps.sg_vm_bucket;
    case MapId::VmStats: return s->maps.sg_vm_stats;
    case MapId::Auto: return s->maps.sg_auto;
    case MapId::AutoPolicy: return s->maps.sg_auto_policy;
    case MapId::Global: return s->maps.sg_global;
    case MapId::Events: return s->maps.sg_events;
    case MapId::IfacesBig: return s->maps.sg_ifaces_big;
    case MapId::Runtime: return s->maps.sg_runtime;
    case MapId::Conn: return s->maps.sg_conn;
    case MapId::ConnRing: return s->maps.sg_conn_ring;
    case MapId::ConnNat: return s->maps.sg_conn_nat;
    case MapId::Count: break;
    }
    return nullptr;
}

// kMaps and the BPF object name the same maps: a renamed map fails the load, not a lookup.
Status check_map_table(const smtpgov_bpf* s) {
    for (const MapInfo& m : kMaps) {
        bpf_map* map = skel_map(s, m.id);
        if (!map || m.name != bpf_map__name(map))
            return Error::msg("BPF object has no map " + std::string(m.name) + " at its MapId");
    }
    return ok_status();
}

std::optional<MapId> map_id(std::string_view name) {
    for (const MapInfo& m : kMaps)
        if (m.name == name) return m.id;
    return std::nullopt;
}

// One map of an unloaded copy of the object: its rodata copied from this instance's
// (same ports), every other map replaced by this instance's map.
Status share_with_clone(const smtpgov_bpf* skel, bpf_map* m) {
    const std::string name = bpf_map__name(m);
    if (name.ends_with(".rodata")) {
        size_t sz = 0;
        const void* init = bpf_map__initial_value(skel->maps.rodata, &sz);
        if (!init || bpf_map__set_initial_value(m, init, sz) != 0) return Error::msg("copy rodata of " + name);
        return ok_status();
    }
    auto id = map_id(name);
    if (!id) return Error::msg("BPF object copy has an unknown map " + name);
    if (int err = bpf_map__reuse_fd(m, bpf_map__fd(skel_map(skel, *id))); err)
        return Error::from_errno("share map " + name, -err);
    return ok_status();
}

// A pin is reused only when it has the shape this build and config expect;
// otherwise the kernel would run programs against a map of another layout.
Status check_compatible(bpf_map* m, int fd, const std::string& path) {
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return Error::from_errno("inspect " + path, errno);
    auto mismatch = [&](const char* what, unsigned long have, unsigned long want) {
        return Error::msg("pinned map " + path + " has " + what + " " + std::to_string(have) +
                          ", this build/config needs " + std::to_string(want) +
                          " (run `smtpgovd --remove` to start with fresh maps, or restore the old max_vms)");
    };
    if (info.type != static_cast<__u32>(bpf_map__type(m))) return mismatch("type", info.type, bpf_map__type(m));
    if (info.key_size != bpf_map__key_size(m)) return mismatch("key_size", info.key_size, bpf_map__key_size(m));
    if (info.value_size != bpf_map__value_size(m))
        return mismatch("value_size", info.value_size, bpf_map__value_size(m));
    if (info.max_entries != bpf_map__max_entries(m))
        return mismatch("max_entries", info.max_entries, bpf_map__max_entries(m));
    if (info.map_flags != bpf_map__map_flags(m)) return mismatch("map_flags", info.map_flags, bpf_map__map_flags(m));
    return ok_status();
}

uint32_t prog_id(int fd) {
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return 0;
    return info.id;
}

std::string load_error(int err) {
    if (err == EPERM || err == EACCES)
        return "loading BPF programs needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for pins)";
    return std::string("load BPF object: ") + std::strerror(err);
}

}  // namespace

int possible_cpus() {
    static const int n = [] {
        int c = libbpf_num_possible_cpus();
        return c > 0 ? c : 1;
    }();
    return n;
}

Datapath::Datapath(Datapath&& o) noexcept
    : skel_(std::exchange(o.skel_, nullptr)), opts_(std::move(o.opts_)), pins_(std::move(o.pins_)),
      new_maps_(std::move(o.new_maps_)), replaced_maps_(std::move(o.replaced_maps_)) {}

Datapath& Datapath::operator=(Datapath&& o) noexcept {
    if (this != &o) {
        if (skel_) smtpgov_bpf__destroy(skel_);
        skel_ = std::exchange(o.skel_, nullptr);
        opts_ = std::move(o.opts_);
        pins_ = std::move(o.pins_);
        new_maps_ = std::move(o.new_maps_);
        replaced_maps_ = std::move(o.replaced_maps_);
    }
    return *this;
}

Datapath::~Datapath() {
    if (skel_) smtpgov_bpf__destroy(skel_);
}

bpf_map* Datapath::map(MapId id) const { return skel_map(skel_, id); }

Status Datapath::open_skeleton() {
    if (opts_.max_vms == 0) opts_.max_vms = SG_DEFAULT_MAX_VMS;
    if (opts_.smtp_ports.empty()) opts_.smtp_ports = {25, 465, 587};
    if (opts_.smtp_ports.size() > SG_MAX_PORTS)
        return Error::msg("at most " + std::to_string(SG_MAX_PORTS) + " smtp_ports are supported");
    skel_ = smtpgov_bpf__open();
    if (!skel_) return Error::from_errno("open BPF object", errno);
    if (auto s = check_map_table(skel_); !s) return s;
    for (MapId id : {MapId::VmPolicy, MapId::VmBucket, MapId::VmStats})
        if (int err = bpf_map__set_max_entries(map(id), opts_.max_vms); err)
            return Error::from_errno("size " + std::string(map_name(id)), -err);
    auto& cfg = const_cast<sg_static_cfg&>(skel_->rodata->sg_cfg);
    for (size_t i = 0; i < SG_MAX_PORTS; ++i) cfg.ports[i] = i < opts_.smtp_ports.size() ? opts_.smtp_ports[i] : 0;
    cfg.n_ports = static_cast<__u32>(opts_.smtp_ports.size());
    if (opts_.bench_stop >= SG_STOP_MAX || (opts_.bench_stop && !opts_.bpffs.empty()))
        return Error::msg("bench_stop is for an unpinned benchmark instance only");
    cfg.bench_stop = opts_.bench_stop;
    if (opts_.bench_prealloc_conn) {
        if (!opts_.bpffs.empty()) return Error::msg("bench_prealloc_conn is for an unpinned benchmark instance only");
        for (MapId id : {MapId::Conn, MapId::ConnRing})
            if (int err = bpf_map__set_map_flags(map(id), 0); err)
                return Error::from_errno("preallocate " + std::string(map_name(id)), -err);
    }
    return ok_status();
}

Status Datapath::reuse_pins() {
    for (const MapInfo& info : kMaps) {
        std::string path = pins_.map(info.name);
        auto fd = open_pin(path);
        if (!fd) {
            if (fd.error().errnum != ENOENT) return fd.error();
            new_maps_.emplace_back(info.name);
            continue;
        }
        bpf_map* m = map(info.id);
        if (auto s = check_compatible(m, fd->get(), path); !s) {
            // Datapath totals only (a build that adds a result): a fresh map replaces the
            // pin at commit, so an upgrade over live pins keeps working. Per-VM state
            // and policy maps of another shape are refused, never silently dropped.
            if (info.id != MapId::Global) return s;
            new_maps_.emplace_back(info.name);
            replaced_maps_.emplace_back(info.name);
            continue;
        }
        if (int err = bpf_map__reuse_fd(m, fd->get()); err) return Error::from_errno("reuse " + path, -err);
    }
    return ok_status();
}

Status Datapath::reuse_fds(const Datapath& from) {
    for (const MapInfo& info : kMaps)
        if (int err = bpf_map__reuse_fd(map(info.id), from.map_fd(info.id)); err)
            return Error::from_errno("reuse map " + std::string(info.name), -err);
    return ok_status();
}

Status Datapath::finish_load() {
    if (int err = smtpgov_bpf__load(skel_); err) return Error{-err, load_error(-err)};
    return ok_status();
}

Result<Datapath> Datapath::load(const DatapathOptions& opts) {
    Datapath dp;
    dp.opts_ = opts;
    dp.pins_ = PinLayout(opts.bpffs);
    if (auto s = dp.open_skeleton(); !s) return s.error();
    if (dp.pinned())
        if (auto s = dp.reuse_pins(); !s) return s.error();
    if (auto s = dp.finish_load(); !s) return s.error();
    return dp;
}

Result<Datapath> Datapath::reload(const std::vector<uint16_t>& smtp_ports) const {
    Datapath dp;
    dp.opts_ = opts_;
    dp.opts_.smtp_ports = smtp_ports;
    dp.pins_ = pins_;
    dp.new_maps_ = new_maps_;
    dp.replaced_maps_ = replaced_maps_;
    if (auto s = dp.open_skeleton(); !s) return s.error();
    if (auto s = dp.reuse_fds(*this); !s) return s.error();
    if (auto s = dp.finish_load(); !s) return s.error();
    return dp;
}

Status Datapath::commit_pins() {
    for (size_t i = 0; i < new_maps_.size(); ++i) {
        auto id = map_id(new_maps_[i]);
        std::string path = pins_.map(new_maps_[i]);
        if (std::find(replaced_maps_.begin(), replaced_maps_.end(), new_maps_[i]) != replaced_maps_.end())
            if (auto s = unpin(path); !s) return s;  // the old-shape map goes with its old programs
        int err = id ? bpf_map__pin(map(*id), path.c_str()) : -ENOENT;
        if (err) {
            new_maps_.erase(new_maps_.begin(), new_maps_.begin() + static_cast<long>(i));
            return Error::from_errno("pin " + path, -err);
        }
    }
    new_maps_.clear();
    replaced_maps_.clear();
    return ok_status();
}

int Datapath::map_fd(MapId id) const { return bpf_map__fd(map(id)); }
uint32_t Datapath::map_max_entries(MapId id) const { return bpf_map__max_entries(map(id)); }
int Datapath::xdp_prog_fd() const { return bpf_program__fd(skel_->progs.smtpgov_xdp); }
int Datapath::tc_prog_fd() const { return bpf_program__fd(skel_->progs.smtpgov_tc_reply); }
uint32_t Datapath::xdp_prog_id() const { return prog_id(xdp_prog_fd()); }
uint32_t Datapath::tc_prog_id() const { return prog_id(tc_prog_fd()); }

Result<BpfObjectPtr> Datapath::open_clone() const {
    size_t size = 0;
    const void* bytes = smtpgov_bpf__elf_bytes(&size);
    LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "smtpgov_bpf");
    BpfObjectPtr obj(bpf_object__open_mem(bytes, size, &oo));
    if (!obj) return Error::from_errno("open BPF object copy", errno);
    bpf_map* m = nullptr;
    bpf_object__for_each_map(m, obj.get()) {
        if (auto s = share_with_clone(skel_, m); !s) return s.error();
    }
    if (bpf_program* tc = bpf_object__find_program_by_name(obj.get(), std::string(kTcProgName).c_str()))
        bpf_program__set_autoload(tc, false);
    return obj;
}

Status Datapath::remove_map_pins(const PinLayout& pins) {
    for (const auto& name : list_pins(pins.maps_dir()))
        if (auto s = unpin(pins.maps_dir() + "/" + name); !s) return s;
    return ok_status();
}

}  // namespace smtpgov::kern
