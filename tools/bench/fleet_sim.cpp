// smtpgov-fleet-sim: N simulated hypervisors talking to etcd the way smtpgovd's fleet
// agent does (issue 12 "Scale"; run by tools/bench/fleet.sh). Per host: a lease (TTL 10 s)
// kept alive every TTL/3 holding <prefix>/hosts/<h>/live; a status write (HostStatus)
// every 10 s and after each policy apply; the keys a daemon watches, <prefix>/policy/global
// and its own <prefix>/policy/hosts/<h>, applied together once their serials match (no
// read after a change, as the daemon); reputation records of VMs that changed, at most
// one transaction per host and second (compare-and-swap on each record's revision, as
// core/fleet.h Outbox and the conflict rule do). Watches are multiplexed: by default one
// stream per 4 hosts, each carrying the global key and those hosts' keys (one create
// request per key, as the daemon's one stream carries its two; etcd 3.4's gateway stalls
// on a stream of a few hundred create requests, so streams stay small). The simulator applies
// fleet policies itself with smtpgovctl's protocol (lock, host values in txns of <= 64
// ops, the global last) and measures the time from that final write to each host having
// its policy.
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fleet.h"
#include "fleet_sim.h"
#include "fleet_view.h"
#include "svc/etcd.h"

using nlohmann::json;
using namespace smtpgov;

namespace {

using namespace smtpgov::fleetsim;

json make_policy(const Config& cfg, int round) {
    json vms = json::array();
    std::vector<std::string> all;
    for (int i = 0; i < cfg.hosts; ++i) all.push_back(host_name(i));
    for (const auto& r : cfg.real_hosts) all.push_back(r);
    for (const std::string& h : all)
        for (int v = 0; v < cfg.vms; ++v)
            vms.push_back({{"id", h + "-vm" + std::to_string(v)},
                           {"tenant", "t" + std::to_string(v % 10)},
                           {"host", h},
                           {"interface", "tap" + std::to_string(v)},
                           {"rate", 10 + round}});  // every host's value changes each round
    return {{"defaults", {{"rate", 10}, {"burst", 20}}}, {"vms", vms}};
}

// smtpgovctl fleet policy apply's protocol; returns the serial (0 on failure).
int64_t apply(Shared& sh, etcd::Client& c, int round, double& write_ms) {
    const json policy = make_policy(sh.cfg, round);
    auto cur = c.get_prefix(sh.keys.prefix + "/policy/");
    if (!cur) return 0;
    auto state = ctl::fleetv::policy_state(cur->kvs, sh.keys);
    std::vector<Problem> problems;
    auto sp = fleet::split(policy, state.global, state.hosts, problems);
    if (!sp) {
        std::cerr << "fleet-sim: policy rejected: " << (problems.empty() ? "" : problems[0].path + ": " + problems[0].reason) << "\n";
        return 0;
    }
    auto lease = c.lease_grant(30);
    if (!lease) return 0;
    auto lock = c.txn({{sh.keys.policy_global(), etcd::Compare::Target::Mod, state.global_revision},
                       {sh.keys.policy_lock(), etcd::Compare::Target::Create, 0}},
                      {{etcd::Op::Kind::Put, sh.keys.policy_lock(), json{{"by", "fleet-sim"}}.dump(), *lease}});
    if (!lock || !lock->succeeded) return 0;
    const etcd::Compare ours{sh.keys.policy_lock(), etcd::Compare::Target::Mod, lock->revision};
    const auto t_hosts = SteadyClock::now();
    for (const auto& ops : ctl::fleetv::host_batches(*sp, sh.keys)) {
        auto r = c.txn({ours}, ops);
        if (!r || !r->succeeded) return 0;
    }
    {
        std::lock_guard g(sh.sm);
        sh.final_write[sp->serial] = SteadyClock::now();
        sh.final_write_wall[sp->serial] = wall_ms();
    }
    auto fin = c.txn({ours, {sh.keys.policy_global(), etcd::Compare::Target::Mod, state.global_revision}},
                     {{etcd::Op::Kind::Put, sh.keys.policy_global(), sp->global.dump(), 0},
                      {etcd::Op::Kind::Delete, sh.keys.policy_lock(), "", 0}});
    (void)c.lease_revoke(*lease);
    write_ms = since_ms(t_hosts);
    if (!fin || !fin->succeeded) return 0;
    return sp->serial;
}

double cpu_ticks(const std::vector<int>& pids) {
    double t = 0;
    for (int pid : pids) {
        std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
        std::string s((std::istreambuf_iterator<char>(f)), {});
        auto p = s.rfind(')');
        if (p == std::string::npos) continue;
        std::istringstream in(s.substr(p + 2));
        std::string field;
        std::vector<std::string> v;
        while (in >> field) v.push_back(field);
        if (v.size() > 12) t += std::stod(v[11]) + std::stod(v[12]);  // utime, stime (fields 14, 15)
    }
    return t;
}

struct SimSnapshot {
    SteadyClock::time_point at;
    uint64_t status, txns, records, keepalives, errors;
    int64_t revision;
    double cpu;
};

int64_t store_revision(etcd::Client& c) {
    auto r = c.get("/smtpgov-sim-probe");
    return r ? r->revision : 0;
}

SimSnapshot snap(Shared& sh, etcd::Client& c) {
    return {SteadyClock::now(),          sh.c.status_puts.load(), sh.c.rep_txns.load(), sh.c.rep_records.load(),
            sh.c.keepalives.load(), sh.c.errors.load(),  store_revision(c),
            cpu_ticks(sh.cfg.etcd_pids)};
}

double pct(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = size_t(std::ceil(p * double(v.size()))) - 1;
    return v[std::min(i, v.size() - 1)];
}

std::vector<std::string> split_csv(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string x; std::getline(in, x, ',');)
        if (!x.empty()) out.push_back(x);
    return out;
}

