#include "svc/fleet_agent.h"

#include <fstream>

#include "core/clock.h"

namespace smtpgov::svc {

using nlohmann::json;

namespace {

constexpr int64_t kLeaseTtlS = 10;
constexpr int64_t kKeepaliveMs = kLeaseTtlS * 1000 / 3;
constexpr int64_t kStatusMs = 5000;
constexpr int64_t kScanMs = 15000;
constexpr size_t kTxnRecords = 64;  // etcd's default --max-txn-ops is 128

int64_t wall_ms() { return SystemClock{}.wall_ms(); }

json parse(const std::string& s) { return json::parse(s, nullptr, false); }

}  // namespace

std::unique_ptr<FleetAgent> FleetAgent::start(fleet::Options opts, std::string password, std::string version,
                                              FleetCallbacks cb) {
    std::unique_ptr<FleetAgent> a(new FleetAgent());
    a->keys_.prefix = opts.prefix;
    a->opts_ = std::move(opts);
    a->password_ = std::move(password);
    a->version_ = std::move(version);
    a->cb_ = std::move(cb);
    a->watcher_ = std::thread([p = a.get()] { p->watch_loop(); });
    a->writer_ = std::thread([p = a.get()] { p->write_loop(); });
    return a;
}

FleetAgent::~FleetAgent() {
    stop_ = true;
    rewatch_ = true;
    cv_.notify_all();
    if (watcher_.joinable()) watcher_.join();
    if (writer_.joinable()) writer_.join();
}

etcd::Options etcd_options(const fleet::Options& opts, std::string password) {
    etcd::Options o;
    o.endpoints = opts.etcd;
    o.cacert = opts.cacert;
    o.cert = opts.cert;
    o.key = opts.key;
    o.user = opts.user;
    o.password = std::move(password);
    return o;
}

etcd::Options FleetAgent::client_options() const { return etcd_options(opts_, password_); }

void FleetAgent::set_up(bool up, const std::string& what) {
    bool changed;
    {
        std::lock_guard l(mu_);
        changed = stats_.etcd_up != up;
        stats_.etcd_up = up;
    }
    if (changed && cb_.on_connectivity) cb_.on_connectivity(what, up);
}

// ---- the loop thread's side ------------------------------------------------------------

void FleetAgent::set_tenants(std::set<std::string> tenants) {
    std::lock_guard l(mu_);
    if (tenants == tenants_) return;
    tenants_ = std::move(tenants);
    rewatch_ = true;
}

void FleetAgent::offer(const std::vector<fleet::Record>& now, double half_life_s) {
    std::lock_guard l(mu_);
    half_life_s_ = half_life_s;
    for (const fleet::Record& r : now)
        if (!unabsorbed_.count(r.vm)) outbox_.offer(r, half_life_s);
    stats_.outbox = outbox_.pending();
}

void FleetAgent::forget(const std::vector<std::string>& vms) {
    std::lock_guard l(mu_);
    for (const auto& id : vms) outbox_.forget(id);
}

void FleetAgent::taken_in(const std::vector<std::string>& vms) {
    std::lock_guard l(mu_);
    for (const auto& id : vms)
        if (auto it = unabsorbed_.find(id); it != unabsorbed_.end() && --it->second <= 0) unabsorbed_.erase(it);
}

void FleetAgent::set_status(const fleet::HostStatus& s) {
    std::lock_guard l(mu_);
    const bool policy_moved = !status_ || status_->policy_serial != s.policy_serial ||
                              status_->refused_serial != s.refused_serial;
    status_ = s;
    status_->host = opts_.host;
    status_->version = version_;
    status_dirty_ = status_dirty_ || policy_moved;
    if (policy_moved) cv_.notify_all();
}

FleetStats FleetAgent::stats() const {
    std::lock_guard l(mu_);
    return stats_;
}

// ---- writer ----------------------------------------------------------------------------

void FleetAgent::keep_live(etcd::Client& c, int64_t now_ms) {
    int64_t& lease = lease_;
    int64_t& next_ms = next_live_ms_;
    if (lease && now_ms < next_ms) return;
    if (lease) {
        auto ttl = c.lease_keepalive(lease);
        if (ttl) {
            next_ms = now_ms + kKeepaliveMs;
            return set_up(true, "lease kept");
        }
        if (ttl.error().errnum != ENOENT) {
            next_ms = now_ms + 1000;
            return set_up(false, ttl.error().message);
        }
        lease = 0;  // expired (a long partition): a new one at once
    }
    auto id = c.lease_grant(kLeaseTtlS);
    if (!id) {
        next_ms = now_ms + 1000;
        return set_up(false, id.error().message);
    }
    json live{{"host", opts_.host}, {"version", version_}, {"since_ms", now_ms}};
    if (auto p = c.put(keys_.host_live(opts_.host), live.dump(), *id); !p) {
        next_ms = now_ms + 1000;
        return set_up(false, p.error().message);
    }
    lease = *id;
    next_ms = now_ms + kKeepaliveMs;
    set_up(true, "lease granted");
    std::lock_guard l(mu_);
    ++stats_.txns;
}

// One record written with compare-and-swap against what the store holds now; a record
// written by someone else since is resolved with ours first (fleet::resolve) and handed
// to the controller too, which may not have seen it yet (its watch may lag this read):
// until it has taken it in, its offers for the VM are not written.
bool FleetAgent::write_resolved(etcd::Client& c, fleet::Outbox::Write w, double half_life, int64_t now_ms) {
    const std::string key = keys_.vm(w.rec.tenant, w.rec.vm);
    auto cur = c.get(key);
    if (!cur) {
        std::lock_guard l(mu_);
        outbox_.retry(w);
        return false;
    }
    int64_t mod = 0;
    std::optional<fleet::Record> foreign;
    if (!cur->kvs.empty()) {
        mod = cur->kvs[0].mod_revision;
        auto theirs = fleet::record_from_json(parse(cur->kvs[0].value), w.rec.tenant, w.rec.vm);
        if (theirs) {
            w.rec = fleet::resolve(w.rec, *theirs, w.pin_changed, now_ms, half_life);
            if (theirs->updated_by != opts_.host) foreign = std::move(*theirs);
        }
        w.rec.updated_by = opts_.host;
    }
    if (foreign) hand_over({std::move(*foreign)});
    auto t = c.txn({{key, etcd::Compare::Target::Mod, mod}}, {{etcd::Op::Kind::Put, key, fleet::to_json(w.rec).dump(), 0}});
    std::lock_guard l(mu_);
    ++stats_.txns;
    ++stats_.write_conflicts;
    if (!t || !t->succeeded) {
        outbox_.retry(w);  // raced again, or etcd away: next round
        return bool(t);
    }
    outbox_.written(w.rec);
    cas_rev_[w.rec.vm] = t->revision;
    ++stats_.writes_reputation;
    return true;
}

void FleetAgent::write_records(etcd::Client& c, int64_t now_ms) {
    std::vector<fleet::Outbox::Write> writes;
    double half_life;
    {
        std::lock_guard l(mu_);
        writes = outbox_.take(now_ms);
        half_life = half_life_s_;
    }
    for (size_t at = 0; at < writes.size(); at += kTxnRecords) {
        const size_t end = std::min(writes.size(), at + kTxnRecords);
        std::vector<etcd::Compare> cmp;
        std::vector<etcd::Op> ops;
        {
            std::lock_guard l(mu_);
            for (size_t i = at; i < end; ++i) {
                fleet::Record& r = writes[i].rec;
                r.updated_by = opts_.host;
                r.updated_at_ms = now_ms;
                const std::string key = keys_.vm(r.tenant, r.vm);
                auto m = cas_rev_.find(r.vm);
                cmp.push_back({key, etcd::Compare::Target::Mod, m == cas_rev_.end() ? 0 : m->second});
                ops.push_back({etcd::Op::Kind::Put, key, fleet::to_json(r).dump(), 0});
            }
        }
        auto t = c.txn(cmp, ops);
        if (t && !t->succeeded) {
            // Someone wrote one of these since we saw it: each on its own, resolved.
            for (size_t i = at; i < end; ++i) write_resolved(c, writes[i], half_life, now_ms);
            continue;
        }
        std::lock_guard l(mu_);
        ++stats_.txns;
        if (!t) {  // etcd away: everything not written waits for the next round
            for (size_t i = at; i < writes.size(); ++i) outbox_.retry(writes[i]);
            stats_.outbox = outbox_.pending();
            return;
        }
        for (size_t i = at; i < end; ++i) {
            outbox_.written(writes[i].rec);
            cas_rev_[writes[i].rec.vm] = t->revision;
        }
        stats_.writes_reputation += end - at;
    }
    std::lock_guard l(mu_);
    stats_.outbox = outbox_.pending();
}

void FleetAgent::scan_hosts(etcd::Client& c) {
    auto r = c.get_prefix(keys_.hosts(), 0, true);
    if (!r) return;
    std::set<std::string> seen, live;
    for (const etcd::Kv& kv : r->kvs)
        if (auto h = keys_.parse_host(kv.key)) (h->second == "live" ? live : seen).insert(h->first);
    seen.insert(live.begin(), live.end());
    std::lock_guard l(mu_);
    stats_.hosts_live = live.size();
    stats_.hosts_lost = seen.size() - live.size();
}

void FleetAgent::write_loop() {
    etcd::Client c(client_options());
    int64_t next_status = 0, next_scan = 0;
    while (!stop_) {
        {
            std::unique_lock l(mu_);
            cv_.wait_for(l, std::chrono::milliseconds(200), [&] { return stop_.load() || status_dirty_; });
        }
        if (stop_) break;
        const int64_t now = wall_ms();
        keep_live(c, now);
        write_records(c, now);
        write_addresses(c);
        std::optional<fleet::HostStatus> st;
        {
            std::lock_guard l(mu_);
            if (status_ && (status_dirty_ || now >= next_status)) st = status_;
        }
        if (st) {
            st->last_seen_ms = now;
            auto p = c.put(keys_.host_status(opts_.host), fleet::to_json(*st).dump());
            std::lock_guard l(mu_);
            ++stats_.txns;
            if (p) {
                status_dirty_ = status_dirty_ && !(status_->policy_serial == st->policy_serial &&
                                                   status_->refused_serial == st->refused_serial);
                next_status = now + kStatusMs;
            } else {
                next_status = now + 1000;
            }
        }
        if (now >= next_scan) {
            scan_hosts(c);
            next_scan = now + kScanMs;
        }
    }
}

}  // namespace smtpgov::svc
