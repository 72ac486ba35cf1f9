// The daemon's side of DNSBL monitoring: the resolver's thread (svc/dnsbl_resolver.h)
// hands each answer to the loop thread (post), where the Controller applies it
// (daemon/dnsbl.cpp); the Controller hands the resolver the lookups of every policy put
// in force. Neither thread touches the other's state.
#include "daemon/daemon.h"
#include "daemon/log.h"
#include "metrics/exporter.h"

namespace smtpgov::daemon {

Status Daemon::init_dnsbl() {
    auto o = dnsbl::parse_options(cfg_.dnsbl);  // checked with the config
    if (!o) return Error{EINVAL, "config: " + o.error().message};
    if (!o->enabled()) return ok_status();
    if (metrics_) {
        std::vector<std::string> zones;
        for (const auto& z : o->zones) zones.push_back(z.name);
        metrics_->set_dnsbl_zones(zones);
        ctl_->on_dnsbl_query = [m = metrics_.get()](std::string_view r) { m->count_dnsbl_query(r); };
        ctl_->on_dnsbl_listed = [m = metrics_.get()](const auto& counts) { m->set_dnsbl_listed(counts); };
    }
    auto r = svc::DnsblResolver::start(*o, [this](svc::DnsblAnswer a) {
        post([this, a = std::move(a)] { ctl_->dnsbl_answer(a.lookup, a.answer); });
    });
    if (!r) return r.error();
    dnsbl_ = std::move(*r);
    ctl_->on_dnsbl_lookups = [d = dnsbl_.get()](std::vector<dnsbl::Lookup> l) { d->set_lookups(std::move(l)); };
    const auto lookups = ctl_->dnsbl_lookups();
    dnsbl_->set_lookups(lookups);
    if (metrics_) metrics_->set_dnsbl_listed(ctl_->dnsbl_counts());  // the persisted listings
    log::info("dnsbl: " + std::to_string(lookups.size()) + " lookups every " + std::to_string(o->interval_s) +
              " s through " + o->resolver->to_string() + ", at most " + std::to_string(o->queries_per_s) + " queries/s");
    return ok_status();
}

}  // namespace smtpgov::daemon
