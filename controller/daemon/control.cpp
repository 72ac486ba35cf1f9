// The control socket's commands (docs/internals.md table). Requests arrive on the
// server's worker threads and are answered on the loop thread.
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "daemon/daemon.h"
#include "daemon/log.h"

namespace smtpgov::daemon {
namespace {

using nlohmann::json;

json counters_json(const VmView& v) {
    json syn = json::object(), replies = json::object();
    for (int i = 0; i < SG_VERDICT_MAX; ++i) syn[std::string(kVerdictNames[i])] = v.syn[i];
    for (int i = 0; i < SG_REPLY_MAX; ++i) replies[std::string(kReplyNames[i])] = v.replies[i];
    return {{"syn", syn}, {"replies", replies}};
}

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

}  // namespace

svc::Reply Daemon::submit(const json& req) {
    std::future<svc::Reply> answer;
    {
        std::lock_guard lock(queue_mu_);
        if (closing_) return svc::error_reply("runtime", "smtpgovd is shutting down");
        queue_.push_back(Pending{req, {}});
        answer = queue_.back().reply.get_future();
    }
    uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof(one)) != sizeof(one)) return svc::error_reply("runtime", "cannot wake the daemon loop");
    if (answer.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
        return svc::error_reply("runtime", "smtpgovd did not answer within 30 s");
    return answer.get();
}

void Daemon::drain_commands() {
    std::deque<Pending> batch;
    {
        std::lock_guard lock(queue_mu_);
        batch.swap(queue_);
    }
    for (Pending& p : batch) {
        try {
            p.reply.set_value(dispatch(p.request));
        } catch (const std::exception& e) {
            log::error(std::string("control request failed: ") + e.what());
            p.reply.set_value(svc::error_reply("runtime", e.what()));
        }
    }
}

json Daemon::vm_json(const VmView& v) const {
    json pin = nullptr;
    if (v.pin) {
        pin = {{"tier", to_string(v.pin->tier)}};
        if (v.pin->until_unix_ms) pin["until_unix"] = *v.pin->until_unix_ms / 1000;
    }
    json j = {{"id", v.id},
              {"tenant", v.tenant},
              {"auto", v.auto_entry},
              {"slot", v.slot == SG_SLOT_NONE ? json(nullptr) : json(v.slot)},
              {"interface", v.interface},
              {"addresses", v.addresses},
              {"tier", to_string(v.tier)},
              {"pin", pin},
              {"score", v.score},
              {"rate", v.rate},
              {"limits", {{"rate", v.limit_rate}, {"burst", v.limit_burst}}},
              {"spoofed", v.spoofed},
              {"rst_sent", v.rst_sent}};
    j.update(counters_json(v));
    return j;
}

json Daemon::status_json() {
    json ifaces = json::array();
    for (const auto& s : attacher_->interfaces()) {
        json i = {{"name", s.name}, {"ifindex", s.ifindex}, {"mode", s.mode}, {"attached", s.attached},
                  {"xdp_via", s.xdp_via}, {"tc_via", s.tc_via}, {"adopted", s.adopted},
                  {"xdp_link_id", s.xdp_link_id}, {"tc_link_id", s.tc_link_id},
                  {"xdp_prog_id", s.xdp_prog_id}, {"tc_prog_id", s.tc_prog_id}};
        if (!s.error.empty()) i["error"] = s.error;
        ifaces.push_back(std::move(i));
    }
    json tiers = {{"ok", 0}, {"throttled", 0}, {"steered", 0}, {"blocked", 0}};
    size_t n = 0;
    auto count = [&](const std::string& id) {
        tiers[std::string(to_string(rep_->tier(id)))] = tiers[std::string(to_string(rep_->tier(id)))].get<int>() + 1;
        ++n;
    };
    for (const Vm& vm : policy_.vms) count(vm.id);
    for (const auto& [id, a] : autos_) count(id);
    json datapath = json::object();
    for (int i = 0; i < SG_RES_MAX; ++i) datapath[std::string(kResultNames[i])] = results_[i];
    json maps = json::object();
    for (const MapFill& m : map_fill()) maps[m.name] = {{"used", m.used}, {"max", m.max}};
    return {{"version", SMTPGOV_VERSION},
            {"uptime_s", (clock_.now_ms() - started_ms_) / 1000},
            {"xdp_mode", cfg_.xdp_mode},
            {"interfaces", ifaces},
            {"vms", n},
            {"tiers", tiers},
            {"sweep", {{"interval_ms", cfg_.sweep_interval_ms}, {"last_ms", last_sweep_ms_}, {"count", sweeps_}}},
            {"datapath", datapath},
            {"maps", maps},
            {"events_lost", results_[SG_RES_EVENT_LOST]},
            {"events_received", events_received_},
            {"smtp_ports", policy_.smtp_ports},
            {"programs", {{"xdp_prog_id", dp_->xdp_prog_id()}, {"tc_prog_id", dp_->tc_prog_id()}}},
            {"libxdp", attacher_->libxdp_unavailable().empty() ? "usable or untried" : attacher_->libxdp_unavailable()}};
}

