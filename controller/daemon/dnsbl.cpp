// DNSBL monitoring, the Controller's half (DESIGN.md "Address reputation contract";
// README "DNSBL monitoring"). The resolver's thread (svc/dnsbl_resolver.h) only asks;
// every answer is applied here, on the loop thread, to the one core/dnsbl::Listings:
//   - who holds the address now: a quarantine egress address (policy proxy.egress), else
//     the VM whose policy prefix holds it (the address history), else nobody;
//   - the listing state machine and the tenure rule (core/dnsbl_listings.h): a new
//     listing is one dnsbl_listing signal against the holder VM only when it appeared
//     during that VM's tenure;
//   - persisted (<state_dir>/dnsbl.json) before the signal is given, so a restart never
//     charges a listing twice;
//   - announced once: dnsbl_listed (and a ticket) / dnsbl_delisted to every subscriber
//     (event log, webhook, metrics; no ticket for a quarantine egress address, where a
//     listing is expected), and the listed counts to on_dnsbl_listed.
#include <algorithm>

#include "daemon/controller.h"
#include "daemon/log.h"
#include "daemon/state_store.h"

namespace smtpgov::daemon {

using nlohmann::json;

namespace {

constexpr const char* kDnsblFile = "/dnsbl.json";

json listing_json(const dnsbl::State& s) {
    return {{"address", s.lookup.address.to_string()}, {"zone", s.lookup.zone}, {"reason", s.reason},
            {"codes", s.codes}, {"since_unix", s.since_unix}, {"checked_unix", s.checked_unix},
            {"holder", s.holder}, {"charged", s.charged}, {"predates_holder", s.predates}};
}

}  // namespace

Status Controller::load_dnsbl() {
    auto saved = read_state_file(opts_.state_dir + kDnsblFile);
    if (!saved) return saved.error();
    if (!*saved) return ok_status();
    if (auto l = dnsbl::Listings::from_json(**saved)) {
        dnsbl_ = std::move(*l);
    } else {
        const std::string path = opts_.state_dir + kDnsblFile;
        ::rename(path.c_str(), (path + ".corrupt").c_str());
        log::error(l.error().message + ": moved to " + path + ".corrupt");
    }
    return ok_status();
}

Status Controller::persist_dnsbl() {
    ++address_gen_;  // the fleet's copy follows (fleet_tick)
    auto s = write_file_atomic(opts_.state_dir + kDnsblFile, dnsbl_.to_json().dump() + "\n");
    if (!s) log::error("dnsbl.json: " + s.error().message);
    return s;
}

std::vector<dnsbl::Lookup> Controller::dnsbl_lookups() const {
    const dnsbl::Options& o = opts_.dnsbl;
    if (!o.enabled()) return {};
    std::vector<IpPrefix> addrs;
    const Policy& p = vms_.policy();
    for (const Vm& vm : p.vms) addrs.insert(addrs.end(), vm.addresses.begin(), vm.addresses.end());
    if (p.proxy) addrs.insert(addrs.end(), p.proxy->egress.begin(), p.proxy->egress.end());
    std::vector<dnsbl::Lookup> out = dnsbl::lookups_of(addrs, o.zones, o.max_per_prefix);
    for (const dnsbl::Lookup& t : dnsbl::test_lookups(o.zones)) out.push_back(t);
    return out;
}

// Every policy put in force: the lookups follow it (a listing of an address no longer
// governed ends), and the resolver is told.
void Controller::dnsbl_refresh() {
    if (!opts_.dnsbl.enabled()) return;
    const std::vector<dnsbl::Lookup> lookups = dnsbl_lookups();
    const auto before = dnsbl_.states().size();
    const auto listed_before = dnsbl_.counts();
    dnsbl_.retain({lookups.begin(), lookups.end()}, clock_->wall_ms() / 1000);
    if (dnsbl_.states().size() != before) (void)persist_dnsbl();
    const uint64_t per_interval = uint64_t{opts_.dnsbl.queries_per_s} * opts_.dnsbl.interval_s;
    if (lookups.size() > per_interval && lookups.size() != dnsbl_warned_size_) {
        dnsbl_warned_size_ = lookups.size();
        log::warning("dnsbl: " + std::to_string(lookups.size()) + " lookups per interval, but queries_per_s " +
                     std::to_string(opts_.dnsbl.queries_per_s) + " allows " + std::to_string(per_interval) +
                     " in interval_s " + std::to_string(opts_.dnsbl.interval_s) + ": each lookup comes less often");
    }
    if (on_dnsbl_lookups) on_dnsbl_lookups(lookups);
    if (on_dnsbl_listed && dnsbl_.counts() != listed_before) on_dnsbl_listed(dnsbl_.counts());
}

dnsbl::Holder Controller::dnsbl_holder(const IpPrefix& addr) const {
    const Policy& p = vms_.policy();
    if (p.proxy && std::find(p.proxy->egress.begin(), p.proxy->egress.end(), addr) != p.proxy->egress.end())
        return {dnsbl::Holder::Kind::Quarantine, "", ""};
    if (auto h = history_.holder_at(addr, clock_->wall_ms() / 1000); h && vms_.vm(h->vm))
        return {dnsbl::Holder::Kind::Vm, h->vm, h->tenant};
    return {};
}

// A zone's RFC 5782 test entry answered: what it says gates the zone's other answers.
void Controller::dnsbl_test_answer(const dnsbl::Lookup& l, const dnsbl::Verdict& v) {
    dnsbl::ZoneCheck& z = dnsbl_zones_[l.zone];
    const dnsbl::ZoneCheck before = z;
    dnsbl::note_test_answer(z, l.address, v);
    if (z.lists_127_0_0_1 != before.lists_127_0_0_1 && z.lists_127_0_0_1.value_or(false))
        log::error("dnsbl: " + l.zone + " lists its test entry 127.0.0.1 (RFC 5782): it lists the world (a list "
                   "that was shut down, or a lying resolver); its listings are ignored until it stops");
    else if (z.lists_127_0_0_1 != before.lists_127_0_0_1 && before.lists_127_0_0_1.value_or(false))
        log::notice("dnsbl: " + l.zone + " no longer lists 127.0.0.1: its listings count again");
    if (z.lists_127_0_0_2 != before.lists_127_0_0_2 && !z.lists_127_0_0_2.value_or(true))
        log::error("dnsbl: " + l.zone + " does not list its test entry 127.0.0.2 (RFC 5782): the list's answers do "
                   "not reach this resolver; no delisting is believed until it does");
    else if (z.lists_127_0_0_2 != before.lists_127_0_0_2 && !before.lists_127_0_0_2.value_or(true))
        log::notice("dnsbl: " + l.zone + " lists 127.0.0.2 again: its answers count again");
}

void Controller::dnsbl_answer(const dnsbl::Lookup& l, const dnsbl::Answer& a) {
    const bool test = dnsbl::is_test_entry(l.address);
    const dnsbl::Verdict raw = dnsbl::classify(a);
    if (test) dnsbl_test_answer(l, raw);
    const dnsbl::Verdict v = test ? raw : dnsbl::gated(raw, dnsbl_zones_[l.zone]);
    if (on_dnsbl_query) on_dnsbl_query(v.label);
    if (v.list_refuses) {
        if (dnsbl_refusing_.insert(l.zone).second)
            log::error("dnsbl: " + l.zone + ": the list refuses this resolver (answer " + a.a.front() +
                       "); no listing is counted from it. Use a resolver the list accepts (README \"DNSBL monitoring\")");
        return;
    }
    if (v.kind == dnsbl::Kind::Error) {
        log::debug("dnsbl: " + l.address.to_string() + " in " + l.zone + ": " + v.error + ": state unchanged");
        return;
    }
    if (dnsbl_refusing_.erase(l.zone)) log::notice("dnsbl: " + l.zone + " answers this resolver again");
    if (!test) dnsbl_apply(l, v);
}

// A good answer about a governed address: the listing state, announced, and the charge.
void Controller::dnsbl_apply(const dnsbl::Lookup& l, const dnsbl::Verdict& v) {
    const dnsbl::Holder holder = dnsbl_holder(l.address);
    const auto was = dnsbl_.states().find(l);
    const int64_t checked_before = was == dnsbl_.states().end() ? -1 : addrfleet::checked_day(was->second.checked_unix);
    const dnsbl::Outcome out = dnsbl_.apply(l, holder, v, clock_->wall_ms() / 1000);
    if (out.change == dnsbl::Change::None) {
        // a new tenure began clean; or a listing seen again on a new day, which the
        // fleet's record says (its checked_unix: core/address_fleet.h)
        if (!out.previous_holder.empty() ||
            (out.state.listed && addrfleet::checked_day(out.state.checked_unix) != checked_before))
            (void)persist_dnsbl();
        return;
    }
    (void)persist_dnsbl();  // before the signal: a restart must not charge it again
    announce_dnsbl(out, holder);
    if (on_dnsbl_listed) on_dnsbl_listed(dnsbl_.counts());
    if (!out.charge) return;
    const int64_t now_ms = clock_->now_ms();
    tiers_.observe(holder.vm, Signal::DnsblListing, 1, now_ms);
    evaluate(now_ms);
    (void)persist_reputation();
}

void Controller::announce_dnsbl(const dnsbl::Outcome& out, const dnsbl::Holder& holder) {
    const dnsbl::State& s = out.state;
    const bool listed = out.change == dnsbl::Change::Listed;
    TierChange ch;
    svc::Event& e = ch.event;
    e.type = listed ? "dnsbl_listed" : "dnsbl_delisted";
    e.vm = holder.vm;
    e.tenant = holder.tenant;
    if (const auto& tv = view(holder.vm, false); holder.kind == dnsbl::Holder::Kind::Vm && tv) {
        e.from = e.to = tv->tier;
        e.score = tv->score;
    }
    const std::string who = holder.kind == dnsbl::Holder::Kind::Vm ? "vm " + holder.vm
                            : holder.kind == dnsbl::Holder::Kind::Quarantine ? "quarantine egress"
                                                                              : "no VM";
    std::string why = s.lookup.address.to_string() + " (" + who + ") " + (listed ? "listed in " : "delisted from ") +
                      s.lookup.zone;
    if (listed) {
        why += s.reason.empty() ? "" : ": " + s.reason;
        if (holder.kind == dnsbl::Holder::Kind::Quarantine) why += " (quarantine egress: expected, charges no VM)";
        else if (s.charged) why += " (appeared while " + holder.vm + " held it: charged)";
        else if (holder.kind == dnsbl::Holder::Kind::Vm) why += " (predates the current holder " + holder.vm + ": not charged)";
    }
    e.reason = why;
    e.evidence = listing_json(s);
    e.evidence["holder"] = holder.label();
    e.evidence["listed"] = listed;
    if (!out.previous_holder.empty()) e.evidence["previous_holder"] = out.previous_holder;
    ch.ticket = listed && holder.kind != dnsbl::Holder::Kind::Quarantine;  // expected there: an event only
    if (listed && holder.kind == dnsbl::Holder::Kind::Vm) log::warning("dnsbl: " + why);
    else log::notice("dnsbl: " + why);
    for (const Subscriber& sub : subscribers_) sub(ch);
}

json Controller::dnsbl_taint_json(const IpPrefix& addr, int64_t since_unix) const {
    json out = json::array();
    for (const dnsbl::State& s : dnsbl_.listed_in(addr)) {
        json j = listing_json(s);
        j["listed_now"] = true;
        out.push_back(j);
    }
    for (const dnsbl::PastListing& p : dnsbl_.ended_in(addr, since_unix)) {
        json j = dnsbl::to_json(p);
        j["listed_now"] = false;
        out.push_back(j);
    }
    return out;
}

json Controller::dnsbl_of_vm(const std::string& id) const {
    json out = json::array();
    for (const dnsbl::State& s : dnsbl_.listed())
        if (s.holder == "vm:" + id) out.push_back(listing_json(s));
    return out;
}

}  // namespace smtpgov::daemon
