#include "fleet_view.h"

#include <algorithm>
#include <cerrno>
#include <cmath>

#include "core/policy.h"
#include "render.h"

using nlohmann::json;

namespace smtpgov::ctl::fleetv {
namespace {

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t comma = s.find(',', start);
        if (comma == std::string::npos) comma = s.size();
        out.push_back(s.substr(start, comma - start));
        start = comma + 1;
    }
    return out;
}

std::string str_of(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

json parse_or_null(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    return j.is_discarded() ? json() : j;
}

}  // namespace

Result<Target> target(const std::optional<std::string>& etcd_opt, const std::optional<std::string>& prefix_opt,
                      const json& cfg) {
    Target t;
    const json f = cfg.is_object() ? cfg : json::object();
    if (etcd_opt) {
        t.etcd.endpoints = split_list(*etcd_opt);
    } else if (auto e = f.find("etcd"); e != f.end() && e->is_array()) {
        for (const json& u : *e) {
            if (!u.is_string()) return Error{EINVAL, "config fleet.etcd: every endpoint must be a string"};
            t.etcd.endpoints.push_back(u.get<std::string>());
        }
    }
    if (t.etcd.endpoints.empty())
        return Error{EINVAL, "no etcd endpoints: give --etcd URL[,URL...] or a --config whose fleet.etcd lists them"};
    for (const std::string& u : t.etcd.endpoints)
        if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0)
            return Error{EINVAL, "etcd endpoint '" + u + "': expected http://HOST:PORT or https://HOST:PORT"};
    std::string prefix = prefix_opt ? *prefix_opt : f.contains("prefix") ? str_of(f, "prefix") : kDefaultPrefix;
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    if (prefix.empty() || prefix[0] != '/' || prefix == "/")
        return Error{EINVAL, "prefix '" + prefix + "': must start with '/' and name a directory (e.g. /smtpgov)"};
    t.prefix = prefix;
    t.etcd.cacert = str_of(f, "cacert");
    t.etcd.cert = str_of(f, "cert");
    t.etcd.key = str_of(f, "key");
    t.etcd.user = str_of(f, "user");
    t.password_file = str_of(f, "password_file");
    if (!t.etcd.user.empty() && t.password_file.empty())
        return Error{EINVAL, "config fleet.user is set without fleet.password_file"};
    return t;
}

std::vector<std::vector<etcd::Op>> host_batches(const fleet::Split& s, const fleet::Keys& keys, size_t max_ops) {
    std::vector<std::vector<etcd::Op>> out;
    auto add = [&](etcd::Op op) {
        if (out.empty() || out.back().size() >= max_ops) out.emplace_back();
        out.back().push_back(std::move(op));
    };
    for (const auto& [host, value] : s.hosts) add({etcd::Op::Kind::Put, keys.policy_host(host), value.dump(), 0});
    for (const std::string& host : s.dropped) add({etcd::Op::Kind::Delete, keys.policy_host(host), "", 0});
    return out;
}

HostOutcome outcome_for(const json& status, int64_t serial) {
    if (!status.is_object()) return {};
    auto st = fleet::host_status_from_json(status);
    if (!st) return {};
    if (st->policy_serial == serial) return {Outcome::Applied, ""};
    if (st->refused_serial == serial) return {Outcome::Refused, st->refused_reason.empty() ? "no reason given" : st->refused_reason};
    const int64_t later = std::max(st->policy_serial, st->refused_serial);
    if (later > serial) return {Outcome::Superseded, "serial " + std::to_string(later)};
    return {};
}

const char* to_string(Outcome o) {
    switch (o) {
    case Outcome::Applied: return "applied";
    case Outcome::Refused: return "refused";
    case Outcome::Superseded: return "superseded";
    case Outcome::NoAnswer: break;
    }
    return "no_answer";
}

PolicyState policy_state(const std::vector<etcd::Kv>& kvs, const fleet::Keys& keys) {
    PolicyState p;
    const std::string hosts = keys.policy_hosts();
    for (const etcd::Kv& kv : kvs) {
        if (kv.key == keys.policy_global()) {
            p.global = parse_or_null(kv.value);
            p.global_revision = kv.mod_revision;
        } else if (kv.key == keys.policy_lock()) {
            p.lock = kv.value;
        } else if (kv.key.rfind(hosts, 0) == 0 && kv.key.size() > hosts.size()) {
            p.hosts[fleet::unescape(std::string_view(kv.key).substr(hosts.size()))] = parse_or_null(kv.value);
        }
    }
    return p;
}

json apply_json(int64_t serial, int64_t revision, const std::vector<HostReport>& hosts) {
    json hs = json::array();
    for (const HostReport& h : hosts)
        hs.push_back({{"host", h.host},
                      {"result", to_string(h.outcome.outcome)},
                      {"reason", h.outcome.reason.empty() ? json() : json(h.outcome.reason)},
                      {"live", h.live}});
    return {{"serial", serial}, {"revision", revision}, {"hosts", hs}};
}

