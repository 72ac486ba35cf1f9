#include "metrics/exporter.h"

#include <exception>
#include <stdexcept>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

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
    // A sweep is a batched map read: expected in the 100 us .. 100 ms range.
    sweep_ = &prometheus::BuildHistogram()
                  .Name("smtpgov_sweep_duration_seconds")
                  .Help("Duration of one controller sweep (map read, scoring, map writes)")
                  .Register(*registry_)
                  .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                                  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1});
    // CivetServer throws std::exception-derived CivetException when the bind fails.
    exposer_ = std::make_unique<prometheus::Exposer>(listen, 2);
    exposer_->RegisterCollectable(registry_);
    exposer_->RegisterCollectable(collector_);
}

MetricsExporter::~MetricsExporter() = default;

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
}

void MetricsExporter::observe_sweep(double seconds) { sweep_->Observe(seconds); }

void MetricsExporter::count_ticket(std::string_view reason) {
    tickets_->Add({{"reason", std::string(reason)}}).Increment();
}

void MetricsExporter::count_blocklist_sample(std::string_view blocklist) {
    blocklist_samples_->Add({{"blocklist", std::string(blocklist)}}).Increment();
}

int MetricsExporter::port() const {
    auto ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

}  // namespace smtpgov::metrics
