// MetricsExporter: scraped over HTTP on 127.0.0.1 (ephemeral port) like Prometheus does.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "metrics/exporter.h"
#include "metrics/snapshot_collector.h"
#include "scrape.h"

namespace smtpgov {
namespace {

using metrics::MetricsExporter;
using metrics::MetricsOptions;
using test::Exposition;

VmView vm(std::string id, Tier tier, double rate, uint64_t pass = 0) {
    VmView v;
    v.id = std::move(id);
    v.tenant = "acme";
    v.tier = tier;
    v.rate = rate;
    v.score = rate / 10;
    v.syn = {pass, 2, 3, 4};
    v.replies = {5, 6, 7, 8, 9};
    v.spoofed = 11;
    v.rst_sent = 12;
    return v;
}

Snapshot snapshot(std::vector<VmView> vms) {
    Snapshot s;
    s.vms = std::move(vms);
    for (const VmView& v : s.vms) ++s.tiers[static_cast<size_t>(v.tier)];  // as the controller counts
    for (size_t r = 0; r < s.results.size(); ++r) s.results[r] = 100 + r;
    s.maps = {{"sg_auto", 10, 8192}, {"sg_vm_policy", 3, 16384}};
    s.events_received = 42;
    s.sweep_seconds = 0.002;
    s.taken_unix_ms = 1'700'000'000'000;
    return s;
}

Exposition scrape(const MetricsExporter& ex) {
    auto body = test::http_get(ex.port());
    EXPECT_TRUE(body.has_value()) << "scrape of 127.0.0.1:" << ex.port() << " failed";
    return test::parse_exposition(body.value_or(""));
}

std::unique_ptr<MetricsExporter> start(MetricsOptions opts = {}) {
    auto ex = MetricsExporter::start("127.0.0.1:0", std::move(opts));
    EXPECT_TRUE(ex.ok()) << (ex.ok() ? "" : ex.error().message);
    return std::move(ex).value();
}

TEST(MetricsExporter, ServesEveryContractMetric) {
    auto ex = start();
    ASSERT_GT(ex->port(), 0);
    ex->update(snapshot({vm("vm-101", Tier::Throttled, 7.5, 1)}));
    ex->count_ticket("blocked");
    ex->count_ticket("blocked");
    ex->count_ticket("recovered");
    Exposition e = scrape(*ex);

    EXPECT_EQ(e.types["smtpgov_smtp_syn_total"], "counter");
    EXPECT_EQ(e.at(R"(smtpgov_smtp_syn_total{verdict="pass",vm="vm-101"})"), 1);
    EXPECT_EQ(e.at(R"(smtpgov_smtp_syn_total{verdict="throttle",vm="vm-101"})"), 2);
    EXPECT_EQ(e.at(R"(smtpgov_smtp_syn_total{verdict="steer",vm="vm-101"})"), 3);
    EXPECT_EQ(e.at(R"(smtpgov_smtp_syn_total{verdict="block",vm="vm-101"})"), 4);

    EXPECT_EQ(e.types["smtpgov_vm_tier"], "gauge");
    EXPECT_EQ(e.at(R"(smtpgov_vm_tier{tier="ok",vm="vm-101"})"), 0);
    EXPECT_EQ(e.at(R"(smtpgov_vm_tier{tier="throttled",vm="vm-101"})"), 1);
    EXPECT_EQ(e.at(R"(smtpgov_vm_tier{tier="steered",vm="vm-101"})"), 0);
    EXPECT_EQ(e.at(R"(smtpgov_vm_tier{tier="blocked",vm="vm-101"})"), 0);

    EXPECT_DOUBLE_EQ(e.at(R"(smtpgov_vm_reputation_score{vm="vm-101"})"), 0.75);
    EXPECT_DOUBLE_EQ(e.at(R"(smtpgov_vm_syn_rate{vm="vm-101"})"), 7.5);
    EXPECT_EQ(e.types["smtpgov_remote_replies_total"], "counter");
    EXPECT_EQ(e.at(R"(smtpgov_remote_replies_total{kind="synack",vm="vm-101"})"), 5);
    EXPECT_EQ(e.at(R"(smtpgov_remote_replies_total{kind="5xx",vm="vm-101"})"), 9);
    EXPECT_EQ(e.at(R"(smtpgov_vm_spoofed_total{vm="vm-101"})"), 11);
    EXPECT_EQ(e.at(R"(smtpgov_vm_rst_sent_total{vm="vm-101"})"), 12);

    EXPECT_EQ(e.types["smtpgov_tickets_total"], "counter");
    EXPECT_EQ(e.at(R"(smtpgov_tickets_total{reason="blocked"})"), 2);
    EXPECT_EQ(e.at(R"(smtpgov_tickets_total{reason="recovered"})"), 1);

    EXPECT_EQ(e.types["smtpgov_sweep_duration_seconds"], "histogram");
    EXPECT_EQ(e.at("smtpgov_sweep_duration_seconds_count"), 1);
    EXPECT_DOUBLE_EQ(e.at("smtpgov_sweep_duration_seconds_sum"), 0.002);
    EXPECT_EQ(e.at(R"(smtpgov_sweep_duration_seconds_bucket{le="0.0025"})"), 1);
    EXPECT_EQ(e.at(R"(smtpgov_sweep_duration_seconds_bucket{le="0.001"})"), 0);

    EXPECT_EQ(e.at(R"(smtpgov_build_info{version=")" SMTPGOV_VERSION R"("})"), 1);

    EXPECT_EQ(e.types["smtpgov_datapath_packets_total"], "counter");
    EXPECT_EQ(e.at(R"(smtpgov_datapath_packets_total{result="non_ip"})"), 100);
    EXPECT_EQ(e.at(R"(smtpgov_datapath_packets_total{result="smtp_syn"})"), 100 + SG_RES_SMTP_SYN);
    EXPECT_EQ(e.at("smtpgov_ringbuf_events_lost_total"), 100 + SG_RES_EVENT_LOST);
    EXPECT_EQ(e.at("smtpgov_ringbuf_events_received_total"), 42);
    EXPECT_EQ(e.at(R"(smtpgov_map_entries{map="sg_auto"})"), 10);
    EXPECT_EQ(e.at(R"(smtpgov_map_capacity{map="sg_auto"})"), 8192);
    EXPECT_EQ(e.at(R"(smtpgov_vms{tier="throttled"})"), 1);
    EXPECT_EQ(e.at(R"(smtpgov_vms{tier="ok"})"), 0);
    EXPECT_EQ(e.at("smtpgov_vm_series_omitted"), 0);
    EXPECT_DOUBLE_EQ(e.at("smtpgov_last_sweep_timestamp_seconds"), 1'700'000'000);
}

TEST(MetricsExporter, BeforeFirstSweepServesProcessMetricsOnly) {
    auto ex = start();
    Exposition e = scrape(*ex);
    EXPECT_TRUE(e.has(R"(smtpgov_build_info{version=")" SMTPGOV_VERSION R"("})"));
    EXPECT_EQ(e.at("smtpgov_sweep_duration_seconds_count"), 0);
    EXPECT_EQ(e.count("smtpgov_smtp_syn_total"), 0u);
}

TEST(MetricsExporter, RemovedVmsDisappear) {
    auto ex = start();
    ex->update(snapshot({vm("vm-1", Tier::Ok, 1), vm("vm-2", Tier::Ok, 2)}));
    Exposition before = scrape(*ex);
    EXPECT_TRUE(before.has(R"(smtpgov_vm_syn_rate{vm="vm-1"})"));
    EXPECT_TRUE(before.has(R"(smtpgov_vm_syn_rate{vm="vm-2"})"));

    ex->update(snapshot({vm("vm-2", Tier::Ok, 2)}));
    Exposition after = scrape(*ex);
    for (const auto& [key, value] : after.samples)
        EXPECT_EQ(key.find(R"(vm="vm-1")"), std::string::npos) << key;
    EXPECT_TRUE(after.has(R"(smtpgov_vm_syn_rate{vm="vm-2"})"));
    EXPECT_EQ(after.count("smtpgov_vm_tier"), 4u);
}

TEST(MetricsExporter, CapKeepsEscalatedVmsThenBusiest) {
    MetricsOptions opts;
    opts.max_vm_series = 3;
    auto ex = start(opts);
    ex->update(snapshot({vm("quiet", Tier::Ok, 0.1), vm("busy", Tier::Ok, 50), vm("busier", Tier::Ok, 80),
                         vm("blocked-idle", Tier::Blocked, 0), vm("steered", Tier::Steered, 1)}));
    Exposition e = scrape(*ex);
    EXPECT_EQ(e.count("smtpgov_vm_syn_rate"), 3u);
    EXPECT_TRUE(e.has(R"(smtpgov_vm_syn_rate{vm="blocked-idle"})"));
    EXPECT_TRUE(e.has(R"(smtpgov_vm_syn_rate{vm="steered"})"));
    EXPECT_TRUE(e.has(R"(smtpgov_vm_syn_rate{vm="busier"})"));
    EXPECT_FALSE(e.has(R"(smtpgov_vm_syn_rate{vm="busy"})"));
    EXPECT_FALSE(e.has(R"(smtpgov_vm_syn_rate{vm="quiet"})"));
    EXPECT_EQ(e.at("smtpgov_vm_series_omitted"), 2);
    // aggregate tier counts are never capped
    EXPECT_EQ(e.at(R"(smtpgov_vms{tier="ok"})"), 3);
}

TEST(MetricsExporter, OnlyEscalated) {
    MetricsOptions opts;
    opts.only_escalated = true;
    auto ex = start(opts);
    ex->update(snapshot({vm("a", Tier::Ok, 99), vm("b", Tier::Throttled, 1)}));
    Exposition e = scrape(*ex);
    EXPECT_EQ(e.count("smtpgov_vm_reputation_score"), 1u);
    EXPECT_TRUE(e.has(R"(smtpgov_vm_reputation_score{vm="b"})"));
    EXPECT_EQ(e.at("smtpgov_vm_series_omitted"), 1);
}

TEST(MetricsExporter, CountersSurviveExporterRestartWithSameKernelTotals) {
    Snapshot s = snapshot({vm("vm-1", Tier::Ok, 3, 1000)});
    Exposition first;
    {
        auto ex = start();
        ex->update(s);
        first = scrape(*ex);
    }
    auto ex = start();  // the restarted daemon reads the same pinned maps
    ex->update(s);
    Exposition second = scrape(*ex);
    size_t counters = 0;
    for (const auto& [key, value] : first.samples) {
        std::string name = key.substr(0, key.find('{'));
        if (first.types[name] != "counter" || name == "smtpgov_tickets_total" ||
            name == "smtpgov_ringbuf_events_received_total")
            continue;  // process-local counters legitimately restart from 0
        ++counters;
        ASSERT_TRUE(second.has(key)) << key;
        EXPECT_GE(second.at(key), value) << key;
    }
    EXPECT_GT(counters, 10u);
    EXPECT_EQ(second.at(R"(smtpgov_smtp_syn_total{verdict="pass",vm="vm-1"})"), 1000);

    // and a later sweep with higher totals only moves them up
    s.vms[0].syn[SG_VERDICT_PASS] = 1500;
    ex->update(s);
    EXPECT_EQ(scrape(*ex).at(R"(smtpgov_smtp_syn_total{verdict="pass",vm="vm-1"})"), 1500);
}

TEST(MetricsExporter, ObserveSweepAndConcurrentUpdates) {
    auto ex = start();
    ex->observe_sweep(0.3);
    std::thread writer([&] {
        for (int i = 0; i < 200; ++i) ex->update(snapshot({vm("vm-" + std::to_string(i % 7), Tier::Ok, i)}));
    });
    for (int i = 0; i < 20; ++i) EXPECT_GE(scrape(*ex).count("smtpgov_build_info"), 1u);
    writer.join();
    Exposition e = scrape(*ex);
    EXPECT_EQ(e.at("smtpgov_sweep_duration_seconds_count"), 201);
    EXPECT_EQ(e.at(R"(smtpgov_sweep_duration_seconds_bucket{le="0.5"})"), 201);
}

TEST(MetricsExporter, BindFailureIsAnError) {
    auto first = start();
    auto second = MetricsExporter::start("127.0.0.1:" + std::to_string(first->port()));
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message.find("metrics listen 127.0.0.1:"), std::string::npos);
}

TEST(SelectVmSeries, OrderAndCap) {
    std::vector<VmView> vms{vm("a", Tier::Ok, 5), vm("b", Tier::Blocked, 1), vm("c", Tier::Ok, 9)};
    auto all = metrics::select_vm_series(vms, {});
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0]->id, "b");
    EXPECT_EQ(all[1]->id, "c");
    EXPECT_EQ(all[2]->id, "a");
    EXPECT_EQ(metrics::select_vm_series(vms, {1, false}).front()->id, "b");
    EXPECT_TRUE(metrics::select_vm_series({}, {2, false}).empty());
}

}  // namespace
}  // namespace smtpgov