int usage() {
    std::cerr << "usage: smtpgov-fleet-sim --etcd URL[,URL...] [--prefix P] [--hosts N] [--vms M] [--workers W]\n"
                 "  [--streams S] [--applies A] [--steady SECONDS] [--between SECONDS] [--change-rate F]\n"
                 "  [--etcd-pids PID,...] [--real-hosts HOST,...]\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    Shared sh;
    Config& cfg = sh.cfg;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        try {
            if (a == "--etcd") cfg.endpoints = split_csv(val());
            else if (a == "--prefix") cfg.prefix = val();
            else if (a == "--hosts") cfg.hosts = std::stoi(val());
            else if (a == "--vms") cfg.vms = std::stoi(val());
            else if (a == "--workers") cfg.workers = std::stoi(val());
            else if (a == "--streams") cfg.streams = std::stoi(val());
            else if (a == "--applies") cfg.applies = std::stoi(val());
            else if (a == "--steady") cfg.steady_s = std::stoi(val());
            else if (a == "--between") cfg.between_s = std::stoi(val());
            else if (a == "--change-rate") cfg.change_rate = std::stod(val());
            else if (a == "--etcd-pids") for (auto& p : split_csv(val())) cfg.etcd_pids.push_back(std::stoi(p));
            else if (a == "--real-hosts") cfg.real_hosts = split_csv(val());
            else return usage();
        } catch (const std::exception& e) {
            std::cerr << "fleet-sim: " << e.what() << "\n";
            return usage();
        }
    }
    if (cfg.endpoints.empty() || cfg.hosts < 1 || cfg.vms < 1 || cfg.workers < 1 || cfg.streams < 0) return usage();
    cfg.workers = std::min(cfg.workers, cfg.hosts);
    if (cfg.streams == 0) cfg.streams = (cfg.hosts + 3) / 4;
    cfg.streams = std::min(cfg.streams, cfg.hosts);
    sh.keys.prefix = cfg.prefix;
    sh.boxes = std::vector<Mailbox>(size_t(cfg.workers));
    etcd::Client main_client(options_for(cfg, 0));
    const auto t_start = SteadyClock::now();

    std::vector<std::vector<Host>> groups(size_t(cfg.workers));
    for (int i = 0; i < cfg.hosts; ++i) groups[size_t(i % cfg.workers)].emplace_back().name = host_name(i);
    const int64_t rev0 = store_revision(main_client);
    std::vector<std::thread> threads;
    for (int s = 0; s < cfg.streams; ++s) threads.emplace_back(watch_stream, std::ref(sh), s, rev0 + 1);
    for (int w = 0; w < cfg.workers; ++w) threads.emplace_back(run_worker, std::ref(sh), w, std::move(groups[size_t(w)]));

    // Wait until every host holds its live key.
    for (int t = 0; t < 600 && sh.c.live_puts.load() < uint64_t(cfg.hosts); ++t)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::fprintf(stderr, "fleet-sim: %d hosts joined in %.1f s\n", int(sh.c.live_puts.load()), since_ms(t_start) / 1000);

    // Applies: a warm-up (not measured), then cfg.applies that each change every host's value.
    std::vector<double> write_ms;
    std::vector<double> real_samples;
    int64_t warm_serial = 0;
    int measured = 0;
    std::vector<int64_t> serials;
    for (int round = 0; round <= cfg.applies; ++round) {
        double wms = 0;
        const int64_t serial = apply(sh, main_client, round, wms);
        if (!serial) {
            std::cerr << "fleet-sim: apply " << round << " failed\n";
            continue;
        }
        // The moment of the final write, as simulated hosts measure from it (apply()
        // returns later: the answer and the lease revoke wait behind 1,000 hosts' status writes).
        int64_t final_wall;
        {
            std::lock_guard g(sh.sm);
            final_wall = sh.final_write_wall[serial];
        }
        if (round == 0) warm_serial = serial;
        else {
            write_ms.push_back(wms);
            serials.push_back(serial);
            ++measured;
        }
        // Until every simulated host read it (at most 30 s).
        for (int t = 0; t < 3000; ++t) {
            {
                std::lock_guard g(sh.sm);
                if (sh.samples[serial].size() >= size_t(cfg.hosts)) break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        // Real daemons: their status's applied_at_ms for this serial.
        for (const std::string& rh : cfg.real_hosts) {
            for (int t = 0; t < 100; ++t) {
                auto r = main_client.get(sh.keys.host_status(rh));
                if (r && !r->kvs.empty()) {
                    auto st = fleet::host_status_from_json(json::parse(r->kvs[0].value, nullptr, false));
                    if (st && st->policy_serial == serial) {
                        if (round) real_samples.push_back(double(st->applied_at_ms - final_wall));
                        break;
                    }
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
        }
        std::fprintf(stderr, "fleet-sim: apply %d (serial %lld): host values written in %.0f ms, %zu hosts have it\n",
                     round, (long long)serial, wms, sh.samples[serial].size());
        std::this_thread::sleep_for(std::chrono::seconds(cfg.between_s));
    }
    (void)warm_serial;

    // Steady state: no applies, every host keeps alive, reports and writes reputation.
    const SimSnapshot a = snap(sh, main_client);
    std::this_thread::sleep_for(std::chrono::seconds(cfg.steady_s));
    const SimSnapshot b = snap(sh, main_client);
    sh.stop = true;

    std::vector<double> prop;
    size_t missing = 0;
    for (int64_t s : serials) {
        const auto& v = sh.samples[s];
        prop.insert(prop.end(), v.begin(), v.end());
        missing += size_t(cfg.hosts) - std::min(v.size(), size_t(cfg.hosts));
    }
    std::vector<std::pair<std::string, double>> dbs;
    for (size_t i = 0; i < cfg.endpoints.size(); ++i) {
        etcd::Options o;
        o.endpoints = {cfg.endpoints[i]};
        etcd::Client c(o);
        auto st = c.member_status();
        double mb = 0;
        if (st) {
            json j = json::parse(*st, nullptr, false);
            if (j.is_object() && j.contains("dbSize"))
                mb = double(j["dbSize"].is_string() ? std::stoll(j["dbSize"].get<std::string>()) : j["dbSize"].get<int64_t>()) / 1048576.0;
        }
        dbs.emplace_back(cfg.endpoints[i], mb);
    }
    for (auto& t : threads) t.join();

    const double secs = std::chrono::duration<double>(b.at - a.at).count();
    const double revs = double(b.revision - a.revision) / secs;
    const double status_s = double(b.status - a.status) / secs, txn_s = double(b.txns - a.txns) / secs;
    const double rec_s = double(b.records - a.records) / secs, ka_s = double(b.keepalives - a.keepalives) / secs;
    const long hz = sysconf(_SC_CLK_TCK);
    const double cpu_pct = cfg.etcd_pids.empty() ? -1 : 100.0 * (b.cpu - a.cpu) / double(hz) / secs;
    const double per_host = revs / cfg.hosts;
    const double p50 = pct(prop, 0.5), p99 = pct(prop, 0.99), pmax = pct(prop, 1.0);

    std::printf("fleet simulator: %d hosts x %d VMs (%d VMs), %zu etcd member(s), %d watch streams, %d workers\n",
                cfg.hosts, cfg.vms, cfg.hosts * cfg.vms, cfg.endpoints.size(), cfg.streams, cfg.workers);
    std::printf("%-52s %s\n", "measure", "value");
    std::printf("%-52s %d applies x %d hosts, %zu samples%s\n", "policy applies measured (every host value changed)",
                measured, cfg.hosts, prop.size(), missing ? (", " + std::to_string(missing) + " hosts never had it").c_str() : "");
    std::printf("%-52s %.0f ms (median)\n", "apply: host values written (lock .. final write)", pct(write_ms, 0.5));
    std::printf("%-52s p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", "propagation: final global write -> host has its value",
                p50, p99, pmax);
    if (!cfg.real_hosts.empty())
        std::printf("%-52s p50 %.0f ms, p99 %.0f ms (%zu samples)\n", "propagation to real daemons (applied_at_ms)",
                    pct(real_samples, 0.5), pct(real_samples, 0.99), real_samples.size());
    std::printf("%-52s %d s\n", "steady state window", int(secs + 0.5));
    std::printf("%-52s %.1f /s total, %.3f /s per host\n", "etcd writes (store revisions)", revs, per_host);
    std::printf("%-52s %.1f /s (%.3f per host)\n", "  status puts", status_s, status_s / cfg.hosts);
    std::printf("%-52s %.1f /s (%.3f per host), %.1f records/s, %llu CAS conflicts\n", "  reputation txns", txn_s,
                txn_s / cfg.hosts, rec_s, (unsigned long long)sh.c.rep_conflicts.load());
    std::printf("%-52s %.1f /s (%.3f per host; leader-local, not a raft write)\n", "lease keepalives", ka_s, ka_s / cfg.hosts);
    if (cpu_pct >= 0)
        std::printf("%-52s %.0f %% of one core (all %zu members), %.0f %% over the whole run\n", "etcd CPU, steady state",
                    cpu_pct, cfg.etcd_pids.size(),
                    100.0 * b.cpu / double(hz) / std::chrono::duration<double>(b.at - t_start).count());
    for (auto& [ep, mb] : dbs) std::printf("%-52s %.1f MB\n", ("etcd DB size " + ep).c_str(), mb);
    std::printf("%-52s %llu\n", "leases expired (host shown lost; re-granted)", (unsigned long long)sh.c.leases_lost.load());
    std::printf("%-52s %llu\n", "client errors (all phases)", (unsigned long long)b.errors);
    for (auto& [kind, n] : sh.c.by_kind)
        std::printf("  %-50s %llu (first: %s)\n", kind.c_str(), (unsigned long long)n, sh.c.sample[kind].c_str());
    std::printf("target propagation p99 <= 1 s: %s (p99 %.0f ms)\n", p99 <= 1000 && !prop.empty() && !missing ? "met" : "NOT met", p99);
    std::printf("target <= 1 write/s per host at steady state: %s (%.3f)\n", per_host <= 1.0 ? "met" : "NOT met", per_host);
    return prop.empty() ? 1 : 0;
}
