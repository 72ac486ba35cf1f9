// Policy JSON -> model. Every section is read with the Walker, which records a problem
// for each bad value and lets parsing go on, so one pass names every problem.
#include <cmath>
#include <set>
#include <sstream>

#include "core/policy.h"
#include "core/json_strict.h"
#include "core/policy_detail.h"

namespace smtpgov {
namespace policy_detail {

bool Walker::object(const json& v, const std::string& path) {
    if (v.is_object()) return true;
    bad(path, std::string("must be an object, not ") + v.type_name());
    return false;
}

void Walker::known_keys(const json& obj, const std::string& path, std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, _] : obj.items()) {
        bool known = false;
        for (auto a : allowed) known = known || key == a;
        if (known) continue;
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        bad(path + "/" + escape_pointer_token(key), "unknown key (expected one of: " + list + ")");
    }
}

std::optional<std::string> Walker::string(const json& v, const std::string& path) {
    if (v.is_string()) return v.get<std::string>();
    bad(path, std::string("must be a string, not ") + v.type_name());
    return std::nullopt;
}

std::optional<double> Walker::number(const json& v, const std::string& path) {
    if (v.is_number()) return v.get<double>();
    bad(path, std::string("must be a number, not ") + v.type_name());
    return std::nullopt;
}

std::optional<uint32_t> Walker::count(const json& v, const std::string& path, uint32_t max) {
    auto n = number(v, path);
    if (!n) return std::nullopt;
    if (*n < 0) return bad(path, "must be >= 0"), std::nullopt;
    if (*n > max) return bad(path, "absurd value: must be <= " + std::to_string(max)), std::nullopt;
    if (std::floor(*n) != *n) return bad(path, "must be a whole number"), std::nullopt;
    return static_cast<uint32_t>(*n);
}

std::optional<Action> Walker::action(const json& v, const std::string& path) {
    auto s = string(v, path);
    if (!s) return std::nullopt;
    if (auto a = parse_action(*s)) return a;
    bad(path, "unknown action \"" + *s + "\" (drop, reset)");
    return std::nullopt;
}

std::optional<Tier> Walker::tier(const json& v, const std::string& path) {
    auto s = string(v, path);
    if (!s) return std::nullopt;
    if (auto t = parse_tier(*s)) return t;
    bad(path, "unknown tier \"" + *s + "\" (ok, throttled, steered, blocked)");
    return std::nullopt;
}

std::optional<std::vector<uint16_t>> port_list(Walker& w, const json& v, const std::string& path) {
    if (!v.is_array()) return w.bad(path, std::string("must be an array of ports, not ") + v.type_name()), std::nullopt;
    if (v.empty()) return w.bad(path, "must list at least one port"), std::nullopt;
    if (v.size() > SG_MAX_PORTS) return w.bad(path, "at most " + std::to_string(SG_MAX_PORTS) + " ports"), std::nullopt;
    std::vector<uint16_t> ports;
    std::set<uint32_t> seen;
    for (size_t i = 0; i < v.size(); ++i) {
        const std::string at = path + "/" + std::to_string(i);
        auto n = w.count(v[i], at, 65535);
        if (!n) continue;
        if (*n == 0) w.bad(at, "port 0 is not a valid port");
        else if (!seen.insert(*n).second) w.bad(at, "duplicate port " + std::to_string(*n));
        else ports.push_back(static_cast<uint16_t>(*n));
    }
    return ports;
}

const json* member(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
}

std::string escape_pointer_token(std::string_view key) {
    std::string out;
    for (char c : key) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

}  // namespace policy_detail

