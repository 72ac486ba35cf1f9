// Connections and steered flows: the connection table's garbage collection (a bounded
// step each sweep), `flow original-dst`, and the policy service's answers (Postfix's
// FILTER to the original destination, and the proxy's spam verdicts charged to the VM
// that owns the steered connection).
#include "core/clock.h"
#include "daemon/controller.h"
#include "daemon/log.h"

namespace smtpgov::daemon {
namespace {

namespace pol = svc::policy;

std::string conn_state(const sg_conn& c) { return c.state == SG_CONN_ESTABLISHED ? "established" : "syn_sent"; }

Endpoint proxy_of(const sg_conn_key& k, const sg_conn& c) {
    sg_conn_key p = k;
    std::memcpy(p.dst_addr, c.proxy_addr, sizeof p.dst_addr);
    p.dst_port = c.proxy_port;
    return original_dst(p);
}

double seconds_since(uint64_t then_ns, uint64_t now_ns) {
    return then_ns < now_ns ? static_cast<double>(now_ns - then_ns) / 1e9 : 0.0;
}

}  // namespace

ConnTable& Controller::conns() {
    if (!conns_) conns_.emplace(*maps_);
    return *conns_;
}

// One bounded step of the connection GC, and sg_runtime as Tiers wants it (a write that
// failed is retried here).
void Controller::sweep_connections(uint64_t now_ns) {
    if (auto r = conns().step(now_ns); !r) log::error("connection table: " + r.error().message);
    else if (*r) log::debug("connection table: " + std::to_string(*r) + " idle entries deleted");
    const auto steering = std::array<bool, 2>{tiers_.steering(Family::V4), tiers_.steering(Family::V6)};
    if (auto s = enforcer_->set_runtime(runtime_entry(vms_.policy(), steering)); !s) log::error(s.error().message);
}

// The VM a connection belongs to: a registered VM by slot, or an auto entry; "" when its
// owner is no longer known (the VM left the policy) or is a gateway's aggregate cap.
std::string Controller::owner_of(const sg_conn& c) const {
    if (c.slot != SG_SLOT_NONE) {
        const Vm* vm = vms_.at_slot(c.slot);
        return vm ? vm->id : "";
    }
    if (!scored(c.owner_key)) return "";
    for (const auto& [id, a] : vms_.autos())
        if (std::memcmp(&a.key, &c.owner_key, sizeof a.key) == 0) return id;
    return "";
}

svc::Reply Controller::cmd_flow_original_dst(const nlohmann::json& req) {
    const std::string addr = req.contains("addr") && req["addr"].is_string() ? req["addr"].get<std::string>() : "";
    auto client = Endpoint::parse(addr);
    if (!client) return svc::error_reply("usage", "addr must be ADDR:PORT or [V6]:PORT: " + client.error().message);
    const uint64_t now = mono_ns();
    auto flow = conns().steered_flow(*client, now);
    if (!flow) return svc::error_reply("runtime", flow.error().message);
    if (!*flow) return svc::error_reply("not_found", "no steered flow for " + client->to_string());
    const auto& [key, c] = **flow;
    const std::string vm = owner_of(c);
    return svc::ok_reply({{"original", original_dst(key).to_string()},
                          {"client", client->to_string()},
                          {"vm", vm.empty() ? nlohmann::json(nullptr) : nlohmann::json(vm)},
                          {"proxy", proxy_of(key, c).to_string()},
                          {"state", conn_state(c)},
                          {"age_s", seconds_since(c.created_ns, now)},
                          {"idle_s", seconds_since(c.last_ns, now)}});
}

// One request of the policy service (on the loop thread): the action to answer.
std::string Controller::policy_answer(const pol::Request& r) {
    const pol::Query q = pol::interpret(r);
    if (q.kind == pol::Query::Kind::Other) return "DUNNO";
    if (!q.problem.empty()) return q.kind == pol::Query::Kind::Access ? "DUNNO" : "REJECT " + q.problem;
    auto flow = conns().steered_flow(q.client, mono_ns());
    if (!flow) {
        log::error("policy service: " + flow.error().message);
        return "DEFER_IF_PERMIT smtpgov cannot read its connection table";
    }
    if (q.kind == pol::Query::Kind::Access)
        return *flow ? pol::filter_action(original_dst((*flow)->key)) : "DUNNO";
    if (!*flow) return "REJECT no live steered connection from " + q.client.to_string();
    if (!q.spam) return "OK";
    return spam_verdict(q.client, **flow);
}

// A spam verdict of the proxy on a live steered connection: a reputation signal for the
// VM that opened it (policy weight spam_report), at most ReportLedger::kPerConn per
// connection.
std::string Controller::spam_verdict(const Endpoint& client, const ConnTable::Flow& f) {
    const std::string id = owner_of(f.conn);
    if (id.empty()) return "REJECT the VM of " + client.to_string() + " is no longer governed";
    if (!reports_.take(f.key, f.conn.created_ns))
        return "REJECT at most " + std::to_string(ReportLedger::kPerConn) + " spam reports per connection";
    const int64_t now_ms = clock_->now_ms();
    tiers_.observe(id, Signal::SpamReport, 1, now_ms);
    score_dirty_ = true;
    log::info("policy service: spam verdict for " + id + " (client " + client.to_string() + ", to " +
              original_dst(f.key).to_string() + ")");
    evaluate(std::vector<std::string>{id}, now_ms);
    return "OK";
}

// What steering adds to a VM's view: the tier enforced (and its limits) and its live
// connections.
void Controller::steer_view(VmView& v) const {
    v.enforced = tiers_.enforced_tier(v.tier);
    if (v.enforced != v.tier) {
        const Vm* vm = v.auto_entry ? nullptr : vms_.vm(v.id);
        const LimitPair l = vm ? limits_for(vms_.policy(), *vm, v.enforced) : default_limits_for(vms_.policy(), v.enforced);
        v.limit_rate = l.rate;
        v.limit_burst = l.burst;
    }
    if (!conns_) return;
    if (!v.auto_entry) v.conn_tracked = conns_->live(v.slot);
    else if (const AutoVm* a = vms_.find_auto(v.id)) v.conn_tracked = conns_->live(a->key);
}

ConnSummary Controller::conn_summary() const {
    if (!conns_) return {};
    return {conns_->counts().tracked, conns_->counts().steered, conns_->deleted(), conns_->passes()};
}

std::vector<ProxyView> Controller::proxy_views() const {
    std::vector<ProxyView> out;
    for (Family f : {Family::V4, Family::V6})
        if (auto e = tiers_.proxy(f)) out.push_back({f == Family::V4 ? "ipv4" : "ipv6", e->to_string(), tiers_.proxy_up(f)});
    return out;
}

// status: {"proxy": {fail_mode, steering, families: [{family, address, up}]}, "connections": {...}}
nlohmann::json Controller::steering_status() const {
    nlohmann::json fams = nlohmann::json::array();
    for (const ProxyView& p : proxy_views()) fams.push_back({{"family", p.family}, {"address", p.address}, {"up", p.up}});
    const ConnSummary c = conn_summary();
    return {{"proxy", {{"fail_mode", to_string(tiers_.fail_mode())}, {"steering", tiers_.steering_any()},
                       {"families", fams}}},
            {"connections", {{"tracked", c.tracked}, {"steered", c.steered}, {"deleted", c.deleted},
                             {"passes", c.passes}}}};
}

}  // namespace smtpgov::daemon
