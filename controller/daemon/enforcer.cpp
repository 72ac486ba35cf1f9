#include "daemon/enforcer.h"

#include <functional>
#include <vector>

namespace smtpgov::daemon {
namespace {

// Undo log of map writes: each entry restores one key to what it was before.
class Transaction {
public:
    explicit Transaction(Maps& maps) : maps_(maps) {}

    template <typename K, typename V>
    Status put(MapId id, const K& key, const V& value) {
        V old{};
        auto had = maps_.lookup(id, &key, &old);
        if (!had) return had.error();
        if (*had && std::memcmp(&old, &value, sizeof(V)) == 0) return ok_status();
        if (auto s = maps_.update(id, &key, &value); !s) return s;
        undo_.push_back([this, id, key, old, existed = *had]() {
            return existed ? maps_.update(id, &key, &old) : maps_.remove(id, &key);
        });
        return ok_status();
    }

    template <typename K, typename V>
    Status erase(MapId id, const K& key) {
        V old{};
        auto had = maps_.lookup(id, &key, &old);
        if (!had) return had.error();
        if (!*had) return ok_status();
        if (auto s = maps_.remove(id, &key); !s) return s;
        undo_.push_back([this, id, key, old]() { return maps_.update(id, &key, &old); });
        return ok_status();
    }

