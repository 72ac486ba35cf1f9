// The fleet contract (DESIGN.md "Fleet contract") as pure logic: the etcd key layout,
// how a fleet policy is split into a global value and one value per host and put back
// together by each daemon, the shared reputation record of a VM and the rule that
// resolves two writers, tenant-wide tiers, and which records a host must write when.
// No I/O here: svc/etcd.h talks to etcd, daemon/fleet_agent.h runs the exchange.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/policy.h"
#include "core/reputation.h"
#include "core/result.h"

namespace smtpgov::fleet {

// A key component: bytes outside [A-Za-z0-9._-] as %XX, so a tenant name holding '/'
// cannot step out of its place in the layout. An empty tenant is "_".
std::string escape(std::string_view s);
std::string unescape(std::string_view s);

// The daemon config's "fleet" object (smtpgovctl fleet reads the same).
struct Options {
    std::vector<std::string> etcd;     // endpoints, http:// or https://
    std::string host;                  // default: the machine's hostname
    std::string prefix = "/smtpgov";
    std::string cacert, cert, key;     // TLS files, passed to libcurl
    std::string user, password_file;   // etcd auth (the file holds the password)
    bool enabled() const { return !etcd.empty(); }
};
// {} or null: not in a fleet. Errors name the key ("fleet/etcd/0: must be an http:// or
// https:// URL"). default_host fills in a missing host.
Result<Options> parse_options(const nlohmann::json& v, const std::string& default_host);

struct Keys {
    std::string prefix = "/smtpgov";  // no trailing '/'

    std::string policy_global() const { return prefix + "/policy/global"; }
    std::string policy_hosts() const { return prefix + "/policy/hosts/"; }
    std::string policy_host(const std::string& h) const { return policy_hosts() + escape(h); }
    // Held (under a lease) by the one `fleet policy apply` writing host values now.
    std::string policy_lock() const { return prefix + "/policy/lock"; }
    std::string hosts() const { return prefix + "/hosts/"; }
    std::string host_live(const std::string& h) const { return hosts() + escape(h) + "/live"; }
    std::string host_status(const std::string& h) const { return hosts() + escape(h) + "/status"; }
    std::string tenants() const { return prefix + "/tenants/"; }
    // No tenant is "_"; a tenant named "_" is "%5F", so the two never share a key.
    std::string tenant(const std::string& t) const {
        return tenants() + (t.empty() ? std::string("_") : t == "_" ? std::string("%5F") : escape(t)) + "/vms/";
    }
    std::string vm(const std::string& tenant_name, const std::string& id) const { return tenant(tenant_name) + escape(id); }

