#include "metrics/exporter.h"

#include <exception>
#include <stdexcept>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "core/dnsbl.h"
#include "metrics/http_server.h"
#include "metrics/snapshot_collector.h"

namespace smtpgov::metrics {

MetricsExporter::MetricsExporter(const std::string& listen, MetricsOptions opts)
    : registry_(std::make_shared<prometheus::Registry>()),
      collector_(std::make_shared<SnapshotCollector>(SeriesLimits{opts.max_vm_series, opts.only_escalated})) {
    prometheus::BuildGauge()
        .Name("smtpgov_build_info")
        .Help("smtpgov build information; always 1")
        .Register(*registry_)
        .Add({{"version", opts.version}})
        .Set(1);
    tickets_ = &prometheus::BuildCounter()
                    .Name("smtpgov_tickets_total")
                    .Help("Abuse tickets written, by reason")
                    .Register(*registry_);
    blocklist_samples_ = &prometheus::BuildCounter()
                              .Name("smtpgov_remote_blocklist_samples_total")
                              .Help("Sampled remote SMTP rejections (at most 10/s per VM) naming a blocklist, "
                                    "by blocklist: the host's addresses are being listed")
                              .Register(*registry_);
    proxy_transitions_ = &prometheus::BuildCounter()
                              .Name("smtpgov_proxy_fail_mode_transitions_total")
                              .Help("Scanning proxy health transitions (per address family): into the fail "
                                    "mode (to=throttle|block) or back to steering (to=steer)")
                              .Register(*registry_);
    dnsbl_listed_ = &prometheus::BuildGauge()
                         .Name("smtpgov_dnsbl_listed_addresses")
                         .Help("Governed addresses listed now in a DNSBL zone, by zone and holder "
                               "(vm: a VM's address, quarantine: a proxy.egress address, none)")
                         .Register(*registry_);
    dnsbl_queries_ = &prometheus::BuildCounter()
                          .Name("smtpgov_dnsbl_queries_total")
                          .Help("DNSBL lookups answered, by result (listed, not_listed, or why the answer is "
                                "an error: list_refuses, outside_127, lists_the_world, test_entry_missing, nodata, "
                                "servfail, refused, timeout, "
                                "malformed, unreachable, other)")
                          .Register(*registry_);
    // A sweep is a batched map read: expected in the 100 us .. 100 ms range.
    sweep_ = &prometheus::BuildHistogram()
                  .Name("smtpgov_sweep_duration_seconds")
                  .Help("Duration of one controller sweep (map read, scoring, map writes)")
                  .Register(*registry_)
                  .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                                  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1});
    HttpServerOptions http;
    http.listen = listen;
    auto server = HttpServer::start(http, [this] { return render(); });
    if (!server) throw std::runtime_error(server.error().message);
    http_ = std::move(*server);
}

struct MetricsExporter::FleetSeries {
    prometheus::Gauge *up, *lag, *live, *lost, *outbox, *address_pending;
    prometheus::Counter *records, *requests, *conflicts, *addresses;
    FleetMetrics last;
};

void MetricsExporter::set_fleet(const FleetMetrics& f) {
    if (!fleet_) {
        auto g = [this](const char* name, const char* help) -> prometheus::Family<prometheus::Gauge>& {
            return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
        };
        auto& hosts = g("smtpgov_fleet_hosts", "Hosts of the fleet by state: live (lease held) or lost (lease expired)");
        auto& writes = prometheus::BuildCounter()
                           .Name("smtpgov_fleet_writes_total")
                           .Help("Writes to etcd: records (VM reputation records), requests (txn/put sent), "
                                 "conflicts (compare-and-swap lost, resolved and written again), addresses "
                                 "(address history records written or deleted)")
                           .Register(*registry_);
        fleet_ = std::make_unique<FleetSeries>(FleetSeries{
            &g("smtpgov_fleet_etcd_up", "1 while etcd answers this host, 0 while it does not").Add({}),
            &g("smtpgov_fleet_watch_lag_seconds", "Age of the newest shared record when it reached this host").Add({}),
            &hosts.Add({{"state", "live"}}), &hosts.Add({{"state", "lost"}}),
            &g("smtpgov_fleet_outbox_records", "This host's VM records waiting to be written to etcd").Add({}),
            &g("smtpgov_fleet_address_records_pending",
               "This host's address history records (one per /24 or /48) waiting to be written to etcd").Add({}),
            &writes.Add({{"kind", "records"}}), &writes.Add({{"kind", "requests"}}), &writes.Add({{"kind", "conflicts"}}),
            &writes.Add({{"kind", "addresses"}}), {}});
    }
    FleetSeries& s = *fleet_;
    s.up->Set(f.etcd_up ? 1 : 0);
    s.lag->Set(f.watch_lag_s);
    s.live->Set(static_cast<double>(f.hosts_live));
    s.lost->Set(static_cast<double>(f.hosts_lost));
    s.outbox->Set(static_cast<double>(f.outbox));
    s.address_pending->Set(static_cast<double>(f.address_records_pending));
    s.addresses->Increment(static_cast<double>(f.address_records_written - s.last.address_records_written));
    s.records->Increment(static_cast<double>(f.records_written - s.last.records_written));
    s.requests->Increment(static_cast<double>(f.requests - s.last.requests));
    s.conflicts->Increment(static_cast<double>(f.conflicts - s.last.conflicts));
    s.last = f;
    ++version_;
}

