// From policy to map contents: what sg_vm_policy, sg_defaults, sg_ifaces and the LPM
// tries must hold. Pure: the Enforcer writes plans to the maps.
#pragma once

#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/policy.h"
#include "core/result.h"
#include "daemon/state_store.h"
#include "smtpgov/abi.h"

namespace smtpgov::daemon {

// A map key ordered by its bytes.
template <typename T>
struct KeyBytes {
    T v{};
    bool operator<(const KeyBytes& o) const { return std::memcmp(&v, &o.v, sizeof(T)) < 0; }
    bool operator==(const KeyBytes& o) const { return std::memcmp(&v, &o.v, sizeof(T)) == 0; }
};

sg_vm_policy vm_policy_entry(const Policy& p, const Vm& vm, Tier t);
sg_vm_policy auto_policy_entry(const Policy& p, Tier t);
// sg_runtime: conn_per_vm, the proxy endpoints and ports, and the fail mode as the
// tier a steered SYN gets when no proxy of its family takes it. A family's proxy flag
// is set only while it is configured and up (steering[0] v4, [1] v6: Tiers::steering);
// while no family is, steered VMs' own entries carry the fail tier (Tiers::enforced).
sg_runtime runtime_entry(const Policy& p, std::array<bool, 2> steering);

struct MapPlan {
    std::map<uint32_t, sg_vm_policy> vm_policy;      // every slot in use
    std::set<uint32_t> deactivate;                   // slots that left the policy
    std::set<uint32_t> reset;                        // slots given to new VMs: zero bucket + counters
    std::array<sg_vm_policy, SG_DEFAULTS_MAX> defaults{};
    std::map<uint32_t, sg_iface> ifaces;
    std::map<KeyBytes<sg_lpm_v4>, uint32_t> v4;
    std::map<KeyBytes<sg_lpm_v6>, uint32_t> v6;
    sg_runtime runtime{};                            // sg_runtime[0]
};

struct PlanInputs {
    const Policy* policy = nullptr;
    const SlotTable* slots = nullptr;
    std::function<Tier(const std::string& id)> tier_of;           // tier in force (core/tiers.h)
    std::function<int(const std::string& ifname)> ifindex_of;      // 0: no such interface
    std::vector<std::pair<std::string, int>> governed_ifaces;     // attached interfaces
    std::function<bool(const std::string& ifname)> is_gateway;     // declared in gateway_interfaces
    // The VM id an interface carries (policy interface, libvirt domain, interface_rules;
    // daemon/identity.cpp), "" for none. Unset: only the policy's `interface` names.
    std::function<std::string(const std::string& ifname)> vm_of_iface;
    std::array<bool, 2> steering{};                                // proxy v4, v6 configured and up
};

// An interface that names a VM (vm_of_iface) carries that VM (hypervisor mode); one declared in
// gateway_interfaces and named by no VM is a gateway (the source address names the VM);
// any other is unclaimed (one auto entry "if:<name>"): gateways are declared, never
// inferred, so nobody on an ordinary VM-facing interface can pick whom a SYN counts for.
MapPlan plan_maps(const PlanInputs& in);
std::optional<sg_iface> iface_entry(const PlanInputs& in, const std::string& ifname);

}  // namespace smtpgov::daemon
