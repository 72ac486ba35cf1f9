// smtpgovctl fleet: the pure half (DESIGN.md "Fleet contract", README "Running a fleet").
// Where the fleet's etcd is, which transactions an apply writes, what a host's status
// says about a serial, and the views `fleet status` / `fleet vm list` / `fleet policy
// apply` print. No I/O here: fleet.cpp reads and writes etcd and calls these.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fleet.h"
#include "core/result.h"
#include "svc/etcd.h"

namespace smtpgov::ctl::fleetv {

inline constexpr const char* kDefaultConfig = "/etc/smtpgov/smtpgovd.json";
inline constexpr const char* kDefaultPrefix = "/smtpgov";
inline constexpr size_t kMaxTxnOps = 64;       // per transaction of an apply
inline constexpr int64_t kLockTtlS = 30;       // the apply lock's lease
inline constexpr const char* kRaceMessage =
    "the fleet policy changed since it was read (or another apply is running): nothing written; read it again";

struct Target {
    etcd::Options etcd;         // endpoints, TLS, user (password read from password_file)
    std::string prefix = kDefaultPrefix;
    std::string password_file;  // from the config; fleet.cpp reads it
};

// --etcd URL[,URL...] and --prefix win over the config's "fleet" object (null when no
// config was read). An error message is a usage error (exit 2).
Result<Target> target(const std::optional<std::string>& etcd_opt, const std::optional<std::string>& prefix_opt,
                      const nlohmann::json& config_fleet);

// The writes of an apply after the lock (step 4): the changed host values, then the
// deletions of dropped hosts, at most max_ops per transaction.
std::vector<std::vector<etcd::Op>> host_batches(const fleet::Split& s, const fleet::Keys& keys,
                                                size_t max_ops = kMaxTxnOps);

// What a host's status key says about serial N.
// Superseded: the host is already past N (a later apply replaced this one meanwhile).
enum class Outcome { Applied, Refused, Superseded, NoAnswer };
struct HostOutcome {
    Outcome outcome = Outcome::NoAnswer;
    std::string reason;  // refused: the host's reason; superseded: "serial M"
};
// status: the host's status value (null when absent or unreadable).
HostOutcome outcome_for(const nlohmann::json& status, int64_t serial);
const char* to_string(Outcome o);

// The policy keys read in one range (<prefix>/policy/...): the global value (null when
// absent or not JSON), its mod revision, the host values by host.
struct PolicyState {
    nlohmann::json global;
    int64_t global_revision = 0;
    std::map<std::string, nlohmann::json> hosts;
    std::optional<std::string> lock;  // the lock's value while an apply runs
};
PolicyState policy_state(const std::vector<etcd::Kv>& kvs, const fleet::Keys& keys);

// `fleet policy apply` result: {"serial","revision","hosts":[{"host","result","reason","live"}]}.
struct HostReport {
    std::string host;
    HostOutcome outcome;
    bool live = false;
};
nlohmann::json apply_json(int64_t serial, int64_t revision, const std::vector<HostReport>& hosts);
std::string render_apply(const nlohmann::json& result, size_t written, size_t dropped);

// `fleet status --json`: every host under <prefix>/hosts/ and every host of the policy.
nlohmann::json status_json(const PolicyState& policy, const std::vector<etcd::Kv>& host_kvs, const fleet::Keys& keys);
std::string render_status(const nlohmann::json& status, int64_t now_unix_s);

// `fleet vm list --json`: every VM of the joined fleet policy with its host, merged with
// its reputation record (by key; absent = ok, score 0), filtered, highest score first.
nlohmann::json vm_list_json(const nlohmann::json& policy, const std::vector<etcd::Kv>& tenant_kvs,
                            const fleet::Keys& keys, int64_t now_unix_ms, const std::optional<std::string>& tier,
                            const std::optional<std::string>& tenant);
std::string render_vm_list(const nlohmann::json& vms);

// `fleet vm set-tier` / `fleet vm clear`: the VM's record with the operator's pin (nullopt:
// cleared), written by `who` at now. policy: the joined fleet policy (it names the VM's
// tenant and host); record: the VM's key as read (nullptr: none yet). The write is a
// compare-and-swap on `expect_mod_revision` (0: the key must not exist). The enforcing
// host takes the pin in as a pin set elsewhere (fleet::resolve: a pin it did not change
// is the record's). Errors: no such VM (not_found), an unreadable record (not replaced).
struct PinWrite {
    std::string key, host;
    fleet::Record rec;
    int64_t expect_mod_revision = 0;
};
Result<PinWrite> pin_write(const nlohmann::json& policy, const etcd::Kv* record, const fleet::Keys& keys,
                           const std::string& id, const std::optional<Pin>& pin, int64_t now_unix_ms,
                           const std::string& who);

}  // namespace smtpgov::ctl::fleetv
