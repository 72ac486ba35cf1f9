// The controller's side of the fleet (DESIGN.md "Fleet contract") and tenant-wide
// tiers: the fleet policy applied with the usual validation, shared records taken in
// (a migrated VM continues from its record; a pin set elsewhere holds here), what this
// host tells the fleet after each sweep, and each tenant's floor from the sum of its
// VMs' scores on every host. The exchange with etcd itself is svc/fleet_agent.
#include "daemon/controller.h"
#include "daemon/log.h"

namespace smtpgov::daemon {

using nlohmann::json;

namespace {

std::string first_problems(const std::vector<Problem>& ps) {
    std::string out;
    for (size_t i = 0; i < ps.size() && i < 3; ++i)
        out += (out.empty() ? "" : "; ") + ps[i].path + ": " + ps[i].reason;
    if (ps.size() > 3) out += "; and " + std::to_string(ps.size() - 3) + " more";
    return out;
}

}  // namespace

void Controller::fleet_event(const std::string& type, const std::string& reason, json evidence) {
    TierChange ch;
    ch.event.type = type;
    ch.event.reason = reason;
    ch.event.evidence = std::move(evidence);
    for (const Subscriber& s : subscribers_) s(ch);
}

Result<json> Controller::apply_fleet_policy(const json& doc, int64_t serial, int64_t revision,
                                            std::vector<fleet::Record> recs) {
    for (const fleet::Record& r : recs) fleet_.records[r.vm] = r;
    auto applied = apply_fleet_doc(doc, serial, revision);
    // Read whole after a start or a reconnect: what other writers changed meanwhile (a pin
    // set from another machine while this host could not reach etcd) holds for the VMs
    // already here too; a VM the policy brought has continued from its record (import_fleet).
    fleet_records(std::move(recs));
    return applied;
}

Result<json> Controller::apply_fleet_doc(const json& doc, int64_t serial, int64_t revision) {
    const json where{{"serial", serial}, {"revision", revision}, {"host", opts_.fleet_host}};
    ParseOutcome po = parse_policy(doc);
    Error refused{EINVAL, ""};
    if (!po.problems.empty()) {
        refused.message = "fleet policy serial " + std::to_string(serial) + " refused: " + first_problems(po.problems);
    } else if (auto r = apply_effective(*po.policy, true); !r) {
        refused.message = "fleet policy serial " + std::to_string(serial) + " not applied: " + r.error().message;
    } else {
        fleet_.serial = serial;
        fleet_.revision = revision;
        fleet_.applied_at_ms = clock_->wall_ms();
        fleet_event("fleet_policy_applied", "serial " + std::to_string(serial), where);
        return r;
    }
    fleet_.refused_serial = serial;
    fleet_.refused_reason = refused.message;
    log::error(refused.message + "; the policy in force stays");
    fleet_event("fleet_policy_refused", refused.message, where);
    return refused;
}

// A VM new to this host continues from its shared record: a blocked VM stays blocked
// from its first SYN here (the record is imported before the maps are written).
void Controller::import_fleet(Tiers& next, const std::vector<std::string>& added, std::vector<Transition>& out) const {
    if (fleet_.records.empty()) return;
    const int64_t now = clock_->now_ms();
    for (const std::string& id : added) {
        auto it = fleet_.records.find(id);
        if (it == fleet_.records.end()) continue;
        if (auto t = next.import(id, it->second.state, now, it->second.updated_at_ms)) out.push_back(std::move(*t));
    }
}

void Controller::fleet_records(std::vector<fleet::Record> recs) {
    const int64_t now = clock_->now_ms();
    for (fleet::Record& r : recs) {
        // Another writer wrote one of our VMs: its pin (set there) holds here unless one
        // was set or cleared here since it wrote, and its score counts (the higher wins:
        // fleet::resolve's rule).
        if (r.updated_by != opts_.fleet_host && vms_.vm(r.vm))
            if (auto t = tiers_.import(r.vm, r.state, now, r.updated_at_ms)) announce(*t);
        fleet_.records[r.vm] = std::move(r);
    }
}

void Controller::tenant_floors(int64_t now_ms) {
    const auto& th = vms_.policy().reputation.tenant_thresholds;
    const double hyst = vms_.policy().reputation.hysteresis;
    const double half_life = vms_.policy().reputation.half_life_s;
    std::map<std::string, double> sums;
    std::map<std::string, std::vector<std::string>> members;
    if (th) {
        for (const Vm& vm : vms_.policy().vms) {
            if (vm.tenant.empty()) continue;  // no tenant: judged alone
            sums[vm.tenant] += tiers_.score(vm.id, now_ms);
            members[vm.tenant].push_back(vm.id);
        }
        const int64_t wall = clock_->wall_ms();
        for (const auto& [id, r] : fleet_.records)
            if (members.count(r.tenant) && !vms_.vm(id)) sums[r.tenant] += fleet::score_at(r, wall, half_life);
    }
    std::map<std::string, Tier> floors;
    for (const auto& [tenant, sum] : sums) {
        auto cur = fleet_.tenant_floor.find(tenant);
        Tier f = fleet::tenant_floor(sum, *th, cur == fleet_.tenant_floor.end() ? Tier::Ok : cur->second, hyst);
        if (f != Tier::Ok) floors[tenant] = f;
        if (f != (cur == fleet_.tenant_floor.end() ? Tier::Ok : cur->second))
            log::notice("tenant " + tenant + ": VM scores sum to " + std::to_string(static_cast<int64_t>(sum)) +
                        ", every VM of it at least " + std::string(to_string(f)));
    }
    for (const Vm& vm : vms_.policy().vms) {
        auto f = floors.find(vm.tenant);
        const Tier want = f == floors.end() ? Tier::Ok : f->second;
        if (want == tiers_.reputation().floor(vm.id)) continue;
        if (auto t = tiers_.set_floor(vm.id, want, now_ms)) announce(*t);
    }
    fleet_.tenant_floor = std::move(floors);
}

Controller::FleetTick Controller::fleet_tick() {
    FleetTick t;
    const int64_t wall = clock_->wall_ms();
    const Policy& op = operator_policy();
    t.half_life_s = op.reputation.half_life_s;
    t.records.reserve(op.vms.size());
    for (const Vm& vm : op.vms) {
        fleet::Record r;
        r.vm = vm.id;
        r.tenant = vm.tenant;
        r.state = tiers_.shared(vm.id).value_or(Reputation::Shared{0, wall, Tier::Ok, wall, std::nullopt});
        r.tier = tiers_.tier(vm.id);
        r.updated_by = opts_.fleet_host;
        r.updated_at_ms = wall;
        t.records.push_back(std::move(r));
        t.tenants.insert(vm.tenant);
    }
    t.gone.swap(fleet_.gone);
    fleet::HostStatus& s = t.status;
    s.host = opts_.fleet_host;
    s.policy_serial = fleet_.serial;
    s.policy_revision = fleet_.revision;
    s.applied_at_ms = fleet_.applied_at_ms;
    s.refused_serial = fleet_.refused_serial;
    s.refused_reason = fleet_.refused_reason;
    s.vms = op.vms.size();
    const auto counts = tier_counts();
    for (size_t i = 0; i < counts.size(); ++i) s.tiers[i] = counts[i];
    s.last_sweep_ms = wall;
    if (address_gen_ != address_offered_gen_) {  // copied here, made into records on the agent's writer
        t.addresses = std::make_shared<const addrfleet::AddressState>(addrfleet::AddressState{history_, dnsbl_, addresses_recovered_});
        address_offered_gen_ = address_gen_;
    }
    return t;
}

}  // namespace smtpgov::daemon
