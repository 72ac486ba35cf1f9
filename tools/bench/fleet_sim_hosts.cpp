// smtpgov-fleet-sim's simulated hosts: worker threads and the watch streams that feed
// them (fleet_sim.cpp explains the simulation; fleet_sim.h the shared state).
#include <algorithm>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "fleet_sim.h"

using nlohmann::json;

namespace smtpgov::fleetsim {
namespace {

class Worker {
public:
    Worker(Shared& sh, int id, std::vector<Host> hosts)
        : sh_(sh), id_(id), hosts_(std::move(hosts)), c_(options_for(sh.cfg, size_t(id))), rng_(uint32_t(id) * 7919 + 1) {}

    void run() {
        join();
        while (!sh_.stop.load()) {
            take_mail();
            const auto now = SteadyClock::now();
            for (Host& h : hosts_) {
                if (now >= h.next_keepalive) keepalive(h);
                if (now >= h.next_status) status(h);
                if (now >= h.next_rep) reputation(h);
                if (mail_waiting()) take_mail();  // a policy change goes first
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        for (Host& h : hosts_) (void)c_.lease_revoke(h.lease);
    }

private:
    // Start: lease, live key, first status, spread over the periods like hosts booted apart.
    void join() {
        std::uniform_int_distribution<int> ka(0, sh_.cfg.ttl_s * 1000 / 3), st(0, sh_.cfg.status_s * 1000),
            rp(0, 1000);
        for (Host& h : hosts_) {
            auto l = c_.lease_grant(sh_.cfg.ttl_s);
            if (!l) {
                sh_.c.error("lease grant", l.error().message);
                continue;
            }
            ++sh_.c.lease_grants;
            h.lease = *l;
            if (c_.put(sh_.keys.host_live(h.name), json{{"host", h.name}}.dump(), h.lease)) ++sh_.c.live_puts;
            const auto now = SteadyClock::now();
            h.next_keepalive = now + std::chrono::milliseconds(ka(rng_));
            h.next_status = now;
            h.next_rep = now + std::chrono::milliseconds(rp(rng_)) + std::chrono::milliseconds(st(rng_) / 10);
            h.vm_rev.assign(size_t(sh_.cfg.vms), 0);
            h.score.assign(size_t(sh_.cfg.vms), 0);
        }
    }

    bool mail_waiting() {
        std::lock_guard g(sh_.boxes[size_t(id_)].m);
        return sh_.boxes[size_t(id_)].deliveries > seen_;
    }

    // New values: each host whose global and own value now belong together (serials
    // match: fleet::assemble) has its policy; the others wait for their next value. Each
    // value is parsed once, when it arrives, as a daemon parses its own: 1,000 hosts on
    // one machine must not re-parse every value at every delivery (the simulator's CPU
    // would be etcd's loss).
    void take_mail() {
        std::map<std::string, std::pair<int64_t, std::string>> fresh;  // host -> revision, value
        std::string global_text;
        int64_t grev = 0;
        {
            Mailbox& b = sh_.boxes[size_t(id_)];
            std::lock_guard g(b.m);
            if (b.deliveries <= seen_) return;
            seen_ = b.deliveries;
            grev = b.global_revision;
            if (grev != global_rev_) global_text = b.global;
            for (const Host& h : hosts_)
                if (auto r = b.share_revision.find(h.name); r != b.share_revision.end() && r->second != h.share_revision)
                    fresh[h.name] = {r->second, b.shares[h.name]};
        }
        if (grev != global_rev_) {
            global_ = json::parse(global_text, nullptr, false);
            global_rev_ = grev;
        }
        if (!global_.is_object()) return;
        const int64_t serial = fleet::serial_of(global_);
        std::vector<Host*> applied;
        for (Host& h : hosts_) {
            if (auto f = fresh.find(h.name); f != fresh.end()) {
                h.share_revision = f->second.first;
                h.share = f->second.second.empty() ? json() : json::parse(f->second.second, nullptr, false);
            }
            if (h.policy_serial == serial) continue;
            std::string waiting;
            if (!fleet::assemble(global_, h.share, h.name, waiting)) continue;
            record(serial);
            h.policy_serial = serial;
            h.policy_revision = grev;
            h.applied_at_ms = wall_ms();
            applied.push_back(&h);
        }
        for (Host* h : applied) status(*h);
    }

    void record(int64_t serial) {
        std::lock_guard g(sh_.sm);
        auto it = sh_.final_write.find(serial);
        if (it != sh_.final_write.end()) sh_.samples[serial].push_back(since_ms(it->second));
    }

    void keepalive(Host& h) {
        h.next_keepalive += std::chrono::milliseconds(sh_.cfg.ttl_s * 1000 / 3);
        auto r = c_.lease_keepalive(h.lease);
        if (r) {
            ++sh_.c.keepalives;
            return;
        }
        sh_.c.error("keepalive", r.error().message);
        if (r.error().errnum != ENOENT) return;
        // The lease ran out (this host was not heard for a TTL): a new one and the live
        // key again, as the daemon does; counted, since fleet status showed it lost.
        ++sh_.c.leases_lost;
        auto l = c_.lease_grant(sh_.cfg.ttl_s);
        if (!l) return sh_.c.error("lease grant", l.error().message);
        h.lease = *l;
        if (c_.put(sh_.keys.host_live(h.name), json{{"host", h.name}}.dump(), h.lease)) ++sh_.c.live_puts;
    }

    void status(Host& h) {
        h.next_status = SteadyClock::now() + std::chrono::seconds(sh_.cfg.status_s);
        auto r = c_.put(sh_.keys.host_status(h.name), status_json(h, sh_.cfg.vms));
        if (r) ++sh_.c.status_puts;
        else sh_.c.error("status put", r.error().message);
    }

    // The VMs whose score moved this second, in one transaction (the Outbox's coalescing);
    // each record written only while it is at the revision this host last wrote (CAS).
    void reputation(Host& h) {
        h.next_rep += std::chrono::seconds(1);
        std::bernoulli_distribution changes(sh_.cfg.change_rate);
        std::vector<size_t> changed;
        for (size_t v = 0; v < h.score.size(); ++v)
            if (changes(rng_)) changed.push_back(v);
        if (changed.empty()) return;
        std::vector<etcd::Compare> cmp;
        std::vector<etcd::Op> ops;
        const int64_t now = wall_ms();
        for (size_t v : changed) {
            h.score[v] += 5;
            fleet::Record r;
            r.vm = h.name + "-vm" + std::to_string(v);
            r.tenant = "t" + std::to_string(v % 10);
            r.state.score = h.score[v];
            r.state.score_unix_ms = now;
            r.updated_by = h.name;
            r.updated_at_ms = now;
            const std::string key = sh_.keys.vm(r.tenant, r.vm);
            cmp.push_back({key, etcd::Compare::Target::Mod, h.vm_rev[v]});
            ops.push_back({etcd::Op::Kind::Put, key, fleet::to_json(r).dump(), 0});
        }
        auto t = c_.txn(cmp, ops);
        if (!t) {
            sh_.c.error("reputation txn", t.error().message);
            return;
        }
        ++sh_.c.rep_txns;
        if (!t->succeeded) {  // cannot happen with one writer per VM; counted if it does
            ++sh_.c.rep_conflicts;
            return;
        }
        sh_.c.rep_records += changed.size();
        for (size_t v : changed) h.vm_rev[v] = t->revision;
    }

    Shared& sh_;
    int id_;
    std::vector<Host> hosts_;
    etcd::Client c_;
    std::mt19937 rng_;
    uint64_t seen_ = 0;
    json global_;  // the newest global value, parsed once
    int64_t global_rev_ = -1;
};

}  // namespace

void run_worker(Shared& sh, int id, std::vector<Host> hosts) { Worker(sh, id, std::move(hosts)).run(); }

// Host i belongs to worker i % workers; the global value goes to every worker.
void watch_stream(Shared& sh, int stream, int64_t start_rev) {
    etcd::Client c(options_for(sh.cfg, size_t(stream)));
    std::vector<etcd::Client::Watched> keys{{sh.keys.policy_global(), false}};
    std::map<std::string, std::pair<int, std::string>> owner;  // host key -> worker, host
    for (int i = 0; i < sh.cfg.hosts; ++i) {
        const int w = i % sh.cfg.workers;
        if (i % sh.cfg.streams != stream) continue;
        const std::string key = sh.keys.policy_host(host_name(i));
        keys.push_back({key, false});
        owner[key] = {w, host_name(i)};
    }
    int64_t next = start_rev;
    while (!sh.stop.load()) {
        const int64_t from = next;
        auto st = c.watch(
            keys, next,
            [&](const etcd::WatchBatch& b) {
                next = std::max(next, b.revision + 1);  // every stream of the watch is there
                for (const auto& e : b.events) {
                    const bool put = e.type == etcd::WatchEvent::Type::Put;
                    if (auto o = owner.find(e.kv.key); o != owner.end()) {
                        Mailbox& m = sh.boxes[size_t(o->second.first)];
                        std::lock_guard g(m.m);
                        int64_t& known = m.share_revision[o->second.second];
                        if (e.kv.mod_revision <= known) continue;  // replayed
                        known = e.kv.mod_revision;
                        m.shares[o->second.second] = put ? e.kv.value : std::string();
                        ++m.deliveries;
                        continue;
                    }
                    if (!put) continue;
                    for (int w = 0; w < sh.cfg.workers; ++w) {
                        Mailbox& m = sh.boxes[size_t(w)];
                        std::lock_guard g(m.m);
                        if (e.kv.mod_revision > m.global_revision) {
                            m.global_revision = e.kv.mod_revision;
                            m.global = e.kv.value;
                            ++m.deliveries;
                        }
                    }
                }
                return true;
            },
            sh.stop, 60000);
        if (!st) {  // as the daemon: a watcher that was never created saw nothing; replay
            next = from;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
}

}  // namespace smtpgov::fleetsim
