// The daemon's side of the fleet: the agent's threads (svc/fleet_agent.h) hand policies
// and records to the loop thread (post), where the Controller applies them; after each
// sweep the loop hands the agent this host's records and status. Neither thread
// touches the Controller itself.
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "daemon/daemon.h"
#include "daemon/log.h"
#include "metrics/exporter.h"

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

}  // namespace

Result<fleet::Options> fleet_options(const Config& cfg) { return fleet::parse_options(cfg.fleet, hostname()); }

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
            (void)ctl_->apply_fleet_policy(doc, serial, rev, std::move(recs));
            configure_checker();  // the proxy may have moved
        });
    };
    cb.on_records = [this](std::vector<fleet::Record> recs) {
        post([this, recs = std::move(recs)]() mutable { ctl_->fleet_records(std::move(recs)); });
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
    fleet_->set_tenants(std::move(t.tenants));
    fleet_->set_status(t.status);
    if (!metrics_) return;
    const svc::FleetStats st = fleet_->stats();
    metrics_->set_fleet({st.etcd_up, st.watch_lag_s, st.writes_reputation, st.txns, st.write_conflicts, st.hosts_live,
                         st.hosts_lost, st.outbox});
}

}  // namespace smtpgov::daemon
