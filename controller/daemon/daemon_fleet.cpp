// The daemon's side of the fleet: the agent's threads (svc/fleet_agent.h) hand policies
// and records to the loop thread (post), where the Controller applies them; after each
// sweep the loop hands the agent this host's records and status. Neither thread
// touches the Controller itself.
#include <unistd.h>

#include <fstream>
#include <future>
#include <sstream>

#include "daemon/daemon.h"
#include "daemon/log.h"
#include "metrics/exporter.h"
#include "svc/commands.h"

namespace smtpgov::daemon {

namespace {

std::string hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
    std::string h(buf);
    return h.substr(0, h.find('.'));
}

Result<std::string> read_password(const std::string& path) {
    if (path.empty()) return std::string();
    std::ifstream in(path);
    if (!in) return Error::from_errno("fleet/password_file " + path);
    std::string pw;
    std::getline(in, pw);  // the first line, without its newline
    return pw;
}

std::vector<std::string> vm_ids(const std::vector<fleet::Record>& recs) {
    std::vector<std::string> ids;
    ids.reserve(recs.size());
    for (const auto& r : recs) ids.push_back(r.vm);
    return ids;
}

}  // namespace

Result<fleet::Options> fleet_options(const Config& cfg) { return fleet::parse_options(cfg.fleet, hostname()); }

// Before the control socket opens: its workers read addr_reader_ without a lock.
Status Daemon::init_fleet_reader() {
    auto o = fleet_options(cfg_);
    if (!o) return Error{EINVAL, "config: " + o.error().message};
    if (!o->enabled()) return ok_status();
    auto pw = read_password(o->password_file);
    if (!pw) return pw.error();
    addr_reader_ = std::make_unique<const svc::FleetAddressReader>(*o, *pw);
    return ok_status();
}

Status Daemon::init_fleet() {
    auto o = fleet_options(cfg_);
    if (!o) return Error{EINVAL, "config: " + o.error().message};
    if (!o->enabled()) return ok_status();
    auto pw = read_password(o->password_file);
    if (!pw) return pw.error();
    const std::string host = o->host, endpoints = o->etcd.front();
    svc::FleetCallbacks cb;
    cb.on_policy = [this](nlohmann::json doc, int64_t serial, int64_t rev, std::vector<fleet::Record> recs) {
        post([this, doc = std::move(doc), serial, rev, recs = std::move(recs)]() mutable {
            const auto ids = vm_ids(recs);
            (void)ctl_->apply_fleet_policy(doc, serial, rev, std::move(recs));
            if (fleet_) fleet_->taken_in(ids);
            configure_checker();  // the proxy may have moved
        });
    };
    cb.on_records = [this](std::vector<fleet::Record> recs) {
        post([this, recs = std::move(recs)]() mutable {
            const auto ids = vm_ids(recs);
            ctl_->fleet_records(std::move(recs));
            if (fleet_) fleet_->taken_in(ids);
        });
    };
    cb.on_own_addresses = [this](std::vector<addrfleet::HostRecord> own,
                                 std::vector<std::pair<std::string, std::string>> refused) {
        post([this, own = std::move(own), refused = std::move(refused)] { ctl_->recover_fleet_addresses(own, refused); });
    };
    cb.on_connectivity = [this](const std::string& what, bool up) {
        post([this, what, up] {
            if (up) log::notice("etcd reachable (" + what + "): fleet policy and reputation exchange running");
            else log::warning("etcd unreachable (" + what + "): enforcement and the policy in force continue; "
                              "reputation changes are written when it is back");
            ctl_->fleet_event(up ? "etcd_up" : "etcd_down", what, nlohmann::json::object());
        });
    };
    fleet_ = svc::FleetAgent::start(std::move(*o), std::move(*pw), SMTPGOV_VERSION, std::move(cb));
    log::info("fleet: host " + host + ", etcd " + endpoints + (cfg_.fleet["etcd"].size() > 1 ? " and others" : ""));
    return ok_status();
}

void Daemon::fleet_tick() {
    if (!fleet_) return;
    auto t = ctl_->fleet_tick();
    if (!t.gone.empty()) fleet_->forget(t.gone);
    fleet_->offer(t.records, t.half_life_s);
    if (t.addresses) fleet_->offer_addresses(std::move(t.addresses));
    fleet_->set_tenants(std::move(t.tenants));
    fleet_->set_status(t.status);
    if (!metrics_) return;
    const svc::FleetStats st = fleet_->stats();
    metrics_->set_fleet({st.etcd_up, st.watch_lag_s, st.writes_reputation, st.txns, st.write_conflicts, st.hosts_live,
                         st.hosts_lost, st.outbox, st.writes_addresses, st.addresses_pending});
}

