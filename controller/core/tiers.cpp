#include "core/tiers.h"

namespace smtpgov {

Tiers Tiers::with_policy(const Policy& p, const std::vector<std::string>& removed,
                         std::vector<Transition>& out) const {
    Tiers next = *this;
    for (const auto& id : removed) next.forget(id);
    next.rep_.set_config(p.reputation);
    std::map<std::string, Tier> wanted;
    for (const Vm& vm : p.vms)
        if (vm.tier) wanted[vm.id] = *vm.tier;
    for (const auto& [id, tier] : wanted) {
        auto pin = next.rep_.pin(id);
        if (pin && pin->tier == tier && !pin->until_unix_ms) continue;
        out.push_back(next.rep_.set_pin(id, tier, std::nullopt));
    }
    for (const auto& [id, tier] : policy_pins_)
        if (!wanted.count(id))
            if (auto t = next.rep_.clear_pin(id)) out.push_back(*t);
    next.policy_pins_ = std::move(wanted);
    next.set_proxy(p);
    return next;
}

// A proxy that is new, or moved to another address, counts as up until checked.
void Tiers::set_proxy(const Policy& p) {
    fail_mode_ = smtpgov::fail_mode(p);
    for (Family f : {Family::V4, Family::V6}) {
        std::optional<Endpoint> want;
        if (p.proxy) want = f == Family::V4 ? p.proxy->v4 : p.proxy->v6;
        ProxyHealth& h = proxy_[index(f)];
        if (h.endpoint != want) h = ProxyHealth{want, true};
    }
}

Tier Tiers::enforced_tier(Tier t) const {
    return t == Tier::Steered && !steering_any() ? fail_tier(fail_mode_) : t;
}

bool Tiers::steering(Family f) const {
    const ProxyHealth& h = proxy_[index(f)];
    return h.endpoint && h.up;
}

std::optional<ProxyTransition> Tiers::proxy_health(Family f, bool up, const std::string& detail) {
    ProxyHealth& h = proxy_[index(f)];
    if (!h.endpoint || h.up == up) return std::nullopt;
    h.up = up;
    return ProxyTransition{f, *h.endpoint, up, fail_mode_, detail};
}

void Tiers::forget(const std::string& vm) {
    rep_.forget(vm);
    policy_pins_.erase(vm);
}

}  // namespace smtpgov
