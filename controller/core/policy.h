// The fleet policy (DESIGN.md "Policy"): model, whole validation, JSON round trip, diff,
// and the effective limits a VM has at each tier.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/ip_prefix.h"
#include "core/reputation_config.h"
#include "core/tier.h"

namespace smtpgov {

inline constexpr uint32_t kMaxRate = 1'000'000;    // SYN/s; more is a typo, not a policy
inline constexpr uint32_t kMaxBurst = 10'000'000;

struct LimitPair {
    uint32_t rate = 0;   // new SMTP connections per second
    uint32_t burst = 0;  // bucket depth
    bool operator==(const LimitPair&) const = default;
};

struct Defaults {
    uint32_t rate = 10;
    uint32_t burst = 20;
    Action over_limit = Action::Drop;
    // Aggregate bucket for all unregistered sources of one gateway interface;
    // nullopt = 10x rate / 10x burst (see unregistered_limits()).
    std::optional<uint32_t> unregistered_rate, unregistered_burst;
    bool operator==(const Defaults&) const = default;
};

struct TierSettings {
    LimitPair throttled{2, 5};
    std::optional<uint32_t> steered_rate, steered_burst;  // nullopt = throttled's
    Action blocked_action = Action::Reset;
    bool operator==(const TierSettings&) const = default;
};

// What a steered VM's new connections get while no proxy of their family takes them
// (proxy down or not configured): the steered tier's limits, or blocked. There is no
// "pass": mail never leaves unscanned because the scanner is down (never fail open).
enum class FailMode : unsigned char { Throttle, Block };
std::string_view to_string(FailMode m);
std::optional<FailMode> parse_fail_mode(std::string_view s);
Tier fail_tier(FailMode m);  // Throttled or Blocked: what the datapath enforces instead of steering

inline constexpr uint32_t kMaxProxyCheckS = 3600;
inline constexpr size_t kMaxEgress = 16;

// The scanning proxy (DESIGN.md "Steering"): where the datapath rewrites steered
// connections to, one endpoint per address family.
struct Proxy {
    std::optional<Endpoint> v4, v6;      // at least one
    FailMode fail_mode = FailMode::Throttle;
    std::vector<uint16_t> ports{25};     // steered destination ports, each one of smtp_ports
    uint32_t check_interval_s = 5;       // health check (TCP connect + 220 greeting)
    std::vector<IpPrefix> egress;        // host addresses the proxy relays from (deploy/proxy); not used by smtpgovd
    std::vector<Endpoint> addresses() const;  // v4 then v6, those set
    bool operator==(const Proxy&) const = default;
};

struct Vm {
    std::string id;                    // [A-Za-z0-9._-]{1,64}, not "if:"/"ip:" (auto entries)
    std::string tenant;                // "" = none
    std::string interface;             // "" = attributed by address only
    std::string libvirt;               // libvirt domain name or UUID: its interfaces carry the VM
    std::string host;                  // fleet policies: the hypervisor running it ("" = this one)
    std::vector<IpPrefix> addresses;   // host bits zero
    std::optional<uint32_t> rate, burst;  // nullopt = defaults
    std::optional<Tier> tier;          // operator pin from the policy
    bool operator==(const Vm&) const = default;
};

struct Policy {
    std::vector<uint16_t> smtp_ports{25, 465, 587};
    uint32_t conn_per_vm = SG_CONN_PER_VM_DEFAULT;  // connection entries per VM (abi.h sg_runtime)
    Defaults defaults;
    TierSettings tiers;
    std::optional<Proxy> proxy;
    ReputationConfig reputation;
    std::vector<Vm> vms;

    const Vm* find(std::string_view id) const;  // linear; index it yourself for hot paths
    bool operator==(const Policy&) const = default;
};

// One validation problem: a JSON pointer into the document and why it is wrong.
struct Problem {
    std::string path;    // "/vms/3/rate"; "" for the whole document
    std::string reason;
    bool operator==(const Problem&) const = default;
};

struct ParseOutcome {
    std::optional<Policy> policy;    // set exactly when problems is empty
    std::vector<Problem> problems;   // every problem found, in document order
};

ParseOutcome parse_policy(const nlohmann::json& doc);
// A JSON syntax error is one problem with path "" and the parser's message and byte offset.
ParseOutcome parse_policy_text(std::string_view text);

// Renders a policy with every default spelled out; parse_policy(to_json(p)) == p.
nlohmann::json to_json(const Policy& p);
nlohmann::json to_json(const std::vector<Problem>& problems);  // [{path, reason}]

struct VmChange {
    std::string id;
    std::vector<std::string> fields;  // of: tenant interface addresses rate burst tier
    bool operator==(const VmChange&) const = default;
};

struct PolicyDiff {
    std::vector<std::string> added, removed;  // VM ids, sorted
    std::vector<VmChange> changed;            // sorted by id
    bool ports_changed = false;
    // Global sections whose values changed: conn_per_vm, defaults, tiers, proxy, reputation. The daemon
    // uses them to rewrite every VM's limits; not part of the policy.apply result.
    std::vector<std::string> sections_changed;
    bool empty() const {
        return added.empty() && removed.empty() && changed.empty() && !ports_changed && sections_changed.empty();
    }
};

// rate/burst count as changed when the VM's effective limits at tier ok changed, so a
// new default rate lists every VM that inherits it.
PolicyDiff diff(const Policy& old, const Policy& neu);
// The policy.apply result: {added, removed, changed:[{id, fields}], ports_changed}.
nlohmann::json to_json(const PolicyDiff& d);

// Effective limits of a VM at a tier: ok = its own or the defaults; throttled/steered =
// the tighter of the tier's limits and its own; blocked = {0, 0} (nothing passes).
LimitPair limits_for(const Policy& p, const Vm& vm, Tier t);
// The same for an unregistered source (auto entry), which has no limits of its own.
LimitPair default_limits_for(const Policy& p, Tier t);
LimitPair steered_limits(const Policy& p);
LimitPair unregistered_limits(const Policy& p);  // the gateway-interface aggregate
// What happens to a refused SYN: over the bucket (tiers ok/throttled) and at tier blocked.
inline Action over_limit_action(const Policy& p) { return p.defaults.over_limit; }
inline Action blocked_action(const Policy& p) { return p.tiers.blocked_action; }
// Without a proxy, steered VMs get the default fail mode (throttle).
inline FailMode fail_mode(const Policy& p) { return p.proxy ? p.proxy->fail_mode : FailMode::Throttle; }

// The name checks, also useful to the CLI and daemon.
bool valid_vm_id(std::string_view id);
bool valid_ifname(std::string_view name);  // the kernel's dev_valid_name()

}  // namespace smtpgov