    // "<prefix>/tenants/<t>/vms/<id>" -> {tenant ("" for "_"), id}
    std::optional<std::pair<std::string, std::string>> parse_vm(std::string_view key) const;
    // "<prefix>/hosts/<h>/live|status" -> {host, "live"|"status"}
    std::optional<std::pair<std::string, std::string>> parse_host(std::string_view key) const;
};

// ---- the policy, split -------------------------------------------------------------
// <prefix>/policy/global: the policy without "vms", plus "fleet": {"serial": N,
// "hosts": {host: serial of the host value to apply with it}}.
// <prefix>/policy/hosts/<host>: {"serial": S, "vms": [that host's VMs]}.
// A daemon applies global + its host value only when the serials match, so it never
// applies one half of an apply that is still being written.
struct Split {
    nlohmann::json global;
    std::map<std::string, nlohmann::json> hosts;  // only hosts whose value changes
    std::set<std::string> dropped;                // hosts that had VMs and have none now
    int64_t serial = 0;
};

// Validates a fleet policy (the policy checks plus: every VM names its host) and splits
// it against the global value in force (null when none). Problems as policy validation
// reports them (JSON pointer + reason).
Result<Split> split(const nlohmann::json& policy, const nlohmann::json& current_global,
                    const std::map<std::string, nlohmann::json>& current_hosts, std::vector<Problem>& problems);

// The host's policy from the two values: nullopt with `waiting` set while they do not
// belong together yet (an apply in progress). share is null when the key is absent.
std::optional<nlohmann::json> assemble(const nlohmann::json& global, const nlohmann::json& share,
                                       const std::string& host, std::string& waiting);
int64_t serial_of(const nlohmann::json& global);
// The whole fleet policy from the global value and every host value (fleet policy get).
nlohmann::json join(const nlohmann::json& global, const std::map<std::string, nlohmann::json>& shares);

// ---- a host's status (<prefix>/hosts/<host>/status, no lease) --------------------------
struct HostStatus {
    std::string host, version;
    int64_t policy_serial = 0;         // the fleet policy serial in force here (0: none yet)
    int64_t policy_revision = 0;       // etcd mod revision of the global value it came from
    int64_t applied_at_ms = 0;         // Unix ms when that policy went in force
    int64_t refused_serial = 0;        // the last serial refused (0: none)
    std::string refused_reason;        // why ("/vms/3/rate: must be ...")
    uint64_t vms = 0;                  // VMs of the policy in force here
    std::array<uint64_t, 4> tiers{};   // VMs per tier (ok throttled steered blocked)
    int64_t last_sweep_ms = 0;         // Unix ms
    int64_t last_seen_ms = 0;          // Unix ms of this write
    bool operator==(const HostStatus&) const = default;
};
nlohmann::json to_json(const HostStatus& s);
Result<HostStatus> host_status_from_json(const nlohmann::json& j);

// ---- the shared reputation record ---------------------------------------------------
struct Record {
    std::string vm, tenant;
    Reputation::Shared state;
    Tier tier = Tier::Ok;          // in force on the host that wrote it
    std::string updated_by;        // host
    int64_t updated_at_ms = 0;     // Unix ms
    bool operator==(const Record&) const = default;
};
nlohmann::json to_json(const Record& r);
Result<Record> record_from_json(const nlohmann::json& j, const std::string& tenant, const std::string& vm);
double score_at(const Record& r, int64_t now_unix_ms, double half_life_s);  // decayed

// A compare-and-swap on a VM's key failed: `theirs` was written after the revision our
// pending write was based on. The rule (README "Running a fleet"): the score and earned
// tier are the higher of the two, decayed to now (a partition never launders a score);
// the pin is ours when our pending write changed the pin (an operator acted here after
// the record we had seen), else theirs.
Record resolve(const Record& ours, const Record& theirs, bool ours_changed_pin, int64_t now_unix_ms,
               double half_life_s);

// ---- tenant-wide tiers ----------------------------------------------------------------
// The tier every VM of a tenant is held at least at, from the sum of its VMs' scores,
// with the policy's hysteresis (leave a tier only below threshold * (1 - hysteresis)).
Tier tenant_floor(double sum, const Thresholds& t, Tier current, double hysteresis);

// ---- what a host writes ---------------------------------------------------------------
// Decides which of a host's own VMs need a write: at once on a change of tier or pin;
// otherwise when the score moved by more than the record predicts (decay is computed by
// readers, so a score that only decays is never rewritten), at most once per interval.
class Outbox {
public:
    explicit Outbox(int64_t interval_ms = 1000) : interval_ms_(interval_ms) {}
    // The host's view of its VM now; queued when it differs from what was written.
    void offer(const Record& now, double half_life_s);
    // Records to write now (urgent ones always, the rest once per interval), each with
    // whether it changes the pin (for resolve()).
    struct Write {
        Record rec;
        bool pin_changed = false;
    };
    std::vector<Write> take(int64_t now_unix_ms);
    // A write that failed (etcd away): written again with the next take().
    void retry(const Write& w);
    // A write landed (or was superseded by the store's newer record).
    void written(const Record& r) { last_[r.vm] = r; }
    void forget(const std::string& vm);
    size_t pending() const { return pending_.size(); }
    std::optional<Record> last(const std::string& vm) const;

private:
    bool pin_changed(const std::string& vm) const;  // the pending write of vm changes the pin
    struct Pending {
        Record rec;
        bool urgent = false;
    };
    int64_t interval_ms_;
    int64_t flushed_ms_ = 0;
    std::unordered_map<std::string, Record> last_;  // what etcd holds, as far as we know
    std::map<std::string, Pending> pending_;
};

}  // namespace smtpgov::fleet
