// Steering to the scanning proxy (DESIGN.md "Steering"): the proxy's health as the
// checker reports it, decided in Tiers (which families take steered connections, what
// steered VMs get meanwhile), written through the Enforcer and announced once.
#include "daemon/controller.h"
#include "daemon/log.h"

namespace smtpgov::daemon {
namespace {

std::string family_name(Family f) { return f == Family::V4 ? "ipv4" : "ipv6"; }

}  // namespace

Controller::ProxyTargets Controller::proxy_targets() const {
    const Policy& p = vms_.policy();
    if (!p.proxy) return {};
    return {p.proxy->addresses(), p.proxy->check_interval_s};
}

void Controller::proxy_health(const Endpoint& proxy, bool up, const std::string& detail) {
    const Family f = proxy.addr.family;
    if (tiers_.proxy(f) != proxy) return;  // checked before a policy moved it
    if (auto t = tiers_.proxy_health(f, up, detail)) announce_proxy(*t);
}

// The runtime flag of the family goes first (its steered SYNs get the fail mode, or
// are steered again, from the next SYN), then the entries of the steered VMs, whose
// enforced tier changes when no family is left to take them (or one is back).
void Controller::announce_proxy(const ProxyTransition& t) {
    const Policy& p = vms_.policy();
    if (auto s = enforcer_->set_runtime(runtime_entry(p, {tiers_.steering(Family::V4), tiers_.steering(Family::V6)}));
        !s)
        log::error("proxy: " + s.error().message);
    size_t steered = 0;
    auto rewrite = [&](const std::string& id) {
        if (tiers_.tier(id) != Tier::Steered) return;
        ++steered;
        write_tier(id, Tier::Steered);  // as enforced now
    };
    for (const Vm& vm : p.vms) rewrite(vm.id);
    for (const auto& [id, a] : vms_.autos()) rewrite(id);
    const Tier fail = fail_tier(t.fail_mode);
    TierChange ch;
    svc::Event& e = ch.event;
    e.type = t.up ? "proxy_up" : "proxy_down";
    e.from = t.up ? fail : Tier::Steered;
    e.to = t.up ? Tier::Steered : fail;
    e.reason = t.detail;
    e.evidence = {{"family", family_name(t.family)},
                  {"proxy", t.endpoint.to_string()},
                  {"fail_mode", to_string(t.fail_mode)},
                  {"steered_vms", steered},
                  {"steering", tiers_.steering_any()}};
    const std::string what = "proxy " + t.endpoint.to_string() + (t.up ? " is up" : " is down");
    if (t.up) log::notice(what + ": steering " + family_name(t.family) + " again");
    else log::warning(what + " (" + t.detail + "): " + std::to_string(steered) + " steered VM(s) get fail_mode " +
                      std::string(to_string(t.fail_mode)) + " for " + family_name(t.family));
    for (const Subscriber& s : subscribers_) s(ch);
}

}  // namespace smtpgov::daemon
