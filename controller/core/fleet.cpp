#include "core/fleet.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace smtpgov::fleet {

using nlohmann::json;

std::string escape(std::string_view s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '.' || c == '_' || c == '-') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::string unescape(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(uint8_t(s[i + 1])) && std::isxdigit(uint8_t(s[i + 2]))) {
            out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

Result<Options> parse_options(const json& v, const std::string& default_host) {
    Options o;
    if (v.is_null() || (v.is_object() && v.empty())) return o;
    if (!v.is_object()) return Error::msg("fleet: must be an object");
    auto text = [&](const char* k, std::string& out) -> Status {
        if (!v.contains(k)) return ok_status();
        if (!v[k].is_string()) return Error::msg(std::string("fleet/") + k + ": must be a string");
        out = v[k].get<std::string>();
        return ok_status();
    };
    for (auto& [k, _] : v.items())
        if (k != "etcd" && k != "host" && k != "prefix" && k != "cacert" && k != "cert" && k != "key" && k != "user" &&
            k != "password_file")
            return Error::msg("fleet/" + k + ": unknown key (etcd, host, prefix, cacert, cert, key, user, password_file)");
    if (!v.contains("etcd") || !v["etcd"].is_array() || v["etcd"].empty())
        return Error::msg("fleet/etcd: required, a list of etcd endpoints (\"http://10.0.0.5:2379\")");
    for (size_t i = 0; i < v["etcd"].size(); ++i) {
        const json& e = v["etcd"][i];
        const std::string s = e.is_string() ? e.get<std::string>() : "";
        if (s.rfind("http://", 0) != 0 && s.rfind("https://", 0) != 0)
            return Error::msg("fleet/etcd/" + std::to_string(i) + ": must be an http:// or https:// URL");
        o.etcd.push_back(s.back() == '/' ? s.substr(0, s.size() - 1) : s);
    }
    for (auto [k, f] : {std::pair{"host", &o.host}, {"prefix", &o.prefix}, {"cacert", &o.cacert}, {"cert", &o.cert},
                        {"key", &o.key}, {"user", &o.user}, {"password_file", &o.password_file}})
        if (auto s = text(k, *f); !s) return s.error();
    if (o.host.empty()) o.host = default_host;
    if (!valid_vm_id(o.host)) return Error::msg("fleet/host: \"" + o.host + "\" is not a host name of 1..64 [A-Za-z0-9._-]");
    if (o.prefix.empty() || o.prefix[0] != '/' || o.prefix.back() == '/')
        return Error::msg("fleet/prefix: must start with '/' and not end with one (\"/smtpgov\")");
    for (auto [k, f] : {std::pair{"cacert", &o.cacert}, {"cert", &o.cert}, {"key", &o.key}, {"password_file", &o.password_file}})
        if (!f->empty() && (*f)[0] != '/') return Error::msg(std::string("fleet/") + k + ": must be an absolute path");
    if (o.user.empty() != o.password_file.empty())
        return Error::msg("fleet/user: user and password_file go together");
    return o;
}

std::optional<std::pair<std::string, std::string>> Keys::parse_vm(std::string_view key) const {
    const std::string base = tenants();
    if (key.substr(0, base.size()) != base) return std::nullopt;
    key.remove_prefix(base.size());
    const size_t slash = key.find('/');
    if (slash == std::string_view::npos || key.substr(slash, 5) != "/vms/") return std::nullopt;
    const std::string_view raw_tenant = key.substr(0, slash);
    std::string id = unescape(key.substr(slash + 5));
    if (id.empty() || id.find('/') != std::string::npos) return std::nullopt;
    return std::pair{raw_tenant == "_" ? std::string() : unescape(raw_tenant), id};
}

std::optional<std::pair<std::string, std::string>> Keys::parse_host(std::string_view key) const {
    const std::string base = hosts();
    if (key.substr(0, base.size()) != base) return std::nullopt;
    key.remove_prefix(base.size());
    const size_t slash = key.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    std::string what(key.substr(slash + 1));
    if (what != "live" && what != "status") return std::nullopt;
    return std::pair{unescape(key.substr(0, slash)), what};
}

// ---- the policy, split -------------------------------------------------------------

int64_t serial_of(const json& global) {
    if (!global.is_object()) return 0;
    const json f = global.value("fleet", json::object());
    return f.is_object() ? f.value("serial", int64_t{0}) : 0;
}

namespace {

json host_serials(const json& global) {
    if (!global.is_object() || !global.contains("fleet") || !global["fleet"].is_object()) return json::object();
    json h = global["fleet"].value("hosts", json::object());
    return h.is_object() ? h : json::object();
}

json without(json j, const char* key) {
    if (j.is_object()) j.erase(key);
    return j;
}

}  // namespace

Result<Split> split(const json& policy, const json& current_global, const std::map<std::string, json>& current_hosts,
                    std::vector<Problem>& problems) {
    ParseOutcome po = parse_policy(policy);
    problems = po.problems;
    // Interface and libvirt domain names belong to one hypervisor (every host has a
    // vnet0): parse_policy's claims across the whole document are dropped and the names
    // checked per host below. VM ids and addresses stay unique fleet-wide.
    auto per_host_name = [](const Problem& p) {
        auto ends = [&](std::string_view s) {
            return p.path.size() >= s.size() && p.path.compare(p.path.size() - s.size(), s.size(), s) == 0;
        };
        return (ends("/interface") || ends("/libvirt")) && p.reason.find(" is already claimed by /vms/") != std::string::npos;
    };
    problems.erase(std::remove_if(problems.begin(), problems.end(), per_host_name), problems.end());
    std::map<std::string, json> by_host;
    std::map<std::pair<std::string, std::string>, size_t> claimed;  // (host, "interface NAME") -> first VM
    if (policy.is_object() && policy.contains("vms") && policy["vms"].is_array()) {
        const json& vms = policy["vms"];
        for (size_t i = 0; i < vms.size(); ++i) {
            const json& vm = vms[i];
            if (!vm.is_object()) continue;  // parse_policy named it
            auto h = vm.find("host");
            if (h == vm.end() || !h->is_string() || h->get<std::string>().empty()) {
                problems.push_back({"/vms/" + std::to_string(i) + "/host",
                                    "required in a fleet policy: the hypervisor that runs the VM"});
                continue;
            }
            const std::string host = h->get<std::string>();
            for (const char* field : {"interface", "libvirt"}) {
                auto f = vm.find(field);
                if (f == vm.end() || !f->is_string() || f->get<std::string>().empty()) continue;
                auto [it, fresh] = claimed.emplace(std::pair{host, std::string(field) + " " + f->get<std::string>()}, i);
                if (!fresh)
                    problems.push_back({"/vms/" + std::to_string(i) + "/" + field,
                                        std::string(field == std::string("interface") ? "interface" : "domain") + " \"" +
                                            f->get<std::string>() + "\" is already claimed by /vms/" +
                                            std::to_string(it->second) + " on host " + host});
            }
            auto& list = by_host[host];
            if (list.is_null()) list = json::array();
            list.push_back(vm);
        }
    }
    if (!problems.empty()) return Error{EINVAL, "fleet policy rejected: " + std::to_string(problems.size()) + " problem(s)"};

    Split out;
    out.serial = serial_of(current_global) + 1;
    const json old_serials = host_serials(current_global);
    json serials = json::object();
    for (auto& [host, vms] : by_host) {
        auto cur = current_hosts.find(host);
        const bool same = cur != current_hosts.end() && cur->second.is_object() && old_serials.contains(host) &&
                          cur->second.value("serial", int64_t{-1}) == old_serials[host].get<int64_t>() &&
                          cur->second.value("vms", json()) == vms;
        if (same) {
            serials[host] = old_serials[host];
            continue;
        }
        serials[host] = out.serial;
        out.hosts[host] = json{{"serial", out.serial}, {"vms", vms}};
    }
    for (auto& [host, _] : old_serials.items())
        if (!by_host.count(host)) out.dropped.insert(host);
    // A host value no global value names (an apply that lost its lock wrote it) goes too.
    for (const auto& [host, _] : current_hosts)
        if (!by_host.count(host)) out.dropped.insert(host);
    out.global = without(policy, "vms");
    out.global["fleet"] = {{"serial", out.serial}, {"hosts", serials}};
    return out;
}

std::optional<json> assemble(const json& global, const json& share, const std::string& host, std::string& waiting) {
    if (!global.is_object()) {
        waiting = "no fleet policy has been applied yet";
        return std::nullopt;
    }
    json policy = without(global, "fleet");
    const json serials = host_serials(global);
    if (!serials.contains(host)) {  // no VM of this fleet runs here
        policy["vms"] = json::array();
        return policy;
    }
    const int64_t want = serials[host].is_number_integer() ? serials[host].get<int64_t>() : -1;
    const int64_t have = share.is_object() ? share.value("serial", int64_t{-1}) : -1;
    if (have != want || !share.contains("vms") || !share["vms"].is_array()) {
        waiting = "host value at serial " + std::to_string(have) + ", the global value wants " + std::to_string(want);
        return std::nullopt;
    }
    policy["vms"] = share["vms"];
    return policy;
}

json join(const json& global, const std::map<std::string, json>& shares) {
    json policy = without(global.is_object() ? global : json::object(), "fleet");
    json vms = json::array();
    const json serials = host_serials(global);
    for (const auto& [host, share] : shares) {
        if (!serials.contains(host) || !share.is_object() || share.value("serial", int64_t{-1}) != serials[host])
            continue;
        for (const json& vm : share.value("vms", json::array())) vms.push_back(vm);
    }
    policy["vms"] = std::move(vms);
    return policy;
}

// ---- a host's status ---------------------------------------------------------------

json to_json(const HostStatus& s) {
    json tiers = json::object();
    for (Tier t : kAllTiers) tiers[std::string(to_string(t))] = s.tiers[static_cast<size_t>(t)];
    return {{"host", s.host},
            {"version", s.version},
            {"policy_serial", s.policy_serial},
            {"policy_revision", s.policy_revision},
            {"applied_at_ms", s.applied_at_ms},
            {"refused", s.refused_serial ? json{{"serial", s.refused_serial}, {"reason", s.refused_reason}} : json()},
            {"vms", s.vms},
            {"tiers", tiers},
            {"last_sweep_ms", s.last_sweep_ms},
            {"last_seen_ms", s.last_seen_ms}};
}

Result<HostStatus> host_status_from_json(const json& j) {
    try {
        HostStatus s;
        s.host = j.at("host").get<std::string>();
        s.version = j.value("version", "");
        s.policy_serial = j.value("policy_serial", int64_t{0});
        s.policy_revision = j.value("policy_revision", int64_t{0});
        s.applied_at_ms = j.value("applied_at_ms", int64_t{0});
        if (const json r = j.value("refused", json()); r.is_object()) {
            s.refused_serial = r.value("serial", int64_t{0});
            s.refused_reason = r.value("reason", "");
        }
        s.vms = j.value("vms", uint64_t{0});
        const json tiers = j.value("tiers", json::object());
        for (Tier t : kAllTiers) s.tiers[static_cast<size_t>(t)] = tiers.value(std::string(to_string(t)), uint64_t{0});
        s.last_sweep_ms = j.value("last_sweep_ms", int64_t{0});
        s.last_seen_ms = j.value("last_seen_ms", int64_t{0});
        return s;
    } catch (const std::exception& e) {
        return Error::msg(std::string("host status: ") + e.what());
    }
}

// ---- the shared reputation record ---------------------------------------------------

json to_json(const Record& r) {
    json pin = nullptr;
    if (r.state.pin) {
        pin = {{"tier", to_string(r.state.pin->tier)}};
        if (r.state.pin->until_unix_ms) pin["until_ms"] = *r.state.pin->until_unix_ms;
    }
    return {{"vm", r.vm},
            {"tenant", r.tenant},
            {"score", r.state.score},
            {"score_at_ms", r.state.score_unix_ms},
            {"earned", to_string(r.state.earned)},
            {"since_ms", r.state.since_unix_ms},
            {"tier", to_string(r.tier)},
            {"pin", pin},
            {"updated_by", r.updated_by},
            {"updated_at_ms", r.updated_at_ms}};
}

Result<Record> record_from_json(const json& j, const std::string& tenant, const std::string& vm) {
    try {
        Record r;
        r.vm = vm;
        r.tenant = tenant;
        r.state.score = j.at("score").get<double>();
        if (!std::isfinite(r.state.score) || r.state.score < 0) return Error::msg("score must be finite and >= 0");
        r.state.score_unix_ms = j.at("score_at_ms").get<int64_t>();
        auto earned = parse_tier(j.at("earned").get<std::string>());
        auto tier = parse_tier(j.at("tier").get<std::string>());
        if (!earned || !tier) return Error::msg("unknown tier");
        r.state.earned = *earned;
        r.tier = *tier;
        r.state.since_unix_ms = j.at("since_ms").get<int64_t>();
        if (const json& p = j.at("pin"); !p.is_null()) {
            auto pt = parse_tier(p.at("tier").get<std::string>());
            if (!pt) return Error::msg("unknown pin tier");
            Pin pin{*pt, std::nullopt};
            if (p.contains("until_ms")) pin.until_unix_ms = p.at("until_ms").get<int64_t>();
            r.state.pin = pin;
        }
        r.updated_by = j.value("updated_by", "");
        r.updated_at_ms = j.value("updated_at_ms", int64_t{0});
        return r;
    } catch (const std::exception& e) {
        return Error::msg(std::string("reputation record: ") + e.what());
    }
}

double score_at(const Record& r, int64_t now_unix_ms, double half_life_s) {
    if (now_unix_ms <= r.state.score_unix_ms || half_life_s <= 0) return r.state.score;
    return r.state.score * std::exp2(-static_cast<double>(now_unix_ms - r.state.score_unix_ms) / 1000.0 / half_life_s);
}

Record resolve(const Record& ours, const Record& theirs, bool ours_changed_pin, int64_t now, double half_life_s) {
    Record out = ours;
    out.state.score = std::max(score_at(ours, now, half_life_s), score_at(theirs, now, half_life_s));
    out.state.score_unix_ms = now;
    if (theirs.state.earned > ours.state.earned) {
        out.state.earned = theirs.state.earned;
        out.state.since_unix_ms = theirs.state.since_unix_ms;
    }
    out.state.pin = ours_changed_pin ? ours.state.pin : theirs.state.pin;
    // A pinned record's tier is its pin's: once the pin is gone it says nothing.
    auto unpinned = [](const Record& r) { return r.state.pin ? r.state.earned : r.tier; };
    out.tier = out.state.pin ? out.state.pin->tier : std::max({out.state.earned, unpinned(ours), unpinned(theirs)});
    out.updated_at_ms = now;
    return out;
}

// ---- tenant-wide tiers ----------------------------------------------------------------

Tier tenant_floor(double sum, const Thresholds& t, Tier current, double hysteresis) {
    Tier target = Tier::Ok;
    for (Tier x : kAllTiers)
        if (x != Tier::Ok && sum >= t.of(x)) target = x;
    if (target >= current) return target;
    if (sum < t.of(current) * (1 - hysteresis)) return static_cast<Tier>(static_cast<int>(current) - 1);
    return current;
}

// ---- what a host writes ---------------------------------------------------------------

void Outbox::offer(const Record& now, double half_life_s) {
    auto last = last_.find(now.vm);
    bool urgent = false, due = false;
    if (last == last_.end()) {
        // Nothing in the store yet: a clean VM needs no record (absent means clean).
        urgent = now.tier != Tier::Ok || now.state.pin || now.state.earned != Tier::Ok;
        due = urgent || now.state.score >= 1;
    } else {
        const Record& l = last->second;
        urgent = l.tier != now.tier || l.state.earned != now.state.earned || !(l.state.pin == now.state.pin) ||
                 l.tenant != now.tenant;
        const double predicted = score_at(l, now.state.score_unix_ms, half_life_s);
        due = urgent || std::fabs(now.state.score - predicted) > std::max(1.0, 0.05 * predicted);
    }
    if (!due) {
        pending_.erase(now.vm);
        return;
    }
    Pending& p = pending_[now.vm];
    p.urgent = p.urgent || urgent;
    p.rec = now;
}

std::vector<Outbox::Write> Outbox::take(int64_t now_ms) {
    std::vector<Write> out;
    const bool flush = now_ms - flushed_ms_ >= interval_ms_;
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (flush || it->second.urgent) {
            const bool pin = pin_changed(it->first);  // before the record is moved out
            out.push_back({std::move(it->second.rec), pin});
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
    if (flush && !out.empty()) flushed_ms_ = now_ms;
    return out;
}

void Outbox::retry(const Write& w) {
    auto [it, fresh] = pending_.try_emplace(w.rec.vm);
    if (fresh) it->second = {w.rec, true};  // a newer offer, if any, stays
}

void Outbox::forget(const std::string& vm) {
    last_.erase(vm);
    pending_.erase(vm);
}

bool Outbox::pin_changed(const std::string& vm) const {
    auto p = pending_.find(vm);
    auto l = last_.find(vm);
    if (p == pending_.end()) return false;
    return l == last_.end() ? p->second.rec.state.pin.has_value() : !(l->second.state.pin == p->second.rec.state.pin);
}

std::optional<Record> Outbox::last(const std::string& vm) const {
    auto it = last_.find(vm);
    if (it == last_.end()) return std::nullopt;
    return it->second;
}

}  // namespace smtpgov::fleet
