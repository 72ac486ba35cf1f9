// Per-VM reputation: a decaying score fed by signals, and the tier it earns, with
// hysteresis, a minimum dwell before de-escalation, and operator pins.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/reputation_config.h"
#include "core/result.h"
#include "core/tier.h"
#include "core/view.h"

namespace smtpgov {

std::string_view to_string(Signal s);  // over_limit spoofed remote_reject spam_report complaint dnsbl_listing
std::optional<Signal> parse_signal(std::string_view s);

struct Transition {
    std::string vm;
    Tier from = Tier::Ok, to = Tier::Ok;
    double score = 0;
    // "score" (escalation), "recovered" (one step down), "pin", "pin_expired", "pin_cleared".
    // Pin transitions are reported even when from == to, so the log shows the pin ended.
    std::string reason;
    bool operator==(const Transition&) const = default;
};

// Not thread-safe: the daemon's sweep owns it. Times are Unix ms from the clock, or passed
// explicitly (the overloads without a time read the clock).
class Reputation {
public:
    Reputation(const Clock& clock, ReputationConfig cfg);

    // Decays every score to now under the old settings, then adopts cfg; scores, tiers
    // and pins are kept.
    void set_config(const ReputationConfig& cfg);
    const ReputationConfig& config() const { return cfg_; }

    // Adds weight(signal) * count to the VM's score (creating the VM at 0 if unknown).
    void observe(const std::string& vm, Signal s, double count, int64_t now_ms);
    void observe(const std::string& vm, Signal s, double count = 1) { observe(vm, s, count, clock_->now_ms()); }

    double score(const std::string& vm, int64_t now_ms) const;  // 0 for an unknown VM
    double score(const std::string& vm) const { return score(vm, clock_->now_ms()); }
    Tier tier(const std::string& vm) const;           // in force: the pin, else the earned tier
    Tier earned_tier(const std::string& vm) const;    // from the score alone
    std::optional<Pin> pin(const std::string& vm) const;  // until as Unix ms

    // Moves every VM to the tier its score earns (escalate at once, several tiers if
    // need be; recover one tier per call after min_dwell), expires pins, and forgets
    // VMs at tier ok whose score has decayed to nothing.
    std::vector<Transition> evaluate(int64_t now_ms);
    std::vector<Transition> evaluate() { return evaluate(clock_->now_ms()); }
    // The same for a few VMs only (the over-limit fast path): work bounded by ids.size().
    std::vector<Transition> evaluate(const std::vector<std::string>& ids, int64_t now_ms);

    // Start-up with a stale or lost state dir: the kernel's maps still enforce tier `t`
    // for the VM. Raises the earned tier to `t` (score at least t's threshold, dwell from
    // now) so that it is never relaxed by a restart; true when it changed anything.
    bool recover(const std::string& vm, Tier t, int64_t now_ms);

    // A pin overrides the earned tier until cleared or until until_ms (the clock's now_ms
    // scale: boot time, so a wall-clock step neither ends nor prolongs it).
    Transition set_pin(const std::string& vm, Tier t, std::optional<int64_t> until_ms, int64_t now_ms);
    Transition set_pin(const std::string& vm, Tier t, std::optional<int64_t> until_ms = std::nullopt) {
        return set_pin(vm, t, until_ms, clock_->now_ms());
    }
    // nullopt when the VM had no pin.
    std::optional<Transition> clear_pin(const std::string& vm, int64_t now_ms);
    std::optional<Transition> clear_pin(const std::string& vm) { return clear_pin(vm, clock_->now_ms()); }

    void forget(const std::string& vm);
    std::vector<std::string> vms() const;  // sorted

    // A VM's state as the fleet shares it (core/fleet.h): every time as Unix ms.
    struct Shared {
        double score = 0;
        int64_t score_unix_ms = 0;  // score is exact at this time
        Tier earned = Tier::Ok;
        int64_t since_unix_ms = 0;
        std::optional<Pin> pin;     // until as Unix ms
        bool operator==(const Shared&) const = default;
    };
    std::optional<Shared> shared(const std::string& vm) const;  // nullopt: nothing known
    // Takes a VM's shared state (live migration: its new host continues from it). The
    // score and earned tier never go down by an import (the higher of local and shared);
    // the pin is the shared one, unless a pin was set or cleared here after the shared
    // state was written (written_unix_ms, the record's updated_at): the later word wins.
    // Returns the transition when the tier in force moved.
    std::optional<Transition> import(const std::string& vm, const Shared& s, int64_t now_ms,
                                     std::optional<int64_t> written_unix_ms = std::nullopt);
    // Tenant-wide scoring: the VM is at least `floor` (a pin still overrides). Returns
    // the transition when the tier in force moved (reason "tenant").
    std::optional<Transition> set_floor(const std::string& vm, Tier floor, int64_t now_ms);
    Tier floor(const std::string& vm) const;
    size_t size() const { return vms_.size(); }

    // {"version":1,"vms":{id:{score,updated_ms,tier,since_ms,pin?:{tier,until_ms?},pin_set_ms?}}}
    nlohmann::json save() const;
    static Result<Reputation> load(const nlohmann::json& saved, const Clock& clock, ReputationConfig cfg);

private:
    struct State {
        double score = 0;
        int64_t updated_ms = 0;   // score is exact at this time
        Tier earned = Tier::Ok;
        int64_t since_ms = 0;     // when `earned` was entered (min dwell)
        std::optional<Pin> pin;   // until on the clock's now_ms scale (pin() shows it as Unix ms)
        std::optional<int64_t> pin_set_ms;  // when a pin was last set or cleared here (saved too)
        Tier floor = Tier::Ok;    // tenant-wide scoring (set_floor)
    };

    static Tier effective(const State& s) { return s.pin ? s.pin->tier : std::max(s.earned, s.floor); }
    void decay(State& s, int64_t now_ms) const;
    std::optional<std::string> update_earned(State& s, int64_t now_ms) const;
    std::optional<Transition> step(const std::string& id, State& s, int64_t now_ms);

    const Clock* clock_;
    ReputationConfig cfg_;
    std::unordered_map<std::string, State> vms_;
};

}  // namespace smtpgov
