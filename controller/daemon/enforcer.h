// The only writer of the maps that carry enforcement: sg_vm_policy, sg_auto_policy,
// sg_defaults, sg_ifaces (and sg_ifaces_big), sg_vm_v4/sg_vm_v6, sg_runtime (conn_per_vm,
// proxy, fail mode), and the reset of a slot given to a new VM. It keeps what it wrote, so the fill counts it reports are
// the maps' own and a tier write that changes nothing costs no syscall.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tier.h"

#include "daemon/map_plan.h"
#include "daemon/maps.h"

namespace smtpgov::daemon {

struct EnforcementFill {
    size_t vm_policy = 0, auto_policy = 0, ifaces = 0, v4 = 0, v6 = 0;
};

class Enforcer {
public:
    explicit Enforcer(Maps& maps) : maps_(maps) {}

    // Start-up: learns the sg_auto_policy entries a previous run left (escalated auto
    // entries keep their tier across restarts), named by `id_of`; entries it names ""
    // (their interface is gone, its ifindex may be reused) are removed.
    Status adopt_auto_policies(const std::function<std::string(const sg_auto_key&)>& id_of);

    // Writes `plan` over the maps: entries not in the plan are removed, slots the plan
    // no longer uses are deactivated. All or nothing: on the first failed write every
    // change is undone and the error names the write (and any undo that failed too).
    Status apply(const MapPlan& plan);
    const MapPlan& current() const { return cur_; }

    // One VM's entry (a tier change). The slot must be in the plan in force.
    Status set_vm(uint32_t slot, const sg_vm_policy& e);
    // An auto entry's policy, by its id; nullopt: back to the defaults. An id seen
    // under a new key (its interface was recreated) leaves its old key.
    Status set_auto(const std::string& id, const sg_auto_key& key, const std::optional<sg_vm_policy>& e);
    // An interface went away: the auto policies keyed by its ifindex go (the tier stays
    // with the id, in Tiers, for when the name comes back).
    Status drop_ifindex(uint32_t ifindex);
    // An interface appeared (entry) or went away (nullopt).
    Status set_iface(uint32_t ifindex, const std::optional<sg_iface>& e);
    // sg_runtime after a proxy health change (a policy writes it with its plan).
    Status set_runtime(const sg_runtime& r);

    EnforcementFill fill() const;
    // The tier each auto policy in force carries, by auto id.
    std::vector<std::pair<std::string, Tier>> auto_tiers() const;

private:
    Maps& maps_;
    MapPlan cur_;
    struct AutoPolicy {
        sg_auto_key key;
        sg_vm_policy entry;
    };
    std::map<std::string, AutoPolicy> auto_;  // by auto id
};

}  // namespace smtpgov::daemon