svc::Reply Daemon::dispatch(const json& req) {
    const std::string cmd = str_arg(req, "cmd");
    const int64_t now_ms = clock_.now_ms();
    auto vm_reply = [&](const std::string& id) {
        auto v = view(id);
        return v ? svc::ok_reply(vm_json(*v)) : svc::error_reply("not_found", "no VM " + id);
    };
    auto parsed_policy = [&]() -> std::optional<ParseOutcome> {
        if (!req.contains("policy") || !req["policy"].is_object()) return std::nullopt;
        return parse_policy(req["policy"]);
    };

    if (cmd == "status") return svc::ok_reply(status_json());
    if (cmd == "policy.get") return svc::ok_reply(to_json(policy_));
    if (cmd == "policy.validate" || cmd == "policy.apply") {
        auto po = parsed_policy();
        if (!po) return svc::error_reply("usage", cmd + " needs a \"policy\" object");
        if (!po->problems.empty())
            return svc::error_reply("validation", "policy rejected: " + std::to_string(po->problems.size()) +
                                                      " problem(s); the running policy stays", po->problems);
        if (cmd == "policy.validate") return svc::ok_reply({{"problems", json::array()}});
        auto r = apply_policy(*po->policy);
        if (!r) {
            log::error("policy.apply: " + r.error().message);
            return svc::error_reply(r.error().errnum == ENOSPC ? "validation" : "runtime", r.error().message);
        }
        return svc::ok_reply(*r);
    }
    if (cmd == "vm.list") {
        std::string tier = str_arg(req, "tier"), tenant = str_arg(req, "tenant");
        if (!tier.empty() && !parse_tier(tier)) return svc::error_reply("usage", "unknown tier \"" + tier + "\"");
        Snapshot snap = build_snapshot(0);
        std::vector<const VmView*> pick;
        for (const VmView& v : snap.vms)
            if ((tier.empty() || to_string(v.tier) == tier) && (tenant.empty() || v.tenant == tenant)) pick.push_back(&v);
        std::stable_sort(pick.begin(), pick.end(), [](const VmView* a, const VmView* b) { return a->rate > b->rate; });
        json out = json::array();
        for (const VmView* v : pick) out.push_back(vm_json(*v));
        return svc::ok_reply(out);
    }
    const std::string id = str_arg(req, "id");
    if (cmd == "vm.show" || cmd == "vm.set_tier" || cmd == "vm.clear" || cmd == "report") {
        if (id.empty()) return svc::error_reply("usage", cmd + " needs an \"id\"");
        if (!view(id)) return svc::error_reply("not_found", "no VM " + id);
    }
    if (cmd == "vm.show") {
        // A fresh reading of this one VM, not the last sweep's.
        if (auto slot = slots_.find(id); slot && vm_index_.count(id)) mini_sweep_slot(*slot, mono_ns(), now_ms);
        else mini_sweep_auto(id, mono_ns(), now_ms);
        evaluate(now_ms);
        json j = vm_json(*view(id));
        j["tickets"] = events_->recent(10, id);
        return svc::ok_reply(j);
    }
    if (cmd == "vm.set_tier") {
        auto tier = parse_tier(str_arg(req, "tier"));
        if (!tier) return svc::error_reply("usage", "tier must be ok, throttled, steered or blocked");
        std::optional<int64_t> until;
        if (req.contains("for_s") && !req["for_s"].is_null()) {
            if (!req["for_s"].is_number() || req["for_s"].get<double>() <= 0)
                return svc::error_reply("usage", "for_s must be a positive number of seconds");
            until = now_ms + static_cast<int64_t>(req["for_s"].get<double>() * 1000);
        }
        on_transition(rep_->set_pin(id, *tier, until, now_ms));
        persist_reputation();
        return vm_reply(id);
    }
    if (cmd == "vm.clear") {
        if (auto t = rep_->clear_pin(id, now_ms)) on_transition(*t);
        evaluate(now_ms);
        persist_reputation();
        return vm_reply(id);
    }
    if (cmd == "report") {
        std::string kind = str_arg(req, "kind");
        if (kind != "spam" && kind != "complaint") return svc::error_reply("usage", "kind must be spam or complaint");
        auto count = uint_arg(req, "count");
        if (!count) return svc::error_reply("usage", count.error().message);
        uint64_t n = count->value_or(1);
        if (n == 0) return svc::error_reply("usage", "count must be at least 1");
        rep_->observe(id, kind == "spam" ? Signal::SpamReport : Signal::Complaint, static_cast<double>(n), now_ms);
        evaluate(now_ms);
        persist_reputation();
        return vm_reply(id);
    }
    if (cmd == "events") {
        auto limit = uint_arg(req, "limit");
        if (!limit) return svc::error_reply("usage", limit.error().message);
        if (req.value("follow", false)) {
            auto follower = std::make_shared<svc::EventLog::Follower>(events_->follow());
            return svc::stream_reply([follower](svc::Writer& w) {
                while (w.open()) {
                    if (auto ev = follower->next(250)) {
                        if (!w.write(*ev)) return;
                    } else if (follower->closed()) {
                        return;
                    }
                }
            });
        }
        return svc::ok_reply(events_->recent(limit->value_or(100)));
    }
    if (cmd == "flow.original_dst") {
        std::string addr = str_arg(req, "addr");
        if (!Endpoint::parse(addr)) return svc::error_reply("usage", "addr must be ADDR:PORT or [V6]:PORT");
        return svc::error_reply("not_found", "no steered flow for " + addr);
    }
    return svc::error_reply("usage", cmd.empty() ? "request needs a \"cmd\"" : "unknown command \"" + cmd + "\"");
}

}  // namespace smtpgov::daemon
