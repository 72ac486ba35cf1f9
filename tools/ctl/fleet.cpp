#include "fleet.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>

#include "commands.h"
#include "core/json_strict.h"
#include "core/policy.h"
#include "fleet_view.h"
#include "render.h"

using nlohmann::json;

namespace smtpgov::ctl {
namespace {

namespace fv = fleetv;

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::optional<std::string> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// An etcd connection from the options and the config; nullopt with the exit code set
// (2: nothing says where etcd is, or the config is unreadable).
struct Session {
    fv::Target target;
    fleet::Keys keys;
    std::optional<etcd::Client> client;
};

std::optional<Session> connect(const Invocation& inv, std::ostream& err, int& code) {
    code = kExitUsage;
    json cfg_fleet;
    const auto cfg_opt = inv.opt("config");
    // With --etcd the config is read only when named (for TLS and auth).
    if (cfg_opt || !inv.opt("etcd")) {
        const std::string path = cfg_opt.value_or(fv::kDefaultConfig);
        auto text = slurp(path);
        if (!text) {
            err << "smtpgovctl: cannot read " << path << ": " << std::strerror(errno)
                << " (give --etcd URL[,URL...] or --config FILE)\n";
            return std::nullopt;
        }
        json cfg = json::parse(*text, nullptr, false);
        if (cfg.is_discarded() || !cfg.is_object()) {
            err << "smtpgovctl: " << path << ": not a JSON object\n";
            return std::nullopt;
        }
        cfg_fleet = cfg.value("fleet", json());
        // The daemon's own reading of its fleet object (core/fleet.h): the same errors.
        if (auto o = fleet::parse_options(cfg_fleet, "smtpgovctl"); !o) {
            err << "smtpgovctl: " << path << ": " << o.error().message << "\n";
            return std::nullopt;
        }
    }
    auto t = fv::target(inv.opt("etcd"), inv.opt("prefix"), cfg_fleet);
    if (!t) {
        err << "smtpgovctl: " << t.error().message << "\n";
        return std::nullopt;
    }
    if (!t->password_file.empty()) {
        auto pw = slurp(t->password_file);
        if (!pw) {
            err << "smtpgovctl: cannot read " << t->password_file << ": " << std::strerror(errno) << "\n";
            return std::nullopt;
        }
        while (!pw->empty() && (pw->back() == '\n' || pw->back() == '\r')) pw->pop_back();
        t->etcd.password = *pw;
    }
    Session s;
    s.target = std::move(*t);
    s.keys.prefix = s.target.prefix;
    s.client.emplace(s.target.etcd);
    code = kExitOk;
    return s;
}

int runtime(std::ostream& err, const std::string& what, const Error& e) {
    err << "smtpgovctl: " << what << ": " << e.message << "\n";
    return kExitRuntime;
}

// Every key under <prefix>/policy/ in one range: the global value and the host values
// of one revision, never half of an apply.
Result<fv::PolicyState> read_policy(Session& s) {
    auto r = s.client->get_prefix(s.keys.prefix + "/policy/");
    if (!r) return r.error();
    return fv::policy_state(r->kvs, s.keys);
}

std::string who() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    const char* user = std::getenv("SUDO_USER");
    if (!user || !*user) user = std::getenv("USER");
    return std::string(user && *user ? user : "root") + "@" + host;
}

// Step 6: until every host reported serial N (applied or refused) or wait_s passed.
std::vector<fv::HostReport> wait_for_hosts(Session& s, const std::vector<std::string>& hosts, int64_t serial,
                                           double wait_s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(wait_s * 1000));
    std::vector<fv::HostReport> reports;
    for (;;) {
        reports.clear();
        std::map<std::string, json> status;
        std::set<std::string> live;
        if (auto r = s.client->get_prefix(s.keys.hosts())) {
            for (const etcd::Kv& kv : r->kvs) {
                auto p = s.keys.parse_host(kv.key);
                if (!p) continue;
                if (p->second == "live") live.insert(p->first);
                else status[p->first] = json::parse(kv.value, nullptr, false);
            }
        }
        bool all = true;
        for (const std::string& h : hosts) {
            auto it = status.find(h);
            fv::HostReport rep{h, fv::outcome_for(it == status.end() ? json() : it->second, serial), live.count(h) > 0};
            all = all && rep.outcome.outcome != fv::Outcome::NoAnswer;
            reports.push_back(std::move(rep));
        }
        if (all || std::chrono::steady_clock::now() >= deadline || interrupted()) return reports;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

// Until the VM's host wrote the record back with the pin taken in (its own updated_by and
// the pin as written), or wait_s passed. The confirmed record, else nullopt.
std::optional<fleet::Record> wait_for_pin(Session& s, const fv::PinWrite& w, double wait_s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(wait_s * 1000));
    for (;;) {
        if (auto r = s.client->get(w.key); r && !r->kvs.empty()) {
            auto rec = fleet::record_from_json(json::parse(r->kvs.front().value, nullptr, false), w.rec.tenant, w.rec.vm);
            if (rec && rec->updated_by == w.host && rec->state.pin == w.rec.state.pin) return *rec;
        }
        if (std::chrono::steady_clock::now() >= deadline || interrupted()) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

// fleet vm set-tier / clear: the VM's record written with the pin under a compare-and-swap
// on the revision read (its host may write it meanwhile: read again, a few times).
int fleet_pin(const Invocation& inv, std::ostream& out, std::ostream& err, const std::optional<Pin>& pin) {
    int code = kExitOk;
    auto s = connect(inv, err, code);
    if (!s) return code;
    auto cur = read_policy(*s);
    if (!cur) return runtime(err, "read the fleet policy", cur.error());
    const json policy = fleet::join(cur->global, cur->hosts);
    const std::string id = inv.arg("ID"), by = "smtpgovctl:" + who();
    std::optional<fv::PinWrite> done;
    int64_t revision = 0;
    for (int attempt = 0; attempt < 5 && !done; ++attempt) {
        auto where = fv::pin_write(policy, nullptr, s->keys, id, pin, now_ms(), by);  // names the key
        if (!where) return runtime(err, "fleet vm " + id, where.error());
        auto r = s->client->get(where->key);
        if (!r) return runtime(err, "read " + where->key, r.error());
        auto w = fv::pin_write(policy, r->kvs.empty() ? nullptr : &r->kvs.front(), s->keys, id, pin, now_ms(), by);
        if (!w) return runtime(err, "fleet vm " + id, w.error());
        const etcd::Compare c{w->key, w->expect_mod_revision ? etcd::Compare::Target::Mod : etcd::Compare::Target::Create,
                              w->expect_mod_revision};
        auto t = s->client->txn({c}, {etcd::Op{etcd::Op::Kind::Put, w->key, fleet::to_json(w->rec).dump(), 0}});
        if (!t) return runtime(err, "write " + w->key, t.error());
        if (t->succeeded) done = std::move(*w), revision = t->revision;
    }
    if (!done) {
        err << "smtpgovctl: " << id << "'s record changed under every one of 5 attempts; nothing written, try again\n";
        return kExitRuntime;
    }
    const double wait_s = inv.seconds_opt("wait").value_or(10);
    auto confirmed = wait_s > 0 ? wait_for_pin(*s, *done, wait_s) : std::nullopt;
    json r{{"id", id}, {"tenant", done->rec.tenant}, {"host", done->host}, {"revision", revision},
           {"pin", pin ? json{{"tier", std::string(to_string(pin->tier))}} : json()},
           {"confirmed", confirmed.has_value()},
           {"tier", confirmed ? json(std::string(to_string(confirmed->tier))) : json()}};
    if (pin && pin->until_unix_ms) r["pin"]["until_unix_ms"] = *pin->until_unix_ms;
    if (inv.json) {
        out << r.dump() << "\n";
    } else {
        out << id << " (host " << done->host << "): " << (pin ? "pinned to " + std::string(to_string(pin->tier)) : "pin cleared")
            << ", written at revision " << revision << "; "
            << (confirmed ? "in force there (tier " + std::string(to_string(confirmed->tier)) + ")"
                          : "host " + done->host + " has not confirmed it")
            << "\n";
    }
    if (wait_s > 0 && !confirmed) {
        err << "smtpgovctl: host " << done->host << " did not take the pin in within " << wait_s
            << " s (is it live? see fleet status); it is stored and holds when the host reads it\n";
        return kExitRuntime;
    }
    return kExitOk;
}

}  // namespace

int cmd_fleet_vm_set_tier(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err) {
    Pin pin{*parse_tier(inv.arg("TIER")), std::nullopt};
    if (auto f = inv.seconds_opt("for")) pin.until_unix_ms = now_ms() + int64_t(*f * 1000);
    return fleet_pin(inv, out, err, pin);
}

int cmd_fleet_vm_clear(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err) {
    return fleet_pin(inv, out, err, std::nullopt);
}

int cmd_fleet_policy_apply(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err) {
    const std::string& file = inv.arg("FILE");
    auto text = slurp(file);
    if (!text) {
        err << "smtpgovctl: cannot read " << file << ": " << std::strerror(errno) << "\n";
        return kExitUsage;
    }
    auto doc = parse_json_strict(*text);
    if (!doc) {
        err << "smtpgovctl: " << file << ": not a JSON document\n" << "/: " << doc.error().message << "\n";
        return kExitUsage;
    }
    std::vector<Problem> problems;
    // Offline first: nothing is read or written for an invalid policy.
    if (!fleet::split(*doc, json(), {}, problems)) {
        err << "smtpgovctl: " << file << ": invalid fleet policy (" << problems.size()
            << (problems.size() == 1 ? " problem)" : " problems)") << "\n";
        for (const auto& line : ctl::render_problems(to_json(problems))) err << line << "\n";
        return kExitUsage;
    }
    const double wait_s = inv.seconds_opt("wait").value_or(10);
    int code = kExitOk;
    auto s = connect(inv, err, code);
    if (!s) return code;
    etcd::Client& c = *s->client;

    // 1-2: read, split against what is stored.
    auto cur = read_policy(*s);
    if (!cur) return runtime(err, "read the fleet policy", cur.error());
    auto sp = fleet::split(*doc, cur->global, cur->hosts, problems);
    if (!sp) return runtime(err, "split the fleet policy", sp.error());
    const int64_t R = cur->global_revision;

    // 3: the lock, only while the global value is the one read.
    auto lease = c.lease_grant(fv::kLockTtlS);
    if (!lease) return runtime(err, "etcd lease", lease.error());
    auto release = [&] { (void)c.lease_revoke(*lease); };
    const json lock{{"by", who()}, {"serial", sp->serial}, {"since_ms", now_ms()}};
    auto locked = c.txn({{s->keys.policy_global(), etcd::Compare::Target::Mod, R},
                         {s->keys.policy_lock(), etcd::Compare::Target::Create, 0}},
                        {{etcd::Op::Kind::Put, s->keys.policy_lock(), lock.dump(), *lease}});
    if (!locked) {
        release();
        return runtime(err, "take the apply lock", locked.error());
    }
    if (!locked->succeeded) {
        release();
        err << "smtpgovctl: " << fv::kRaceMessage << "\n";
        return kExitRuntime;
    }
    const int64_t lock_rev = locked->revision;  // the lock's mod revision: it was put in that txn
    const etcd::Compare ours{s->keys.policy_lock(), etcd::Compare::Target::Mod, lock_rev};
    auto lost = [&](const std::string& what) {
        release();
        err << "smtpgovctl: " << what
            << ": the apply lock was lost (its lease expired or it was removed) or the global value changed under it; "
               "the global value was not written, so no host applies this policy; read the fleet policy and apply again\n";
        return kExitRuntime;
    };

    // 4: host values and dropped hosts, each batch under the lock.
    const auto batches = fv::host_batches(*sp, s->keys);
    auto renewed = std::chrono::steady_clock::now();
    for (const auto& ops : batches) {
        // A fleet of thousands of hosts writes for a while: the lock outlives its 30 s TTL.
        if (std::chrono::steady_clock::now() - renewed > std::chrono::seconds(fv::kLockTtlS / 3)) {
            if (!c.lease_keepalive(*lease)) return lost("renew the apply lock");
            renewed = std::chrono::steady_clock::now();
        }
        auto r = c.txn({ours}, ops);
        if (!r) {
            release();
            return runtime(err, "write host values (the global value was not written; apply again)", r.error());
        }
        if (!r->succeeded) return lost("write host values");
    }
    // 5: the global value, and the lock gone, in one txn.
    auto fin = c.txn({ours, {s->keys.policy_global(), etcd::Compare::Target::Mod, R}},
                     {{etcd::Op::Kind::Put, s->keys.policy_global(), sp->global.dump(), 0},
                      {etcd::Op::Kind::Delete, s->keys.policy_lock(), "", 0}});
    if (!fin) {
        release();
        return runtime(err, "write the global value (whether it landed is unknown: see fleet status)", fin.error());
    }
    if (!fin->succeeded) return lost("write the global value");
    release();

    // 6: which hosts applied it.
    std::vector<std::string> hosts;
    for (const auto& [h, _] : sp->global["fleet"]["hosts"].items()) hosts.push_back(h);
    if (!inv.json) out << "fleet policy written at etcd revision " << fin->revision << "; waiting up to " << wait_s
                       << " s for " << hosts.size() << " host(s)\n";
    out.flush();
    auto reports = wait_for_hosts(*s, hosts, sp->serial, wait_s);
    const json result = fv::apply_json(sp->serial, fin->revision, reports);
    out << (inv.json ? result.dump() + "\n" : fv::render_apply(result, sp->hosts.size(), sp->dropped.size()));
    size_t applied = 0, superseded = 0;
    for (const auto& r : reports) {
        applied += r.outcome.outcome == fv::Outcome::Applied;
        superseded += r.outcome.outcome == fv::Outcome::Superseded;
    }
    if (applied == reports.size()) return kExitOk;
    if (superseded)
        err << "smtpgovctl: a later fleet policy apply superseded serial " << sp->serial << " on " << superseded
            << " host(s): it was stored, then replaced (fleet policy get shows the one in force)\n";
    if (reports.size() - applied - superseded)
        err << "smtpgovctl: " << reports.size() - applied - superseded << " of " << reports.size()
            << " host(s) did not apply serial " << sp->serial
            << " (refused or no answer); the policy is stored and in force on the hosts that applied it\n";
    return kExitRuntime;
}

int cmd_fleet_policy_get(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err) {
    int code = kExitOk;
    auto s = connect(inv, err, code);
    if (!s) return code;
    auto cur = read_policy(*s);
    if (!cur) return runtime(err, "read the fleet policy", cur.error());
    if (!cur->global.is_object()) {
        err << "smtpgovctl: no fleet policy under " << s->keys.prefix << " (fleet policy apply stores one)\n";
        return kExitRuntime;
    }
    const json policy = fleet::join(cur->global, cur->hosts);
    out << (inv.json ? policy.dump() : policy.dump(2)) << "\n";
    return kExitOk;
}

int cmd_fleet_status(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err) {
    int code = kExitOk;
    auto s = connect(inv, err, code);
    if (!s) return code;
    auto cur = read_policy(*s);
    if (!cur) return runtime(err, "read the fleet policy", cur.error());
    auto hosts = s->client->get_prefix(s->keys.hosts());
    if (!hosts) return runtime(err, "read host status", hosts.error());
    const json st = fv::status_json(*cur, hosts->kvs, s->keys);
    out << (inv.json ? st.dump() + "\n" : fv::render_status(st, now_ms() / 1000));
    return kExitOk;
}

int cmd_fleet_vm_list(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err) {
    int code = kExitOk;
    auto s = connect(inv, err, code);
    if (!s) return code;
    auto cur = read_policy(*s);
    if (!cur) return runtime(err, "read the fleet policy", cur.error());
    auto recs = s->client->get_prefix(s->keys.tenants());
    if (!recs) return runtime(err, "read reputation records", recs.error());
    const json vms = fv::vm_list_json(fleet::join(cur->global, cur->hosts), recs->kvs, s->keys, now_ms(),
                                      inv.opt("tier"), inv.opt("tenant"));
    out << (inv.json ? vms.dump() + "\n" : fv::render_vm_list(vms));
    return kExitOk;
}

}  // namespace smtpgov::ctl