    // Undoes every write in reverse; "" when all undos succeeded, else what failed.
    std::string rollback() {
        std::string failed;
        for (auto it = undo_.rbegin(); it != undo_.rend(); ++it)
            if (auto s = (*it)(); !s) failed += (failed.empty() ? "" : "; ") + s.error().message;
        undo_.clear();
        return failed;
    }

private:
    Maps& maps_;
    std::vector<std::function<Status()>> undo_;
};

template <typename K>
Status erase_stale(Transaction& tx, Maps& maps, MapId id, const std::map<KeyBytes<K>, uint32_t>& keep) {
    auto keys = map_keys<K>(maps, id);
    if (!keys) return keys.error();
    for (const K& k : *keys)
        if (!keep.count(KeyBytes<K>{k}))
            if (auto s = tx.erase<K, uint32_t>(id, k); !s) return s;
    return ok_status();
}

Status write_plan(Transaction& tx, Maps& maps, const MapPlan& plan, const MapPlan& before) {
    // Policies first, so that nothing points at a slot before its limits are in place.
    for (const auto& [slot, pol] : plan.vm_policy)
        if (auto s = tx.put(MapId::VmPolicy, slot, pol); !s) return s;
    for (uint32_t i = 0; i < SG_DEFAULTS_MAX; ++i)
        if (auto s = tx.put(MapId::Defaults, i, plan.defaults[i]); !s) return s;
    if (auto s = tx.put(MapId::Runtime, uint32_t{0}, plan.runtime); !s) return s;
    for (const auto& [ifindex, e] : plan.ifaces)
        if (auto s = tx.put(MapId::Ifaces, ifindex, e); !s) return s;
    for (const auto& [k, slot] : plan.v4)
        if (auto s = tx.put(MapId::VmV4, k.v, slot); !s) return s;
    for (const auto& [k, slot] : plan.v6)
        if (auto s = tx.put(MapId::VmV6, k.v, slot); !s) return s;
    // Then drop what no longer points anywhere, and finally retire the unused slots.
    auto ifaces = map_keys<uint32_t>(maps, MapId::Ifaces);
    if (!ifaces) return ifaces.error();
    for (uint32_t k : *ifaces)
        if (!plan.ifaces.count(k))
            if (auto s = tx.erase<uint32_t, sg_iface>(MapId::Ifaces, k); !s) return s;
    if (auto s = erase_stale<sg_lpm_v4>(tx, maps, MapId::VmV4, plan.v4); !s) return s;
    if (auto s = erase_stale<sg_lpm_v6>(tx, maps, MapId::VmV6, plan.v6); !s) return s;
    std::set<uint32_t> retire = plan.deactivate;
    for (const auto& [slot, pol] : before.vm_policy) retire.insert(slot);
    for (uint32_t slot : retire)
        if (!plan.vm_policy.count(slot))
            if (auto s = tx.put(MapId::VmPolicy, slot, sg_vm_policy{}); !s) return s;
    return ok_status();
}

}  // namespace

Status Enforcer::adopt_auto_policies(const std::function<std::string(const sg_auto_key&)>& id_of) {
    auto keys = map_keys<sg_auto_key>(maps_, MapId::AutoPolicy);
    if (!keys) return keys.error();
    auto_.clear();
    for (const sg_auto_key& k : *keys) {
        sg_vm_policy e{};
        auto had = maps_.lookup(MapId::AutoPolicy, &k, &e);
        if (!had) return had.error();
        std::string id = id_of(k);
        if (id.empty()) {
            if (auto s = maps_.remove(MapId::AutoPolicy, &k); !s) return s;
            continue;
        }
        if (*had) auto_[id] = {k, e};
    }
    return ok_status();
}

Status Enforcer::apply(const MapPlan& plan) {
    // New slots start from a full bucket and zero counters (not undone: unused before).
    for (uint32_t slot : plan.reset)
        if (auto s = maps_.reset_slot(slot); !s) return s;
    Transaction tx(maps_);
    if (auto s = write_plan(tx, maps_, plan, cur_); !s) {
        std::string msg = s.error().message;
        if (std::string undo = tx.rollback(); !undo.empty()) msg += "; restoring the old entries failed too: " + undo;
        return Error{s.error().errnum, msg};
    }
    cur_ = plan;
    cur_.reset.clear();
    cur_.deactivate.clear();
    return ok_status();
}

Status Enforcer::set_vm(uint32_t slot, const sg_vm_policy& e) {
    auto it = cur_.vm_policy.find(slot);
    if (it == cur_.vm_policy.end()) return Error::msg("slot " + std::to_string(slot) + " is not in use");
    if (std::memcmp(&it->second, &e, sizeof(e)) == 0) return ok_status();
    if (auto s = maps_.update(MapId::VmPolicy, &slot, &e); !s) return s;
    it->second = e;
    return ok_status();
}

Status Enforcer::set_auto(const std::string& id, const sg_auto_key& key, const std::optional<sg_vm_policy>& e) {
    auto it = auto_.find(id);
    if (it != auto_.end() && std::memcmp(&it->second.key, &key, sizeof(key)) != 0) {
        if (auto s = maps_.remove(MapId::AutoPolicy, &it->second.key); !s) return s;
        auto_.erase(it);
        it = auto_.end();
    }
    if (!e) {
        if (auto s = maps_.remove(MapId::AutoPolicy, &key); !s) return s;
        if (it != auto_.end()) auto_.erase(it);
        return ok_status();
    }
    if (it != auto_.end() && std::memcmp(&it->second.entry, &*e, sizeof(*e)) == 0) return ok_status();
    if (auto s = maps_.update(MapId::AutoPolicy, &key, &*e); !s) return s;
    auto_[id] = {key, *e};
    return ok_status();
}

Status Enforcer::drop_ifindex(uint32_t ifindex) {
    for (auto it = auto_.begin(); it != auto_.end();) {
        if (it->second.key.ifindex != ifindex) {
            ++it;
            continue;
        }
        if (auto s = maps_.remove(MapId::AutoPolicy, &it->second.key); !s) return s;
        it = auto_.erase(it);
    }
    return ok_status();
}

Status Enforcer::set_iface(uint32_t ifindex, const std::optional<sg_iface>& e) {
    if (!e) {
        if (auto s = maps_.remove(MapId::Ifaces, &ifindex); !s) return s;
        cur_.ifaces.erase(ifindex);
        return ok_status();
    }
    if (auto it = cur_.ifaces.find(ifindex); it != cur_.ifaces.end() && std::memcmp(&it->second, &*e, sizeof(*e)) == 0)
        return ok_status();
    if (auto s = maps_.update(MapId::Ifaces, &ifindex, &*e); !s) return s;
    cur_.ifaces[ifindex] = *e;
    return ok_status();
}

Status Enforcer::set_runtime(const sg_runtime& r) {
    if (std::memcmp(&cur_.runtime, &r, sizeof(r)) == 0) return ok_status();
    const uint32_t key = 0;
    if (auto s = maps_.update(MapId::Runtime, &key, &r); !s) return s;
    cur_.runtime = r;
    return ok_status();
}

std::vector<std::pair<std::string, Tier>> Enforcer::auto_tiers() const {
    std::vector<std::pair<std::string, Tier>> out;
    for (const auto& [id, p] : auto_) out.emplace_back(id, static_cast<Tier>(p.entry.tier & 3));
    return out;
}

EnforcementFill Enforcer::fill() const {
    return {cur_.vm_policy.size(), auto_.size(), cur_.ifaces.size(), cur_.v4.size(), cur_.v6.size()};
}

}  // namespace smtpgov::daemon
