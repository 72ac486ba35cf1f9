// The sweep: batched counter reads, smoothed rates, reputation signals from counter
// deltas, tier transitions written to the maps, events and tickets; plus the fast path
// that answers a ring-buffer over-limit event within milliseconds.
#include <arpa/inet.h>
#include <malloc.h>
#include <net/if.h>
#include <sys/timerfd.h>

#include <cmath>
#include <set>

#include "core/blocklists.h"
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
    const uint64_t t_read = mono_ns();
    for (uint32_t slot = 0; slot < hw && slot < by_slot_.size(); ++slot)
        if (by_slot_[slot] >= 0) feed(policy_.vms[by_slot_[slot]].id, vm_rt_[slot], stats_buf_[slot], t0, now_ms);
    const uint64_t t_feed = mono_ns();
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
    const uint64_t t_auto = mono_ns();
    evaluate(now_ms);
    const uint64_t t_eval = mono_ns();
    if (rep_dirty_ && now_ms - rep_saved_ms_ >= kReputationSaveMs) persist_reputation();
    ++sweeps_;
    uint64_t t_snap = mono_ns(), t_metrics = t_snap;
    if (metrics_) {
        Snapshot snap = build_snapshot(0, /*detail=*/false);  // the exporter needs no addresses
        t_snap = mono_ns();
        snap.sweep_seconds = static_cast<double>(t_snap - t0) / 1e9;
        publish(std::move(snap));
        t_metrics = mono_ns();
    }
    last_sweep_ms_ = static_cast<double>(mono_ns() - t0) / 1e6;
    log::debug("sweep: " + std::to_string(hw) + " slots, " + std::to_string(auto_buf_.size()) + " auto entries, " +
               std::to_string(last_sweep_ms_) + " ms (read " + std::to_string((t_read - t0) / 1000) + " us, feed " +
               std::to_string((t_feed - t_read) / 1000) + " us, auto " + std::to_string((t_auto - t_feed) / 1000) +
               " us, evaluate " + std::to_string((t_eval - t_auto) / 1000) + " us, snapshot " +
               std::to_string((t_snap - t_eval) / 1000) + " us, metrics " + std::to_string((t_metrics - t_snap) / 1000) +
               " us)");
    if (sweeps_ % 10 == 0) {
        notify_status();
        ::malloc_trim(0);  // per-sweep snapshots of large fleets leave freed heap in the arenas
    }
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
                      {"replies", replies_json(rt->last)}, {"samples", rt->samples},
                      {"blocklists", blocklists_named(rt->samples)}, {"refusals", policies_named(rt->samples)}};
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
        if (auto r = recognise_refusal(line); r && r->kind == Refusal::Kind::Blocklist && metrics_)
            metrics_->count_blocklist_sample(r->name);
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

void Daemon::fill_view(VmView& v, const VmRuntime* rt, bool tracked) const {
    if (tracked) {
        v.pin = rep_->pin(v.id);
        v.score = rep_->score(v.id);
    }
    if (!rt) return;
    v.rate = rt->rate;
    for (int i = 0; i < SG_VERDICT_MAX; ++i) v.syn[i] = rt->last.syn[i];
    v.spoofed = rt->last.spoofed;
    v.rst_sent = rt->last.rst_sent;
    for (int i = 0; i < SG_REPLY_MAX; ++i) v.replies[i] = rt->last.replies[i];
}

VmView Daemon::registered_view(size_t idx, const std::unordered_set<std::string>* known, bool detail) const {
    const Vm& vm = policy_.vms[idx];
    const bool tracked = !known || known->count(vm.id);
    VmView v;
    v.id = vm.id;
    v.tenant = vm.tenant;
    v.slot = slot_of_[idx];
    v.interface = vm.interface;
    if (detail)
        for (const auto& a : vm.addresses) v.addresses.push_back(a.to_string());
    v.tier = tracked ? rep_->tier(vm.id) : Tier::Ok;
    LimitPair l = limits_for(policy_, vm, v.tier);
    v.limit_rate = l.rate;
    v.limit_burst = l.burst;
    fill_view(v, v.slot < vm_rt_.size() ? &vm_rt_[v.slot] : nullptr, tracked);
    return v;
}

std::optional<VmView> Daemon::view(const std::string& id, const std::unordered_set<std::string>* known,
                                   bool detail) const {
    if (auto it = vm_index_.find(id); it != vm_index_.end()) return registered_view(it->second, known, detail);
    auto a = autos_.find(id);
    if (a == autos_.end()) return std::nullopt;
    const bool tracked = !known || known->count(id);
    VmView v;
    v.id = id;
    v.auto_entry = true;
    v.interface = a->second.interface;
    if (!a->second.address.empty()) v.addresses.push_back(a->second.address);
    v.tier = tracked ? rep_->tier(id) : Tier::Ok;
    LimitPair l = default_limits_for(policy_, v.tier);
    v.limit_rate = l.rate;
    v.limit_burst = l.burst;
    fill_view(v, &a->second.rt, tracked);
    return v;
}

Snapshot Daemon::build_snapshot(double sweep_seconds, bool detail) {
    Snapshot s;
    s.vms.reserve(policy_.vms.size() + autos_.size());
    std::vector<std::string> tracked = rep_->vms();
    std::unordered_set<std::string> known(std::make_move_iterator(tracked.begin()), std::make_move_iterator(tracked.end()));
    for (size_t i = 0; i < policy_.vms.size(); ++i) s.vms.push_back(registered_view(i, &known, detail));
    for (const auto& [id, a] : autos_)
        if (auto v = view(id, &known, detail)) s.vms.push_back(std::move(*v));
    s.results = results_;
    s.maps = map_fill();
    s.events_received = events_received_;
    s.sweep_seconds = sweep_seconds;
    s.taken_unix_ms = clock_.now_ms();
    return s;
}

std::vector<MapFill> Daemon::map_fill() const {
    return {{"sg_vm_policy", slots_.slots().size(), dp_->max_vms()},
            {"sg_auto", auto_buf_.size(), SG_MAX_AUTO},
            {"sg_ifaces", iface_entries_, SG_MAX_IFACES},
            {"sg_vm_v4", v4_entries_, SG_MAX_PREFIXES},
            {"sg_vm_v6", v6_entries_, SG_MAX_PREFIXES}};
}

void Daemon::publish(Snapshot snap) {
    {
        std::lock_guard lock(pub_mu_);
        pub_next_ = std::move(snap);
    }
    pub_cv_.notify_one();
}

void Daemon::publisher_loop() {
    std::unique_lock lock(pub_mu_);
    for (;;) {
        pub_cv_.wait(lock, [this] { return pub_stop_ || pub_next_; });
        if (pub_stop_) return;
        Snapshot snap = std::move(*pub_next_);
        pub_next_.reset();
        lock.unlock();
        metrics_->update(snap);
        lock.lock();
    }
}

void Daemon::persist_reputation() {
    if (auto s = write_file_atomic(cfg_.state_dir + "/reputation.json", rep_->save().dump()); !s)
        log::error(s.error().message);
    rep_dirty_ = false;
    rep_saved_ms_ = clock_.now_ms();
}

}  // namespace smtpgov::daemon
