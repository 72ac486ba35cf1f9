#include "daemon/map_plan.h"

#include <arpa/inet.h>

#include <vector>

namespace smtpgov::daemon {
namespace {

// The kernel knows no tier limits: every entry carries the limits of its tier in force.
sg_vm_policy policy_entry(const Policy& p, LimitPair l, Tier t, uint8_t flags) {
    sg_vm_policy e{};
    e.rate = l.rate;
    e.burst = l.burst;
    e.tier = static_cast<__u8>(t);
    e.over_action = static_cast<__u8>(over_limit_action(p));
    e.block_action = static_cast<__u8>(blocked_action(p));
    e.flags = flags;
    return e;
}

}  // namespace

sg_vm_policy vm_policy_entry(const Policy& p, const Vm& vm, Tier t) {
    sg_vm_policy e =
        policy_entry(p, limits_for(p, vm, t), t, SG_VMF_ACTIVE | (vm.addresses.empty() ? 0 : SG_VMF_HAS_ADDRS));
    // one IPv4 host address (the usual VM): the datapath compares it inline, no LPM lookup
    const IpPrefix* v4 = nullptr;
    int n4 = 0;
    for (const IpPrefix& a : vm.addresses)
        if (a.family == IpPrefix::Family::V4 && n4++ == 0) v4 = &a;
    if (n4 == 1 && v4->is_host()) {
        e.flags |= SG_VMF_ONE_V4;
        std::memcpy(e.v4_addr, v4->addr.data(), 4);
    }
    return e;
}

sg_vm_policy auto_policy_entry(const Policy& p, Tier t) {
    return policy_entry(p, default_limits_for(p, t), t, SG_VMF_ACTIVE);
}

sg_runtime runtime_entry(const Policy& p, std::array<bool, 2> steering) {
    sg_runtime r{};
    r.conn_per_vm = p.conn_per_vm;
    r.nofamily_tier = static_cast<__u8>(fail_tier(fail_mode(p)));
    const Proxy px = p.proxy.value_or(Proxy{});  // none: no family flag, default ports
    for (uint16_t port : px.ports)
        if (r.n_proxy_ports < SG_MAX_PORTS) r.proxy_ports[r.n_proxy_ports++] = port;
    if (px.v4) {
        std::memcpy(r.proxy_v4, px.v4->addr.addr.data(), 4);
        r.proxy_v4_port = htons(px.v4->port);
        if (steering[0]) r.flags |= SG_RT_PROXY_V4;
    }
    if (px.v6) {
        std::memcpy(r.proxy_v6, px.v6->addr.addr.data(), 16);
        r.proxy_v6_port = htons(px.v6->port);
        if (steering[1]) r.flags |= SG_RT_PROXY_V6;
    }
    return r;
}

std::optional<sg_iface> iface_entry(const PlanInputs& in, const std::string& ifname) {
    if (in.vm_of_iface) {
        if (std::string id = in.vm_of_iface(ifname); !id.empty())
            if (auto slot = in.slots->find(id)) return sg_iface{*slot, SG_IFACE_HAS_VM};
    } else {
        for (const Vm& vm : in.policy->vms)
            if (vm.interface == ifname)
                if (auto slot = in.slots->find(vm.id)) return sg_iface{*slot, SG_IFACE_HAS_VM};
    }
    if (in.is_gateway && in.is_gateway(ifname)) return sg_iface{SG_SLOT_NONE, SG_IFACE_GATEWAY};
    return std::nullopt;
}

MapPlan plan_maps(const PlanInputs& in) {
    MapPlan plan;
    const Policy& p = *in.policy;
    plan.defaults[SG_DEFAULTS_SOURCE] = auto_policy_entry(p, Tier::Ok);
    sg_vm_policy agg = auto_policy_entry(p, Tier::Ok);
    LimitPair ul = unregistered_limits(p);
    agg.rate = ul.rate;
    agg.burst = ul.burst;
    plan.defaults[SG_DEFAULTS_AGGREGATE] = agg;
    for (const Vm& vm : p.vms) {
        auto slot = in.slots->find(vm.id);
        if (!slot) continue;
        plan.vm_policy[*slot] = vm_policy_entry(p, vm, in.tier_of(vm.id));
        if (!vm.interface.empty())
            if (int ifindex = in.ifindex_of(vm.interface); ifindex > 0)
                plan.ifaces[static_cast<uint32_t>(ifindex)] = sg_iface{*slot, SG_IFACE_HAS_VM};
        for (const IpPrefix& a : vm.addresses) {
            if (a.family == IpPrefix::Family::V4) {
                KeyBytes<sg_lpm_v4> k;
                k.v.prefixlen = a.len;
                std::memcpy(k.v.addr, a.addr.data(), 4);
                plan.v4[k] = *slot;
            } else {
                KeyBytes<sg_lpm_v6> k;
                k.v.prefixlen = a.len;
                std::memcpy(k.v.addr, a.addr.data(), 16);
                plan.v6[k] = *slot;
            }
        }
    }
    plan.runtime = runtime_entry(p, in.steering);
    for (const auto& [name, ifindex] : in.governed_ifaces)
        if (!plan.ifaces.count(static_cast<uint32_t>(ifindex)))
            if (auto e = iface_entry(in, name)) plan.ifaces[static_cast<uint32_t>(ifindex)] = *e;
    return plan;
}

}  // namespace smtpgov::daemon
