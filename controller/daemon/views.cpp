// What reads show: VM views, sweep snapshots, map fills and status. Nothing here
// changes any state.
#include <malloc.h>
#include <unistd.h>

#include <fstream>
#include <unordered_set>

#include "daemon/controller.h"

namespace smtpgov::daemon {
namespace {

// The daemon's memory: resident set (/proc/self/statm) and the heap the allocator has
// handed out (mallinfo2, every arena). `heap_in_use_bytes` is what a leak grows; RSS
// also holds freed heap not yet trimmed and swings with the size of the last large reply.
nlohmann::json memory_json() {
    const struct mallinfo2 mi = ::mallinfo2();
    uint64_t size_pages = 0, resident_pages = 0;
    std::ifstream("/proc/self/statm") >> size_pages >> resident_pages;
    return {{"rss_bytes", resident_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE))},
            {"heap_in_use_bytes", mi.uordblks + mi.hblkhd},
            {"heap_free_bytes", mi.fordblks}};
}

void fill_counters(VmView& v, const VmRuntime* rt) {
    if (!rt) return;
    v.rate = rt->rate;
    for (int i = 0; i < SG_VERDICT_MAX; ++i) v.syn[i] = rt->last.syn[i];
    v.spoofed = rt->last.spoofed;
    v.rst_sent = rt->last.rst_sent;
    for (int i = 0; i < SG_REPLY_MAX; ++i) v.replies[i] = rt->last.replies[i];
    v.conn_evicted = rt->conn_evicted;
}

// `tracked`: the reputation knows the VM (others are at ok with score 0), which spares
// the lookups in a sweep over 100,000 VMs.
void fill_reputation(VmView& v, const Reputation& rep, bool tracked) {
    if (!tracked) return;
    v.tier = rep.tier(v.id);
    v.pin = rep.pin(v.id);
    v.score = rep.score(v.id);
}

VmView registered_view(const Policy& p, const Vm& vm, uint32_t slot, const Reputation& rep, bool tracked,
                       const VmRuntime* rt, bool detail) {
    VmView v;
    v.id = vm.id;
    v.tenant = vm.tenant;
    v.slot = slot;
    v.interface = vm.interface;
    if (detail)
        for (const auto& a : vm.addresses) v.addresses.push_back(a.to_string());
    fill_reputation(v, rep, tracked);
    LimitPair l = limits_for(p, vm, v.tier);
    v.limit_rate = l.rate;
    v.limit_burst = l.burst;
    fill_counters(v, rt);
    return v;
}

VmView auto_view(const Policy& p, const std::string& id, const AutoVm& a, const Reputation& rep, bool tracked) {
    VmView v;
    v.id = id;
    v.auto_entry = true;
    v.named_by = "auto";
    v.interface = a.interface;
    if (!a.address.empty()) v.addresses.push_back(a.address);
    fill_reputation(v, rep, tracked);
    LimitPair l = default_limits_for(p, v.tier);
    v.limit_rate = l.rate;
    v.limit_burst = l.burst;
    fill_counters(v, &a.rt);
    return v;
}

}  // namespace

std::optional<VmView> Controller::view(const std::string& id, bool detail) const {
    auto v = base_view(id, detail);
    if (v) steer_view(*v);
    return v;
}

std::optional<VmView> Controller::base_view(const std::string& id, bool detail) const {
    const Reputation& rep = tiers_.reputation();
    if (const Vm* vm = vms_.vm(id)) {
        VmView v = registered_view(vms_.policy(), *vm, vms_.slot_of(id).value_or(SG_SLOT_NONE), rep, true,
                                   vms_.runtime(id), detail);
        if (detail) name_view(*vm, v);
        return v;
    }
    if (const AutoVm* a = vms_.find_auto(id)) return auto_view(vms_.policy(), id, *a, rep, true);
    return std::nullopt;
}

Snapshot Controller::snapshot(bool detail) const {
    Snapshot s;
    const Reputation& rep = tiers_.reputation();
    std::vector<std::string> ids = rep.vms();
    std::unordered_set<std::string> known(std::make_move_iterator(ids.begin()), std::make_move_iterator(ids.end()));
    s.vms.reserve(vms_.size());
    for (const Vm& vm : vms_.policy().vms)
        s.vms.push_back(registered_view(vms_.policy(), vm, vms_.slot_of(vm.id).value_or(SG_SLOT_NONE), rep,
                                        known.count(vm.id) > 0, vms_.runtime(vm.id), detail));
    for (const auto& [id, a] : vms_.autos()) s.vms.push_back(auto_view(vms_.policy(), id, a, rep, known.count(id) > 0));
    for (VmView& v : s.vms) steer_view(v);
    s.tiers = tier_counts();
    s.results = sweeper_->results();
    s.maps = map_fill();
    s.events_received = sweeper_->events_received();
    s.taken_unix_ms = clock_->wall_ms();
    s.conns = conn_summary();
    s.proxies = proxy_views();
    s.fail_mode = to_string(tiers_.fail_mode());
    return s;
}

std::vector<MapFill> Controller::map_fill() const {
    const EnforcementFill f = enforcer_->fill();
    auto cap = [](MapId id) { return uint64_t{kern::kMaps[static_cast<size_t>(id)].capacity}; };
    return {{std::string(kern::map_name(MapId::VmPolicy)), f.vm_policy, maps_->max_vms()},
            {std::string(kern::map_name(MapId::Auto)), sweeper_->auto_entries(), cap(MapId::Auto)},
            {std::string(kern::map_name(MapId::AutoPolicy)), f.auto_policy, cap(MapId::AutoPolicy)},
            {std::string(kern::map_name(MapId::Ifaces)), f.ifaces, cap(MapId::Ifaces) + cap(MapId::IfacesBig)},
            {std::string(kern::map_name(MapId::VmV4)), f.v4, cap(MapId::VmV4)},
            {std::string(kern::map_name(MapId::VmV6)), f.v6, cap(MapId::VmV6)},
            {std::string(kern::map_name(MapId::Conn)), conn_summary().tracked, cap(MapId::Conn)}};
}

nlohmann::json Controller::status_json() const {
    const auto counts = tier_counts();
    nlohmann::json tiers = nlohmann::json::object();
    size_t n = 0;
    for (Tier t : kAllTiers) {
        tiers[std::string(to_string(t))] = counts[static_cast<size_t>(t)];
        n += counts[static_cast<size_t>(t)];
    }
    const GlobalCounters& results = sweeper_->results();
    nlohmann::json datapath = nlohmann::json::object();
    for (int i = 0; i < SG_RES_MAX; ++i) datapath[std::string(kResultNames[i])] = results[i];
    nlohmann::json maps = nlohmann::json::object();
    for (const MapFill& m : map_fill()) maps[m.name] = {{"used", m.used}, {"max", m.max}};
    nlohmann::json j = {{"version", SMTPGOV_VERSION},
                        {"uptime_s", (clock_->now_ms() - started_ms_) / 1000},
                        {"xdp_mode", opts_.xdp_mode},
                        {"vms", n},
                        {"tiers", tiers},
                        {"sweep", {{"interval_ms", opts_.sweep_interval_ms}, {"last_ms", last_sweep_ms_}, {"count", sweeps_}}},
                        {"datapath", datapath},
                        {"maps", maps},
                        {"events_lost", results[SG_RES_EVENT_LOST]},
                        {"events_received", sweeper_->events_received()},
                        {"smtp_ports", vms_.policy().smtp_ports},
                        {"memory", memory_json()}};
    j.update(steering_status());
    j.update(host_->status());
    return j;
}

}  // namespace smtpgov::daemon