namespace {

using namespace policy_detail;

void parse_ports(Walker& w, const json& v, Policy& p) {
    if (auto ports = port_list(w, v, "/smtp_ports")) p.smtp_ports = *ports;
}

void parse_defaults(Walker& w, const json& v, Defaults& d) {
    const std::string path = "/defaults";
    if (!w.object(v, path)) return;
    w.known_keys(v, path, {"rate", "burst", "over_limit", "unregistered_rate", "unregistered_burst"});
    if (auto* m = member(v, "rate")) d.rate = w.count(*m, path + "/rate", kMaxRate).value_or(d.rate);
    if (auto* m = member(v, "burst")) d.burst = w.count(*m, path + "/burst", kMaxBurst).value_or(d.burst);
    if (auto* m = member(v, "over_limit")) d.over_limit = w.action(*m, path + "/over_limit").value_or(d.over_limit);
    if (auto* m = member(v, "unregistered_rate")) d.unregistered_rate = w.count(*m, path + "/unregistered_rate", kMaxRate);
    if (auto* m = member(v, "unregistered_burst"))
        d.unregistered_burst = w.count(*m, path + "/unregistered_burst", kMaxBurst);
    check_pair(w, {d.rate, d.burst}, path + "/burst", "");
}

void parse_tier_limits(Walker& w, const json& v, const std::string& path, std::optional<uint32_t>& rate,
                       std::optional<uint32_t>& burst) {
    if (!w.object(v, path)) return;
    w.known_keys(v, path, {"rate", "burst"});
    if (auto* m = member(v, "rate")) rate = w.count(*m, path + "/rate", kMaxRate);
    if (auto* m = member(v, "burst")) burst = w.count(*m, path + "/burst", kMaxBurst);
}

void parse_tiers(Walker& w, const json& v, TierSettings& t) {
    const std::string path = "/tiers";
    if (!w.object(v, path)) return;
    w.known_keys(v, path, {"throttled", "steered", "blocked"});
    if (auto* m = member(v, "throttled")) {
        std::optional<uint32_t> rate, burst;
        parse_tier_limits(w, *m, path + "/throttled", rate, burst);
        t.throttled = {rate.value_or(t.throttled.rate), burst.value_or(t.throttled.burst)};
        check_pair(w, t.throttled, path + "/throttled/burst", "");
    }
    if (auto* m = member(v, "steered")) {
        parse_tier_limits(w, *m, path + "/steered", t.steered_rate, t.steered_burst);
        LimitPair eff{t.steered_rate.value_or(t.throttled.rate), t.steered_burst.value_or(t.throttled.burst)};
        check_pair(w, eff, path + "/steered/burst", t.steered_burst ? "" : " (burst inherited from throttled)");
    }
    if (auto* m = member(v, "blocked"); m && w.object(*m, path + "/blocked")) {
        w.known_keys(*m, path + "/blocked", {"action"});
        if (auto* a = member(*m, "action")) t.blocked_action = w.action(*a, path + "/blocked/action").value_or(t.blocked_action);
    }
}

std::string format_number(double d) {
    std::ostringstream os;
    os << d;
    return os.str();
}

// Reads a number in [lo, hi] (lo excluded when lo_open) into out.
void read_range(Walker& w, const json& obj, const char* key, const std::string& path, double lo, bool lo_open,
                double hi, double& out) {
    const json* m = member(obj, key);
    if (!m) return;
    const std::string at = path + "/" + key;
    auto n = w.number(*m, at);
    if (!n) return;
    if (lo_open ? *n <= lo : *n < lo) return w.bad(at, std::string("must be ") + (lo_open ? "> " : ">= ") + format_number(lo));
    if (*n > hi) return w.bad(at, "must be <= " + format_number(hi));
    out = *n;
}

bool parse_thresholds(Walker& w, const json& v, const std::string& at, Thresholds& t) {
    if (!w.object(v, at)) return false;
    w.known_keys(v, at, {"throttled", "steered", "blocked"});
    read_range(w, v, "throttled", at, 0, true, 1e12, t.throttled);
    read_range(w, v, "steered", at, 0, true, 1e12, t.steered);
    read_range(w, v, "blocked", at, 0, true, 1e12, t.blocked);
    if (t.throttled < t.steered && t.steered < t.blocked) return true;
    w.bad(at, "must be strictly increasing: throttled < steered < blocked");
    return false;
}

void parse_reputation(Walker& w, const json& v, ReputationConfig& r) {
    const std::string path = "/reputation";
    if (!w.object(v, path)) return;
    w.known_keys(v, path, {"half_life_s", "thresholds", "tenant_thresholds", "hysteresis", "min_dwell_s", "weights"});
    constexpr double kYear = 366.0 * 86400;  // longer decay or dwell is a unit mistake
    read_range(w, v, "half_life_s", path, 0, true, kYear, r.half_life_s);
    read_range(w, v, "hysteresis", path, 0, false, 0.9, r.hysteresis);
    read_range(w, v, "min_dwell_s", path, 0, false, kYear, r.min_dwell_s);
    if (auto* m = member(v, "thresholds")) parse_thresholds(w, *m, path + "/thresholds", r.thresholds);
    if (auto* m = member(v, "tenant_thresholds")) {
        Thresholds t;
        if (parse_thresholds(w, *m, path + "/tenant_thresholds", t)) r.tenant_thresholds = t;
    }
    if (auto* m = member(v, "weights"); m && w.object(*m, path + "/weights")) {
        const std::string at = path + "/weights";
        w.known_keys(*m, at, {"over_limit", "spoofed", "remote_reject", "spam_report", "complaint", "dnsbl_listing"});
        auto& k = r.weights;
        read_range(w, *m, "over_limit", at, 0, false, 1e9, k.over_limit);
        read_range(w, *m, "spoofed", at, 0, false, 1e9, k.spoofed);
        read_range(w, *m, "remote_reject", at, 0, false, 1e9, k.remote_reject);
        read_range(w, *m, "spam_report", at, 0, false, 1e9, k.spam_report);
        read_range(w, *m, "complaint", at, 0, false, 1e9, k.complaint);
        read_range(w, *m, "dnsbl_listing", at, 0, false, 1e9, k.dnsbl_listing);
    }
}

void parse_vms(Walker& w, const json& v, Policy& p) {
    if (!v.is_array()) return w.bad("/vms", std::string("must be an array of VMs, not ") + v.type_name());
    std::vector<AddrRef> addrs;
    p.vms.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i)
        p.vms.push_back(parse_vm(w, v[i], "/vms/" + std::to_string(i), static_cast<uint32_t>(i), p.defaults, addrs));
    check_unique(w, p.vms);
    check_overlaps(w, std::move(addrs), p.vms);
}

}  // namespace

