#include "metrics/snapshot_collector.h"

#include <algorithm>
#include <string>
#include <utility>

#include <prometheus/client_metric.h>
#include <prometheus/metric_type.h>

namespace smtpgov::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
    MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
}

void add(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    if (f.type == MetricType::Counter)
        m.counter.value = value;
    else
        m.gauge.value = value;
    f.metric.push_back(std::move(m));
}

void render_vm(const VmView& vm, std::vector<MetricFamily>& out) {
    // out indexes: 0 syn, 1 tier, 2 score, 3 rate, 4 replies, 5 spoofed, 6 rst, 7 pinned
    for (std::size_t v = 0; v < kVerdictNames.size(); ++v)
        add(out[0], {{"vm", vm.id}, {"verdict", std::string(kVerdictNames[v])}}, double(vm.syn[v]));
    for (Tier t : kAllTiers)
        add(out[1], {{"vm", vm.id}, {"tier", std::string(to_string(t))}}, t == vm.tier ? 1 : 0);
    add(out[2], {{"vm", vm.id}}, vm.score);
    add(out[3], {{"vm", vm.id}}, vm.rate);
    for (std::size_t k = 0; k < kReplyNames.size(); ++k)
        add(out[4], {{"vm", vm.id}, {"kind", std::string(kReplyNames[k])}}, double(vm.replies[k]));
    add(out[5], {{"vm", vm.id}}, double(vm.spoofed));
    add(out[6], {{"vm", vm.id}}, double(vm.rst_sent));
    add(out[7], {{"vm", vm.id}}, vm.pin ? 1 : 0);
}

std::vector<MetricFamily> vm_families() {
    std::vector<MetricFamily> f;
    f.push_back(family("smtpgov_smtp_syn_total",
                       "New SMTP connections (SYN) seen per VM, by verdict, since the VM was first seen",
                       MetricType::Counter));
    f.push_back(family("smtpgov_vm_tier", "Tier in force per VM (state set: 1 for the current tier)",
                       MetricType::Gauge));
    f.push_back(family("smtpgov_vm_reputation_score", "Reputation score per VM (decayed to the sweep time)",
                       MetricType::Gauge));
    f.push_back(family("smtpgov_vm_syn_rate", "New SMTP connections per second per VM, smoothed",
                       MetricType::Gauge));
    f.push_back(family("smtpgov_remote_replies_total", "Remote SMTP replies seen per VM, by kind",
                       MetricType::Counter));
    f.push_back(family("smtpgov_vm_spoofed_total", "SYNs from a source address the VM does not own",
                       MetricType::Counter));
    f.push_back(family("smtpgov_vm_rst_sent_total", "TCP resets sent back to the VM for refused SYNs",
                       MetricType::Counter));
    f.push_back(family("smtpgov_vm_pinned", "1 when an operator pinned the VM's tier", MetricType::Gauge));
    return f;
}

}  // namespace

// The connection table and the scanning proxy.
void SnapshotCollector::render_steering(const State& st, std::vector<MetricFamily>& out) {
    const Snapshot& s = st.snap;
    if (s.conns.passes) {  // counted over a whole pass of the table: known
        auto tracked = family("smtpgov_connections_tracked", "SMTP connections in the datapath's connection table",
                              MetricType::Gauge);
        add(tracked, {}, double(s.conns.tracked));
        out.push_back(std::move(tracked));
        auto steered = family("smtpgov_connections_steered", "Tracked connections steered to the scanning proxy",
                              MetricType::Gauge);
        add(steered, {}, double(s.conns.steered));
        out.push_back(std::move(steered));
    }
    auto ev = family("smtpgov_connection_evictions_total",
                     "Connection entries a VM lost to its own newer connections past conn_per_vm (VMs with "
                     "evictions only, most first, capped like the per-VM series)",
                     MetricType::Counter);
    for (const auto& [vm, n] : st.evictions) add(ev, {{"vm", vm}}, double(n));
    out.push_back(std::move(ev));
    auto up = family("smtpgov_proxy_up", "1 while the scanning proxy of the family answers its health check (TCP + 220)",
                     MetricType::Gauge);
    for (const ProxyView& p : s.proxies) add(up, {{"family", p.family}}, p.up ? 1 : 0);
    out.push_back(std::move(up));
}