std::string render_apply(const json& r, size_t written, size_t dropped) {
    const json& hosts = r.at("hosts");
    std::string out = "fleet policy stored: serial " + std::to_string(r.value("serial", int64_t{0})) +
                      " (etcd revision " + std::to_string(r.value("revision", int64_t{0})) + "), " +
                      std::to_string(hosts.size()) + (hosts.size() == 1 ? " host" : " hosts") + ", " +
                      std::to_string(written) + " host value(s) written, " + std::to_string(dropped) +
                      " dropped\n";
    Table t({"HOST", "RESULT"}, {Align::Left, Align::Left});
    for (const json& h : hosts) {
        const std::string res = h.value("result", "");
        std::string shown = res == "applied" ? "applied"
                            : res == "refused"    ? "refused: " + h.value("reason", std::string())
                            : res == "superseded" ? "superseded by " + h.value("reason", std::string()) +
                                                        " (a later apply)"
                                               : std::string("no answer (") + (h.value("live", false) ? "live" : "lost") + ")";
        t.add({h.value("host", ""), shown});
    }
    return out + (hosts.empty() ? "" : t.str());
}

json status_json(const PolicyState& policy, const std::vector<etcd::Kv>& host_kvs, const fleet::Keys& keys) {
    std::map<std::string, json> hosts;
    auto entry = [&](const std::string& h) -> json& {
        json& e = hosts[h];
        if (e.is_null())
            e = {{"host", h},        {"live", false},     {"last_seen_unix", nullptr}, {"policy_serial", 0},
                 {"policy_revision", 0}, {"refused", nullptr}, {"vms", 0},                {"tiers", json::object()},
                 {"version", nullptr}, {"in_policy", false}};
        return e;
    };
    for (const etcd::Kv& kv : host_kvs) {
        auto parsed = keys.parse_host(kv.key);
        if (!parsed) continue;
        json& e = entry(parsed->first);
        if (parsed->second == "live") {
            e["live"] = true;
            continue;
        }
        auto st = fleet::host_status_from_json(parse_or_null(kv.value));
        if (!st) {
            e["status_error"] = st.error().message;
            continue;
        }
        json sj = fleet::to_json(*st);
        e["last_seen_unix"] = st->last_seen_ms ? json(st->last_seen_ms / 1000) : json();
        e["policy_serial"] = st->policy_serial;
        e["policy_revision"] = st->policy_revision;
        e["refused"] = sj["refused"];
        e["vms"] = st->vms;
        e["tiers"] = sj["tiers"];
        e["version"] = st->version.empty() ? json() : json(st->version);
    }
    if (policy.global.is_object())
        if (auto f = policy.global.find("fleet"); f != policy.global.end() && f->is_object() && f->contains("hosts"))
            for (const auto& [h, _] : (*f)["hosts"].items()) entry(h)["in_policy"] = true;
    json arr = json::array();
    for (auto& [_, e] : hosts) arr.push_back(std::move(e));
    return {{"serial", fleet::serial_of(policy.global)}, {"revision", policy.global_revision}, {"hosts", arr}};
}

std::string render_status(const json& st, int64_t now_s) {
    const int64_t serial = st.value("serial", int64_t{0});
    std::string out = serial ? "fleet policy serial " + std::to_string(serial) + " (etcd revision " +
                                   std::to_string(st.value("revision", int64_t{0})) + ")\n\n"
                             : std::string("no fleet policy stored\n\n");
    Table t({"HOST", "LIVE", "LAST-SEEN", "POLICY-SERIAL", "VMS", "TIERS(ok/thr/st/bl)", "NOTE"},
            {Align::Left, Align::Left, Align::Left, Align::Right, Align::Right, Align::Left, Align::Left});
    for (const json& h : st.at("hosts")) {
        const json& seen = h["last_seen_unix"];
        std::string last = seen.is_number() ? utc_time(seen.get<int64_t>()) + " (" +
                                                  duration(now_s - seen.get<int64_t>()) + " ago)"
                                            : "never";
        const json& tiers = h["tiers"];
        std::string tl;
        for (const char* k : {"ok", "throttled", "steered", "blocked"})
            tl += (tl.empty() ? "" : "/") + std::to_string(tiers.value(k, uint64_t{0}));
        std::string note;
        const int64_t ps = h.value("policy_serial", int64_t{0});
        if (h["refused"].is_object())
            note = "refused serial " + std::to_string(h["refused"].value("serial", int64_t{0})) + ": " +
                   h["refused"].value("reason", std::string());
        else if (!h.value("in_policy", false))
            note = "no VMs in the fleet policy";
        else if (serial && ps != serial)
            note = "behind (policy serial " + std::to_string(serial) + ")";
        if (h.contains("status_error")) note = h["status_error"].get<std::string>();
        t.add({h.value("host", ""), h.value("live", false) ? "live" : "LOST", last, ps ? std::to_string(ps) : "-",
               std::to_string(h.value("vms", uint64_t{0})), tl, note});
    }
    return out + (t.empty() ? "no hosts\n" : t.str());
}