ParseOutcome parse_policy(const nlohmann::json& doc) {
    ParseOutcome out;
    Walker w(out.problems);
    if (!doc.is_object()) {
        w.bad("", std::string("policy must be a JSON object, not ") + doc.type_name());
        return out;
    }
    w.known_keys(doc, "", {"smtp_ports", "conn_per_vm", "defaults", "tiers", "proxy", "reputation", "vms"});
    Policy p;
    if (auto* m = member(doc, "smtp_ports")) parse_ports(w, *m, p);
    if (auto* m = member(doc, "conn_per_vm")) {
        auto n = w.count(*m, "/conn_per_vm", SG_CONN_PER_VM_MAX);
        if (n && *n == 0) w.bad("/conn_per_vm", "must be >= 1 (connections each VM may have tracked)");
        else if (n) p.conn_per_vm = *n;
    }
    if (auto* m = member(doc, "defaults")) parse_defaults(w, *m, p.defaults);
    if (auto* m = member(doc, "tiers")) parse_tiers(w, *m, p.tiers);
    if (auto* m = member(doc, "proxy")) parse_proxy(w, *m, p);
    if (auto* m = member(doc, "reputation")) parse_reputation(w, *m, p.reputation);
    if (auto* m = member(doc, "vms")) parse_vms(w, *m, p);
    else w.bad("/vms", "required: the list of VMs (may be empty)");
    if (out.problems.empty()) out.policy = std::move(p);
    return out;
}

ParseOutcome parse_policy_text(std::string_view text) {
    auto doc = parse_json_strict(text);
    if (!doc) {
        ParseOutcome out;
        out.problems.push_back({"", doc.error().message});
        return out;
    }
    return parse_policy(*doc);
}

}  // namespace smtpgov