std::vector<const VmView*> select_vm_series(const std::vector<VmView>& vms, const SeriesLimits& limits) {
    std::vector<const VmView*> out;
    out.reserve(vms.size());
    for (const VmView& vm : vms)
        if (!limits.only_escalated || vm.tier != Tier::Ok) out.push_back(&vm);
    std::stable_sort(out.begin(), out.end(), [](const VmView* a, const VmView* b) {
        bool ea = a->tier != Tier::Ok, eb = b->tier != Tier::Ok;
        if (ea != eb) return ea;
        if (a->rate != b->rate) return a->rate > b->rate;
        return a->id < b->id;
    });
    if (limits.max_vm_series != 0 && out.size() > limits.max_vm_series) out.resize(limits.max_vm_series);
    return out;
}

std::vector<std::pair<std::string, uint64_t>> select_evictions(const std::vector<VmView>& vms,
                                                               const SeriesLimits& limits) {
    std::vector<std::pair<std::string, uint64_t>> out;
    for (const VmView& vm : vms)
        if (vm.conn_evicted) out.emplace_back(vm.id, vm.conn_evicted);
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (limits.max_vm_series != 0 && out.size() > limits.max_vm_series) out.resize(limits.max_vm_series);
    return out;
}

void SnapshotCollector::update(const Snapshot& snap) {
    auto st = std::make_shared<State>();
    std::vector<const VmView*> exported = select_vm_series(snap.vms, limits_);
    st->snap.results = snap.results;
    st->snap.tiers = snap.tiers;
    st->snap.maps = snap.maps;
    st->snap.events_received = snap.events_received;
    st->snap.sweep_seconds = snap.sweep_seconds;
    st->snap.taken_unix_ms = snap.taken_unix_ms;
    st->snap.conns = snap.conns;
    st->snap.proxies = snap.proxies;
    st->evictions = select_evictions(snap.vms, limits_);
    st->snap.vms.reserve(exported.size());
    for (const VmView* vm : exported) st->snap.vms.push_back(*vm);
    st->total_vms = snap.vms.size();
    std::lock_guard lk(mu_);
    state_ = std::move(st);
}

std::vector<MetricFamily> SnapshotCollector::Collect() const {
    std::shared_ptr<const State> st;
    {
        std::lock_guard lk(mu_);
        st = state_;
    }
    if (!st) return {};
    const Snapshot& s = st->snap;

    std::vector<MetricFamily> out = vm_families();
    for (const VmView& vm : s.vms) render_vm(vm, out);

    auto vms = family("smtpgov_vms", "VMs known to the controller, by tier (all VMs, not capped)",
                      MetricType::Gauge);
    for (Tier t : kAllTiers)
        add(vms, {{"tier", std::string(to_string(t))}}, double(st->snap.tiers[static_cast<std::size_t>(t)]));
    out.push_back(std::move(vms));

    auto omitted = family("smtpgov_vm_series_omitted",
                          "VMs left without per-VM series by the max_vm_series / only_escalated limits",
                          MetricType::Gauge);
    add(omitted, {}, double(st->total_vms - s.vms.size()));
    out.push_back(std::move(omitted));

    auto dp = family("smtpgov_datapath_packets_total", "Packets seen by the XDP program, by classification result",
                     MetricType::Counter);
    for (std::size_t r = 0; r < kResultNames.size(); ++r)
        add(dp, {{"result", std::string(kResultNames[r])}}, double(s.results[r]));
    out.push_back(std::move(dp));

    auto lost = family("smtpgov_ringbuf_events_lost_total", "Datapath events dropped because the ring buffer was full",
                       MetricType::Counter);
    add(lost, {}, double(s.results[SG_RES_EVENT_LOST]));
    out.push_back(std::move(lost));

    auto received = family("smtpgov_ringbuf_events_received_total",
                           "Datapath events consumed from the ring buffer by this daemon process",
                           MetricType::Counter);
    add(received, {}, double(s.events_received));
    out.push_back(std::move(received));

    auto entries = family("smtpgov_map_entries", "Entries in use per BPF map", MetricType::Gauge);
    auto capacity = family("smtpgov_map_capacity", "Maximum entries per BPF map", MetricType::Gauge);
    for (const MapFill& m : s.maps) {
        add(entries, {{"map", m.name}}, double(m.used));
        add(capacity, {{"map", m.name}}, double(m.max));
    }
    out.push_back(std::move(entries));
    out.push_back(std::move(capacity));

    render_steering(*st, out);

    auto last = family("smtpgov_last_sweep_timestamp_seconds", "Unix time of the sweep behind these metrics",
                       MetricType::Gauge);
    add(last, {}, double(s.taken_unix_ms) / 1000.0);
    out.push_back(std::move(last));
    return out;
}

}  // namespace smtpgov::metrics
