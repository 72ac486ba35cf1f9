// VM tiers and refusal actions, with their names as used in policy JSON, the CLI and metrics.
#pragma once

#include <array>
#include <optional>
#include <string_view>

#include "smtpgov/abi.h"

namespace smtpgov {

enum class Tier : unsigned char {
    Ok = SG_TIER_OK,
    Throttled = SG_TIER_THROTTLED,
    Steered = SG_TIER_STEERED,
    Blocked = SG_TIER_BLOCKED,
};
inline constexpr std::array<Tier, 4> kAllTiers{Tier::Ok, Tier::Throttled, Tier::Steered, Tier::Blocked};

enum class Action : unsigned char { Drop = SG_ACT_DROP, Reset = SG_ACT_RESET };

constexpr std::string_view to_string(Tier t) {
    switch (t) {
    case Tier::Ok: return "ok";
    case Tier::Throttled: return "throttled";
    case Tier::Steered: return "steered";
    case Tier::Blocked: return "blocked";
    }
    return "ok";
}

constexpr std::optional<Tier> parse_tier(std::string_view s) {
    for (Tier t : kAllTiers)
        if (to_string(t) == s) return t;
    return std::nullopt;
}

constexpr std::string_view to_string(Action a) { return a == Action::Reset ? "reset" : "drop"; }

constexpr std::optional<Action> parse_action(std::string_view s) {
    if (s == "drop") return Action::Drop;
    if (s == "reset") return Action::Reset;
    return std::nullopt;
}

// Verdict names, indexed by enum sg_verdict (metrics label values, JSON keys).
inline constexpr std::array<std::string_view, SG_VERDICT_MAX> kVerdictNames{"pass", "throttle", "steer", "block"};
// Remote reply kinds, indexed by enum sg_reply_kind.
inline constexpr std::array<std::string_view, SG_REPLY_MAX> kReplyNames{"synack", "rst", "2xx", "4xx", "5xx"};
// Datapath result names, indexed by enum sg_result.
inline constexpr std::array<std::string_view, SG_RES_MAX> kResultNames{
    "non_ip", "non_tcp", "non_smtp", "smtp_syn", "unparsed", "fragment",
    "auto_new", "rst_sent", "event_lost", "spoofed", "refused",
    "conn_new", "conn_full", "conn_evicted", "steer_lost", "steer_frag",
    "reply_untracked", "reply_outside", "nat_conflict"};

}  // namespace smtpgov
