#include "commands.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <ostream>
#include <sstream>

#include "core/json_strict.h"
#include "core/policy.h"
#include "svc/commands.h"
#include "addresses.h"
#include "docs.h"
#include "fleet.h"
#include "render.h"

using nlohmann::json;

namespace smtpgov::ctl {
namespace {

// Reads a policy file argument. A missing or unreadable file is a bad argument (exit 2).
std::optional<std::string> read_file(const std::string& path, std::ostream& err) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        err << "smtpgovctl: cannot read " << path << ": " << std::strerror(errno) << "\n";
        return std::nullopt;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void print_problems(const json& problems, std::ostream& err) {
    for (const auto& line : render_problems(problems)) err << line << "\n";
}

// Sorted by rate, highest first (the daemon sorts too; this keeps the contract if it does not).
json by_rate(json vms) {
    if (!vms.is_array()) return json::array();
    std::stable_sort(vms.begin(), vms.end(),
                     [](const json& a, const json& b) { return a.value("rate", 0.0) > b.value("rate", 0.0); });
    return vms;
}

int cmd_status(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    int code = kExitOk;
    auto r = request(d, build_request(inv), err, code);
    if (!r) return code;
    out << (inv.json ? r->dump() + "\n" : render_status(*r));
    return kExitOk;
}

int cmd_policy_validate(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err) {
    const std::string& file = inv.arg("FILE");
    auto text = read_file(file, err);
    if (!text) return kExitUsage;
    ParseOutcome po = parse_policy_text(*text);
    json problems = to_json(po.problems);
    if (inv.json) out << json{{"file", file}, {"valid", po.problems.empty()}, {"problems", problems}}.dump() << "\n";
    if (!po.problems.empty()) {
        err << "smtpgovctl: " << file << ": invalid policy (" << po.problems.size()
            << (po.problems.size() == 1 ? " problem)" : " problems)") << "\n";
        print_problems(problems, err);
        return kExitUsage;
    }
    if (!inv.json)
        out << file << ": valid policy (" << po.policy->vms.size() << (po.policy->vms.size() == 1 ? " VM" : " VMs")
            << ")\n";
    return kExitOk;
}

int cmd_policy_apply(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    const std::string& file = inv.arg("FILE");
    auto text = read_file(file, err);
    if (!text) return kExitUsage;
    // Strict: a key given twice would be lost in the request (last wins), so it is refused here.
    auto doc = parse_json_strict(*text);
    if (!doc) {
        err << "smtpgovctl: " << file << ": not a JSON document\n";
        print_problems(to_json(std::vector<Problem>{{"", doc.error().message}}), err);
        return kExitUsage;
    }
    json req = build_request(inv);
    req["policy"] = std::move(*doc);
    int code = kExitOk;
    auto r = request(d, req, err, code);
    if (!r) return code;
    out << (inv.json ? r->dump() + "\n" : render_apply(*r));
    return kExitOk;
}

int cmd_policy_get(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    int code = kExitOk;
    auto r = request(d, build_request(inv), err, code);
    if (!r) return code;
    out << (inv.json ? r->dump() : r->dump(2)) << "\n";
    return kExitOk;
}

int cmd_vm_list(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    int code = kExitOk;
    auto r = request(d, build_request(inv), err, code);
    if (!r) return code;
    json vms = by_rate(*r);
    out << (inv.json ? vms.dump() + "\n" : render_vm_list(vms));
    return kExitOk;
}

int cmd_vm_object(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err,
                  const std::function<std::string(const json&)>& headline) {
    int code = kExitOk;
    auto r = request(d, build_request(inv), err, code);
    if (!r) return code;
    if (inv.json)
        out << r->dump() << "\n";
    else
        out << (headline ? headline(*r) : "") << render_vm_show(*r);
    return kExitOk;
}

std::string tier_of(const json& vm) { return vm.is_object() ? vm.value("tier", std::string("?")) : "?"; }

int cmd_vm_show(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    return cmd_vm_object(inv, d, out, err, nullptr);
}

int cmd_vm_set_tier(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    return cmd_vm_object(inv, d, out, err, [&](const json& vm) {
        auto for_s = inv.opt("for");
        return inv.arg("ID") + ": pinned to " + inv.arg("TIER") + (for_s ? " for " + *for_s + "s" : " until cleared") +
               " (tier in force: " + tier_of(vm) + ")\n\n";
    });
}

int cmd_vm_clear(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    return cmd_vm_object(inv, d, out, err, [&](const json& vm) {
        return inv.arg("ID") + ": pin cleared (tier in force: " + tier_of(vm) + ")\n\n";
    });
}

int cmd_report(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    return cmd_vm_object(inv, d, out, err, [&](const json& vm) {
        double score = vm.is_object() ? vm.value("score", 0.0) : 0.0;
        return inv.arg("ID") + ": " + std::to_string(inv.uint_opt("count")) + " " + inv.arg("KIND") +
               " report(s) recorded (score " + fixed(score, 2) + ", tier " + tier_of(vm) + ")\n\n";
    });
}

int cmd_events(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    json req = build_request(inv);
    if (!inv.flag("follow")) {
        int code = kExitOk;
        auto r = request(d, req, err, code);
        if (!r) return code;
        if (r->is_array())
            for (const auto& e : *r) out << e.dump() << "\n";
        return kExitOk;
    }
    install_interrupt_handler();
    auto env = d.stream(req, [&](const json& e) {
        out << e.dump() << "\n";
        out.flush();
        return out.good();
    });
    if (!env) {
        err << "smtpgovctl: " << env.error().message << "\n";
        return kExitRuntime;
    }
    if (!(*env)["ok"].get<bool>()) {
        int code = exit_code_for_kind(env->value("kind", std::string("runtime")));
        err << "smtpgovctl: " << env->value("error", std::string("request failed")) << "\n";
        return code;
    }
    if (!env->value("stream", false) && env->contains("result") && (*env)["result"].is_array())
        for (const auto& e : (*env)["result"]) out << e.dump() << "\n";  // a daemon that answered without streaming
    return kExitOk;
}

int cmd_flow(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    int code = kExitOk;
    auto r = request(d, build_request(inv), err, code);
    if (!r) return code;
    out << (inv.json ? r->dump() : r->value("original", std::string("-"))) << "\n";
    return kExitOk;
}

int cmd_completion(const Invocation&, Transport&, std::ostream& out, std::ostream&) {
    out << bash_completion();
    return kExitOk;
}

int cmd_man(const Invocation&, Transport&, std::ostream& out, std::ostream&) {
    out << man_page();
    return kExitOk;
}

// The request's fields beyond "cmd".
void id_field(const Invocation& inv, json& r) { r["id"] = inv.arg("ID"); }

void vm_filters(const Invocation& inv, json& r) {
    if (auto t = inv.opt("tier")) r["tier"] = *t;
    if (auto t = inv.opt("tenant")) r["tenant"] = *t;
}

void set_tier_fields(const Invocation& inv, json& r) {
    r["id"] = inv.arg("ID");
    r["tier"] = inv.arg("TIER");
    if (auto s = inv.seconds_opt("for")) r["for_s"] = *s;
}

void events_fields(const Invocation& inv, json& r) {
    r["limit"] = inv.uint_opt("limit");
    if (inv.flag("follow")) r["follow"] = true;
}

void report_fields(const Invocation& inv, json& r) {
    r["kind"] = inv.arg("KIND");
    r["id"] = inv.arg("ID");
    r["count"] = inv.uint_opt("count");
}

void flow_fields(const Invocation& inv, json& r) { r["addr"] = inv.arg("ADDR:PORT"); }

using Handler = int (*)(const Invocation&, Transport&, std::ostream&, std::ostream&);
using Fields = void (*)(const Invocation&, json&);

// Per spec command (spec.cpp): its handler and the control-socket request it sends.
struct Entry {
    Handler handler;
    std::string_view request;  // wire name from svc/commands.h; empty: the command runs locally
    Fields fields = nullptr;
};

const std::map<std::string, Entry>& entries() {
    namespace cmd = svc::cmd;
    static const std::map<std::string, Entry> table{
        {"status", {cmd_status, cmd::kStatus}},
        {"policy validate", {cmd_policy_validate, cmd::kPolicyValidate}},
        {"policy apply", {cmd_policy_apply, cmd::kPolicyApply}},
        {"policy get", {cmd_policy_get, cmd::kPolicyGet}},
        {"vm list", {cmd_vm_list, cmd::kVmList, vm_filters}},
        {"vm show", {cmd_vm_show, cmd::kVmShow, id_field}},
        {"vm set-tier", {cmd_vm_set_tier, cmd::kVmSetTier, set_tier_fields}},
        {"vm clear", {cmd_vm_clear, cmd::kVmClear, id_field}},
        {"events", {cmd_events, cmd::kEvents, events_fields}},
        {"report", {cmd_report, cmd::kReport, report_fields}},
        {"report arf", {cmd_report_arf, cmd::kReportArf}},
        {"ip show", {cmd_ip_show, cmd::kIpShow, ip_fields}},
        {"ip check", {cmd_ip_check, cmd::kIpCheck, ip_fields}},
        {"flow original-dst", {cmd_flow, cmd::kFlowOriginalDst, flow_fields}},
        {"top", {run_top, cmd::kVmList, vm_filters}},
        {"fleet status", {cmd_fleet_status, {}}},
        {"fleet policy apply", {cmd_fleet_policy_apply, {}}},
        {"fleet policy get", {cmd_fleet_policy_get, {}}},
        {"fleet vm list", {cmd_fleet_vm_list, {}}},
        {"fleet vm set-tier", {cmd_fleet_vm_set_tier, {}}},
        {"fleet vm clear", {cmd_fleet_vm_clear, {}}},
        {"completion", {cmd_completion, {}}},
        {"man", {cmd_man, {}}},
    };
    return table;
}

}  // namespace

bool has_handler(const std::string& name) { return entries().count(name) != 0; }

int exit_code_for_kind(const std::string& kind) {
    return kind == "usage" || kind == "validation" ? kExitUsage : kExitRuntime;
}

json build_request(const Invocation& inv) {
    const std::string name = inv.command->name();
    auto it = entries().find(name);
    if (it == entries().end() || it->second.request.empty()) throw UsageError(name + ": does not talk to the daemon");
    json r{{"cmd", it->second.request}};
    if (it->second.fields) it->second.fields(inv, r);
    return r;
}

std::optional<json> request(Transport& daemon, const json& req, std::ostream& err, int& code) {
    auto env = daemon.call(req);
    if (!env) {
        err << "smtpgovctl: " << env.error().message << "\n";
        code = kExitRuntime;
        return std::nullopt;
    }
    if ((*env)["ok"].get<bool>()) {
        code = kExitOk;
        return env->contains("result") ? (*env)["result"] : json();
    }
    std::string kind = env->value("kind", std::string("runtime"));
    err << "smtpgovctl: " << env->value("error", std::string("request failed")) << "\n";
    if (env->contains("problems")) print_problems((*env)["problems"], err);
    code = exit_code_for_kind(kind);
    return std::nullopt;
}

int run(const Invocation& inv, Transport& daemon, std::ostream& out, std::ostream& err) {
    auto it = entries().find(inv.command->name());
    if (it == entries().end()) {
        err << "smtpgovctl: " << inv.command->name() << ": no handler\n";
        return kExitUsage;
    }
    return it->second.handler(inv, daemon, out, err);
}

}  // namespace smtpgov::ctl
