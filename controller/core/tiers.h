// The one place a VM's tier is decided: the reputation score, the operator's pins and
// the pins a policy sets; and the one place that decides what a steered VM gets while
// the scanning proxy cannot take its connections (proxy health, fail_mode). Every
// decision comes out as a Transition (or ProxyTransition) for the caller to announce;
// nothing else in smtpgov picks a tier.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/policy.h"
#include "core/reputation.h"

namespace smtpgov {

using Family = IpPrefix::Family;

// The proxy of one address family went down or came back (from a health report).
struct ProxyTransition {
    Family family = Family::V4;
    Endpoint endpoint;
    bool up = false;
    FailMode fail_mode = FailMode::Throttle;  // what steered VMs get while it is down
    std::string detail;                       // the check's finding ("connect: Connection refused")
};

class Tiers {
public:
    Tiers(const Clock& clock, const ReputationConfig& cfg) : rep_(clock, cfg) {}
    explicit Tiers(Reputation rep) : rep_(std::move(rep)) {}

    Tier tier(const std::string& vm) const { return rep_.tier(vm); }
    // What the datapath enforces for the VM: its tier, except that a steered VM gets the
    // fail mode's tier (throttled or blocked) while no proxy family takes connections
    // (proxy down, or none configured). The VM keeps tier() = steered meanwhile.
    Tier enforced(const std::string& vm) const { return enforced_tier(tier(vm)); }
    Tier enforced_tier(Tier t) const;
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
    // The fleet's view of a VM (core/fleet.h): export, import on migration, tenant floor.
    std::optional<Reputation::Shared> shared(const std::string& vm) const { return rep_.shared(vm); }
    std::optional<Transition> import(const std::string& vm, const Reputation::Shared& s, int64_t now_ms,
                                     std::optional<int64_t> written_unix_ms = std::nullopt) {
        return rep_.import(vm, s, now_ms, written_unix_ms);
    }
    std::optional<Transition> set_floor(const std::string& vm, Tier t, int64_t now_ms) {
        return rep_.set_floor(vm, t, now_ms);
    }
    double score(const std::string& vm, int64_t now_ms) const { return rep_.score(vm, now_ms); }

    // A VM that left the policy: its reputation and policy pin go with it.
    void forget(const std::string& vm);

    // Proxy health (DESIGN.md "Steering"): the checker's finding for one family. A
    // configured proxy counts as up until a check finds it down; a report that changes
    // nothing (or for a family without a proxy) returns nullopt.
    std::optional<ProxyTransition> proxy_health(Family f, bool up, const std::string& detail);
    bool steering(Family f) const;  // a proxy of that family is configured and up
    bool steering_any() const { return steering(Family::V4) || steering(Family::V6); }
    FailMode fail_mode() const { return fail_mode_; }
    std::optional<Endpoint> proxy(Family f) const { return proxy_[index(f)].endpoint; }
    bool proxy_up(Family f) const { return proxy_[index(f)].up; }

private:
    struct ProxyHealth {
        std::optional<Endpoint> endpoint;  // configured
        bool up = true;
    };
    static size_t index(Family f) { return f == Family::V4 ? 0 : 1; }
    void set_proxy(const Policy& p);

    Reputation rep_;
    std::map<std::string, Tier> policy_pins_;  // the pins the policy in force sets
    std::array<ProxyHealth, 2> proxy_{};       // by family: v4, v6
    FailMode fail_mode_ = FailMode::Throttle;
};

}  // namespace smtpgov