// ip.check / ip.show in a fleet, on the control worker's thread (never the loop's): this
// host's answer plus every other host's records about the address (core/address_fleet.h).
// etcd unreadable: ip.check fails (exit 1: not clean) unless this host's own history
// already says tainted; ip.show shows this host's part and says the fleet's is missing.
svc::Reply Daemon::with_fleet_addresses(const nlohmann::json& req, svc::Reply local) {
    const std::string cmd = req.value("cmd", "");
    if (addr_reader_ && cmd == svc::cmd::kReportArf && local.body.value("kind", "") == "not_found")
        return fleet_report_arf(req, std::move(local));
    const bool show = cmd == svc::cmd::kIpShow;
    if (!addr_reader_ || (!show && cmd != svc::cmd::kIpCheck) || !local.body.value("ok", false)) return local;
    nlohmann::json& answer = local.body["result"];
    auto addr = IpPrefix::parse(answer.value("address", ""));  // as the controller read it
    if (!addr) return svc::error_reply("runtime", cmd + ": the answer names no address to ask the fleet about");
    auto kvs = addr_reader_->read(*addr, show);
    if (!kvs) {
        log::warning(cmd + " " + addr->to_string() + ": " + kvs.error().message);
        if (!show && !answer.value("tainted", false))  // tainted here is tainted anyway
            return svc::error_reply("runtime", kvs.error().message + ": cannot tell whether " + addr->to_string() +
                                                   " is clean (this host's history alone is not the fleet's)");
        answer["fleet"] = {{"host", addr_reader_->host()}, {"error", kvs.error().message}};
        return local;
    }
    const addrfleet::FleetRead read = addrfleet::decode_all(addr_reader_->keys(), *kvs, addr_reader_->host());
    for (const auto& [key, error] : read.refused) log::warning("address record " + error);
    answer = addrfleet::merge(std::move(answer), read, *addr, addr_reader_->host(), clock_.wall_ms() / 1000,
                              cfg_.address_taint_days, show);
    return local;
}

// report.arf about an address no VM here held then: the fleet's history may name the
// holder on another host. Then the complaint is recorded here (it taints the address on
// every host) and charged to nobody; the answer names the holder's host, where the
// feedback loop's reports belong. Else the local refusal stands (exit 1).
svc::Reply Daemon::fleet_report_arf(const nlohmann::json& req, svc::Reply local) {
    auto addr = IpPrefix::parse(req.value("source_ip", ""));
    if (!addr || !req.contains("arrival_unix") || !req["arrival_unix"].is_number_integer()) return local;
    const int64_t arrival = req["arrival_unix"].get<int64_t>();
    auto kvs = addr_reader_->read(*addr, true);
    if (!kvs) {
        local.body["error"] = local.body.value("error", "") + "; " + kvs.error().message;
        return local;
    }
    const auto holder = addrfleet::holder_at(addrfleet::decode_all(addr_reader_->keys(), *kvs, addr_reader_->host()),
                                             *addr, arrival);
    if (!holder) {
        local.body["error"] = local.body.value("error", "") + " (nor did any other host of the fleet)";
        return local;
    }
    auto text = [&](const char* k, const char* dflt) {
        return req.contains(k) && req[k].is_string() && !req[k].get<std::string>().empty() ? req[k].get<std::string>() : dflt;
    };
    const Complaint c{*addr, arrival, clock_.wall_ms() / 1000, holder->first.vm, holder->first.tenant,
                      text("feedback_type", "abuse"), text("reporting_mta", "")};
    const std::string prefix = holder->first.prefix.to_string(), host = holder->second;
    auto done = std::make_shared<std::promise<svc::Reply>>();
    auto answer = done->get_future();
    post([this, done, c, prefix, host] { done->set_value(ctl_->record_fleet_complaint(c, prefix, host)); });
    try {
        return answer.get();  // a task dropped at shutdown breaks the promise
    } catch (const std::future_error&) {
        return svc::error_reply("runtime", "smtpgovd is shutting down");
    }
}

}  // namespace smtpgov::daemon
