// Hypervisor identity (DESIGN.md "Identity"): which VM an interface carries beyond the
// policy's `interface` names. A policy VM may name its libvirt domain (smtpgov-libvirt
// tells hv_ which devices the domain has now); an unregistered interface that an
// interface_rules entry matches is the rule's VM: a VM of the effective policy with a
// slot, one bucket for all its taps, whose reputation survives tap recreation and
// daemon restarts, and which starts clean after auto_hold_s without any of its taps
// (Proxmox reuses freed VM ids). Rule VMs follow the operator's VMs at the end of the
// effective policy (VmTable's); policy get and policy.json show the operator's only.
#include <algorithm>
#include <unordered_set>

#include "daemon/controller.h"
#include "daemon/log.h"

namespace smtpgov::daemon {

// Interface name -> VM id: the policy's `interface` first, then the devices of a policy
// VM's libvirt domain, then interface_rules for the governed interfaces nobody claims.
IfaceOwners Controller::iface_owners(const Policy& eff) const {
    auto m = std::make_shared<std::unordered_map<std::string, std::string>>();
    for (const Vm& vm : eff.vms)
        if (!vm.interface.empty()) m->emplace(vm.interface, vm.id);
    for (const Vm& vm : eff.vms)
        if (!vm.libvirt.empty())
            if (const hv::Domain* d = hv_.find(vm.libvirt))
                for (const hv::Nic& n : d->nics) m->emplace(n.dev, vm.id);
    if (!opts_.interface_rules.empty() && host_)
        for (const auto& [name, ifindex] : host_->governed())
            if (!m->count(name))
                if (auto r = hv::rule_vm(opts_.interface_rules, name)) m->emplace(name, r->id);
    return m;
}

// The operator's policy plus one VM per rule id that a governed interface yields, or
// that is held (its taps are gone, for less than auto_hold_s).
Policy Controller::effective(const Policy& op, std::set<std::string>& rule_ids) const {
    rule_ids.clear();
    if (opts_.interface_rules.empty()) return op;
    Policy eff = op;
    std::unordered_set<std::string> ids;
    for (const Vm& vm : op.vms) ids.insert(vm.id);
    std::map<std::string, std::string> add;  // id -> tenant
    auto owners = iface_owners(op);
    if (host_)
        for (const auto& [name, ifindex] : host_->governed()) {
            auto r = hv::rule_vm(opts_.interface_rules, name);
            auto it = owners->find(name);
            if (r && it != owners->end() && it->second == r->id && !ids.count(r->id)) add.emplace(r->id, r->tenant);
        }
    for (const auto& [id, g] : rule_gone_)
        if (!ids.count(id)) add.emplace(id, g.tenant);
    for (auto& [id, tenant] : add) {
        Vm v;
        v.id = id;
        v.tenant = tenant;
        eff.vms.push_back(std::move(v));
        rule_ids.insert(id);
    }
    return eff;
}

Policy Controller::operator_policy() const {
    Policy p = vms_.policy();
    p.vms.resize(p.vms.size() - rule_ids_.size());
    return p;
}

// The devices that carry `vm` now (recovery reads their sg_ifaces entries).
std::vector<std::string> Controller::interfaces_of(const Vm& vm) const {
    std::vector<std::string> out;
    if (!vm.interface.empty()) out.push_back(vm.interface);
    if (!vm.libvirt.empty())
        if (const hv::Domain* d = hv_.find(vm.libvirt))
            for (const hv::Nic& n : d->nics) out.push_back(n.dev);
    return out;
}

void Controller::iface_up(const std::string& name, int ifindex) {
    rule_iface_renamed(name, static_cast<uint32_t>(ifindex));
    if (rule_iface_up(name)) return;
    auto e = iface_entry(plan_inputs(vms_.policy(), vms_.slots()), name);
    if (auto s = enforcer_->set_iface(static_cast<uint32_t>(ifindex), e); !s)
        log::error("interface " + name + ": " + s.error().message);
    if (e) return;
    // An unclaimed interface is the auto entry if:<name>: a tier it earned under an
    // earlier ifindex (a recreated tap) applies from its first SYN.
    const std::string id = "if:" + name;
    vms_.release(id);
    if (Tier t = tiers_.tier(id); t != Tier::Ok) {
        sg_auto_key key{};
        key.ifindex = static_cast<uint32_t>(ifindex);
        vms_.note_auto(key);
        write_tier(id, t);
        log::info(id + " is back (ifindex " + std::to_string(ifindex) + "): " + std::string(to_string(t)));
    }
}

void Controller::iface_down(int ifindex) {
    rule_iface_down(static_cast<uint32_t>(ifindex));
    const uint64_t now = mono_ns();
    for (const auto& [id, a] : vms_.autos())
        if (a.key.ifindex == static_cast<uint32_t>(ifindex) && a.key.family == 0 && tiers_.tier(id) != Tier::Ok)
            vms_.hold(id, now);
    if (auto s = enforcer_->drop_ifindex(static_cast<uint32_t>(ifindex)); !s) log::error(s.error().message);
    if (auto s = enforcer_->set_iface(static_cast<uint32_t>(ifindex), std::nullopt); !s) log::error(s.error().message);
}

// Held if:<name> entries whose interface stayed away for auto_hold_s start clean: the
// next customer who gets the name does not inherit the tier.
void Controller::release_holds(uint64_t now_ns) {
    for (const std::string& id : vms_.held_longer_than(uint64_t{opts_.auto_hold_s} * 1'000'000'000, now_ns)) {
        Transition t{id, tiers_.tier(id), Tier::Ok, tiers_.reputation().score(id), "hold_expired"};
        tiers_.forget(id);
        vms_.forget_auto(id);
        announce(t);
        rep_dirty_ = true;
    }
}

void Controller::refresh_identity(const std::string& why) {
    auto r = apply_effective(operator_policy(), /*operator_change=*/false);
    if (!r) log::error("interfaces of VMs (" + why + "): " + r.error().message + "; the previous mapping stays");
}

// A rule VM whose last tap went away is held: it keeps its slot and tier.
void Controller::rule_iface_down(uint32_t ifindex) {
    auto it = enforcer_->current().ifaces.find(ifindex);
    if (it == enforcer_->current().ifaces.end() || !(it->second.flags & SG_IFACE_HAS_VM)) return;
    const Vm* vm = vms_.at_slot(it->second.vm_slot);
    if (!vm || !rule_ids_.count(vm->id)) return;
    auto owners = iface_owners(vms_.policy());
    for (const auto& [name, idx] : host_->governed())
        if (static_cast<uint32_t>(idx) != ifindex)
            if (auto o = owners->find(name); o != owners->end() && o->second == vm->id) return;
    rule_gone_[vm->id] = RuleGone{vm->tenant, mono_ns()};
    log::info("vm " + vm->id + ": its last interface went away; held for " + std::to_string(opts_.auto_hold_s) + " s");
}

// A rule VM's tap renamed to a name that no longer yields its id: as if it went away.
void Controller::rule_iface_renamed(const std::string& name, uint32_t ifindex) {
    if (rule_ids_.empty()) return;
    auto it = enforcer_->current().ifaces.find(ifindex);
    if (it == enforcer_->current().ifaces.end() || !(it->second.flags & SG_IFACE_HAS_VM)) return;
    const Vm* vm = vms_.at_slot(it->second.vm_slot);
    auto r = hv::rule_vm(opts_.interface_rules, name);
    if (vm && rule_ids_.count(vm->id) && !(r && r->id == vm->id)) {
        rule_iface_down(ifindex);
        refresh_identity("interface " + name + " renamed");
    }
}

// Returns true when the interface is a rule VM's (and the maps were updated for it).
bool Controller::rule_iface_up(const std::string& name) {
    if (opts_.interface_rules.empty()) return false;
    auto owners = iface_owners(vms_.policy());
    auto it = owners->find(name);
    auto r = hv::rule_vm(opts_.interface_rules, name);
    if (!r || it == owners->end() || it->second != r->id) return false;
    const bool was_held = rule_gone_.erase(r->id) > 0;
    if (vms_.vm(r->id) && !was_held) return false;  // a VM in force: the ordinary path maps it
    refresh_identity("interface " + name + " up");
    return true;
}

// Rule VMs away for auto_hold_s start clean: the next VM given the id inherits nothing.
void Controller::release_rule_holds(uint64_t now_ns) {
    std::vector<std::string> expired;
    for (const auto& [id, g] : rule_gone_)
        if (now_ns - g.since_ns >= uint64_t{opts_.auto_hold_s} * 1'000'000'000) expired.push_back(id);
    if (expired.empty()) return;
    for (const std::string& id : expired) {
        rule_gone_.erase(id);
        Transition t{id, tiers_.tier(id), Tier::Ok, tiers_.reputation().score(id), "hold_expired"};
        tiers_.forget(id);
        if (t.from != Tier::Ok) announce(t);
        rep_dirty_ = true;
    }
    refresh_identity("hold expired");
}

// At start: rule VMs of the last run (slots of ids the operator's policy does not name)
// are held until their interfaces come back.
void Controller::hold_rule_vms_of_last_run(const Policy& op) {
    if (opts_.interface_rules.empty()) return;
    std::unordered_set<std::string> ids;
    for (const Vm& vm : op.vms) ids.insert(vm.id);
    for (const auto& [id, slot] : vms_.slots().slots())
        if (!ids.count(id) && !id.starts_with("if:") && !id.starts_with("ip:")) rule_gone_[id] = RuleGone{"", mono_ns()};
}

// vm show: what names the VM and which devices carry it now.
void Controller::name_view(const Vm& vm, VmView& v) const {
    if (rule_ids_.count(vm.id)) v.named_by = "rule";
    if (!vm.libvirt.empty()) {
        v.named_by = "libvirt";
        const hv::Domain* d = hv_.find(vm.libvirt);
        v.libvirt_domain = d ? d->name : "";
        v.libvirt_uuid = d ? d->uuid : "";
    }
    auto owners = iface_owners(vms_.policy());
    for (const auto& [name, id] : *owners)
        if (id == vm.id) v.interfaces.push_back(name);
    std::sort(v.interfaces.begin(), v.interfaces.end());
}

svc::Reply Controller::cmd_hypervisor_update(const nlohmann::json& req) {
    hv::HypervisorMap next = hv_;
    auto touched = next.apply(req);
    if (!touched) return svc::error_reply("validation", "hypervisor.update: " + touched.error().message);
    if (auto s = write_file_atomic(opts_.state_dir + "/hypervisor.json", next.to_json().dump() + "\n"); !s)
        return svc::error_reply("runtime", "hypervisor.json: " + s.error().message + "; nothing changed");
    hv_ = std::move(next);
    refresh_identity("hypervisor.update");
    return svc::ok_reply({{"domains", hv_.size()}, {"interfaces", touched->size()}});
}

Status Controller::load_hypervisor_map() {
    auto saved = read_state_file(opts_.state_dir + "/hypervisor.json");
    if (!saved) return saved.error();
    if (!*saved) return ok_status();
    auto m = hv::HypervisorMap::from_json(**saved);
    if (!m) {
        log::error("hypervisor.json: " + m.error().message + ": ignored until smtpgov-libvirt resends");
        return ok_status();
    }
    hv_ = std::move(*m);
    return ok_status();
}

}  // namespace smtpgov::daemon
