#include "daemon/sweeper.h"

#include <algorithm>

#include "core/blocklists.h"
#include "daemon/log.h"

namespace smtpgov::daemon {
namespace {

constexpr size_t kMaxSamples = 5;  // reply lines kept per VM
constexpr uint64_t kTriggerMaxAgeNs = 2'000'000'000;

uint64_t since(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

// A VM not followed yet went over its limit: a burst starts. One entry per burst however
// fast it floods (a flooding VM stays hot), at most kMaxHot followed at once.
void log_burst(const std::string& id, const Vm* vm, Tier tier, uint64_t over) {
    log::write(log::Entry(log::Level::Info, log::Event::OverLimit,
                          "vm " + id + ": over its limit (" + std::to_string(over) + " SYNs over since the last report)")
                   .about(id, vm ? vm->tenant : "", std::string(to_string(tier)))
                   .with("SMTPGOV_OVER_SYN", std::to_string(over)));
}

}  // namespace

void Sweeper::feed_one(const std::string& id, VmRuntime& rt, const sg_vm_stats& cur, uint64_t now_ns, int64_t now_ms,
                       bool scored) {
    Deltas d = feed(rt, cur, now_ns);
    if (!scored) return;
    if (d.over) tiers_.observe(id, Signal::OverLimit, static_cast<double>(d.over), now_ms);
    if (d.spoofed) tiers_.observe(id, Signal::Spoofed, static_cast<double>(d.spoofed), now_ms);
    if (d.rejects) tiers_.observe(id, Signal::RemoteReject, static_cast<double>(d.rejects), now_ms);
    if (d.over || d.spoofed || d.rejects) dirty_ = true;
}

Status Sweeper::sweep(uint64_t now_ns, int64_t now_ms) {
    const uint32_t hw = vms_.slots().high_water();
    if (auto s = maps_.vm_stats(hw, stats_buf_); !s) return s;
    for (uint32_t slot = 0; slot < hw && slot < stats_buf_.size(); ++slot)
        if (const Vm* vm = vms_.at_slot(slot)) feed_one(vm->id, *vms_.slot_runtime(slot), stats_buf_[slot], now_ns, now_ms);
    // connection evictions are per owner, in its bucket
    if (auto s = maps_.vm_buckets(hw, bucket_buf_); !s) log::error(s.error().message);
    for (uint32_t slot = 0; slot < hw && slot < bucket_buf_.size(); ++slot)
        if (VmRuntime* rt = vms_.slot_runtime(slot)) rt->conn_evicted = bucket_buf_[slot].conn_evicted;
    if (auto s = maps_.auto_entries(auto_buf_); !s) log::error(s.error().message);
    std::set<std::string> seen;
    for (const auto& [key, v] : auto_buf_) {
        AutoVm* a = nullptr;
        std::string id = vms_.note_auto(key, &a);
        feed_one(id, a->rt, v.stats, now_ns, now_ms, scored_(key));
        a->rt.conn_evicted = v.bucket.conn_evicted;
        seen.insert(id);
    }
    vms_.prune_autos(seen, [this](const std::string& id) { return tiers_.tier(id) != Tier::Ok || hot_autos_.count(id); });
    if (auto g = maps_.global()) results_ = *g;
    else log::error(g.error().message);
    return ok_status();
}

void Sweeper::read_slot(uint32_t slot, uint64_t now_ns, int64_t now_ms) {
    const Vm* vm = vms_.at_slot(slot);
    if (!vm) return;
    auto s = maps_.vm_stats_one(slot);
    if (!s) {
        log::error(s.error().message);
        return;
    }
    feed_one(vm->id, *vms_.slot_runtime(slot), *s, now_ns, now_ms);
}

void Sweeper::read_auto(const std::string& id, uint64_t now_ns, int64_t now_ms) {
    const AutoVm* a = vms_.find_auto(id);
    if (!a) return;
    sg_auto_vm v{};
    auto found = maps_.lookup(MapId::Auto, &a->key, &v);
    if (found && *found) feed_one(id, *vms_.runtime(id), v.stats, now_ns, now_ms, scored_(a->key));
}

Result<sg_vm_stats> Sweeper::read(const std::string& id) {
    if (auto slot = vms_.slot_of(id); slot && vms_.vm(id)) return maps_.vm_stats_one(*slot);
    const AutoVm* a = vms_.find_auto(id);
    if (!a) return Error{ENOENT, "no VM " + id};
    sg_auto_vm v{};
    auto found = maps_.lookup(MapId::Auto, &a->key, &v);
    if (!found) return found.error();
    if (!*found) return a->rt.last;  // evicted from the datapath: its last reading
    return v.stats;
}

Sweeper::EventOutcome Sweeper::on_event(const sg_event& ev, uint64_t now_ns, int64_t now_ms) {
    ++events_received_;
    EventOutcome out;
    VmRuntime* rt = nullptr;
    std::string id;
    if (ev.slot != SG_SLOT_NONE) {
        rt = vms_.slot_runtime(ev.slot);
        if (const Vm* vm = vms_.at_slot(ev.slot)) id = vm->id;
    } else {
        AutoVm* a = nullptr;
        id = vms_.note_auto(ev.key, &a);
        rt = &a->rt;
    }
    if (!rt) return out;
    if (ev.type == SG_EV_REPLY) {
        std::string line(ev.text, std::min<size_t>(ev.text_len, SG_REPLY_TEXT_MAX));
        if (auto r = recognise_refusal(line); r && r->kind == Refusal::Kind::Blocklist) out.blocklist = r->name;
        rt->samples.push_back(std::move(line));
        if (rt->samples.size() > kMaxSamples) rt->samples.erase(rt->samples.begin());
        return out;
    }
    if (ev.type != SG_EV_OVER_LIMIT) return out;
    if (ev.slot == SG_SLOT_NONE && !scored_(ev.key)) return out;  // a gateway's aggregate cap: no VM to escalate
    if (!rt->trigger_ns || since(ev.ts_ns, rt->trigger_ns) > kTriggerMaxAgeNs) rt->trigger_ns = ev.ts_ns;
    const uint64_t over = over_since_event(*rt, ev.count);
    const bool room = hot_slots_.size() + hot_autos_.size() < kMaxHot;
    if (room && !(ev.slot != SG_SLOT_NONE ? hot_slots_.count(ev.slot) : hot_autos_.count(id)))
        log_burst(id, vms_.vm(id), tiers_.tier(id), over);
    if (ev.slot != SG_SLOT_NONE) {
        if (room || hot_slots_.count(ev.slot)) hot_slots_[ev.slot] = now_ns + kHotWindowNs;
        read_slot(ev.slot, now_ns, now_ms);
    } else {
        if (room || hot_autos_.count(id)) hot_autos_[id] = now_ns + kHotWindowNs;
        read_auto(id, now_ns, now_ms);
    }
    out.over_limit = id;
    return out;
}

std::vector<std::string> Sweeper::hot_ids() const {
    std::vector<std::string> out;
    for (const auto& [slot, until] : hot_slots_)
        if (const Vm* vm = vms_.at_slot(slot)) out.push_back(vm->id);
    for (const auto& [id, until] : hot_autos_) out.push_back(id);
    return out;
}

void Sweeper::hot_tick(uint64_t now_ns, int64_t now_ms) {
    for (auto it = hot_slots_.begin(); it != hot_slots_.end();) {
        if (it->second < now_ns) {
            if (VmRuntime* rt = vms_.slot_runtime(it->first)) rt->trigger_ns = 0;  // no escalation came of it
            it = hot_slots_.erase(it);
            continue;
        }
        read_slot(it->first, now_ns, now_ms);
        ++it;
    }
    for (auto it = hot_autos_.begin(); it != hot_autos_.end();) {
        if (it->second < now_ns) {
            if (VmRuntime* rt = vms_.runtime(it->first)) rt->trigger_ns = 0;
            it = hot_autos_.erase(it);
            continue;
        }
        read_auto(it->first, now_ns, now_ms);
        ++it;
    }
}

}  // namespace smtpgov::daemon
