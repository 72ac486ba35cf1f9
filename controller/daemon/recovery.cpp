// Start-up with a stale or lost state dir: what the pinned maps still enforce outranks
// it. A VM is never relaxed by a restart, and keeps its slot (and so its counters).
#include <cstring>

#include "daemon/controller.h"
#include "daemon/log.h"

namespace smtpgov::daemon {
namespace {

// The slot the kernel's maps name for a policy VM: its interfaces' sg_ifaces entry, or
// its first address in the LPM tries.
std::optional<uint32_t> kernel_slot(Maps& maps, const Host& host, const Vm& vm,
                                    const std::vector<std::string>& ifaces) {
    for (const std::string& name : ifaces)
        if (uint32_t ifindex = static_cast<uint32_t>(host.ifindex(name))) {
            sg_iface e{};
            auto had = maps.lookup(MapId::Ifaces, &ifindex, &e);
            if (had && *had && (e.flags & SG_IFACE_HAS_VM)) return e.vm_slot;
        }
    if (vm.addresses.empty()) return std::nullopt;
    const IpPrefix& a = vm.addresses.front();
    uint32_t slot = 0;
    Result<bool> had = false;
    if (a.family == IpPrefix::Family::V4) {
        sg_lpm_v4 k{};
        k.prefixlen = a.len;
        std::memcpy(k.addr, a.addr.data(), 4);
        had = maps.lookup(MapId::VmV4, &k, &slot);
    } else {
        sg_lpm_v6 k{};
        k.prefixlen = a.len;
        std::memcpy(k.addr, a.addr.data(), 16);
        had = maps.lookup(MapId::VmV6, &k, &slot);
    }
    if (had && *had) return slot;
    return std::nullopt;
}

}  // namespace

void Controller::recover_from_maps(const Policy& p) {
    const int64_t now_ms = clock_->now_ms();
    SlotTable slots = vms_.slots();
    for (const Vm& vm : p.vms)
        if (!slots.find(vm.id))
            if (auto s = kernel_slot(*maps_, *host_, vm, interfaces_of(vm)); s && slots.claim(vm.id, *s))
                log::notice("vm " + vm.id + ": slot " + std::to_string(*s) + " recovered from the pinned maps");
    for (const Vm& vm : p.vms) {
        auto slot = slots.find(vm.id);
        sg_vm_policy e{};
        if (!slot || *slot >= maps_->max_vms()) continue;
        auto had = maps_->lookup(MapId::VmPolicy, &*slot, &e);
        if (!had || !*had || !(e.flags & SG_VMF_ACTIVE)) continue;
        if (tiers_.recover(vm.id, static_cast<Tier>(e.tier & 3), now_ms)) {
            const std::string tier(to_string(static_cast<Tier>(e.tier & 3)));
            log::write(log::Entry(log::Level::Notice, log::Event::TierRecovered,
                                  "vm " + vm.id + ": tier " + tier + " recovered from the pinned maps (the state dir did not have it)")
                           .about(vm.id, vm.tenant, tier));
            rep_dirty_ = true;
        }
    }
    for (const auto& [id, tier] : enforcer_->auto_tiers())
        if (tiers_.recover(id, tier, now_ms)) {
            log::write(log::Entry(log::Level::Notice, log::Event::TierRecovered,
                                  id + ": tier " + std::string(to_string(tier)) + " recovered from the pinned maps")
                           .about(id, "", std::string(to_string(tier))));
            rep_dirty_ = true;
        }
    vms_.restore_slots(std::move(slots));
}

}  // namespace smtpgov::daemon
