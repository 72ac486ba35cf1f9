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

etcd::Options FleetAgent::client_options() const {
    etcd::Options o;
    o.endpoints = opts_.etcd;
    o.cacert = opts_.cacert;
    o.cert = opts_.cert;
    o.key = opts_.key;
    o.user = opts_.user;
    o.password = password_;
    return o;
}

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
    for (const fleet::Record& r : now) outbox_.offer(r, half_life_s);
    stats_.outbox = outbox_.pending();
}

void FleetAgent::forget(const std::vector<std::string>& vms) {
    std::lock_guard l(mu_);
    for (const auto& id : vms) outbox_.forget(id);
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

// ---- watcher ---------------------------------------------------------------------------

std::vector<fleet::Record> FleetAgent::read_tenant(etcd::Client& c, const std::string& tenant, int64_t* revision) {
    std::vector<fleet::Record> out;
    auto r = c.get_prefix(keys_.tenant(tenant));
    if (!r) return out;
    if (revision) *revision = std::max(*revision, r->revision);
    std::lock_guard l(mu_);
    for (const etcd::Kv& kv : r->kvs) {
        auto where = keys_.parse_vm(kv.key);
        if (!where) continue;
        auto rec = fleet::record_from_json(parse(kv.value), where->first, where->second);
        if (!rec) continue;  // not ours to repair: the writer will overwrite it
        mod_rev_[rec->vm] = kv.mod_revision;
        out.push_back(std::move(*rec));
    }
    return out;
}

void FleetAgent::received(std::vector<fleet::Record> recs) {
    if (recs.empty()) return;
    int64_t newest = 0;
    for (const auto& r : recs) newest = std::max(newest, r.updated_at_ms);
    {
        std::lock_guard l(mu_);
        stats_.watch_lag_s = std::max<int64_t>(0, wall_ms() - newest) / 1000.0;
    }
    if (cb_.on_records) cb_.on_records(std::move(recs));
}

// Reads both policy keys (start, reconnect) into global_ and share_.
bool FleetAgent::read_policy(etcd::Client& c) {
    auto g = c.get(keys_.policy_global());
    auto h = c.get(keys_.policy_host(opts_.host));
    if (!g || !h) return false;
    global_ = g->kvs.empty() ? json() : parse(g->kvs[0].value);
    global_rev_ = g->kvs.empty() ? 0 : g->kvs[0].mod_revision;
    share_ = h->kvs.empty() ? json() : parse(h->kvs[0].value);
    global_known_ = g->revision;
    share_known_ = h->revision;
    return true;
}

// The two policy keys as last seen (both are watched: an apply writes the host value
// first, so it is on the stream before the global value that names it).
void FleetAgent::policy_changed(etcd::Client& c) {
    if (!global_.is_object()) return;  // no fleet policy yet: the persisted one stays
    const int64_t serial = fleet::serial_of(global_);
    if (serial == applied_serial_) return;
    std::string waiting;
    auto policy = fleet::assemble(global_, share_, opts_.host, waiting);
    if (!policy && read_policy(c)) policy = fleet::assemble(global_, share_, opts_.host, waiting);  // missed one?
    if (!policy) return;  // an apply in progress: its global value comes last
    applied_serial_ = serial;
    std::set<std::string> tenants;
    if (policy->contains("vms") && (*policy)["vms"].is_array())
        for (const json& vm : (*policy)["vms"])
            if (vm.is_object()) tenants.insert(vm.value("tenant", ""));
    // Tenants already watched have their records at the controller; read only new ones.
    {
        std::lock_guard l(mu_);
        for (const auto& t : tenants_loaded_) tenants.erase(t);
    }
    std::vector<fleet::Record> records;
    for (const auto& t : tenants) {
        auto recs = read_tenant(c, t, nullptr);
        records.insert(records.end(), std::make_move_iterator(recs.begin()), std::make_move_iterator(recs.end()));
    }
    {
        // The watch, reopened from the revision it had reached once these tenants are
        // hosted, replays any change made since: nothing falls between read and watch.
        std::lock_guard l(mu_);
        tenants_loaded_.insert(tenants.begin(), tenants.end());
    }
    if (cb_.on_policy) cb_.on_policy(std::move(*policy), serial, global_rev_, std::move(records));
}

bool FleetAgent::sync(etcd::Client& c, int64_t& revision) {
    auto g = c.get(keys_.policy_global());
    if (!g) {
        set_up(false, g.error().message);
        return false;
    }
    revision = g->revision;
    if (!read_policy(c)) {
        set_up(false, "reading the policy keys failed");
        return false;
    }
    applied_serial_ = -1;  // read whole again: apply if it differs from what is in force
    {
        std::lock_guard l(mu_);
        tenants_loaded_.clear();
    }
    policy_changed(c);
    std::set<std::string> tenants;
    {
        std::lock_guard l(mu_);
        tenants = tenants_;
    }
    {
        std::lock_guard l(mu_);
        for (const auto& t : tenants_loaded_) tenants.erase(t);  // policy_changed read them
    }
    for (const auto& t : tenants) received(read_tenant(c, t, &revision));
    std::lock_guard l(mu_);
    tenants_loaded_.insert(tenants.begin(), tenants.end());
    return true;
}

void FleetAgent::watch_loop() {
    etcd::Client c(client_options()), reader(client_options());
    int64_t revision = 0;
    bool synced = false;
    while (!stop_) {
        if (!synced) {
            if (!sync(reader, revision)) {
                std::unique_lock l(mu_);
                cv_.wait_for(l, std::chrono::seconds(1), [&] { return stop_.load(); });
                continue;
            }
            synced = true;
        }
        std::vector<etcd::Client::Watched> keys{{keys_.policy_global(), false},
                                                {keys_.policy_host(opts_.host), false}};
        std::set<std::string> fresh;
        {
            std::lock_guard l(mu_);
            for (const auto& t : tenants_) {
                keys.push_back({keys_.tenant(t), true});
                if (!tenants_loaded_.count(t)) fresh.insert(t);
            }
            rewatch_ = stop_.load();
        }
        for (const auto& t : fresh) received(read_tenant(reader, t, &revision));
        {
            std::lock_guard l(mu_);
            tenants_loaded_.insert(fresh.begin(), fresh.end());
        }
        auto on_batch = [&](const etcd::WatchBatch& b) {
            bool policy = false;
            std::vector<fleet::Record> recs;
            for (const etcd::WatchEvent& e : b.events) {
                revision = std::max(revision, e.kv.mod_revision);
                const bool del = e.type == etcd::WatchEvent::Type::Delete;
                // A stream replayed from its start (below) or a read in between may bring
                // what is already known: a key never goes back to an older value.
                if (e.kv.key == keys_.policy_global()) {
                    if (e.kv.mod_revision <= global_known_) continue;
                    global_known_ = e.kv.mod_revision;
                    global_ = del ? json() : parse(e.kv.value);
                    global_rev_ = e.kv.mod_revision;
                    policy = true;
                    continue;
                }
                if (e.kv.key == keys_.policy_host(opts_.host)) {
                    if (e.kv.mod_revision <= share_known_) continue;
                    share_known_ = e.kv.mod_revision;
                    share_ = del ? json() : parse(e.kv.value);
                    policy = true;
                    continue;
                }
                auto where = keys_.parse_vm(e.kv.key);
                if (!where || e.type != etcd::WatchEvent::Type::Put) continue;
                auto rec = fleet::record_from_json(parse(e.kv.value), where->first, where->second);
                if (!rec) continue;
                {
                    std::lock_guard l(mu_);
                    int64_t& known = mod_rev_[rec->vm];
                    if (e.kv.mod_revision < known) continue;  // replayed: a newer one is known
                    known = e.kv.mod_revision;
                }
                recs.push_back(std::move(*rec));
            }
            revision = std::max(revision, b.revision);
            received(std::move(recs));
            if (policy) policy_changed(reader);
            return true;
        };
        set_up(true, "watching");
        const int64_t from = revision + 1;
        const auto opened = std::chrono::steady_clock::now();
        Status s = c.watch(keys, from, on_batch, rewatch_, 60'000);
        // Cut within seconds of opening (a rewatch for new tenants): a watcher may still
        // have been catching up behind the newest revision seen. Replay from the start;
        // the checks above drop what is already known.
        if (s && std::chrono::steady_clock::now() - opened < std::chrono::seconds(5)) revision = from - 1;
        if (!s) {
            if (stop_) break;
            set_up(false, s.error().message);
            if (s.error().message.rfind("compacted:", 0) == 0) synced = false;
            std::unique_lock l(mu_);
            cv_.wait_for(l, std::chrono::milliseconds(500), [&] { return stop_.load(); });
            synced = false;  // read whole again: a policy may have changed meanwhile
        }
    }
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
// written by someone else since is resolved with ours first (fleet::resolve).
bool FleetAgent::write_resolved(etcd::Client& c, fleet::Outbox::Write w, double half_life, int64_t now_ms) {
    const std::string key = keys_.vm(w.rec.tenant, w.rec.vm);
    auto cur = c.get(key);
    if (!cur) return false;
    int64_t mod = 0;
    if (!cur->kvs.empty()) {
        mod = cur->kvs[0].mod_revision;
        auto theirs = fleet::record_from_json(parse(cur->kvs[0].value), w.rec.tenant, w.rec.vm);
        if (theirs) w.rec = fleet::resolve(w.rec, *theirs, w.pin_changed, now_ms, half_life);
        w.rec.updated_by = opts_.host;
    }
    auto t = c.txn({{key, etcd::Compare::Target::Mod, mod}}, {{etcd::Op::Kind::Put, key, fleet::to_json(w.rec).dump(), 0}});
    std::lock_guard l(mu_);
    ++stats_.txns;
    ++stats_.write_conflicts;
    if (!t || !t->succeeded) {
        outbox_.retry(w);  // raced again, or etcd away: next round
        return bool(t);
    }
    outbox_.written(w.rec);
    mod_rev_[w.rec.vm] = t->revision;
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
                auto m = mod_rev_.find(r.vm);
                cmp.push_back({key, etcd::Compare::Target::Mod, m == mod_rev_.end() ? 0 : m->second});
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
            mod_rev_[writes[i].rec.vm] = t->revision;
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