MetricsExporter::~MetricsExporter() {
    if (http_) http_->stop();  // no scrape may run while the registry goes away
}

std::shared_ptr<const std::string> MetricsExporter::render() {
    std::lock_guard lock(render_mu_);
    // Read before collecting: a change that lands during the collection bumps it again,
    // so the next scrape renders anew.
    const uint64_t v = version_.load();
    if (rendered_ && rendered_version_ == v) return rendered_;
    auto families = registry_->Collect();
    auto snapshot = collector_->Collect();
    families.insert(families.end(), std::make_move_iterator(snapshot.begin()),
                    std::make_move_iterator(snapshot.end()));
    rendered_ = std::make_shared<const std::string>(prometheus::TextSerializer().Serialize(families));
    rendered_version_ = v;
    return rendered_;
}

Result<std::unique_ptr<MetricsExporter>> MetricsExporter::start(const std::string& listen, MetricsOptions opts) {
    try {
        return std::make_unique<MetricsExporter>(listen, std::move(opts));
    } catch (const std::exception& e) {
        return Error::msg("metrics listen " + listen + ": " + e.what());
    }
}

void MetricsExporter::update(const Snapshot& snap) {
    if (snap.sweep_seconds > 0) sweep_->Observe(snap.sweep_seconds);
    collector_->update(snap);
    ++version_;
}

void MetricsExporter::observe_sweep(double seconds) {
    sweep_->Observe(seconds);
    ++version_;
}

void MetricsExporter::count_ticket(std::string_view reason) {
    tickets_->Add({{"reason", std::string(reason)}}).Increment();
    ++version_;
}

void MetricsExporter::count_blocklist_sample(std::string_view blocklist) {
    blocklist_samples_->Add({{"blocklist", std::string(blocklist)}}).Increment();
    ++version_;
}

void MetricsExporter::count_proxy_transition(std::string_view to) {
    proxy_transitions_->Add({{"to", std::string(to)}}).Increment();
    ++version_;
}

void MetricsExporter::set_dnsbl_zones(const std::vector<std::string>& zones) {
    {
        std::lock_guard lock(dnsbl_mu_);
        dnsbl_zones_ = zones;
    }
    for (const std::string& z : zones)
        for (const char* holder : {"vm", "quarantine", "none"}) dnsbl_listed_->Add({{"zone", z}, {"holder", holder}});
    for (std::string_view r : dnsbl::result_labels()) dnsbl_queries_->Add({{"result", std::string(r)}});
    ++version_;
}

void MetricsExporter::set_dnsbl_listed(const std::map<std::pair<std::string, std::string>, size_t>& counts) {
    std::lock_guard lock(dnsbl_mu_);
    for (const std::string& z : dnsbl_zones_)
        for (const char* holder : {"vm", "quarantine", "none"}) {
            auto it = counts.find({z, holder});
            dnsbl_listed_->Add({{"zone", z}, {"holder", holder}})
                .Set(it == counts.end() ? 0.0 : static_cast<double>(it->second));
        }
    ++version_;
}

void MetricsExporter::count_dnsbl_query(std::string_view result) {
    dnsbl_queries_->Add({{"result", std::string(result)}}).Increment();
    ++version_;
}

int MetricsExporter::port() const { return http_->port(); }

}  // namespace smtpgov::metrics
