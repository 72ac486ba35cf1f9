// smtpgovd: the process around the Controller. It owns the kernel side (KernelHost:
// datapath, attachments, pins), the ring buffer and netlink watcher, the control
// socket, the metrics exporter and the webhook, and runs one event loop (epoll) over
// the sweep timer, the hot timer, the ring, netlink, signals and control requests.
// The Controller is touched from the loop thread only; control requests are handed
// over through a queue.
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/unique_fd.h"
#include "daemon/config.h"
#include "daemon/controller.h"
#include "daemon/kernel_host.h"
#include "kern/event_ring.h"
#include "kern/link_watcher.h"
#include "svc/control_server.h"
#include "svc/dnsbl_resolver.h"
#include "svc/fleet_agent.h"
#include "svc/policy_server.h"
#include "svc/proxy_check.h"
#include "svc/webhook.h"

namespace smtpgov::metrics {
class MetricsExporter;
}

namespace smtpgov::daemon {

Result<fleet::Options> fleet_options(const Config& cfg);  // daemon_fleet.cpp

class Daemon {
public:
    // Everything up to the first sweep; errors are fatal start-up errors.
    static Result<std::unique_ptr<Daemon>> start(const Config& cfg);
    ~Daemon();
    // Runs until SIGTERM/SIGINT; enforcement stays in the kernel afterwards.
    int run();

private:
    Daemon() = default;
    Status init_datapath();
    Status init_services();
    Status init_loop();
    // daemon_steering.cpp: the proxy health checker and the policy service, both handing
    // their work to the loop thread through post().
    Status init_steering();
    // daemon_fleet.cpp: the fleet agent (config key fleet), fed after each sweep.
    Status init_fleet();
    Status init_fleet_reader();
    void fleet_tick();
    svc::Reply with_fleet_addresses(const nlohmann::json& req, svc::Reply local);
    svc::Reply fleet_report_arf(const nlohmann::json& req, svc::Reply local);
    // daemon_dnsbl.cpp: the DNSBL resolver (config key dnsbl), its answers posted here.
    Status init_dnsbl();
    void configure_checker();
    void post(std::function<void()> task);
    void attach_matching();
    void on_links();
    void loop_once(int timeout_ms);
    void sweep();
    void arm_hot_timer();
    void drain_commands();
    void notify_status();
    svc::Reply submit(const nlohmann::json& req);
    // Hands sweep snapshots to the metrics exporter off the loop thread (its update
    // copies and ranks every VM); only the newest waiting snapshot is kept.
    void publish(Snapshot snap);
    void publisher_loop();

    Config cfg_;
    SystemClock clock_;
    std::unique_ptr<Controller> ctl_;
    std::unique_ptr<KernelHost> host_;
    std::optional<kern::EventRing> ring_;
    std::optional<kern::LinkWatcher> links_;
    std::unique_ptr<svc::Webhook> webhook_;
    std::unique_ptr<metrics::MetricsExporter> metrics_;
    std::unique_ptr<svc::ControlServer> server_;

    std::mutex pub_mu_;
    std::condition_variable pub_cv_;
    std::optional<Snapshot> pub_next_;
    bool pub_stop_ = false;
    std::thread publisher_;

    UniqueFd epoll_, sweep_timer_, hot_timer_, wake_, signals_;
    bool hot_armed_ = false;
    bool stop_ = false;
    uint64_t sweeps_ = 0;

    struct Pending {
        nlohmann::json request;
        std::promise<svc::Reply> reply;
    };
    std::mutex queue_mu_;
    std::deque<Pending> queue_;
    bool closing_ = false;  // guarded by queue_mu_: the loop is gone, requests fail at once
    std::deque<std::function<void()>> tasks_;  // guarded by queue_mu_: work for the loop thread
    std::unique_ptr<svc::ProxyChecker> checker_;
    std::unique_ptr<svc::PolicyServer> policy_server_;
    std::unique_ptr<svc::FleetAgent> fleet_;
    std::unique_ptr<const svc::FleetAddressReader> addr_reader_;  // set before the control socket opens
    std::unique_ptr<svc::DnsblResolver> dnsbl_;
};

}  // namespace smtpgov::daemon
