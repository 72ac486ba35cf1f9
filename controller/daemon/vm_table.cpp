#include "daemon/vm_table.h"

#include <arpa/inet.h>

#include <cmath>

namespace smtpgov::daemon {
namespace {

constexpr double kRateTauS = 2.0;  // EWMA time constant of the SYN rate

uint64_t since(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }  // reset: count anew

}  // namespace

uint64_t over_since_event(VmRuntime& rt, uint64_t cumulative) {
    const uint64_t before = rt.over_event_seen ? rt.over_at_event
                            : rt.primed        ? rt.last.syn[SG_VERDICT_THROTTLE]
                                               : 0;
    rt.over_at_event = cumulative;
    rt.over_event_seen = true;
    return since(cumulative, before);
}

Deltas feed(VmRuntime& rt, const sg_vm_stats& cur, uint64_t now_ns) {
    Deltas d;
    if (!rt.primed) {  // first reading (start, new VM): nothing to compare with yet
        rt.last = cur;
        rt.read_ns = now_ns;
        rt.primed = true;
        return d;
    }
    if (now_ns <= rt.read_ns) return d;
    const double dt = static_cast<double>(now_ns - rt.read_ns) / 1e9;
    uint64_t d_syn = 0;
    for (int i = 0; i < SG_VERDICT_MAX; ++i) d_syn += since(cur.syn[i], rt.last.syn[i]);
    d.over = since(cur.syn[SG_VERDICT_THROTTLE], rt.last.syn[SG_VERDICT_THROTTLE]) +
             since(cur.syn[SG_VERDICT_BLOCK], rt.last.syn[SG_VERDICT_BLOCK]);
    d.spoofed = since(cur.spoofed, rt.last.spoofed);
    d.rejects = since(cur.replies[SG_REPLY_4XX], rt.last.replies[SG_REPLY_4XX]) +
                since(cur.replies[SG_REPLY_5XX], rt.last.replies[SG_REPLY_5XX]) +
                since(cur.replies[SG_REPLY_RST], rt.last.replies[SG_REPLY_RST]);
    const double alpha = 1.0 - std::exp(-dt / kRateTauS);
    rt.rate += alpha * (static_cast<double>(d_syn) / dt - rt.rate);
    rt.last = cur;
    rt.read_ns = now_ns;
    return d;
}

std::string auto_id(const sg_auto_key& k, const std::string& ifname, std::string* address) {
    const std::string ifn = ifname.empty() ? "#" + std::to_string(k.ifindex) : ifname;
    if (k.family == 0) return "if:" + ifn;
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(k.family == 4 ? AF_INET : AF_INET6, k.addr, buf, sizeof(buf));
    std::string a = k.family == 4 ? std::string(buf) : std::string(buf) + "/64";
    if (address) *address = a;
    return "ip:" + a;
}

Result<SlotTable> VmTable::slots_for(const Policy& p) const {
    SlotTable next = slots_;
    std::vector<std::string> ids;
    ids.reserve(p.vms.size());
    for (const Vm& vm : p.vms) ids.push_back(vm.id);
    if (auto s = next.assign(ids); !s) return Error{ENOSPC, s.error().message};
    return next;
}

std::set<uint32_t> VmTable::given_to_new(const SlotTable& next) const {
    std::set<uint32_t> out;
    for (const auto& [id, slot] : next.slots())
        if (slots_.find(id) != slot) out.insert(slot);
    return out;
}

std::set<uint32_t> VmTable::freed(const SlotTable& next) const {
    std::set<uint32_t> out;
    for (const auto& [id, slot] : slots_.slots())
        if (!next.find(id)) out.insert(slot);
    return out;
}

void VmTable::adopt(Policy p, SlotTable slots, const std::set<uint32_t>& reset) {
    policy_ = std::move(p);
    slots_ = std::move(slots);
    index_.clear();
    by_slot_.assign(slots_.high_water(), -1);
    if (rt_.size() < slots_.high_water()) rt_.resize(slots_.high_water());
    for (uint32_t slot : reset)
        if (slot < rt_.size()) rt_[slot] = VmRuntime{};
    for (size_t i = 0; i < policy_.vms.size(); ++i) {
        index_[policy_.vms[i].id] = i;
        if (auto slot = slots_.find(policy_.vms[i].id)) by_slot_[*slot] = static_cast<int32_t>(i);
    }
}

const Vm* VmTable::vm(const std::string& id) const {
    auto it = index_.find(id);
    return it == index_.end() ? nullptr : &policy_.vms[it->second];
}

const Vm* VmTable::at_slot(uint32_t slot) const {
    return slot < by_slot_.size() && by_slot_[slot] >= 0 ? &policy_.vms[by_slot_[slot]] : nullptr;
}

VmRuntime* VmTable::slot_runtime(uint32_t slot) { return at_slot(slot) ? &rt_[slot] : nullptr; }

VmRuntime* VmTable::runtime(const std::string& id) {
    return const_cast<VmRuntime*>(static_cast<const VmTable*>(this)->runtime(id));
}

const VmRuntime* VmTable::runtime(const std::string& id) const {
    if (vm(id)) {
        auto slot = slots_.find(id);
        return slot && *slot < rt_.size() ? &rt_[*slot] : nullptr;
    }
    auto it = autos_.find(id);
    return it == autos_.end() ? nullptr : &it->second.rt;
}

std::string VmTable::note_auto(const sg_auto_key& key, AutoVm** out) {
    std::string ifname = ifname_(key.ifindex), address;
    std::string id = auto_id(key, ifname, &address);
    AutoVm& a = autos_[id];
    a.key = key;
    a.interface = ifname.empty() ? "#" + std::to_string(key.ifindex) : ifname;
    a.address = address;
    if (out) *out = &a;
    return id;
}

const AutoVm* VmTable::find_auto(const std::string& id) const {
    auto it = autos_.find(id);
    return it == autos_.end() ? nullptr : &it->second;
}

void VmTable::prune_autos(const std::set<std::string>& seen, const std::function<bool(const std::string&)>& keep) {
    for (auto it = autos_.begin(); it != autos_.end();)
        it = !seen.count(it->first) && !keep(it->first) ? autos_.erase(it) : std::next(it);
}

void VmTable::forget_auto(const std::string& id) {
    autos_.erase(id);
    held_.erase(id);
}

std::vector<std::string> VmTable::held_longer_than(uint64_t hold_ns, uint64_t now_ns) const {
    std::vector<std::string> out;
    for (const auto& [id, since] : held_)
        if (now_ns - since >= hold_ns) out.push_back(id);
    return out;
}

}  // namespace smtpgov::daemon
