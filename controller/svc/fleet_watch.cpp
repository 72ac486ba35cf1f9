// FleetAgent's watcher thread (svc/fleet_agent.h): reads and then watches the policy
// keys and the records of the tenants this host runs; the writer is in fleet_agent.cpp.
#include <algorithm>

#include "core/clock.h"
#include "svc/fleet_agent.h"

namespace smtpgov::svc {

using nlohmann::json;

namespace {

int64_t wall_ms() { return SystemClock{}.wall_ms(); }

json parse(const std::string& s) { return json::parse(s, nullptr, false); }

}  // namespace

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
        seen_rev_[rec->vm] = kv.mod_revision;
        if (rec->updated_by == opts_.host) {  // our own last word: the next write's compare
            int64_t& cas = cas_rev_[rec->vm];
            cas = std::max(cas, kv.mod_revision);
        }
        out.push_back(std::move(*rec));
    }
    return out;
}

void FleetAgent::handing_over(const std::vector<fleet::Record>& recs) {
    std::lock_guard l(mu_);
    for (const auto& r : recs) ++unabsorbed_[r.vm];
}

void FleetAgent::hand_over(std::vector<fleet::Record> recs) {
    if (recs.empty() || !cb_.on_records) return;
    handing_over(recs);
    cb_.on_records(std::move(recs));
}

void FleetAgent::received(std::vector<fleet::Record> recs) {
    if (recs.empty()) return;
    int64_t newest = 0;
    for (const auto& r : recs) newest = std::max(newest, r.updated_at_ms);
    {
        std::lock_guard l(mu_);
        stats_.watch_lag_s = std::max<int64_t>(0, wall_ms() - newest) / 1000.0;
    }
    hand_over(std::move(recs));
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
    if (!cb_.on_policy) return;
    handing_over(records);
    cb_.on_policy(std::move(*policy), serial, global_rev_, std::move(records));
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
                    int64_t& known = seen_rev_[rec->vm];
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

}  // namespace smtpgov::svc
