#include "core/hypervisor.h"

#include <cctype>

#include "core/policy.h"

namespace smtpgov::hv {
namespace {

using nlohmann::json;

Result<std::string> str(const json& o, const char* key, const std::string& path) {
    auto it = o.find(key);
    if (it == o.end() || !it->is_string()) return Error::msg(path + "/" + key + ": must be a string");
    return it->get<std::string>();
}

bool valid_uuid(const std::string& u) {
    if (u.size() != 36) return false;
    for (size_t i = 0; i < u.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? u[i] != '-' : !std::isxdigit(static_cast<unsigned char>(u[i]))) return false;
    }
    return true;
}

// Interface names as the kernel allows them (IFNAMSIZ - 1, no '/', ':' or spaces).
bool valid_dev(const std::string& d) {
    if (d.empty() || d.size() > 15) return false;
    for (char c : d)
        if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) || !std::isprint(static_cast<unsigned char>(c)))
            return false;
    return true;
}

Result<Domain> domain_from_json(const json& j, const std::string& path) {
    if (!j.is_object()) return Error::msg(path + ": must be an object");
    auto name = str(j, "name", path);
    if (!name) return name.error();
    auto uuid = str(j, "uuid", path);
    if (!uuid) return uuid.error();
    if (name->empty() || name->size() > 256) return Error::msg(path + "/name: must be 1..256 characters");
    if (!valid_uuid(*uuid)) return Error::msg(path + "/uuid: \"" + *uuid + "\" is not a UUID");
    Domain d{*name, *uuid, {}};
    for (char& c : d.uuid) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto nics = j.find("interfaces");
    if (nics == j.end() || !nics->is_array()) return Error::msg(path + "/interfaces: must be an array");
    for (size_t i = 0; i < nics->size(); ++i) {
        const std::string p = path + "/interfaces/" + std::to_string(i);
        if (!(*nics)[i].is_object()) return Error::msg(p + ": must be an object");
        auto dev = str((*nics)[i], "dev", p);
        if (!dev) return dev.error();
        if (!valid_dev(*dev)) return Error::msg(p + "/dev: \"" + *dev + "\" is not an interface name");
        auto mac = (*nics)[i].value("mac", std::string());
        d.nics.push_back({*dev, mac});
    }
    return d;
}

}  // namespace

json to_json(const Domain& d) {
    auto nics = json::array();
    for (const Nic& n : d.nics) nics.push_back({{"dev", n.dev}, {"mac", n.mac}});
    return {{"name", d.name}, {"uuid", d.uuid}, {"interfaces", nics}};
}

json update_request(const std::vector<Domain>& running, const std::vector<std::string>& gone_uuids, bool full) {
    auto doms = json::array();
    for (const Domain& d : running) doms.push_back(to_json(d));
    return {{"cmd", "hypervisor.update"}, {"source", "libvirt"}, {"full", full}, {"domains", doms}, {"gone", gone_uuids}};
}

Result<std::set<std::string>> HypervisorMap::apply(const json& req) {
    if (req.value("source", std::string()) != "libvirt") return Error::msg("source: must be \"libvirt\"");
    auto doms = req.find("domains");
    auto gone = req.find("gone");
    if (doms == req.end() || !doms->is_array()) return Error::msg("domains: must be an array");
    if (gone != req.end() && !gone->is_array()) return Error::msg("gone: must be an array of UUIDs");
    const bool full = req.value("full", false);
    std::map<std::string, Domain> next = full ? std::map<std::string, Domain>{} : domains_;
    for (size_t i = 0; i < doms->size(); ++i) {
        auto d = domain_from_json((*doms)[i], "domains/" + std::to_string(i));
        if (!d) return d.error();
        next[d->uuid] = std::move(*d);
    }
    if (gone != req.end())
        for (const json& g : *gone) {
            if (!g.is_string() || !valid_uuid(g.get<std::string>())) return Error::msg("gone: must be an array of UUIDs");
            std::string u = g.get<std::string>();
            for (char& c : u) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            next.erase(u);
        }
    std::set<std::string> touched;
    for (const auto* m : {&domains_, &next})
        for (const auto& [uuid, d] : *m)
            for (const Nic& n : d.nics) touched.insert(n.dev);
    domains_ = std::move(next);
    reindex();
    return touched;
}

void HypervisorMap::reindex() {
    devs_.clear();
    for (const auto& [uuid, d] : domains_)
        for (const Nic& n : d.nics) devs_[n.dev] = uuid;
}

const Domain* HypervisorMap::find(std::string_view key) const {
    std::string k(key);
    for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (auto it = domains_.find(k); it != domains_.end()) return &it->second;
    for (const auto& [uuid, d] : domains_)
        if (d.name == key) return &d;
    return nullptr;
}

const Domain* HypervisorMap::owner_of(std::string_view dev) const {
    auto it = devs_.find(std::string(dev));
    return it == devs_.end() ? nullptr : &domains_.at(it->second);
}

json HypervisorMap::to_json() const {
    std::vector<Domain> all;
    for (const auto& [uuid, d] : domains_) all.push_back(d);
    return update_request(all, {}, true);
}

Result<HypervisorMap> HypervisorMap::from_json(const json& j) {
    HypervisorMap m;
    if (auto r = m.apply(j); !r) return r.error();
    return m;
}

Result<std::vector<InterfaceRule>> parse_interface_rules(const json& v) {
    if (!v.is_array()) return Error::msg("interface_rules: must be an array of {match, id, tenant}");
    std::vector<InterfaceRule> out;
    for (size_t i = 0; i < v.size(); ++i) {
        const std::string path = "interface_rules/" + std::to_string(i);
        const json& r = v[i];
        if (!r.is_object()) return Error::msg(path + ": must be an object {match, id, tenant}");
        for (const auto& [k, _] : r.items())
            if (k != "match" && k != "id" && k != "tenant") return Error::msg(path + "/" + k + ": unknown key");
        auto match = str(r, "match", path);
        if (!match) return match.error();
        auto id = str(r, "id", path);
        if (!id) return id.error();
        InterfaceRule rule{*match, {}, *id, r.value("tenant", std::string())};
        try {
            rule.re = std::regex(*match, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            return Error::msg(path + "/match: not a regular expression: " + e.what());
        }
        if (id->empty()) return Error::msg(path + "/id: must not be empty");
        out.push_back(std::move(rule));
    }
    return out;
}

std::optional<RuleVm> rule_vm(const std::vector<InterfaceRule>& rules, std::string_view ifname) {
    const std::string name(ifname);
    for (const InterfaceRule& r : rules) {
        std::smatch m;
        if (!std::regex_search(name, m, r.re)) continue;
        std::string id = m.format(r.id, std::regex_constants::format_default);
        if (!valid_vm_id(id)) return std::nullopt;  // first match wins, even when it yields nothing usable
        return RuleVm{id, r.tenant};
    }
    return std::nullopt;
}

}  // namespace smtpgov::hv
