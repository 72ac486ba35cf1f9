// smtpgov's Prometheus endpoint: serves /metrics on metrics_listen (default 127.0.0.1:9464).
//
// The daemon calls update() with each sweep's Snapshot; kernel-backed counters are
// rendered from the snapshot's absolute totals on each scrape (see snapshot_collector.h).
// Tickets and sweep durations are process-local and kept in a prometheus::Registry.
// HTTP is served by metrics/http_server.h (not prometheus-cpp's civetweb Exposer: idle
// connections must not be able to blind the scraper; see there). /metrics is read-only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "core/view.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
template <typename T> class Family;
class Histogram;
}  // namespace prometheus

namespace smtpgov::metrics {

class SnapshotCollector;
class HttpServer;

struct MetricsOptions {
    std::size_t max_vm_series = 0;   // per-VM series cap; 0 = unlimited (escalated VMs kept first)
    bool only_escalated = false;     // per-VM series only for VMs above tier ok
    std::string version = SMTPGOV_VERSION;  // smtpgov_build_info{version}
};

// The fleet agent's figures (svc/fleet_agent.h FleetStats), totals since start.
struct FleetMetrics {
    bool etcd_up = false;
    double watch_lag_s = 0;
    uint64_t records_written = 0, requests = 0, conflicts = 0;
    uint64_t hosts_live = 0, hosts_lost = 0;
    uint64_t outbox = 0;
    uint64_t address_records_written = 0, address_records_pending = 0;  // core/address_fleet.h
};

class MetricsExporter {
public:
    // Binds listen ("127.0.0.1:9464", "[::1]:9464", port 0 = ephemeral).
    // Throws std::runtime_error when the address cannot be bound; see start().
    // HTTP limits (connections, timeouts): HttpServerOptions' defaults.
    explicit MetricsExporter(const std::string& listen, MetricsOptions opts = {});
    ~MetricsExporter();
    MetricsExporter(const MetricsExporter&) = delete;
    MetricsExporter& operator=(const MetricsExporter&) = delete;

    // Error-as-value construction: "metrics listen 127.0.0.1:9464: <reason>".
    static Result<std::unique_ptr<MetricsExporter>> start(const std::string& listen, MetricsOptions opts = {});

    // Publishes a sweep. Observes snap.sweep_seconds into smtpgov_sweep_duration_seconds
    // when it is > 0 (then do not also call observe_sweep for that sweep). Thread-safe.
    void update(const Snapshot& snap);
    // Observes one sweep duration, for callers that leave Snapshot::sweep_seconds at 0.
    void observe_sweep(double seconds);
    // Counts one ticket: smtpgov_tickets_total{reason}. Keep reasons a small fixed set.
    void count_ticket(std::string_view reason);
    // Counts one sampled remote rejection line that names a blocklist:
    // smtpgov_remote_blocklist_samples_total{blocklist} (names from core/blocklists).
    void count_blocklist_sample(std::string_view blocklist);
    // Counts one proxy health transition: smtpgov_proxy_fail_mode_transitions_total{to},
    // to = the fail mode entered (throttle, block) or steer (a proxy is back).
    void count_proxy_transition(std::string_view to);

    // The fleet's figures: smtpgov_fleet_etcd_up, _watch_lag_seconds, _hosts{state},
    // _outbox_records, _writes_total{kind} (records, requests, conflicts).
    void set_fleet(const FleetMetrics& f);

    // DNSBL monitoring: the configured zones get their series at 0 (so an alert sees a drop
    // to 0), then smtpgov_dnsbl_listed_addresses{zone,holder} (holder: vm, quarantine, none)
    // is set from the counts of addresses listed now, and each answer is counted in
    // smtpgov_dnsbl_queries_total{result} (result: core/dnsbl.h result_labels()).
    void set_dnsbl_zones(const std::vector<std::string>& zones);
    void set_dnsbl_listed(const std::map<std::pair<std::string, std::string>, size_t>& counts);
    void count_dnsbl_query(std::string_view result);

    // The port actually bound (useful with port 0).
    int port() const;

private:
    std::shared_ptr<prometheus::Registry> registry_;
    std::shared_ptr<SnapshotCollector> collector_;
    prometheus::Family<prometheus::Counter>* tickets_ = nullptr;
    prometheus::Family<prometheus::Counter>* blocklist_samples_ = nullptr;
    prometheus::Family<prometheus::Counter>* proxy_transitions_ = nullptr;
    prometheus::Family<prometheus::Gauge>* dnsbl_listed_ = nullptr;
    prometheus::Family<prometheus::Counter>* dnsbl_queries_ = nullptr;
    std::vector<std::string> dnsbl_zones_;  // guarded by dnsbl_mu_
    std::mutex dnsbl_mu_;
    prometheus::Histogram* sweep_ = nullptr;
    struct FleetSeries;
    std::unique_ptr<FleetSeries> fleet_;  // registered on the first set_fleet()
    // Every change goes through this class and bumps version_; a scrape renders again only
    // when it moved, so concurrent scrapers share one body (memory stays bounded).
    std::atomic<uint64_t> version_{0};
    std::mutex render_mu_;
    uint64_t rendered_version_ = ~uint64_t{0};
    std::shared_ptr<const std::string> rendered_;
    std::shared_ptr<const std::string> render();
    std::unique_ptr<HttpServer> http_;  // last: stopped before the rest is destroyed
};

}  // namespace smtpgov::metrics
