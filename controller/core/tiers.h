// The one place a VM's tier is decided: the reputation score, the operator's pins and
// the pins a policy sets. Every decision comes out as a Transition for the caller to
// announce; nothing else in smtpgov picks a tier.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/policy.h"
#include "core/reputation.h"

namespace smtpgov {

class Tiers {
public:
    Tiers(const Clock& clock, const ReputationConfig& cfg) : rep_(clock, cfg) {}
    explicit Tiers(Reputation rep) : rep_(std::move(rep)) {}

    Tier tier(const std::string& vm) const { return rep_.tier(vm); }
    const Reputation& reputation() const { return rep_; }

    // The tiers in force once `p` is: a copy that forgets the VMs `removed` from the
    // policy, takes p's reputation settings and sets the pins of p's VMs (clearing those
    // of VMs that lost their policy pin). The transitions this implies are appended to
    // `out`, to be announced on commit.
    Tiers with_policy(const Policy& p, const std::vector<std::string>& removed, std::vector<Transition>& out) const;

    void observe(const std::string& vm, Signal s, double count, int64_t now_ms) { rep_.observe(vm, s, count, now_ms); }
    std::vector<Transition> evaluate(int64_t now_ms) { return rep_.evaluate(now_ms); }
    std::vector<Transition> evaluate(const std::vector<std::string>& ids, int64_t now_ms) {
        return rep_.evaluate(ids, now_ms);
    }
    bool recover(const std::string& vm, Tier t, int64_t now_ms) { return rep_.recover(vm, t, now_ms); }
    Transition set_pin(const std::string& vm, Tier t, std::optional<int64_t> until_ms, int64_t now_ms) {
        return rep_.set_pin(vm, t, until_ms, now_ms);
    }
    std::optional<Transition> clear_pin(const std::string& vm, int64_t now_ms) { return rep_.clear_pin(vm, now_ms); }
    // A VM that left the policy: its reputation and policy pin go with it.
    void forget(const std::string& vm);

private:
    Reputation rep_;
    std::map<std::string, Tier> policy_pins_;  // the pins the policy in force sets
};

}  // namespace smtpgov
