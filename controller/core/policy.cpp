// Policy model -> JSON, the diff reported by policy.apply, and effective limits.
#include "core/policy.h"

#include <algorithm>
#include <unordered_map>

namespace smtpgov {

using nlohmann::json;

std::string_view to_string(FailMode m) { return m == FailMode::Block ? "block" : "throttle"; }

std::optional<FailMode> parse_fail_mode(std::string_view s) {
    if (s == "throttle") return FailMode::Throttle;
    if (s == "block") return FailMode::Block;
    return std::nullopt;
}

Tier fail_tier(FailMode m) { return m == FailMode::Block ? Tier::Blocked : Tier::Throttled; }

std::vector<Endpoint> Proxy::addresses() const {
    std::vector<Endpoint> out;
    if (v4) out.push_back(*v4);
    if (v6) out.push_back(*v6);
    return out;
}

const Vm* Policy::find(std::string_view id) const {
    for (const Vm& vm : vms)
        if (vm.id == id) return &vm;
    return nullptr;
}

namespace {

json limits_json(std::optional<uint32_t> rate, std::optional<uint32_t> burst) {
    json j = json::object();
    if (rate) j["rate"] = *rate;
    if (burst) j["burst"] = *burst;
    return j;
}

json vm_json(const Vm& vm) {
    json j{{"id", vm.id}};
    if (!vm.tenant.empty()) j["tenant"] = vm.tenant;
    if (!vm.host.empty()) j["host"] = vm.host;
    if (!vm.interface.empty()) j["interface"] = vm.interface;
    if (!vm.libvirt.empty()) j["libvirt"] = vm.libvirt;
    if (!vm.addresses.empty()) {
        json a = json::array();
        for (const auto& p : vm.addresses) a.push_back(p.to_string());
        j["addresses"] = std::move(a);
    }
    if (vm.rate) j["rate"] = *vm.rate;
    if (vm.burst) j["burst"] = *vm.burst;
    if (vm.tier) j["tier"] = to_string(*vm.tier);
    return j;
}

json thresholds_json(const Thresholds& t) {
    return {{"throttled", t.throttled}, {"steered", t.steered}, {"blocked", t.blocked}};
}

json reputation_json(const ReputationConfig& r) {
    const auto& w = r.weights;
    json j{{"half_life_s", r.half_life_s},
            {"thresholds", thresholds_json(r.thresholds)},
            {"hysteresis", r.hysteresis},
            {"min_dwell_s", r.min_dwell_s},
            {"weights",
             {{"over_limit", w.over_limit},
              {"spoofed", w.spoofed},
              {"remote_reject", w.remote_reject},
              {"spam_report", w.spam_report},
              {"complaint", w.complaint},
              {"dnsbl_listing", w.dnsbl_listing}}}};
    if (r.tenant_thresholds) j["tenant_thresholds"] = thresholds_json(*r.tenant_thresholds);
    return j;
}

json proxy_json(const Proxy& px) {
    json addrs = json::array(), egress = json::array();
    for (const Endpoint& e : px.addresses()) addrs.push_back(e.to_string());
    for (const IpPrefix& a : px.egress) egress.push_back(a.to_string());
    return {{"address", std::move(addrs)}, {"fail_mode", to_string(px.fail_mode)}, {"ports", px.ports},
            {"check_interval_s", px.check_interval_s}, {"egress", std::move(egress)}};
}

}  // namespace

json to_json(const Policy& p) {
    json defaults{{"rate", p.defaults.rate}, {"burst", p.defaults.burst}, {"over_limit", to_string(p.defaults.over_limit)}};
    if (p.defaults.unregistered_rate) defaults["unregistered_rate"] = *p.defaults.unregistered_rate;
    if (p.defaults.unregistered_burst) defaults["unregistered_burst"] = *p.defaults.unregistered_burst;
    json tiers{{"throttled", {{"rate", p.tiers.throttled.rate}, {"burst", p.tiers.throttled.burst}}},
               {"blocked", {{"action", to_string(p.tiers.blocked_action)}}}};
    if (p.tiers.steered_rate || p.tiers.steered_burst)
        tiers["steered"] = limits_json(p.tiers.steered_rate, p.tiers.steered_burst);
    json vms = json::array();
    for (const Vm& vm : p.vms) vms.push_back(vm_json(vm));
    json out{{"smtp_ports", p.smtp_ports}, {"defaults", std::move(defaults)}, {"tiers", std::move(tiers)},
             {"reputation", reputation_json(p.reputation)}, {"vms", std::move(vms)}};
    out["conn_per_vm"] = p.conn_per_vm;
    if (p.proxy) out["proxy"] = proxy_json(*p.proxy);
    return out;
}

json to_json(const std::vector<Problem>& problems) {
    json a = json::array();
    for (const auto& pr : problems) a.push_back({{"path", pr.path}, {"reason", pr.reason}});
    return a;
}

namespace {

std::vector<std::string> changed_fields(const Policy& po, const Vm& a, const Policy& pn, const Vm& b) {
    std::vector<std::string> f;
    if (a.tenant != b.tenant) f.push_back("tenant");
    if (a.host != b.host) f.push_back("host");
    if (a.interface != b.interface) f.push_back("interface");
    if (a.libvirt != b.libvirt) f.push_back("libvirt");
    if (a.addresses != b.addresses) f.push_back("addresses");
    LimitPair la = limits_for(po, a, Tier::Ok), lb = limits_for(pn, b, Tier::Ok);
    if (la.rate != lb.rate) f.push_back("rate");
    if (la.burst != lb.burst) f.push_back("burst");
    if (a.tier != b.tier) f.push_back("tier");
    return f;
}

}  // namespace

PolicyDiff diff(const Policy& old, const Policy& neu) {
    PolicyDiff d;
    std::unordered_map<std::string_view, const Vm*> before;
    before.reserve(old.vms.size());
    for (const Vm& vm : old.vms) before.emplace(vm.id, &vm);
    for (const Vm& vm : neu.vms) {
        auto it = before.find(vm.id);
        if (it == before.end()) {
            d.added.push_back(vm.id);
            continue;
        }
        auto fields = changed_fields(old, *it->second, neu, vm);
        if (!fields.empty()) d.changed.push_back({vm.id, std::move(fields)});
        before.erase(it);
    }
    for (const auto& [id, _] : before) d.removed.emplace_back(id);
    std::sort(d.added.begin(), d.added.end());
    std::sort(d.removed.begin(), d.removed.end());
    std::sort(d.changed.begin(), d.changed.end(), [](const VmChange& a, const VmChange& b) { return a.id < b.id; });
    auto sorted = [](std::vector<uint16_t> v) {
        std::sort(v.begin(), v.end());
        return v;
    };
    d.ports_changed = sorted(old.smtp_ports) != sorted(neu.smtp_ports);  // order carries no meaning
    if (old.conn_per_vm != neu.conn_per_vm) d.sections_changed.push_back("conn_per_vm");
    if (!(old.defaults == neu.defaults)) d.sections_changed.push_back("defaults");
    if (!(old.tiers == neu.tiers)) d.sections_changed.push_back("tiers");
    if (old.proxy != neu.proxy) d.sections_changed.push_back("proxy");
    if (!(old.reputation == neu.reputation)) d.sections_changed.push_back("reputation");
    return d;
}

json to_json(const PolicyDiff& d) {
    json changed = json::array();
    for (const auto& c : d.changed) changed.push_back({{"id", c.id}, {"fields", c.fields}});
    return {{"added", d.added}, {"removed", d.removed}, {"changed", std::move(changed)}, {"ports_changed", d.ports_changed}};
}

LimitPair steered_limits(const Policy& p) {
    return {p.tiers.steered_rate.value_or(p.tiers.throttled.rate),
            p.tiers.steered_burst.value_or(p.tiers.throttled.burst)};
}

LimitPair unregistered_limits(const Policy& p) {
    return {p.defaults.unregistered_rate.value_or(p.defaults.rate * 10),
            p.defaults.unregistered_burst.value_or(p.defaults.burst * 10)};
}

namespace {

LimitPair at_tier(const Policy& p, LimitPair own, Tier t) {
    auto tighter = [&](LimitPair tier) { return LimitPair{std::min(tier.rate, own.rate), std::min(tier.burst, own.burst)}; };
    switch (t) {
    case Tier::Ok: return own;
    case Tier::Throttled: return tighter(p.tiers.throttled);
    case Tier::Steered: return tighter(steered_limits(p));
    case Tier::Blocked: return {0, 0};
    }
    return own;
}

}  // namespace

LimitPair limits_for(const Policy& p, const Vm& vm, Tier t) {
    return at_tier(p, {vm.rate.value_or(p.defaults.rate), vm.burst.value_or(p.defaults.burst)}, t);
}

LimitPair default_limits_for(const Policy& p, Tier t) { return at_tier(p, {p.defaults.rate, p.defaults.burst}, t); }

}  // namespace smtpgov
