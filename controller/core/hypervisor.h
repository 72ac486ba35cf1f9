// Hypervisor identity (DESIGN.md "Identity"): which host interfaces belong to which
// libvirt domain (told by smtpgov-libvirt through hypervisor.update), and the
// interface_rules that give unregistered taps stable VM ids (Proxmox tap<vmid>i<n>,
// OpenStack tap<port-prefix>). Pure; the daemon decides what a name carries from these.
#pragma once

#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace smtpgov::hv {

struct Nic {
    std::string dev;  // host-side device: vnet3
    std::string mac;  // guest MAC, lower case
    bool operator==(const Nic&) const = default;
};

struct Domain {
    std::string name;
    std::string uuid;  // lower-case canonical form
    std::vector<Nic> nics;
    bool operator==(const Domain&) const = default;
};

nlohmann::json to_json(const Domain& d);

// The control request that tells smtpgovd about domains (docs/internals.md, "hypervisor.update").
// full: these are all the running domains of the source (the others are gone).
nlohmann::json update_request(const std::vector<Domain>& running, const std::vector<std::string>& gone_uuids,
                              bool full);

// Running domains by UUID, as the companion last told them.
class HypervisorMap {
public:
    // Applies a hypervisor.update request whole, or refuses it (naming the field) and
    // changes nothing. Returns the devices whose domain may have changed.
    Result<std::set<std::string>> apply(const nlohmann::json& req);

    // A domain by UUID or by name (UUID first; names are unique per libvirt host).
    const Domain* find(std::string_view name_or_uuid) const;
    // The running domain that has `dev`, if any.
    const Domain* owner_of(std::string_view dev) const;
    size_t size() const { return domains_.size(); }

    // Persistence in the state dir (hypervisor.json): the same shape as a full update.
    nlohmann::json to_json() const;
    static Result<HypervisorMap> from_json(const nlohmann::json& j);

private:
    std::map<std::string, Domain> domains_;    // by uuid
    std::map<std::string, std::string> devs_;  // dev -> uuid
    void reindex();
};

// interface_rules (daemon config): first match wins; id may use $1..$9 of the match.
struct InterfaceRule {
    std::string match;
    std::regex re;
    std::string id;
    std::string tenant;
};

struct RuleVm {
    std::string id;
    std::string tenant;
    bool operator==(const RuleVm&) const = default;
};

// Errors carry the JSON path: "interface_rules/1/match: ...".
Result<std::vector<InterfaceRule>> parse_interface_rules(const nlohmann::json& v);
// The VM an unregistered interface is, by the first rule that matches its name; nullopt
// when none matches or the id it yields is not a valid VM id.
std::optional<RuleVm> rule_vm(const std::vector<InterfaceRule>& rules, std::string_view ifname);

}  // namespace smtpgov::hv
