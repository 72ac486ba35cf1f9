// The control socket's commands (docs/internals.md): one table of name, arguments,
// whether it changes state, and handler. Reads answer from what the controller holds
// (vm.show adds a fresh counter reading) and never decide a tier.
#include <algorithm>

#include "daemon/controller.h"
#include "daemon/log.h"
#include "svc/commands.h"

namespace smtpgov::daemon {

using nlohmann::json;

struct Controller::Command {
    std::string_view name;
    std::string_view args;  // what it takes (docs/internals.md)
    svc::Reply (Controller::*handler)(const json& req);
};

namespace {

// Optional non-negative integer argument: nullopt when absent or null.
Result<std::optional<uint64_t>> uint_arg(const json& req, const char* key) {
    if (!req.contains(key) || req[key].is_null()) return std::optional<uint64_t>{};
    if (!req[key].is_number_unsigned() && !(req[key].is_number_integer() && req[key].get<int64_t>() >= 0))
        return Error::msg(std::string(key) + " must be a non-negative integer");
    return std::optional<uint64_t>(req[key].get<uint64_t>());
}

std::string str_arg(const json& req, const char* key) {
    return req.contains(key) && req[key].is_string() ? req[key].get<std::string>() : "";
}

json vm_json(const VmView& v) {
    json pin = nullptr;
    if (v.pin) {
        pin = {{"tier", to_string(v.pin->tier)}};
        if (v.pin->until_unix_ms) pin["until_unix"] = *v.pin->until_unix_ms / 1000;
    }
    json syn = json::object(), replies = json::object();
    for (int i = 0; i < SG_VERDICT_MAX; ++i) syn[std::string(kVerdictNames[i])] = v.syn[i];
    for (int i = 0; i < SG_REPLY_MAX; ++i) replies[std::string(kReplyNames[i])] = v.replies[i];
    json out{{"id", v.id},
            {"tenant", v.tenant},
            {"auto", v.auto_entry},
            {"named_by", v.named_by},
            {"slot", v.slot == SG_SLOT_NONE ? json(nullptr) : json(v.slot)},
            {"interface", v.interface},
            {"addresses", v.addresses},
            {"tier", to_string(v.tier)},
            {"pin", pin},
            {"score", v.score},
            {"rate", v.rate},
            {"limits", {{"rate", v.limit_rate}, {"burst", v.limit_burst}}},
            {"spoofed", v.spoofed},
            {"rst_sent", v.rst_sent},
            {"syn", syn},
            {"replies", replies},
            {"enforced", to_string(v.enforced)},
            {"connections", {{"tracked", v.conn_tracked}, {"evicted", v.conn_evicted}}}};
    if (!v.interfaces.empty()) out["interfaces"] = v.interfaces;
    if (v.named_by == "libvirt") out["libvirt"] = {{"domain", v.libvirt_domain}, {"uuid", v.libvirt_uuid}};
    return out;
}

// The policy argument parsed, or the reply that refuses it.
std::variant<Policy, svc::Reply> policy_arg(const json& req, std::string_view cmd) {
    if (!req.contains("policy") || !req["policy"].is_object())
        return svc::error_reply("usage", std::string(cmd) + " needs a \"policy\" object");
    ParseOutcome po = parse_policy(req["policy"]);
    if (!po.problems.empty())
        return svc::error_reply("validation", "policy rejected: " + std::to_string(po.problems.size()) +
                                                  " problem(s); the running policy stays", po.problems);
    return std::move(*po.policy);
}

}  // namespace

const std::vector<Controller::Command>& Controller::commands() {
    static const std::vector<Command> table{
        {svc::cmd::kStatus, "", &Controller::cmd_status},
        {svc::cmd::kPolicyValidate, "policy", &Controller::cmd_policy_validate},
        {svc::cmd::kPolicyApply, "policy", &Controller::cmd_policy_apply},
        {svc::cmd::kPolicyGet, "", &Controller::cmd_policy_get},
        {svc::cmd::kVmList, "tier?, tenant?", &Controller::cmd_vm_list},
        {svc::cmd::kVmShow, "id", &Controller::cmd_vm_show},
        {svc::cmd::kVmSetTier, "id, tier, for_s?", &Controller::cmd_vm_set_tier},
        {svc::cmd::kVmClear, "id", &Controller::cmd_vm_clear},
        {svc::cmd::kEvents, "follow?, limit?", &Controller::cmd_events},
        {svc::cmd::kReport, "kind, id, count?", &Controller::cmd_report},
        {svc::cmd::kFlowOriginalDst, "addr", &Controller::cmd_flow_original_dst},
        {svc::cmd::kHypervisorUpdate, "source, full, domains, gone", &Controller::cmd_hypervisor_update},
        {svc::cmd::kReportArf, "source_ip, arrival_unix, feedback_type?, reporting_mta?", &Controller::cmd_report_arf},
        {svc::cmd::kIpShow, "addr", &Controller::cmd_ip_show},
        {svc::cmd::kIpCheck, "addr", &Controller::cmd_ip_check},
    };
    return table;
}

svc::Reply Controller::handle(const json& req) {
    if (!req.is_object()) return svc::error_reply("usage", "request must be a JSON object");
    const std::string name = str_arg(req, "cmd");
    if (name.empty()) return svc::error_reply("usage", "request needs a \"cmd\"");
    for (const Command& c : commands()) {
        if (c.name != name) continue;
        if (svc::cmd::changes_state(c.name)) log::info("control: " + req.dump());  // changes, in the journal
        return (this->*c.handler)(req);
    }
    std::string known;
    for (const Command& c : commands())
        known += (known.empty() ? "" : ", ") + std::string(c.name) + (c.args.empty() ? "" : "(" + std::string(c.args) + ")");
    return svc::error_reply("usage", "unknown command \"" + name + "\" (commands: " + known + ")");
}

// The VM after a change; a change that is in force but could not be saved says so.
svc::Reply Controller::changed_vm_reply(const std::string& id) {
    if (auto s = persist_reputation(); !s)
        return svc::error_reply("runtime", "in force for " + id + ", but not saved (retried): " + s.error().message);
    return vm_reply(id);
}

svc::Reply Controller::vm_reply(const std::string& id) const {
    auto v = view(id);
    return v ? svc::ok_reply(vm_json(*v)) : svc::error_reply("not_found", "no VM " + id);
}

svc::Reply Controller::cmd_status(const json&) { return svc::ok_reply(status_json()); }

svc::Reply Controller::cmd_policy_get(const json&) {
    return svc::ok_reply(to_json(rule_ids_.empty() ? vms_.policy() : operator_policy()));
}

svc::Reply Controller::cmd_policy_validate(const json& req) {
    auto p = policy_arg(req, svc::cmd::kPolicyValidate);
    if (auto* refused = std::get_if<svc::Reply>(&p)) return std::move(*refused);
    return svc::ok_reply({{"problems", json::array()}});
}

svc::Reply Controller::cmd_policy_apply(const json& req) {
    if (in_fleet())
        return svc::error_reply("usage", "this host (" + opts_.fleet_host +
                                             ") takes its policy from the fleet: use smtpgovctl fleet policy apply");
    auto p = policy_arg(req, svc::cmd::kPolicyApply);
    if (auto* refused = std::get_if<svc::Reply>(&p)) {
        log::write(log::Entry(log::Level::Warning, log::Event::PolicyRefused,
                              "policy.apply refused: " + refused->body.value("error", std::string())));
        return std::move(*refused);
    }
    auto r = apply_policy(std::get<Policy>(p));
    if (!r) {
        log::write(log::Entry(log::Level::Error, log::Event::PolicyRefused, "policy.apply: " + r.error().message));
        return svc::error_reply(r.error().errnum == ENOSPC ? "validation" : "runtime", r.error().message);
    }
    return svc::ok_reply(*r);
}

svc::Reply Controller::cmd_vm_list(const json& req) {
    const std::string tier = str_arg(req, "tier"), tenant = str_arg(req, "tenant");
    if (!tier.empty() && !parse_tier(tier)) return svc::error_reply("usage", "unknown tier \"" + tier + "\"");
    Snapshot snap = snapshot(/*detail=*/true);
    std::vector<const VmView*> pick;
    for (const VmView& v : snap.vms)
        if ((tier.empty() || to_string(v.tier) == tier) && (tenant.empty() || v.tenant == tenant)) pick.push_back(&v);
    std::stable_sort(pick.begin(), pick.end(), [](const VmView* a, const VmView* b) { return a->rate > b->rate; });
    json out = json::array();
    for (const VmView* v : pick) out.push_back(vm_json(*v));
    return svc::ok_reply(out);
}

svc::Reply Controller::cmd_vm_show(const json& req) {
    const std::string id = str_arg(req, "id");
    if (id.empty()) return svc::error_reply("usage", "vm.show needs an \"id\"");
    auto v = view(id);
    if (!v) return svc::error_reply("not_found", "no VM " + id);
    // A fresh reading of this VM's counters, shown and not fed: reads decide nothing.
    if (auto fresh = sweeper_->read(id)) {
        for (int i = 0; i < SG_VERDICT_MAX; ++i) v->syn[i] = fresh->syn[i];
        for (int i = 0; i < SG_REPLY_MAX; ++i) v->replies[i] = fresh->replies[i];
        v->spoofed = fresh->spoofed;
        v->rst_sent = fresh->rst_sent;
    }
    json j = vm_json(*v);
    j["tickets"] = events_->recent(10, id);
    j["complaints"] = history_.complaints_against(id);  // feedback-loop complaints (addresses.cpp)
    j["dnsbl"] = dnsbl_of_vm(id);                        // its addresses listed now (dnsbl.cpp)
    return svc::ok_reply(j);
}

svc::Reply Controller::cmd_vm_set_tier(const json& req) {
    const std::string id = str_arg(req, "id");
    if (id.empty()) return svc::error_reply("usage", "vm.set_tier needs an \"id\"");
    auto tier = parse_tier(str_arg(req, "tier"));
    if (!tier) return svc::error_reply("usage", "tier must be ok, throttled, steered or blocked");
    const int64_t now_ms = clock_->now_ms();
    std::optional<int64_t> until;
    if (req.contains("for_s") && !req["for_s"].is_null()) {
        if (!req["for_s"].is_number() || !(req["for_s"].get<double>() > 0) ||
            req["for_s"].get<double>() > svc::cmd::kMaxPinSeconds)
            return svc::error_reply("usage", "for_s must be a positive number of seconds, at most 10 years");
        until = now_ms + static_cast<int64_t>(req["for_s"].get<double>() * 1000);
    }
    if (!view(id))
        return svc::error_reply("not_found", "no VM " + id + (in_fleet() ? " on this host (smtpgovctl fleet vm set-tier "
                                                                           "pins a VM on whichever host enforces it)"
                                                                         : ""));
    announce(tiers_.set_pin(id, *tier, until, now_ms));
    return changed_vm_reply(id);
}

svc::Reply Controller::cmd_vm_clear(const json& req) {
    const std::string id = str_arg(req, "id");
    if (id.empty()) return svc::error_reply("usage", "vm.clear needs an \"id\"");
    if (!view(id)) return svc::error_reply("not_found", "no VM " + id);
    const int64_t now_ms = clock_->now_ms();
    if (auto t = tiers_.clear_pin(id, now_ms)) announce(*t);
    evaluate(now_ms);
    return changed_vm_reply(id);
}

svc::Reply Controller::cmd_report(const json& req) {
    const std::string id = str_arg(req, "id"), kind = str_arg(req, "kind");
    if (id.empty()) return svc::error_reply("usage", "report needs an \"id\"");
    if (kind != "spam" && kind != "complaint") return svc::error_reply("usage", "kind must be spam or complaint");
    auto count = uint_arg(req, "count");
    if (!count) return svc::error_reply("usage", count.error().message);
    const uint64_t n = count->value_or(1);
    if (n == 0) return svc::error_reply("usage", "count must be at least 1");
    if (!view(id)) return svc::error_reply("not_found", "no VM " + id);
    const int64_t now_ms = clock_->now_ms();
    tiers_.observe(id, kind == "spam" ? Signal::SpamReport : Signal::Complaint, static_cast<double>(n), now_ms);
    evaluate(now_ms);
    return changed_vm_reply(id);
}

svc::Reply Controller::cmd_events(const json& req) {
    auto limit = uint_arg(req, "limit");
    if (!limit) return svc::error_reply("usage", limit.error().message);
    if (req.contains("follow") && !req["follow"].is_boolean() && !req["follow"].is_null())
        return svc::error_reply("usage", "follow must be true or false");
    if (req.contains("follow") && req["follow"].is_boolean() && req["follow"].get<bool>()) return svc::follow_events_reply(*events_);
    return svc::ok_reply(events_->recent(limit->value_or(100)));
}

}  // namespace smtpgov::daemon
