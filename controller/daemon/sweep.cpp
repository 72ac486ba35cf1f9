// The sweep: batched counter reads, smoothed rates, reputation signals from counter
// deltas, tier transitions written to the maps, events and tickets; plus the fast path
// that answers a ring-buffer over-limit event within milliseconds.
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/timerfd.h>

#include <cmath>
#include <set>

#include "daemon/daemon.h"
#include "daemon/log.h"
#include "metrics/exporter.h"

namespace smtpgov::daemon {
namespace {

constexpr double kRateTauS = 2.0;                     // EWMA time constant of the SYN rate
constexpr uint64_t kHotWindowNs = 300'000'000;         // follow a VM this long after its event
constexpr uint64_t kHotIntervalNs = 5'000'000;         // re-read a hot VM's counters this often
constexpr size_t kMaxSamples = 5;                      // reply lines kept per VM
constexpr uint64_t kTriggerMaxAgeNs = 2'000'000'000;
constexpr int64_t kReputationSaveMs = 10'000;

uint64_t since(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }  // reset: count anew

bool is_ticket(Tier from, Tier to) {
    auto severe = [](Tier t) { return t == Tier::Steered || t == Tier::Blocked; };
    return (severe(to) && to > from) || (severe(from) && to < from);
}

nlohmann::json syn_json(const sg_vm_stats& s) {
    nlohmann::json j = nlohmann::json::object();
    for (int i = 0; i < SG_VERDICT_MAX; ++i) j[std::string(kVerdictNames[i])] = s.syn[i];
    return j;
}

nlohmann::json replies_json(const sg_vm_stats& s) {
    nlohmann::json j = nlohmann::json::object();
    for (int i = 0; i < SG_REPLY_MAX; ++i) j[std::string(kReplyNames[i])] = s.replies[i];
    return j;
}

}  // namespace

void Daemon::feed(const std::string& id, VmRuntime& rt, const sg_vm_stats& cur, uint64_t now_ns, int64_t now_ms) {
    if (!rt.primed) {  // first reading (start, new VM): nothing to compare with yet
        rt.last = cur;
        rt.read_ns = now_ns;
        rt.primed = true;
        return;
    }
    if (now_ns <= rt.read_ns) return;
    double dt = static_cast<double>(now_ns - rt.read_ns) / 1e9;
    uint64_t d_syn = 0;
    for (int i = 0; i < SG_VERDICT_MAX; ++i) d_syn += since(cur.syn[i], rt.last.syn[i]);
    // Refused SYNs (over the bucket, or while blocked) are the over-limit signal.
    uint64_t d_over = since(cur.syn[SG_VERDICT_THROTTLE], rt.last.syn[SG_VERDICT_THROTTLE]) +
                      since(cur.syn[SG_VERDICT_BLOCK], rt.last.syn[SG_VERDICT_BLOCK]);
    uint64_t d_spoof = since(cur.spoofed, rt.last.spoofed);
    uint64_t d_reject = since(cur.replies[SG_REPLY_4XX], rt.last.replies[SG_REPLY_4XX]) +
                        since(cur.replies[SG_REPLY_5XX], rt.last.replies[SG_REPLY_5XX]) +
                        since(cur.replies[SG_REPLY_RST], rt.last.replies[SG_REPLY_RST]);
    double alpha = 1.0 - std::exp(-dt / kRateTauS);
    rt.rate += alpha * (static_cast<double>(d_syn) / dt - rt.rate);
    if (d_over) rep_->observe(id, Signal::OverLimit, static_cast<double>(d_over), now_ms);
    if (d_spoof) rep_->observe(id, Signal::Spoofed, static_cast<double>(d_spoof), now_ms);
    if (d_reject) rep_->observe(id, Signal::RemoteReject, static_cast<double>(d_reject), now_ms);
    if (d_over || d_spoof || d_reject) rep_dirty_ = true;
    rt.last = cur;
    rt.read_ns = now_ns;
}

std::string Daemon::auto_id(const sg_auto_key& k, std::string* ifname, std::string* addr) const {
    char name[IF_NAMESIZE] = {};
    std::string ifn = if_indextoname(k.ifindex, name) ? name : "#" + std::to_string(k.ifindex);
    if (ifname) *ifname = ifn;
    if (k.family == 0) return "if:" + ifn;
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(k.family == 4 ? AF_INET : AF_INET6, k.addr, buf, sizeof(buf));
    std::string a = k.family == 4 ? std::string(buf) : std::string(buf) + "/64";
    if (addr) *addr = a;
    return "ip:" + a;
}

VmRuntime* Daemon::runtime(const std::string& id) {
    if (auto it = vm_index_.find(id); it != vm_index_.end()) {
        auto slot = slots_.find(id);
        return slot && *slot < vm_rt_.size() ? &vm_rt_[*slot] : nullptr;
    }
    auto it = autos_.find(id);
    return it == autos_.end() ? nullptr : &it->second.rt;
}

void Daemon::sweep() {
    const uint64_t t0 = mono_ns();
    const int64_t now_ms = clock_.now_ms();
    const uint32_t hw = slots_.high_water();
    if (auto s = reader_.vm_stats(*dp_, hw, stats_buf_); !s) {
        log::error(s.error().message);
        return;
    }
    for (uint32_t slot = 0; slot < hw && slot < by_slot_.size(); ++slot)
        if (by_slot_[slot] >= 0) feed(policy_.vms[by_slot_[slot]].id, vm_rt_[slot], stats_buf_[slot], t0, now_ms);
    if (auto s = reader_.auto_entries(*dp_, auto_buf_); !s) log::error(s.error().message);
    std::set<std::string> seen;
    for (const auto& [key, v] : auto_buf_) {
        std::string ifname, addr;
        std::string id = auto_id(key, &ifname, &addr);
        AutoVm& a = autos_[id];
        a.key = key;
        a.interface = ifname;
        a.address = addr;
        feed(id, a.rt, v.stats, t0, now_ms);
        seen.insert(id);
    }
    // Evicted auto entries are forgotten once nothing restricts them any more.
    for (auto it = autos_.begin(); it != autos_.end();)
        it = !seen.count(it->first) && rep_->tier(it->first) == Tier::Ok && !hot_autos_.count(it->first)
                 ? autos_.erase(it) : std::next(it);
    if (auto g = reader_.global(*dp_)) results_ = *g;
    else log::error(g.error().message);
    evaluate(now_ms);
    if (rep_dirty_ && now_ms - rep_saved_ms_ >= kReputationSaveMs) persist_reputation();
    ++sweeps_;
    if (metrics_) {
        Snapshot snap = build_snapshot(0);
        snap.sweep_seconds = static_cast<double>(mono_ns() - t0) / 1e9;
        metrics_->update(snap);
    }
    last_sweep_ms_ = static_cast<double>(mono_ns() - t0) / 1e6;
    log::debug("sweep: " + std::to_string(hw) + " slots, " + std::to_string(auto_buf_.size()) + " auto entries, " +
               std::to_string(last_sweep_ms_) + " ms");
    if (sweeps_ % 10 == 0) notify_status();
}

void Daemon::evaluate(int64_t now_ms) {
    auto transitions = rep_->evaluate(now_ms);
    for (const Transition& t : transitions) on_transition(t);
    // Tiers are persisted as they change: a restarted daemon must not relax a tier.
    if (!transitions.empty()) persist_reputation();
}

Status Daemon::write_tier(const std::string& id, Tier t) {
    if (auto it = vm_index_.find(id); it != vm_index_.end()) {
        auto slot = slots_.find(id);
        if (!slot) return Error::msg("vm " + id + " has no slot");
        sg_vm_policy e = vm_policy_entry(policy_, policy_.vms[it->second], t);
        return kern::map_update(*dp_, kern::MapId::VmPolicy, &*slot, &e);
    }
    auto it = autos_.find(id);
    if (it == autos_.end()) return ok_status();  // gone from the datapath: nothing to restrict
    if (t == Tier::Ok) return kern::map_delete(*dp_, kern::MapId::AutoPolicy, &it->second.key);
    sg_vm_policy e = auto_policy_entry(policy_, t);
    return kern::map_update(*dp_, kern::MapId::AutoPolicy, &it->second.key, &e);
}

void Daemon::on_transition(const Transition& t) {
    const uint64_t decided_ns = mono_ns();
    if (auto s = write_tier(t.vm, t.to); !s) log::error("tier of " + t.vm + ": " + s.error().message);
    rep_dirty_ = true;
    svc::Event e;
    e.vm = t.vm;
    e.from = t.from;
    e.to = t.to;
    e.score = t.score;
    e.reason = t.reason;
    if (auto it = vm_index_.find(t.vm); it != vm_index_.end()) e.tenant = policy_.vms[it->second].tenant;
    if (VmRuntime* rt = runtime(t.vm)) {
        e.evidence = {{"rate", rt->rate}, {"syn", syn_json(rt->last)}, {"spoofed", rt->last.spoofed},
                      {"replies", replies_json(rt->last)}, {"samples", rt->samples}};
        if (t.to > t.from && rt->trigger_ns) {
            // CLOCK_MONOTONIC both: the over-limit event that started this, and now
            e.evidence["trigger_ts_ns"] = rt->trigger_ns;
            e.evidence["decided_ts_ns"] = decided_ns;
            rt->trigger_ns = 0;
        }
    }
    log::notice("vm " + t.vm + ": " + std::string(to_string(t.from)) + " -> " + std::string(to_string(t.to)) + " (" +
                t.reason + ", score " + std::to_string(static_cast<long>(t.score)) + ")");
    if (!events_) return;  // start-up: pins from the policy, before the event log opens
    if (auto s = events_->append(e); !s) log::error("event log: " + s.error().message);
    if (!is_ticket(t.from, t.to)) return;
    e.type = "ticket";
    if (auto s = events_->append(e); !s) log::error("event log: " + s.error().message);
    if (webhook_) webhook_->post(svc::to_json(e));
    if (metrics_) metrics_->count_ticket(t.to > t.from ? "escalated" : "recovered");
}

void Daemon::mini_sweep_slot(uint32_t slot, uint64_t now_ns, int64_t now_ms) {
    if (slot >= by_slot_.size() || by_slot_[slot] < 0) return;
    auto s = reader_.vm_stats_one(*dp_, slot);
    if (!s) {
        log::error(s.error().message);
        return;
    }
    feed(policy_.vms[by_slot_[slot]].id, vm_rt_[slot], *s, now_ns, now_ms);
}

void Daemon::mini_sweep_auto(const std::string& id, uint64_t now_ns, int64_t now_ms) {
    auto it = autos_.find(id);
    if (it == autos_.end()) return;
    sg_auto_vm v{};
    auto found = kern::map_lookup(*dp_, kern::MapId::Auto, &it->second.key, &v);
    if (found && *found) feed(id, it->second.rt, v.stats, now_ns, now_ms);
}

void Daemon::on_event(const sg_event& ev) {
    ++events_received_;
    const uint64_t now = mono_ns();
    VmRuntime* rt = nullptr;
    std::string auto_name;
    if (ev.slot != SG_SLOT_NONE) {
        if (ev.slot < by_slot_.size() && by_slot_[ev.slot] >= 0) rt = &vm_rt_[ev.slot];
    } else {
        std::string ifname, addr;
        auto_name = auto_id(ev.key, &ifname, &addr);
        AutoVm& a = autos_[auto_name];
        a.key = ev.key;
        a.interface = ifname;
        a.address = addr;
        rt = &a.rt;
    }
    if (!rt) return;
    if (ev.type == SG_EV_REPLY) {
        std::string line(ev.text, std::min<size_t>(ev.text_len, SG_REPLY_TEXT_MAX));
        rt->samples.push_back(std::move(line));
        if (rt->samples.size() > kMaxSamples) rt->samples.erase(rt->samples.begin());
        return;
    }
    if (ev.type != SG_EV_OVER_LIMIT) return;
    if (!rt->trigger_ns || since(ev.ts_ns, rt->trigger_ns) > kTriggerMaxAgeNs) rt->trigger_ns = ev.ts_ns;
    const int64_t now_ms = clock_.now_ms();
    if (ev.slot != SG_SLOT_NONE) {
        hot_slots_[ev.slot] = now + kHotWindowNs;
        mini_sweep_slot(ev.slot, now, now_ms);
    } else {
        hot_autos_[auto_name] = now + kHotWindowNs;
        mini_sweep_auto(auto_name, now, now_ms);
    }
    evaluate(now_ms);
    arm_hot_timer();
}

void Daemon::hot_tick() {
    const uint64_t now = mono_ns();
    const int64_t now_ms = clock_.now_ms();
    for (auto it = hot_slots_.begin(); it != hot_slots_.end();) {
        if (it->second < now) {
            if (it->first < vm_rt_.size()) vm_rt_[it->first].trigger_ns = 0;  // no escalation came of it
            it = hot_slots_.erase(it);
            continue;
        }
        mini_sweep_slot(it->first, now, now_ms);
        ++it;
    }
    for (auto it = hot_autos_.begin(); it != hot_autos_.end();) {
        if (it->second < now) {
            if (VmRuntime* rt = runtime(it->first)) rt->trigger_ns = 0;
            it = hot_autos_.erase(it);
            continue;
        }
        mini_sweep_auto(it->first, now, now_ms);
        ++it;
    }
    evaluate(now_ms);
    arm_hot_timer();
}

void Daemon::arm_hot_timer() {
    bool want = !hot_slots_.empty() || !hot_autos_.empty();
    if (want == hot_armed_) return;
    itimerspec its{};
    if (want) {
        its.it_interval.tv_nsec = static_cast<long>(kHotIntervalNs);
        its.it_value = its.it_interval;
    }
    if (::timerfd_settime(hot_timer_.get(), 0, &its, nullptr) != 0) {
        log::error(Error::from_errno("hot timer").message);
        return;
    }
    hot_armed_ = want;
}

std::optional<VmView> Daemon::view(const std::string& id) const {
    VmView v;
    v.id = id;
    const VmRuntime* rt = nullptr;
    if (auto it = vm_index_.find(id); it != vm_index_.end()) {
        const Vm& vm = policy_.vms[it->second];
        auto slot = slots_.find(id);
        v.tenant = vm.tenant;
        v.slot = slot ? *slot : SG_SLOT_NONE;
        v.interface = vm.interface;
        for (const auto& a : vm.addresses) v.addresses.push_back(a.to_string());
        v.tier = rep_->tier(id);
        LimitPair l = limits_for(policy_, vm, v.tier);
        v.limit_rate = l.rate;
        v.limit_burst = l.burst;
        if (slot && *slot < vm_rt_.size()) rt = &vm_rt_[*slot];
    } else if (auto a = autos_.find(id); a != autos_.end()) {
        v.auto_entry = true;
        v.interface = a->second.interface;
        if (!a->second.address.empty()) v.addresses.push_back(a->second.address);
        v.tier = rep_->tier(id);
        LimitPair l = default_limits_for(policy_, v.tier);
        v.limit_rate = l.rate;
        v.limit_burst = l.burst;
        rt = &a->second.rt;
    } else {
        return std::nullopt;
    }
    v.pin = rep_->pin(id);
    v.score = rep_->score(id);
    if (rt) {
        v.rate = rt->rate;
        for (int i = 0; i < SG_VERDICT_MAX; ++i) v.syn[i] = rt->last.syn[i];
        v.spoofed = rt->last.spoofed;
        v.rst_sent = rt->last.rst_sent;
        for (int i = 0; i < SG_REPLY_MAX; ++i) v.replies[i] = rt->last.replies[i];
    }
    return v;
}

Snapshot Daemon::build_snapshot(double sweep_seconds) {
    Snapshot s;
    s.vms.reserve(policy_.vms.size() + autos_.size());
    for (const Vm& vm : policy_.vms)
        if (auto v = view(vm.id)) s.vms.push_back(std::move(*v));
    for (const auto& [id, a] : autos_)
        if (auto v = view(id)) s.vms.push_back(std::move(*v));
    s.results = results_;
    s.maps = {{"sg_vm_policy", slots_.slots().size(), dp_->max_vms()},
              {"sg_auto", auto_buf_.size(), SG_MAX_AUTO},
              {"sg_ifaces", iface_entries_, SG_MAX_IFACES},
              {"sg_vm_v4", v4_entries_, SG_MAX_PREFIXES},
              {"sg_vm_v6", v6_entries_, SG_MAX_PREFIXES}};
    s.events_received = events_received_;
    s.sweep_seconds = sweep_seconds;
    s.taken_unix_ms = clock_.now_ms();
    return s;
}

void Daemon::persist_reputation() {
    if (auto s = write_file_atomic(cfg_.state_dir + "/reputation.json", rep_->save().dump()); !s)
        log::error(s.error().message);
    rep_dirty_ = false;
    rep_saved_ms_ = clock_.now_ms();
}

}  // namespace smtpgov::daemon
