// A tier change is written once and announced once: the enforcement entry of the tier
// in force (write_tier), then one TierChange (with the VM's evidence and whether it is a
// ticket) to every subscriber in order, and the journal's record of it.
#include "core/blocklists.h"
#include "daemon/controller.h"
#include "daemon/log.h"

namespace smtpgov::daemon {
namespace {

nlohmann::json counters(const std::array<uint64_t, SG_VERDICT_MAX>& v) {
    nlohmann::json j = nlohmann::json::object();
    for (int i = 0; i < SG_VERDICT_MAX; ++i) j[std::string(kVerdictNames[i])] = v[i];
    return j;
}

nlohmann::json evidence(const VmRuntime& rt) {
    std::array<uint64_t, SG_VERDICT_MAX> syn{};
    for (int i = 0; i < SG_VERDICT_MAX; ++i) syn[i] = rt.last.syn[i];
    nlohmann::json replies = nlohmann::json::object();
    for (int i = 0; i < SG_REPLY_MAX; ++i) replies[std::string(kReplyNames[i])] = rt.last.replies[i];
    return {{"rate", rt.rate}, {"syn", counters(syn)}, {"spoofed", rt.last.spoofed}, {"replies", replies},
            {"samples", rt.samples}, {"blocklists", blocklists_named(rt.samples)},
            {"refusals", policies_named(rt.samples)}};
}

// The journal's record of a change, as events.jsonl has it: the change, and a ticket.
void log_change(const TierChange& ch) {
    const svc::Event& e = ch.event;
    const std::string from(to_string(e.from)), to(to_string(e.to)), score = std::to_string(static_cast<long>(e.score));
    auto entry = [&](log::Event kind, std::string text) {
        return log::Entry(log::Level::Notice, kind, std::move(text))
            .about(e.vm, e.tenant, to)
            .with("SMTPGOV_FROM_TIER", from)
            .with("SMTPGOV_REASON", e.reason)
            .with("SMTPGOV_SCORE", score);
    };
    log::write(entry(log::Event::TierChange, "vm " + e.vm + ": " + from + " -> " + to + " (" + e.reason + ", score " + score + ")"));
    if (!ch.ticket) return;
    std::string lists;
    if (auto it = e.evidence.find("blocklists"); it != e.evidence.end() && it->is_array())
        for (const auto& b : *it)
            if (b.is_string()) lists += (lists.empty() ? "" : ", ") + b.get<std::string>();
    log::write(entry(log::Event::Ticket, "ticket: vm " + e.vm + " " + from + " -> " + to + " (" + e.reason + ", score " +
                                             score + (lists.empty() ? "" : "; blocklists: " + lists) + ")")
                   .with("SMTPGOV_BLOCKLISTS", lists));
}

}  // namespace

bool is_ticket(Tier from, Tier to) {
    auto severe = [](Tier t) { return t == Tier::Steered || t == Tier::Blocked; };
    return (severe(to) && to > from) || (severe(from) && to < from);
}


void Controller::write_tier(const std::string& id, Tier t) {
    t = tiers_.enforced_tier(t);  // steered with no proxy to take it: the fail mode's tier
    Status s = ok_status();
    if (const Vm* vm = vms_.vm(id)) {
        if (auto slot = vms_.slot_of(id)) s = enforcer_->set_vm(*slot, vm_policy_entry(vms_.policy(), *vm, t));
    } else if (const AutoVm* a = vms_.find_auto(id)) {
        s = enforcer_->set_auto(id, a->key,
                                t == Tier::Ok ? std::nullopt : std::optional(auto_policy_entry(vms_.policy(), t)));
    }
    if (!s) log::error("tier of " + id + ": " + s.error().message);
}

void Controller::announce(const Transition& t) {
    const uint64_t decided_ns = mono_ns();
    write_tier(t.vm, t.to);
    rep_dirty_ = true;
    TierChange ch;
    svc::Event& e = ch.event;
    e.vm = t.vm;
    e.from = t.from;
    e.to = t.to;
    e.score = t.score;
    e.reason = t.reason;
    if (const Vm* vm = vms_.vm(t.vm)) e.tenant = vm->tenant;
    if (VmRuntime* rt = vms_.runtime(t.vm)) {
        e.evidence = evidence(*rt);
        if (t.to > t.from && rt->trigger_ns) {
            // CLOCK_MONOTONIC both: the over-limit event that started this, and now
            e.evidence["trigger_ts_ns"] = rt->trigger_ns;
            e.evidence["decided_ts_ns"] = decided_ns;
            rt->trigger_ns = 0;
        }
    }
    ch.ticket = is_ticket(t.from, t.to);
    log_change(ch);
    for (const Subscriber& s : subscribers_) s(ch);
}

}  // namespace smtpgov::daemon
