// Policy in force: apply (whole, atomic from the operator's view, with rollback),
// pins that come from the policy, and persistence in the state dir.
#include <malloc.h>
#include <net/if.h>

#include "daemon/daemon.h"
#include "daemon/log.h"

namespace smtpgov::daemon {

PlanInputs Daemon::plan_inputs(const Policy& p, const SlotTable& slots, const std::map<std::string, Tier>& pins) const {
    PlanInputs in;
    in.policy = &p;
    in.slots = &slots;
    in.tier_of = [this, &pins](const std::string& id) {
        if (auto it = pins.find(id); it != pins.end()) return it->second;
        if (policy_pins_.count(id)) return rep_->earned_tier(id);  // its policy pin is going away
        return rep_->tier(id);
    };
    in.ifindex_of = [](const std::string& name) { return static_cast<int>(if_nametoindex(name.c_str())); };
    for (const auto& l : kern::LinkWatcher::list())
        if (kern::iface_matches(cfg_.interfaces, l.name)) in.governed_ifaces.emplace_back(l.name, l.ifindex);
    return in;
}

void Daemon::index_policy() {
    vm_index_.clear();
    by_slot_.assign(slots_.high_water(), -1);
    slot_of_.assign(policy_.vms.size(), SG_SLOT_NONE);
    if (vm_rt_.size() < slots_.high_water()) vm_rt_.resize(slots_.high_water());
    for (size_t i = 0; i < policy_.vms.size(); ++i) {
        vm_index_[policy_.vms[i].id] = i;
        if (auto slot = slots_.find(policy_.vms[i].id)) {
            by_slot_[*slot] = static_cast<int32_t>(i);
            slot_of_[i] = *slot;
        }
    }
}

void Daemon::sync_policy_pins() {
    std::map<std::string, Tier> wanted;
    for (const Vm& vm : policy_.vms)
        if (vm.tier) wanted[vm.id] = *vm.tier;
    for (const auto& [id, tier] : wanted) {
        auto pin = rep_->pin(id);
        if (pin && pin->tier == tier && !pin->until_unix_ms) continue;
        on_transition(rep_->set_pin(id, tier, std::nullopt));
    }
    for (const auto& [id, tier] : policy_pins_)
        if (!wanted.count(id))
            if (auto t = rep_->clear_pin(id)) on_transition(*t);
    policy_pins_ = std::move(wanted);
}

Status Daemon::persist_policy() {
    if (auto s = write_file_atomic(cfg_.state_dir + "/policy.json", to_json(policy_).dump(2) + "\n"); !s) return s;
    return write_file_atomic(cfg_.state_dir + "/slots.json", slots_.to_json().dump() + "\n");
}

Result<nlohmann::json> Daemon::apply_policy(const Policy& neu) {
    PolicyDiff d = diff(policy_, neu);
    SlotTable next_slots = slots_;
    std::vector<std::string> ids;
    for (const Vm& vm : neu.vms) ids.push_back(vm.id);
    if (auto s = next_slots.assign(ids); !s) return s.error();
    std::map<std::string, Tier> pins;
    for (const Vm& vm : neu.vms)
        if (vm.tier) pins[vm.id] = *vm.tier;
    MapPlan plan = plan_maps(plan_inputs(neu, next_slots, pins));
    for (const auto& [id, slot] : next_slots.slots())
        if (slots_.find(id) != slot) plan.reset.insert(slot);
    for (const auto& [id, slot] : slots_.slots())
        if (!next_slots.find(id)) plan.deactivate.insert(slot);

    // Everything that can fail before the maps change: a new program instance for new ports.
    std::optional<kern::Datapath> next_dp;
    if (d.ports_changed) {
        auto r = dp_->reload(neu.smtp_ports);
        if (!r) return Error{r.error().errnum, "load programs for the new smtp_ports: " + r.error().message};
        next_dp.emplace(std::move(*r));
    }
    if (auto s = apply_plan(*dp_, plan); !s)
        return Error{s.error().errnum, "maps unchanged, the old policy stays in force: " + s.error().message};
    if (next_dp) {
        if (auto s = attacher_->upgrade(*dp_, *next_dp); !s) {
            MapPlan old = plan_maps(plan_inputs(policy_, slots_, policy_pins_));
            for (const auto& [id, slot] : next_slots.slots())
                if (!slots_.find(id)) old.deactivate.insert(slot);
            std::string msg = "swap programs: " + s.error().message;
            if (auto undo = apply_plan(*dp_, old); !undo) msg += "; restoring the old maps failed too: " + undo.error().message;
            return Error{s.error().errnum, msg};
        }
        dp_ = std::move(next_dp);  // the old instance's programs are no longer attached anywhere
        log::notice("programs upgraded in place for smtp_ports change");
    }
    // Committed in the kernel: now the controller's own view follows.
    for (uint32_t slot : plan.reset)
        if (slot < vm_rt_.size()) vm_rt_[slot] = VmRuntime{};
    for (const auto& id : d.removed) {
        rep_->forget(id);
        if (auto slot = slots_.find(id)) hot_slots_.erase(*slot);
    }
    policy_ = neu;
    slots_ = std::move(next_slots);
    index_policy();
    rep_->set_config(policy_.reputation);
    sync_policy_pins();
    iface_entries_ = plan.ifaces.size();
    v4_entries_ = plan.v4.size();
    v6_entries_ = plan.v6.size();
    if (auto s = persist_policy(); !s) log::error("persist policy: " + s.error().message);
    persist_reputation();
    ::malloc_trim(0);
    log::notice("policy applied: " + std::to_string(d.added.size()) + " added, " + std::to_string(d.removed.size()) +
                " removed, " + std::to_string(d.changed.size()) + " changed" +
                (d.ports_changed ? ", smtp_ports changed" : ""));
    return to_json(d);
}

}  // namespace smtpgov::daemon
