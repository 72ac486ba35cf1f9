#include "daemon/map_plan.h"

#include <vector>

#include "kern/map_io.h"

namespace smtpgov::daemon {
using kern::MapId;
namespace {

// Undo log of map writes: each entry restores one key to what it was before.
class Transaction {
public:
    explicit Transaction(const kern::Datapath& dp) : dp_(dp) {}
    ~Transaction() {
        if (!committed_) rollback();
    }

    template <typename K, typename V>
    Status put(MapId id, const K& key, const V& value) {
        V old{};
        auto had = kern::map_lookup(dp_, id, &key, &old);
        if (!had) return had.error();
        if (*had && std::memcmp(&old, &value, sizeof(V)) == 0) return ok_status();
        if (auto s = kern::map_update(dp_, id, &key, &value); !s) return s;
        undo_.push_back([this, id, key, old, existed = *had]() {
            return existed ? kern::map_update(dp_, id, &key, &old) : kern::map_delete(dp_, id, &key);
        });
        return ok_status();
    }

    template <typename K, typename V>
    Status erase(MapId id, const K& key) {
        V old{};
        auto had = kern::map_lookup(dp_, id, &key, &old);
        if (!had) return had.error();
        if (!*had) return ok_status();
        if (auto s = kern::map_delete(dp_, id, &key); !s) return s;
        undo_.push_back([this, id, key, old]() { return kern::map_update(dp_, id, &key, &old); });
        return ok_status();
    }

    void commit() { committed_ = true; }

private:
    void rollback() {
        for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (void)(*it)();  // best effort, in reverse
    }
    const kern::Datapath& dp_;
    std::vector<std::function<Status()>> undo_;
    bool committed_ = false;
};

template <typename K>
Status erase_stale(Transaction& tx, const kern::Datapath& dp, MapId id, const std::map<KeyBytes<K>, uint32_t>& keep) {
    auto keys = kern::map_keys<K>(dp, id);
    if (!keys) return keys.error();
    for (const K& k : *keys)
        if (!keep.count(KeyBytes<K>{k}))
            if (auto s = tx.erase<K, uint32_t>(id, k); !s) return s;
    return ok_status();
}

}  // namespace

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
    return policy_entry(p, limits_for(p, vm, t), t, SG_VMF_ACTIVE | (vm.addresses.empty() ? 0 : SG_VMF_HAS_ADDRS));
}

sg_vm_policy auto_policy_entry(const Policy& p, Tier t) {
    return policy_entry(p, default_limits_for(p, t), t, SG_VMF_ACTIVE);
}

std::optional<sg_iface> iface_entry(const PlanInputs& in, const std::string& ifname) {
    bool address_only_vms = false;
    for (const Vm& vm : in.policy->vms) {
        if (vm.interface == ifname) {
            auto slot = in.slots->find(vm.id);
            if (slot) return sg_iface{*slot, SG_IFACE_HAS_VM};
        }
        address_only_vms |= vm.interface.empty() && !vm.addresses.empty();
    }
    if (address_only_vms) return sg_iface{SG_SLOT_NONE, SG_IFACE_GATEWAY};
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
    for (const auto& [name, ifindex] : in.governed_ifaces)
        if (!plan.ifaces.count(static_cast<uint32_t>(ifindex)))
            if (auto e = iface_entry(in, name)) plan.ifaces[static_cast<uint32_t>(ifindex)] = *e;
    return plan;
}

Status apply_plan(const kern::Datapath& dp, const MapPlan& plan) {
    Transaction tx(dp);
    // New slots start from a full bucket and zero counters (not undone: unused before).
    for (uint32_t slot : plan.reset)
        if (auto s = kern::reset_slot(dp, slot); !s) return s;
    // Policies first, so that nothing points at a slot before its limits are in place.
    for (const auto& [slot, pol] : plan.vm_policy)
        if (auto s = tx.put(MapId::VmPolicy, slot, pol); !s) return s;
    for (uint32_t i = 0; i < SG_DEFAULTS_MAX; ++i)
        if (auto s = tx.put(MapId::Defaults, i, plan.defaults[i]); !s) return s;
    for (const auto& [ifindex, e] : plan.ifaces)
        if (auto s = tx.put(MapId::Ifaces, ifindex, e); !s) return s;
    for (const auto& [k, slot] : plan.v4)
        if (auto s = tx.put(MapId::VmV4, k.v, slot); !s) return s;
    for (const auto& [k, slot] : plan.v6)
        if (auto s = tx.put(MapId::VmV6, k.v, slot); !s) return s;
    // Then drop what no longer points anywhere, and finally retire the removed slots.
    auto ifaces = kern::map_keys<uint32_t>(dp, MapId::Ifaces);
    if (!ifaces) return ifaces.error();
    for (uint32_t k : *ifaces)
        if (!plan.ifaces.count(k))
            if (auto s = tx.erase<uint32_t, sg_iface>(MapId::Ifaces, k); !s) return s;
    if (auto s = erase_stale<sg_lpm_v4>(tx, dp, MapId::VmV4, plan.v4); !s) return s;
    if (auto s = erase_stale<sg_lpm_v6>(tx, dp, MapId::VmV6, plan.v6); !s) return s;
    for (uint32_t slot : plan.deactivate)
        if (!plan.vm_policy.count(slot))
            if (auto s = tx.put(MapId::VmPolicy, slot, sg_vm_policy{}); !s) return s;
    tx.commit();
    return ok_status();
}

}  // namespace smtpgov::daemon
