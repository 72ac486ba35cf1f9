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
    return next;
}

void Tiers::forget(const std::string& vm) {
    rep_.forget(vm);
    policy_pins_.erase(vm);
}

}  // namespace smtpgov
