// smtpgovd: owns the datapath, the interfaces, the policy in force and the reputation,
// and runs one event loop (epoll) over the sweep timer, the ring buffer, netlink, the
// signals and the control socket's requests. Every piece of state is touched from the
// loop thread only; control requests are handed over through a queue.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/policy.h"
#include "core/reputation.h"
#include "core/view.h"
#include "daemon/config.h"
#include "daemon/map_plan.h"
#include "daemon/state_store.h"
#include "kern/attacher.h"
#include "kern/datapath.h"
#include "kern/event_ring.h"
#include "kern/link_watcher.h"
#include "kern/map_io.h"
#include "core/unique_fd.h"
#include "svc/control_server.h"
#include "svc/event_log.h"
#include "svc/webhook.h"

namespace smtpgov::metrics {
class MetricsExporter;
}

namespace smtpgov::daemon {

// Per-VM controller state between sweeps.
struct VmRuntime {
    sg_vm_stats last{};          // counter totals at the previous reading
    bool primed = false;         // `last` holds a reading
    uint64_t read_ns = 0;        // CLOCK_MONOTONIC of that reading
    double rate = 0;             // smoothed SYN/s
    uint64_t trigger_ns = 0;     // ts_ns of the over-limit event not yet answered by an escalation
    std::vector<std::string> samples; // recent remote reply lines (a vector: no allocation while empty)
};

struct AutoVm {
    sg_auto_key key{};
    VmRuntime rt;
    std::string interface;
    std::string address;
};

class Daemon {
public:
    // Everything up to the first sweep; errors are fatal start-up errors.
    static Result<std::unique_ptr<Daemon>> start(const Config& cfg);
    ~Daemon();
    // Runs until SIGTERM/SIGINT; enforcement stays in the kernel afterwards.
    int run();

private:
    Daemon() = default;
    // --- start-up (daemon.cpp)
    Status init_policy();
    Status init_datapath();
    Status init_services();
    void attach_matching();
    void on_links();
    void govern(const std::string& name, int ifindex);
    void write_iface_entry(const std::string& name, int ifindex);
    // --- loop (daemon.cpp)
    void loop_once(int timeout_ms);
    void drain_commands();
    void notify_status();
    // --- sweep (sweep.cpp)
    void sweep();
    void on_event(const sg_event& ev);
    void hot_tick();
    void arm_hot_timer();
    void mini_sweep_slot(uint32_t slot, uint64_t now_ns, int64_t now_ms);
    void mini_sweep_auto(const std::string& id, uint64_t now_ns, int64_t now_ms);
    void feed(const std::string& id, VmRuntime& rt, const sg_vm_stats& cur, uint64_t now_ns, int64_t now_ms);
    void evaluate(int64_t now_ms);
    void on_transition(const Transition& t);
    Status write_tier(const std::string& id, Tier t);
    std::string auto_id(const sg_auto_key& k, std::string* ifname, std::string* addr) const;
    VmView registered_view(size_t idx, const std::unordered_set<std::string>* known, bool detail) const;
    void fill_view(VmView& v, const VmRuntime* rt, bool tracked) const;
    Snapshot build_snapshot(double sweep_seconds, bool detail = true);
    std::vector<MapFill> map_fill() const;
    // `known`: the VMs the reputation tracks (others are at ok with score 0), which
    // spares the lookups in a sweep over 100,000 VMs; addresses only with `detail`.
    std::optional<VmView> view(const std::string& id, const std::unordered_set<std::string>* known = nullptr,
                               bool detail = true) const;
    VmRuntime* runtime(const std::string& id);
    void persist_reputation();
    // --- policy (policy_ops.cpp)
    Result<nlohmann::json> apply_policy(const Policy& neu);
    PlanInputs plan_inputs(const Policy& p, const SlotTable& slots, const std::map<std::string, Tier>& pins) const;
    void index_policy();
    void sync_policy_pins();
    Status persist_policy();
    // --- control (control.cpp)
    svc::Reply submit(const nlohmann::json& req);
    svc::Reply dispatch(const nlohmann::json& req);
    nlohmann::json status_json();
    nlohmann::json vm_json(const VmView& v) const;

    Config cfg_;
    kern::XdpMode xdp_mode_ = kern::XdpMode::Auto;
    SystemClock clock_;
    int64_t started_ms_ = 0;

    std::optional<kern::Datapath> dp_;
    std::unique_ptr<kern::Attacher> attacher_;
    std::optional<kern::EventRing> ring_;
    std::optional<kern::LinkWatcher> links_;
    kern::MapReader reader_;
    UniqueFd bpffs_lock_;

    Policy policy_;
    SlotTable slots_;
    std::unordered_map<std::string, size_t> vm_index_;   // id -> policy_.vms index
    std::vector<int32_t> by_slot_;                        // slot -> policy_.vms index, -1 free
    std::vector<uint32_t> slot_of_;                       // policy_.vms index -> slot
    std::map<std::string, Tier> policy_pins_;             // pins that come from the policy
    std::unique_ptr<Reputation> rep_;
    std::vector<VmRuntime> vm_rt_;                        // by slot
    std::unordered_map<std::string, AutoVm> autos_;
    std::array<uint64_t, SG_RES_MAX> results_{};
    std::vector<sg_vm_stats> stats_buf_;
    std::vector<std::pair<sg_auto_key, sg_auto_vm>> auto_buf_;
    std::map<uint32_t, uint64_t> hot_slots_;             // slot -> hot until (mono ns)
    std::map<std::string, uint64_t> hot_autos_;
    bool rep_dirty_ = false;
    bool hot_armed_ = false;
    int64_t rep_saved_ms_ = 0;
    uint64_t events_received_ = 0;
    double last_sweep_ms_ = 0;
    uint64_t sweeps_ = 0;
    size_t iface_entries_ = 0, v4_entries_ = 0, v6_entries_ = 0;

    std::unique_ptr<svc::EventLog> events_;
    std::unique_ptr<svc::Webhook> webhook_;
    std::unique_ptr<metrics::MetricsExporter> metrics_;
    std::unique_ptr<svc::ControlServer> server_;

    // Hands sweep snapshots to the metrics exporter off the loop thread (its update
    // copies and ranks every VM); only the newest waiting snapshot is kept.
    void publish(Snapshot snap);
    void publisher_loop();
    std::mutex pub_mu_;
    std::condition_variable pub_cv_;
    std::optional<Snapshot> pub_next_;
    bool pub_stop_ = false;
    std::thread publisher_;

    UniqueFd epoll_, sweep_timer_, hot_timer_, wake_, signals_;
    bool stop_ = false;

    struct Pending {
        nlohmann::json request;
        std::promise<svc::Reply> reply;
    };
    std::mutex queue_mu_;
    std::deque<Pending> queue_;
    bool closing_ = false;  // guarded by queue_mu_: the loop is gone, requests fail at once
};

// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns() and of sg_event.ts_ns.
uint64_t mono_ns();

}  // namespace smtpgov::daemon
