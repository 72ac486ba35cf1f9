// "/proxy" of the policy (DESIGN.md "Steering"): the scanning proxy's endpoints (one
// per address family), its fail mode, the steered ports, the health-check interval and
// the egress addresses the reference proxy relays from.
#include <algorithm>

#include "core/policy.h"
#include "core/policy_detail.h"

namespace smtpgov::policy_detail {
namespace {

// Why an address cannot take steered traffic (or be an egress source); "" when it can.
std::string unusable(const IpPrefix& a) {
    const auto& b = a.addr;
    if (a.family == IpPrefix::Family::V4) {
        if (b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0) return "the unspecified address";
        if (b[0] == 127) return "a loopback address (steered traffic arrives on a VM-facing interface)";
        if (b[0] >= 224) return "a multicast or reserved address";
        return "";
    }
    if (std::all_of(b.begin(), b.end(), [](uint8_t x) { return x == 0; })) return "the unspecified address";
    if (std::all_of(b.begin(), b.end() - 1, [](uint8_t x) { return x == 0; }) && b[15] == 1)
        return "a loopback address (steered traffic arrives on a VM-facing interface)";
    if (b[0] == 0xff) return "a multicast address";
    return "";
}

void add_endpoint(Walker& w, const json& v, const std::string& at, Proxy& px) {
    auto s = w.string(v, at);
    if (!s) return;
    auto ep = Endpoint::parse(*s);
    if (!ep) return w.bad(at, "bad proxy address \"" + *s + "\": " + ep.error().message);
    if (auto why = unusable(ep->addr); !why.empty()) return w.bad(at, "\"" + *s + "\" is " + why);
    auto& slot = ep->addr.family == IpPrefix::Family::V4 ? px.v4 : px.v6;
    const char* fam = ep->addr.family == IpPrefix::Family::V4 ? "IPv4" : "IPv6";
    if (slot) return w.bad(at, std::string("a second ") + fam + " proxy (at most one per address family)");
    slot = *ep;
}

// "address": one ADDR:PORT string, or a list of one IPv4 and/or one IPv6 endpoint.
bool parse_addresses(Walker& w, const json& v, const std::string& path, Proxy& px) {
    if (v.is_string()) {
        add_endpoint(w, v, path, px);
    } else if (!v.is_array()) {
        w.bad(path, std::string("must be a list of ADDR:PORT (one IPv4, one IPv6), not ") + v.type_name());
    } else if (v.empty() || v.size() > 2) {
        w.bad(path, "must list one IPv4 and/or one IPv6 ADDR:PORT");
    } else {
        for (size_t i = 0; i < v.size(); ++i) add_endpoint(w, v[i], path + "/" + std::to_string(i), px);
    }
    return px.v4 || px.v6;
}

void parse_fail_mode_key(Walker& w, const json& v, const std::string& path, Proxy& px) {
    auto s = w.string(v, path);
    if (!s) return;
    if (auto m = parse_fail_mode(*s)) px.fail_mode = *m;
    else if (*s == "pass")
        w.bad(path, "\"pass\" would let steered VMs' mail out unscanned while the proxy is down "
                    "(smtpgov never fails open): use throttle or block");
    else w.bad(path, "unknown fail_mode \"" + *s + "\" (throttle, block)");
}

void parse_proxy_ports(Walker& w, const json& v, const std::string& path, const Policy& p, Proxy& px) {
    auto ports = port_list(w, v, path);
    if (!ports) return;
    std::vector<uint16_t> kept;
    for (uint16_t port : *ports) {
        if (std::find(p.smtp_ports.begin(), p.smtp_ports.end(), port) != p.smtp_ports.end()) {
            kept.push_back(port);
            continue;
        }
        size_t i = 0;  // where the document wrote it (port_list dropped only bad entries)
        while (i < v.size() && !(v[i].is_number() && v[i].get<double>() == port)) ++i;
        w.bad(path + "/" + std::to_string(i), "port " + std::to_string(port) + " is not one of /smtp_ports");
    }
    px.ports = kept;
}

void parse_egress(Walker& w, const json& v, const std::string& path, Proxy& px) {
    if (!v.is_array()) return w.bad(path, std::string("must be a list of addresses, not ") + v.type_name());
    if (v.size() > kMaxEgress) return w.bad(path, "at most " + std::to_string(kMaxEgress) + " addresses");
    for (size_t i = 0; i < v.size(); ++i) {
        const std::string at = path + "/" + std::to_string(i);
        auto s = w.string(v[i], at);
        if (!s) continue;
        auto a = IpPrefix::parse(*s);
        if (!a) w.bad(at, "not an address: " + a.error().message);
        else if (!a->is_host()) w.bad(at, "a single address, not a prefix");
        else if (auto why = unusable(*a); !why.empty()) w.bad(at, "\"" + *s + "\" is " + why);
        else if (std::find(px.egress.begin(), px.egress.end(), *a) != px.egress.end()) w.bad(at, "duplicate address");
        else px.egress.push_back(*a);
    }
}

}  // namespace

void parse_proxy(Walker& w, const json& v, Policy& p) {
    const std::string path = "/proxy";
    if (!w.object(v, path)) return;
    w.known_keys(v, path, {"address", "fail_mode", "ports", "check_interval_s", "egress"});
    Proxy px;
    bool ok = true;
    if (auto* m = member(v, "address")) ok = parse_addresses(w, *m, path + "/address", px);
    else w.bad(path + "/address", "required when proxy is given"), ok = false;
    if (auto* m = member(v, "fail_mode")) parse_fail_mode_key(w, *m, path + "/fail_mode", px);
    if (auto* m = member(v, "ports")) parse_proxy_ports(w, *m, path + "/ports", p, px);
    else if (std::find(p.smtp_ports.begin(), p.smtp_ports.end(), 25) == p.smtp_ports.end())
        w.bad(path + "/ports", "required: the default [25] is not one of /smtp_ports");
    if (auto* m = member(v, "check_interval_s")) {
        auto n = w.count(*m, path + "/check_interval_s", kMaxProxyCheckS);
        if (n && *n == 0) w.bad(path + "/check_interval_s", "must be >= 1");
        else if (n) px.check_interval_s = *n;
    }
    if (auto* m = member(v, "egress")) parse_egress(w, *m, path + "/egress", px);
    if (ok) p.proxy = std::move(px);
}

}  // namespace smtpgov::policy_detail