json vm_list_json(const json& policy, const std::vector<etcd::Kv>& tenant_kvs, const fleet::Keys& keys,
                  int64_t now_ms, const std::optional<std::string>& tier, const std::optional<std::string>& tenant) {
    std::map<std::string, const etcd::Kv*> records;
    for (const etcd::Kv& kv : tenant_kvs) records[kv.key] = &kv;
    double half_life = ReputationConfig{}.half_life_s;
    if (policy.is_object())
        if (auto r = policy.find("reputation"); r != policy.end() && r->is_object())
            if (auto h = r->find("half_life_s"); h != r->end() && h->is_number()) half_life = h->get<double>();
    json out = json::array();
    for (const json& vm : policy.value("vms", json::array())) {
        if (!vm.is_object()) continue;
        const std::string id = vm.value("id", ""), ten = vm.value("tenant", "");
        json o{{"id", id},
               {"tenant", ten},
               {"host", vm.value("host", "")},
               {"tier", vm.value("tier", "ok")},
               {"score", 0.0},
               {"earned", "ok"},
               {"pin", vm.contains("tier") ? json{{"tier", vm["tier"]}, {"source", "policy"}} : json()},
               {"interface", vm.value("interface", "")},
               {"addresses", vm.value("addresses", json::array())},
               {"updated_by", nullptr},
               {"updated_at_unix", nullptr}};
        if (auto it = records.find(keys.vm(ten, id)); it != records.end()) {
            auto rec = fleet::record_from_json(parse_or_null(it->second->value), ten, id);
            if (rec) {
                o["tier"] = std::string(smtpgov::to_string(rec->tier));
                o["earned"] = std::string(smtpgov::to_string(rec->state.earned));
                o["score"] = fleet::score_at(*rec, now_ms, half_life);
                if (rec->state.pin) {
                    json pin{{"tier", std::string(smtpgov::to_string(rec->state.pin->tier))}, {"source", "operator"}};
                    if (rec->state.pin->until_unix_ms) pin["until_unix_ms"] = *rec->state.pin->until_unix_ms;
                    o["pin"] = pin;
                }
                o["updated_by"] = rec->updated_by;
                o["updated_at_unix"] = rec->updated_at_ms / 1000;
                o["revision"] = it->second->mod_revision;
            } else {
                o["record_error"] = rec.error().message;
            }
        }
        if (tier && o["tier"] != *tier) continue;
        if (tenant && ten != *tenant) continue;
        out.push_back(std::move(o));
    }
    std::stable_sort(out.begin(), out.end(), [](const json& a, const json& b) {
        const double sa = a["score"].get<double>(), sb = b["score"].get<double>();
        return sa != sb ? sa > sb : a["id"].get<std::string>() < b["id"].get<std::string>();
    });
    return out;
}

std::string render_vm_list(const json& vms) {
    Table t({"ID", "TENANT", "HOST", "TIER", "PIN", "SCORE", "UPDATED-BY", "UPDATED"},
            {Align::Left, Align::Left, Align::Left, Align::Left, Align::Left, Align::Right, Align::Left, Align::Left});
    for (const json& vm : vms) {
        const json& pin = vm["pin"];
        t.add({vm.value("id", ""), vm.value("tenant", std::string()).empty() ? "-" : vm["tenant"].get<std::string>(),
               vm.value("host", ""), vm.value("tier", ""), pin.is_object() ? render_pin(pin) : "-",
               fixed(vm.value("score", 0.0), 2),
               vm["updated_by"].is_string() && !vm["updated_by"].get<std::string>().empty()
                   ? vm["updated_by"].get<std::string>()
                   : "-",
               vm["updated_at_unix"].is_number() ? utc_time(vm["updated_at_unix"].get<int64_t>()) : "-"});
    }
    return t.str();
}

Result<PinWrite> pin_write(const json& policy, const etcd::Kv* record, const fleet::Keys& keys, const std::string& id,
                           const std::optional<Pin>& pin, int64_t now_unix_ms, const std::string& who) {
    std::optional<json> vm;
    if (policy.is_object())
        for (const json& v : policy.value("vms", json::array()))
            if (v.is_object() && v.value("id", "") == id) vm = v;
    if (!vm) return Error{ENOENT, "no VM " + id + " in the fleet policy"};
    PinWrite w;
    w.host = vm->value("host", "");
    const std::string tenant = vm->value("tenant", "");
    w.key = keys.vm(tenant, id);
    if (record) {
        auto rec = fleet::record_from_json(parse_or_null(record->value), tenant, id);
        if (!rec) return Error{EINVAL, w.key + ": " + rec.error().message + " (not replaced)"};
        w.rec = std::move(*rec);
        w.expect_mod_revision = record->mod_revision;
    } else {
        w.rec.vm = id;
        w.rec.tenant = tenant;
        w.rec.state.score_unix_ms = w.rec.state.since_unix_ms = now_unix_ms;
    }
    w.rec.state.pin = pin;
    // the tier this record announces until the VM's host writes the one it enforces
    w.rec.tier = pin ? pin->tier : w.rec.state.earned;
    w.rec.updated_by = who;
    w.rec.updated_at_ms = now_unix_ms;
    return w;
}

}  // namespace smtpgov::ctl::fleetv
