// Per-VM parsing and the checks that span VMs: unique ids and interfaces, and
// non-overlapping address prefixes (sort and sweep, so 100k VMs stay fast).
#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "core/policy.h"
#include "core/policy_detail.h"

namespace smtpgov {

bool valid_vm_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    for (char c : id)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
    return true;
}

bool valid_ifname(std::string_view name) {
    // dev_valid_name(): 1..IFNAMSIZ-1 bytes, not "." or "..", no '/', ':' or whitespace
    if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
    for (char c : name)
        if (c == '/' || c == ':' || c == '\0' || std::isspace(static_cast<unsigned char>(c))) return false;
    return true;
}

namespace policy_detail {

void check_pair(Walker& w, LimitPair eff, const std::string& burst_path, std::string_view inherited) {
    if (eff.rate > 0 && eff.burst == 0)
        w.bad(burst_path, "burst 0 with rate > 0: nothing could ever pass" + std::string(inherited) +
                              " (use rate 0 to refuse everything)");
}

namespace {

void parse_vm_id(Walker& w, const json& v, const std::string& path, Vm& vm) {
    const json* m = member(v, "id");
    if (!m) return w.bad(path + "/id", "required");
    auto id = w.string(*m, path + "/id");
    if (!id) return;
    if (id->starts_with("if:") || id->starts_with("ip:"))
        w.bad(path + "/id", "must not start with \"if:\" or \"ip:\" (reserved for unregistered sources)");
    else if (!valid_vm_id(*id))
        w.bad(path + "/id", "must be 1-64 characters of A-Z a-z 0-9 . _ -");
    vm.id = *id;
}

void parse_addresses(Walker& w, const json& v, const std::string& path, Vm& vm, uint32_t vm_index,
                     std::vector<AddrRef>& addrs) {
    if (!v.is_array()) return w.bad(path, std::string("must be an array of addresses, not ") + v.type_name());
    for (size_t i = 0; i < v.size(); ++i) {
        const std::string at = path + "/" + std::to_string(i);
        auto s = w.string(v[i], at);
        if (!s) continue;
        auto p = IpPrefix::parse(*s);
        if (!p) {
            w.bad(at, "invalid address or prefix: " + p.error().message);
        } else if (!p->host_bits_zero()) {
            w.bad(at, "host bits set in \"" + *s + "\" (did you mean " + p->masked().to_string() + "?)");
        } else {
            vm.addresses.push_back(*p);
            addrs.push_back({*p, vm_index, static_cast<uint32_t>(i)});
        }
    }
}

}  // namespace

Vm parse_vm(Walker& w, const json& v, const std::string& path, uint32_t vm_index, const Defaults& d,
            std::vector<AddrRef>& addrs) {
    Vm vm;
    if (!w.object(v, path)) return vm;
    w.known_keys(v, path, {"id", "tenant", "host", "interface", "libvirt", "addresses", "rate", "burst", "tier"});
    parse_vm_id(w, v, path, vm);
    if (auto* m = member(v, "tenant")) vm.tenant = w.string(*m, path + "/tenant").value_or("");
    if (auto* m = member(v, "host")) {
        auto h = w.string(*m, path + "/host");
        if (h && !valid_vm_id(*h)) w.bad(path + "/host", "a host name of 1..64 characters [A-Za-z0-9._-]");
        vm.host = h.value_or("");
    }
    if (auto* m = member(v, "interface")) {
        auto name = w.string(*m, path + "/interface");
        if (name && !valid_ifname(*name))
            w.bad(path + "/interface", "not a valid interface name (1-15 bytes, no '/', ':' or whitespace)");
        vm.interface = name.value_or("");
    }
    if (auto* m = member(v, "libvirt")) {
        auto dom = w.string(*m, path + "/libvirt");
        if (dom && (dom->empty() || dom->size() > 256))
            w.bad(path + "/libvirt", "a libvirt domain name or UUID of 1..256 characters");
        if (dom && member(v, "interface"))
            w.bad(path + "/libvirt", "give either interface or libvirt: the domain's interfaces are its own");
        vm.libvirt = dom.value_or("");
    }
    const json* addr_list = member(v, "addresses");
    if (addr_list) parse_addresses(w, *addr_list, path + "/addresses", vm, vm_index, addrs);
    const bool named = member(v, "interface") || member(v, "libvirt");
    if (!named && (!addr_list || (addr_list->is_array() && addr_list->empty())))
        w.bad(path, "a VM needs an interface, a libvirt domain or at least one address");
    if (auto* m = member(v, "rate")) vm.rate = w.count(*m, path + "/rate", kMaxRate);
    if (auto* m = member(v, "burst")) vm.burst = w.count(*m, path + "/burst", kMaxBurst);
    if (auto* m = member(v, "tier")) vm.tier = w.tier(*m, path + "/tier");
    // Only judge what this VM sets; defaults that cannot pass are reported under /defaults.
    if (vm.rate || vm.burst)
        check_pair(w, {vm.rate.value_or(d.rate), vm.burst.value_or(d.burst)}, path + "/burst",
                   vm.burst ? "" : " (burst inherited from defaults)");
    return vm;
}

void check_unique(Walker& w, const std::vector<Vm>& vms) {
    std::unordered_map<std::string_view, size_t> ids, ifaces, domains;
    ids.reserve(vms.size());
    for (size_t i = 0; i < vms.size(); ++i) {
        const Vm& vm = vms[i];
        const std::string path = "/vms/" + std::to_string(i);
        if (!vm.id.empty()) {
            auto [it, fresh] = ids.emplace(vm.id, i);
            if (!fresh) w.bad(path + "/id", "duplicate VM id \"" + vm.id + "\" (first at /vms/" + std::to_string(it->second) + ")");
        }
        if (!vm.interface.empty()) {
            auto [it, fresh] = ifaces.emplace(vm.interface, i);
            if (!fresh)
                w.bad(path + "/interface", "interface \"" + vm.interface + "\" is already claimed by /vms/" +
                                               std::to_string(it->second));
        }
        if (!vm.libvirt.empty()) {
            auto [it, fresh] = domains.emplace(vm.libvirt, i);
            if (!fresh)
                w.bad(path + "/libvirt", "domain \"" + vm.libvirt + "\" is already claimed by /vms/" +
                                             std::to_string(it->second));
        }
    }
}

void check_overlaps(Walker& w, std::vector<AddrRef> addrs, const std::vector<Vm>& vms) {
    // Sorted by (family, address, length), a containing prefix precedes what it contains,
    // and the stack holds the chain of prefixes containing the current one.
    std::sort(addrs.begin(), addrs.end(), [](const AddrRef& a, const AddrRef& b) {
        if (a.prefix != b.prefix) return a.prefix < b.prefix;
        return a.vm < b.vm;
    });
    // A VM repeating its own prefix is harmless and would only deepen the stack.
    addrs.erase(std::unique(addrs.begin(), addrs.end(),
                            [](const AddrRef& a, const AddrRef& b) { return a.prefix == b.prefix && a.vm == b.vm; }),
                addrs.end());
    std::vector<const AddrRef*> stack;
    for (const AddrRef& cur : addrs) {
        while (!stack.empty() && !stack.back()->prefix.contains(cur.prefix)) stack.pop_back();
        // Report the innermost container owned by another VM; nesting depth is at most
        // one entry per prefix length per VM, so this walk is short.
        for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
            if ((*it)->vm == cur.vm) continue;
            const AddrRef& other = **it;
            w.bad("/vms/" + std::to_string(cur.vm) + "/addresses/" + std::to_string(cur.index),
                  cur.prefix.to_string() + " overlaps " + other.prefix.to_string() + " of VM \"" + vms[other.vm].id +
                      "\" (/vms/" + std::to_string(other.vm) + "/addresses/" + std::to_string(other.index) + ")");
            break;
        }
        stack.push_back(&cur);
    }
}

}  // namespace policy_detail
}  // namespace smtpgov
