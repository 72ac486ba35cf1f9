#include "daemon/controller.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/glob.h"
#include "daemon/log.h"

namespace smtpgov::daemon {
namespace {

constexpr int64_t kReputationSaveMs = 10'000;  // score changes alone
constexpr int64_t kTierSaveMs = 1'000;         // tier changes

Result<Policy> load_policy_file(const std::string& path, const std::string& what) {
    std::ifstream in(path);
    if (!in) return Error::from_errno(what + " " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    ParseOutcome po = parse_policy_text(ss.str());
    if (!po.problems.empty()) {
        std::string msg = what + " " + path + " is invalid:";
        for (const auto& p : po.problems) msg += "\n  " + (p.path.empty() ? "/" : p.path) + ": " + p.reason;
        return Error{EINVAL, msg};
    }
    return std::move(*po.policy);
}

}  // namespace

Controller::Controller(const ControllerOptions& opts, const Clock& clock)
    : opts_(opts), clock_(&clock), started_ms_(clock.now_ms()), vms_(opts.max_vms, nullptr),
      tiers_(clock, ReputationConfig{}) {}

Controller::~Controller() = default;

Result<std::unique_ptr<Controller>> Controller::load(const ControllerOptions& opts, const Clock& clock) {
    std::unique_ptr<Controller> c(new Controller(opts, clock));
    // One controller per state dir: two daemons (say with different bpffs) must not
    // interleave their writes of the same files.
    c->state_lock_.reset(::open((opts.state_dir + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!c->state_lock_ || ::flock(c->state_lock_.get(), LOCK_EX | LOCK_NB) != 0)
        return Error::from_errno("lock " + opts.state_dir + " (is another smtpgovd using this state_dir?)");
    if (auto s = c->load_state(); !s) return s.error();
    auto ev = svc::EventLog::open(opts.state_dir);
    if (!ev) return ev.error();
    c->events_ = std::move(*ev);
    // The event log is the first subscriber: every change and ticket is on disk
    // before the webhook or metrics hear of it.
    c->subscribe([el = c->events_.get()](const TierChange& ch) {
        if (auto s = el->append(ch.event); !s) log::error("event log: " + s.error().message);
        if (!ch.ticket) return;
        svc::Event t = ch.event;
        t.type = "ticket";
        if (auto s = el->append(t); !s) log::error("event log: " + s.error().message);
    });
    return c;
}

// The persisted policy, else the config's policy file. A persisted policy that cannot
// be read is moved aside and the policy file used instead; with no policy file the
// start fails (the kernel keeps enforcing the last policy meanwhile).
Result<Policy> Controller::load_policy() const {
    const std::string persisted = opts_.state_dir + "/policy.json";
    if (std::filesystem::exists(persisted)) {
        auto p = load_policy_file(persisted, "persisted policy");
        if (p) {
            log::info("restored the persisted policy (" + std::to_string(p->vms.size()) + " VMs)");
            return p;
        }
        if (opts_.policy_file.empty())
            return Error::msg(p.error().message + "\n(the kernel keeps enforcing the last policy; restore " +
                              persisted + " or start with --policy FILE)");
        ::rename(persisted.c_str(), (persisted + ".corrupt").c_str());
        log::error(p.error().message + "\nmoved to " + persisted + ".corrupt; applying " + opts_.policy_file);
    }
    if (opts_.policy_file.empty()) {
        log::warning("no policy: every source gets the default limits until one is applied");
        return Policy{};
    }
    auto p = load_policy_file(opts_.policy_file, "policy");
    if (p) log::info("applying policy " + opts_.policy_file + " (" + std::to_string(p->vms.size()) + " VMs)");
    return p;
}

Status Controller::load_state() {
    auto policy = load_policy();
    if (!policy) return policy.error();
    auto saved_slots = read_state_file(opts_.state_dir + "/slots.json");
    if (!saved_slots) return saved_slots.error();
    SlotTable slots(opts_.max_vms);
    if (*saved_slots) {
        if (auto t = SlotTable::from_json(**saved_slots, opts_.max_vms)) slots = std::move(*t);
        else log::error(t.error().message + ": ignored; slots come from the pinned maps");
    }
    vms_.restore_slots(std::move(slots));
    auto saved_rep = read_state_file(opts_.state_dir + "/reputation.json");
    if (!saved_rep) return saved_rep.error();
    tiers_ = Tiers(*clock_, policy->reputation);
    if (*saved_rep) {
        if (auto r = Reputation::load(**saved_rep, *clock_, policy->reputation)) tiers_ = Tiers(std::move(*r));
        else log::error("reputation.json: " + r.error().message + ": ignored; tiers come from the pinned maps");
    }
    pending_ = std::move(*policy);
    if (auto s = load_address_history(); !s) return s;
    if (auto s = load_dnsbl(); !s) return s;
    return load_hypervisor_map();
}

Status Controller::start(Maps& maps, Host& host) {
    maps_ = &maps;
    host_ = &host;
    vms_.set_ifname([h = host_](uint32_t ifindex) { return h->ifname(ifindex); });
    enforcer_.emplace(maps);
    sweeper_.emplace(maps, vms_, tiers_, [this](const sg_auto_key& k) { return scored(k); });
    auto id_of = [this](const sg_auto_key& k) {
        std::string name = host_->ifname(k.ifindex);
        return name.empty() ? name : auto_id(k, name);
    };
    if (auto s = enforcer_->adopt_auto_policies(id_of); !s) return s;
    // Escalated unregistered interfaces that went away while no daemon ran: held from now.
    for (const std::string& id : tiers_.reputation().vms())
        if (id.starts_with("if:") && tiers_.tier(id) != Tier::Ok && !host_->ifindex(id.substr(3)))
            vms_.hold(id, mono_ns());
    Policy op = std::move(*pending_);
    pending_.reset();
    hold_rule_vms_of_last_run(op);
    std::set<std::string> rule_ids;
    Policy p = effective(op, rule_ids);
    recover_from_maps(p);
    auto slots = vms_.slots_for(p);
    if (!slots) return slots.error();
    std::vector<Transition> changes;
    Tiers next = tiers_.with_policy(p, {}, changes);
    MapPlan mp = plan(p, *slots, next);
    mp.reset = vms_.given_to_new(*slots);
    mp.deactivate = vms_.freed(*slots);
    if (auto s = enforcer_->apply(mp); !s) return Error{s.error().errnum, "write policy to maps: " + s.error().message};
    adopt(std::move(p), std::move(*slots), std::move(next), mp.reset, changes);
    rule_ids_ = std::move(rule_ids);
    return persist_policy(op, vms_.slots());
}

PlanInputs Controller::plan_inputs(const Policy& p, const SlotTable& slots) const {
    PlanInputs in;
    in.policy = &p;
    in.slots = &slots;
    in.ifindex_of = [this](const std::string& name) { return host_->ifindex(name); };
    in.is_gateway = [this](const std::string& name) { return name_matches(opts_.gateway_interfaces, name); };
    in.vm_of_iface = [owners = iface_owners(p)](const std::string& name) {
        auto it = owners->find(name);
        return it == owners->end() ? std::string() : it->second;
    };
    return in;
}

MapPlan Controller::plan(const Policy& p, const SlotTable& slots, const Tiers& tiers) const {
    PlanInputs in = plan_inputs(p, slots);
    in.tier_of = [&tiers](const std::string& id) { return tiers.enforced(id); };
    in.steering = {tiers.steering(Family::V4), tiers.steering(Family::V6)};
    in.governed_ifaces = host_->governed();
    return plan_maps(in);
}

bool Controller::scored(const sg_auto_key& k) const {
    if (k.family != 0) return true;
    auto it = enforcer_->current().ifaces.find(k.ifindex);
    return it == enforcer_->current().ifaces.end() || !(it->second.flags & SG_IFACE_GATEWAY);
}

Result<nlohmann::json> Controller::apply_policy(const Policy& neu) { return apply_effective(neu, true); }

// The operator's policy `op` with the VMs interfaces name now (identity.cpp) goes in
// force, all or nothing. operator_change: policy apply (policy.json is rewritten and the
// result tells what changed); else only which interface carries which VM changed.
Result<nlohmann::json> Controller::apply_effective(const Policy& op, bool operator_change) {
    std::set<std::string> rule_ids;
    const Policy neu = effective(op, rule_ids);
    PolicyDiff d = diff(vms_.policy(), neu);
    auto slots = vms_.slots_for(neu);
    if (!slots) return slots.error();
    std::vector<Transition> changes;
    Tiers next = tiers_.with_policy(neu, d.removed, changes);
    import_fleet(next, d.added, changes);
    MapPlan mp = plan(neu, *slots, next);
    mp.reset = vms_.given_to_new(*slots);
    mp.deactivate = vms_.freed(*slots);
    // what the operator changed, rule VMs aside
    const PolicyDiff shown = rule_ids_.empty() && rule_ids.empty() ? d : diff(operator_policy(), op);
    // On disk before the maps change: an apply that answers ok survives a crash, and a
    // failed write changes nothing.
    if (auto s = persist_policy(op, *slots, operator_change); !s)
        return Error{s.error().errnum, "nothing changed, the old policy stays in force: " + s.error().message};
    if (auto s = commit_maps(mp, d.ports_changed ? &neu.smtp_ports : nullptr); !s) {
        std::string msg = s.error().message;
        if (auto u = persist_policy(operator_policy(), vms_.slots(), operator_change); !u)
            msg += "; restoring policy.json failed too: " + u.error().message;
        return Error{s.error().errnum, msg};
    }
    // Committed in the kernel: now the controller's own view follows.
    sweeper_->forget_slots(mp.deactivate);
    conns().purge_slots(mp.reset, mono_ns());  // the old owners' connections are not the new VMs'
    adopt(neu, std::move(*slots), std::move(next), mp.reset, changes);
    rule_ids_ = std::move(rule_ids);
    fleet_.gone.insert(fleet_.gone.end(), d.removed.begin(), d.removed.end());
    (void)persist_reputation();  // logged; retried when due
    ::malloc_trim(0);
    if (!operator_change) return nlohmann::json::object();
    log::write(log::Entry(log::Level::Notice, log::Event::PolicyApplied,
                          "policy applied: " + std::to_string(shown.added.size()) + " added, " +
                              std::to_string(shown.removed.size()) + " removed, " +
                              std::to_string(shown.changed.size()) + " changed" +
                              (shown.ports_changed ? ", smtp_ports changed" : "")));
    return to_json(shown);
}

// Everything that can fail before the maps change comes first (loading programs for
// new ports); a failed program swap puts the old map contents back.
Status Controller::commit_maps(const MapPlan& mp, const std::vector<uint16_t>* new_ports) {
    if (new_ports)
        if (auto s = host_->load_ports(*new_ports); !s)
            return Error{s.error().errnum, "load programs for the new smtp_ports: " + s.error().message};
    const MapPlan before = enforcer_->current();
    if (auto s = enforcer_->apply(mp); !s) {
        if (new_ports) host_->drop_ports();
        return Error{s.error().errnum, "maps unchanged, the old policy stays in force: " + s.error().message};
    }
    if (!new_ports) return ok_status();
    if (auto s = host_->swap_ports(); !s) {
        std::string msg = "swap programs: " + s.error().message;
        if (auto undo = enforcer_->apply(before); !undo) msg += "; restoring the old maps failed too: " + undo.error().message;
        host_->drop_ports();
        return Error{s.error().errnum, msg};
    }
    log::notice("programs upgraded in place for smtp_ports change");
    return ok_status();
}

void Controller::adopt(Policy p, SlotTable slots, Tiers tiers, const std::set<uint32_t>& reset,
                       const std::vector<Transition>& changes) {
    vms_.adopt(std::move(p), std::move(slots), reset);
    note_holders();  // the address history follows every policy in force
    dnsbl_refresh();
    tiers_ = std::move(tiers);
    for (const Transition& t : changes) announce(t);
}

void Controller::evaluate(int64_t now_ms) {
    for (const Transition& t : tiers_.evaluate(now_ms)) announce(t);
    persist_if_due(now_ms);
}

void Controller::evaluate(const std::vector<std::string>& ids, int64_t now_ms) {
    for (const Transition& t : tiers_.evaluate(ids, now_ms)) announce(t);
    persist_if_due(now_ms);
}

// Tier changes reach reputation.json within a second, coalesced: a burst of changes
// costs one write. A restart in between loses no tier: start() recovers escalations
// from the pinned maps.
void Controller::persist_if_due(int64_t now_ms) {
    if (rep_dirty_ && now_ms - rep_saved_ms_ >= kTierSaveMs) (void)persist_reputation();
}

void Controller::sweep() {
    const uint64_t t0 = mono_ns();
    const int64_t now_ms = clock_->now_ms();
    if (auto s = sweeper_->sweep(t0, now_ms); !s) {
        log::error(s.error().message);
        return;
    }
    const uint64_t t_read = mono_ns();
    release_holds(t0);
    release_rule_holds(t0);
    evaluate(now_ms);
    tenant_floors(now_ms);
    if (sweeper_->take_dirty()) score_dirty_ = true;
    if (score_dirty_ && now_ms - rep_saved_ms_ >= kReputationSaveMs) (void)persist_reputation();
    sweep_connections(t0);
    ++sweeps_;
    const uint64_t t_eval = mono_ns();
    if (on_snapshot) {
        Snapshot snap = snapshot(/*detail=*/false);  // the exporter needs no addresses
        snap.sweep_seconds = static_cast<double>(mono_ns() - t0) / 1e9;
        on_snapshot(std::move(snap));
    }
    last_sweep_ms_ = static_cast<double>(mono_ns() - t0) / 1e6;
    log::debug("sweep: " + std::to_string(vms_.slots().high_water()) + " slots, " +
               std::to_string(sweeper_->auto_entries()) + " auto entries, " + std::to_string(last_sweep_ms_) +
               " ms (read+feed " + std::to_string((t_read - t0) / 1000) + " us, evaluate " +
               std::to_string((t_eval - t_read) / 1000) + " us)");
}

void Controller::on_event(const sg_event& ev) {
    const int64_t now_ms = clock_->now_ms();
    auto out = sweeper_->on_event(ev, mono_ns(), now_ms);
    if (!out.blocklist.empty() && on_blocklist) on_blocklist(out.blocklist);
    if (!out.over_limit.empty()) evaluate({out.over_limit}, now_ms);  // this VM only: bounded per record
}

void Controller::hot_tick() {
    const int64_t now_ms = clock_->now_ms();
    sweeper_->hot_tick(mono_ns(), now_ms);
    evaluate(sweeper_->hot_ids(), now_ms);
}

std::array<size_t, 4> Controller::tier_counts() const {
    std::array<size_t, 4> out{};
    for (const Vm& vm : vms_.policy().vms) ++out[static_cast<size_t>(tiers_.tier(vm.id))];
    for (const auto& [id, a] : vms_.autos()) ++out[static_cast<size_t>(tiers_.tier(id))];
    return out;
}

Status Controller::persist_policy(const Policy& p, const SlotTable& slots, bool policy_file) {
    if (auto s = write_file_atomic(opts_.state_dir + "/slots.json", slots.to_json().dump() + "\n"); !s) return s;
    if (!policy_file) return ok_status();
    return write_file_atomic(opts_.state_dir + "/policy.json", to_json(p).dump(2) + "\n");
}

// A failed write is logged and retried (the dirty flags stay) at the next due time.
Status Controller::persist_reputation() {
    rep_saved_ms_ = clock_->now_ms();
    auto s = write_file_atomic(opts_.state_dir + "/reputation.json", tiers_.reputation().save().dump());
    if (!s) {
        log::error("reputation.json: " + s.error().message + " (retried)");
        rep_dirty_ = true;
        return s;
    }
    rep_dirty_ = score_dirty_ = false;
    return ok_status();
}

}  // namespace smtpgov::daemon
