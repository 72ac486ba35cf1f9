// Address history and feedback-loop complaints (DESIGN.md "Address reputation
// contract"; docs/internals.md). The Controller owns the one core/AddressHistory: every
// policy put in force (start, apply, identity changes) is noted in it, it is persisted
// as <state_dir>/address_history.json, and these commands read it:
//   report.arf  a complaint parsed by smtpgovctl (core/arf.h): attributed to the VM that
//               held source_ip at arrival_unix, counted as a complaint signal against it
//   ip.show     holdings over time, the holder now, complaints, DNSBL listings
//   ip.check    tainted or clean (complaints or DNSBL listings within address_taint_days)
// In a fleet, Daemon::with_fleet_addresses adds the other hosts' records to ip.show and
// ip.check, and asks record_fleet_complaint to keep a report.arf that only another host's
// history can attribute.
#include "daemon/controller.h"
#include "daemon/log.h"
#include "daemon/state_store.h"
#include "svc/commands.h"

namespace smtpgov::daemon {

using nlohmann::json;

namespace {

constexpr const char* kHistoryFile = "/address_history.json";

std::string str_arg(const json& req, const char* key) {
    return req.contains(key) && req[key].is_string() ? req[key].get<std::string>() : "";
}

// The "addr" argument: an address or a prefix (host bits cleared).
std::variant<IpPrefix, svc::Reply> addr_arg(const json& req, std::string_view cmd) {
    const std::string text = str_arg(req, "addr");
    if (text.empty()) return svc::error_reply("usage", std::string(cmd) + " needs an \"addr\"");
    auto p = IpPrefix::parse(text);
    if (!p) return svc::error_reply("usage", "addr: " + p.error().message);
    return p->masked();
}

}  // namespace

Status Controller::load_address_history() {
    auto saved = read_state_file(opts_.state_dir + kHistoryFile);
    if (!saved) return saved.error();
    if (!*saved) return ok_status();
    if (auto h = AddressHistory::from_json(**saved)) {
        history_ = std::move(*h);
        return ok_status();
    } else {
        // damaged but valid JSON: set aside like a corrupt file, never block the start
        const std::string path = opts_.state_dir + kHistoryFile;
        ::rename(path.c_str(), (path + ".corrupt").c_str());
        log::error("address_history.json: " + h.error().message + ": moved to " + path + ".corrupt");
        return ok_status();
    }
}

Status Controller::persist_address_history() {
    ++address_gen_;  // the fleet's copy follows (fleet_tick)
    auto s = write_file_atomic(opts_.state_dir + kHistoryFile, history_.to_json().dump() + "\n");
    if (!s) log::error("address_history.json: " + s.error().message);
    return s;
}

void Controller::note_holders() {
    std::vector<HolderNow> now;
    for (const Vm& vm : vms_.policy().vms)
        if (!vm.addresses.empty()) now.push_back({vm.id, vm.tenant, vm.addresses});
    // written at once; a failed write is logged, and the next change writes it all
    if (history_.update(now, clock_->wall_ms() / 1000)) (void)persist_address_history();
}

json Controller::taint_json(const IpPrefix& addr) const {
    const int64_t now = clock_->wall_ms() / 1000;
    const int64_t since = now - int64_t{opts_.address_taint_days} * 86400;
    json reasons = json::array();
    size_t recent = 0;
    for (const Complaint& c : history_.complaints_of(addr)) {
        if (c.arrival_unix < since) continue;
        ++recent;
        reasons.push_back("complaint (" + c.feedback_type + ") about " + c.address.to_string() + " at " +
                          std::to_string(c.arrival_unix) + ", held by " + c.vm);
    }
    // DNSBL listings: listed now, or a listing that ended within the window (dnsbl.cpp)
    const json dnsbl = dnsbl_taint_json(addr, since);
    for (const json& l : dnsbl)
        reasons.push_back(std::string(l["listed_now"].get<bool>() ? "listed now" : "was listed") + " in " +
                          l["zone"].get<std::string>() + ": " + l["address"].get<std::string>() +
                          (l["reason"].get<std::string>().empty() ? "" : " (" + l["reason"].get<std::string>() + ")"));
    return {{"address", addr.to_string()}, {"tainted", recent > 0 || !dnsbl.empty()}, {"taint_days", opts_.address_taint_days},
            {"complaints_in_window", recent}, {"dnsbl", dnsbl}, {"reasons", reasons}};
}

svc::Reply Controller::cmd_ip_check(const json& req) {
    auto a = addr_arg(req, svc::cmd::kIpCheck);
    if (auto* refused = std::get_if<svc::Reply>(&a)) return std::move(*refused);
    return svc::ok_reply(taint_json(std::get<IpPrefix>(a)));
}

svc::Reply Controller::cmd_ip_show(const json& req) {
    auto a = addr_arg(req, svc::cmd::kIpShow);
    if (auto* refused = std::get_if<svc::Reply>(&a)) return std::move(*refused);
    const IpPrefix addr = std::get<IpPrefix>(a);
    json out = taint_json(addr);
    json history = json::array(), complaints = json::array(), holder = nullptr;
    for (const Holding& h : history_.holdings_of(addr)) {
        history.push_back(to_json(h));
        if (h.open() && h.prefix.contains(addr) && (holder.is_null() || h.prefix.len > holder["prefix_len"].get<int>())) {
            holder = to_json(h);
            holder["prefix_len"] = h.prefix.len;
        }
    }
    if (!holder.is_null()) holder.erase("prefix_len");
    for (const Complaint& c : history_.complaints_of(addr)) complaints.push_back(to_json(c));
    out["holder"] = holder;
    out["history"] = history;
    out["complaints"] = complaints;
    return svc::ok_reply(out);
}

svc::Reply Controller::cmd_report_arf(const json& req) {
    const std::string src = str_arg(req, "source_ip");
    auto addr = IpPrefix::parse(src);
    if (src.empty() || !addr || !addr->is_host())
        return svc::error_reply("usage", "report.arf needs a \"source_ip\" (one IPv4 or IPv6 address)");
    if (!req.contains("arrival_unix") || !req["arrival_unix"].is_number_integer())
        return svc::error_reply("usage", "report.arf needs an \"arrival_unix\" (integer Unix seconds)");
    const int64_t arrival = req["arrival_unix"].get<int64_t>();
    auto holder = history_.holder_at(*addr, arrival);
    if (!holder)
        return svc::error_reply("not_found", "no VM held " + addr->to_string() + " at " + std::to_string(arrival) +
                                                 " (Unix time): complaint not counted");
    Complaint c{*addr, arrival, clock_->wall_ms() / 1000, holder->vm, holder->tenant,
                str_arg(req, "feedback_type").empty() ? "abuse" : str_arg(req, "feedback_type"),
                str_arg(req, "reporting_mta")};
    history_.add_complaint(c);
    const Status saved = persist_address_history();
    // A VM still in force gets the complaint signal; one that left keeps it on record only.
    const bool scored = view(holder->vm).has_value();
    if (scored) {
        const int64_t now_ms = clock_->now_ms();
        tiers_.observe(holder->vm, Signal::Complaint, 1, now_ms);
        evaluate(now_ms);
    }
    log::notice("report.arf: " + c.feedback_type + " complaint about " + addr->to_string() + " at " +
                std::to_string(arrival) + " attributed to " + holder->vm + (scored ? "" : " (no longer in force: recorded only)"));
    json out = to_json(c);
    out["prefix"] = holder->prefix.to_string();
    out["scored"] = scored;
    if (scored) {
        if (auto s = persist_reputation(); !s)
            return svc::error_reply("runtime", "counted against " + holder->vm + ", but not saved (retried): " + s.error().message);
        if (auto v = view(holder->vm)) {
            out["score"] = v->score;
            out["tier"] = to_string(v->tier);
        }
    }
    if (!saved) return svc::error_reply("runtime", "counted against " + holder->vm + ", but address_history.json not saved: " + saved.error().message);
    return svc::ok_reply(out);
}

void Controller::recover_fleet_addresses(const std::vector<addrfleet::HostRecord>& own,
                                         const std::vector<std::pair<std::string, std::string>>& refused) {
    for (const auto& [key, error] : refused)
        log::warning("address record " + error + ": this host's own, not recovered (rewritten from its history)");
    const addrfleet::Recovered r = addrfleet::recover(history_, dnsbl_, own, clock_->wall_ms() / 1000);
    addresses_recovered_ = true;
    ++address_gen_;  // offered now, marked recovered: the agent starts writing
    if (r.total() == 0) return;
    log::notice("fleet: recovered from this host's address records in etcd what its state dir lacked: " +
                std::to_string(r.holdings) + " holdings, " + std::to_string(r.complaints) + " complaints, " +
                std::to_string(r.listings) + " DNSBL listings (as ended)");
    if (r.holdings + r.complaints) (void)persist_address_history();
    if (r.listings) (void)persist_dnsbl();
}

// The holder's host never takes another host's records as a signal, so this complaint
// charges nobody; recorded in this host's history, it goes into this host's address
// record and makes the address tainted on every host of the fleet.
svc::Reply Controller::record_fleet_complaint(const Complaint& c, const std::string& prefix, const std::string& holder_host) {
    history_.add_complaint(c);
    const Status saved = persist_address_history();
    log::notice("report.arf: " + c.feedback_type + " complaint about " + c.address.to_string() + " at " +
                std::to_string(c.arrival_unix) + ": held by " + c.vm + " on host " + holder_host +
                " (the fleet's history): recorded here, charged to nobody");
    json out = to_json(c);
    out["prefix"] = prefix;
    out["scored"] = false;
    out["holder_host"] = holder_host;
    if (!saved) return svc::error_reply("runtime", "recorded, but address_history.json not saved: " + saved.error().message);
    return svc::ok_reply(out);
}

}  // namespace smtpgov::daemon
