// smtpgov-fleet-sim (fleet_sim.cpp): what the simulated hosts and the driver share.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/fleet.h"
#include "svc/etcd.h"

namespace smtpgov::fleetsim {

using SteadyClock = std::chrono::steady_clock;

struct Config {
    std::vector<std::string> endpoints;
    std::string prefix = "/smtpgov-sim";
    int hosts = 1000, vms = 100, workers = 64, streams = 0, applies = 5;  // streams 0: hosts / 4
    double change_rate = 0.005;   // fraction of a host's VMs whose reputation changes per second
    int steady_s = 30, between_s = 5, ttl_s = 10, status_s = 10;
    std::vector<int> etcd_pids;
    std::vector<std::string> real_hosts;  // smtpgovd instances in the same fleet
};

inline int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}
inline double since_ms(SteadyClock::time_point t) { return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count(); }

inline std::string host_name(int i) {
    char b[16];
    std::snprintf(b, sizeof b, "sim%04d", i);
    return b;
}

struct Counters {
    std::atomic<uint64_t> status_puts{0}, rep_txns{0}, rep_records{0}, rep_conflicts{0}, keepalives{0},
        lease_grants{0}, live_puts{0}, errors{0}, leases_lost{0};
    std::mutex em;
    std::map<std::string, uint64_t> by_kind;  // errors by what failed
    std::map<std::string, std::string> sample;  // the first message of each kind
    void error(const std::string& kind, const std::string& msg) {
        ++errors;
        std::lock_guard g(em);
        if (!by_kind[kind]++) sample[kind] = msg;
    }
};

struct Host {
    std::string name;
    int64_t lease = 0;
    SteadyClock::time_point next_keepalive, next_status, next_rep;
    int64_t policy_serial = 0, policy_revision = 0, applied_at_ms = 0;
    int64_t share_revision = -1;   // of `share`, parsed once when it came (as a daemon does)
    nlohmann::json share;
    std::vector<int64_t> vm_rev;   // mod revision of each VM's record (0: none yet)
    std::vector<double> score;
};

// What a watch stream hands a worker: the newest global value and its hosts' values
// (by host; "" once deleted). `deliveries` counts what came in: the keys' watchers
// deliver independently, so a host value may arrive after a newer global revision.
struct Mailbox {
    std::mutex m;
    uint64_t deliveries = 0;
    int64_t global_revision = 0;
    std::string global;
    std::map<std::string, std::string> shares;
    std::map<std::string, int64_t> share_revision;
};

struct Shared {
    Config cfg;
    fleet::Keys keys;
    Counters c;
    std::atomic<bool> stop{false};
    std::vector<Mailbox> boxes;  // one per worker
    // propagation samples: serial -> ms from the final write to a host having its value
    std::mutex sm;
    std::map<int64_t, SteadyClock::time_point> final_write;
    std::map<int64_t, int64_t> final_write_wall;  // the same moment as Unix ms (real daemons' applied_at_ms)
    std::map<int64_t, std::vector<double>> samples;
};

inline etcd::Options options_for(const Config& cfg, size_t rotate) {
    etcd::Options o;
    for (size_t i = 0; i < cfg.endpoints.size(); ++i) o.endpoints.push_back(cfg.endpoints[(i + rotate) % cfg.endpoints.size()]);
    o.request_timeout_ms = 10000;
    return o;
}

inline std::string status_json(const Host& h, int vms) {
    fleet::HostStatus s;
    s.host = h.name;
    s.version = "sim";
    s.policy_serial = h.policy_serial;
    s.policy_revision = h.policy_revision;
    s.applied_at_ms = h.applied_at_ms;
    s.vms = uint64_t(vms);
    s.tiers = {uint64_t(vms), 0, 0, 0};
    s.last_seen_ms = s.last_sweep_ms = wall_ms();
    return fleet::to_json(s).dump();
}

// One thread per group of hosts (lease, status, reputation, applying what the watch
// streams deliver), until sh.stop.
void run_worker(Shared& sh, int id, std::vector<Host> hosts);
// One watch stream: the global key and the keys of hosts i with i % streams == stream.
void watch_stream(Shared& sh, int stream, int64_t start_rev);

}  // namespace smtpgov::fleetsim
