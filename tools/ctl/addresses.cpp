#include "addresses.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "core/arf.h"
#include "core/ascii.h"
#include "core/ip_prefix.h"
#include "render.h"
#include "svc/commands.h"

using nlohmann::json;

namespace smtpgov::ctl {
namespace {

std::optional<std::string> read_input(const std::string& path, std::ostream& err) {
    std::ostringstream ss;
    if (path == "-") {
        ss << std::cin.rdbuf();
        return ss.str();
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        err << "smtpgovctl: cannot read " << path << ": " << std::strerror(errno) << "\n";
        return std::nullopt;
    }
    ss << in.rdbuf();
    return ss.str();
}

std::string s(const json& j, const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

int64_t i64(const json& j, const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<int64_t>() : 0;
}

std::string when(const json& j, const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_number() ? utc_time(j[key].get<int64_t>()) : "now";
}

// An address argument the daemon would refuse is a usage error here (exit 2).
bool valid_addr(const Invocation& inv, std::ostream& err) {
    auto p = IpPrefix::parse(inv.arg("ADDR"));
    if (p) return true;
    err << "smtpgovctl: " << inv.command->name() << ": ADDR: " << p.error().message << "\n";
    return false;
}

// --reporters and --authserv-id: both or neither; domains lower-cased, each a DNS name.
std::optional<arf::Reporters> reporters(const Invocation& inv, std::ostream& err, bool& bad) {
    auto domains = inv.opt("reporters");
    auto id = inv.opt("authserv-id");
    bad = false;
    if (!domains && !id) return std::nullopt;
    auto fail = [&](const std::string& why) {
        err << "smtpgovctl: report arf: " << why << "\n";
        bad = true;
        return std::nullopt;
    };
    if (!domains || !id) return fail("--reporters and --authserv-id go together");
    arf::Reporters rs;
    rs.authserv_id = ascii_lower(*id);
    if (rs.authserv_id.empty()) return fail("--authserv-id: empty");
    std::string cur;
    for (size_t i = 0; i <= domains->size(); ++i) {
        if (i < domains->size() && (*domains)[i] != ',') {
            cur += (*domains)[i];
            continue;
        }
        cur = ascii_lower(cur);
        const bool name = !cur.empty() && cur.front() != '.' && cur.back() != '.' &&
                          cur.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") == std::string::npos;
        if (!name) return fail("--reporters: \"" + cur + "\" is not a domain name");
        rs.domains.push_back(cur);
        cur.clear();
    }
    return rs;
}

}  // namespace

void ip_fields(const Invocation& inv, json& r) { r["addr"] = inv.arg("ADDR"); }

int cmd_report_arf(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    const std::string& file = inv.arg("FILE");
    bool bad_trust = false;
    const auto trust = reporters(inv, err, bad_trust);
    if (bad_trust) return kExitUsage;
    auto text = read_input(file, err);
    if (!text) return kExitUsage;
    auto parsed = arf::parse(*text, trust ? &*trust : nullptr);
    if (auto* no = std::get_if<arf::Refused>(&parsed)) {
        err << "smtpgovctl: " << (file == "-" ? "standard input" : file) << ": " << no->message << " ("
            << arf::to_string(no->why) << ")\n";
        return kExitUsage;
    }
    const arf::Report& r = std::get<arf::Report>(parsed);
    json req = build_request(inv);
    req["source_ip"] = r.source_ip;
    req["arrival_unix"] = r.arrival_unix;
    req["feedback_type"] = r.feedback_type;
    req["reporting_mta"] = r.reporting_mta;
    json report{{"source_ip", r.source_ip},         {"arrival_unix", r.arrival_unix},
                {"feedback_type", r.feedback_type}, {"reporting_mta", r.reporting_mta},
                {"source_from", r.source_from},     {"arrival_from", r.arrival_from},
                {"original_message_id", r.original_message_id}};
    if (trust) report["signed_by"] = r.signed_by;
    int code = kExitOk;
    auto a = request(d, req, err, code);
    if (!a) return code;
    if (inv.json) {
        out << json{{"report", report}, {"attributed", *a}}.dump() << "\n";
        return kExitOk;
    }
    out << r.source_ip << " at " << utc_time(r.arrival_unix) << " (" << r.feedback_type
        << (r.reporting_mta.empty() ? "" : ", " + r.reporting_mta) << "): complaint against " << s(*a, "vm")
        << (s(*a, "tenant").empty() ? "" : " (tenant " + s(*a, "tenant") + ")");
    if (a->value("scored", false))
        out << ", score " << fixed(a->value("score", 0.0), 2) << ", tier " << s(*a, "tier") << "\n";
    else if (!s(*a, "holder_host").empty())  // in a fleet: held on another host then
        out << ", recorded here only (the address is tainted fleet-wide): it was held on host " << s(*a, "holder_host")
            << ", where this feedback loop's reports count against the VM\n";
    else
        out << ", recorded only: the VM is no longer in the policy\n";
    return kExitOk;
}

int cmd_ip_show(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    if (!valid_addr(inv, err)) return kExitUsage;
    int code = kExitOk;
    auto r = request(d, build_request(inv), err, code);
    if (!r) return code;
    out << (inv.json ? r->dump() + "\n" : render_ip_show(*r));
    return kExitOk;
}

int cmd_ip_check(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err) {
    if (!valid_addr(inv, err)) return kExitUsage;
    int code = kExitOk;
    auto r = request(d, build_request(inv), err, code);
    if (!r) return code;  // 1: the daemon cannot answer, which is not clean
    if (!r->is_object() || !r->contains("tainted") || !(*r)["tainted"].is_boolean()) {
        err << "smtpgovctl: ip check: the daemon's answer has no \"tainted\"\n";
        return kExitRuntime;
    }
    out << (inv.json ? r->dump() + "\n" : render_ip_check(*r));
    return (*r)["tainted"].get<bool>() ? kExitTainted : kExitOk;
}

std::string render_ip_check(const json& ip) {
    std::string out = s(ip, "address") + ": ";
    if (!ip.value("tainted", false))
        return out + "clean (no complaint or DNSBL listing within " + std::to_string(i64(ip, "taint_days")) + " days)\n";
    out += "tainted\n";
    if (ip.contains("reasons") && ip["reasons"].is_array())
        for (const auto& r : ip["reasons"]) out += "  " + (r.is_string() ? r.get<std::string>() : r.dump()) + "\n";
    return out;
}

// In a fleet (the answer has "fleet"), every entry names the host that recorded it.
std::string render_ip_show(const json& ip) {
    const bool fleet = ip.contains("fleet") && ip["fleet"].is_object();
    auto host_col = [&](std::vector<std::string> cols) {
        if (fleet) cols.push_back("HOST");
        return cols;
    };
    auto row = [&](std::vector<std::string> cells, const json& x) {
        if (fleet) cells.push_back(s(x, "host").empty() ? "-" : s(x, "host"));
        return cells;
    };
    std::string out = render_ip_check(ip);
    if (fleet && ip["fleet"].contains("error"))
        out += "fleet history unavailable (" + s(ip["fleet"], "error") + "): this host's records only\n";
    if (fleet && ip["fleet"].contains("refused") && ip["fleet"]["refused"].is_array())
        for (const auto& r : ip["fleet"]["refused"]) out += "ignored a record: " + s(r, "error") + "\n";
    const json& h = ip.contains("holder") ? ip["holder"] : json();
    out += "holder now: " + (h.is_object() ? s(h, "vm") + " (tenant " + (s(h, "tenant").empty() ? "-" : s(h, "tenant")) +
                                                 ", " + s(h, "prefix") + ", since " + when(h, "from_unix") +
                                                 (s(h, "host").empty() ? "" : ", host " + s(h, "host")) + ")"
                                           : std::string("none")) + "\n";
    Table hist(host_col({"PREFIX", "VM", "TENANT", "FROM", "TO"}), {});
    if (ip.contains("history") && ip["history"].is_array())
        for (const auto& x : ip["history"])
            hist.add(row({s(x, "prefix"), s(x, "vm"), s(x, "tenant").empty() ? "-" : s(x, "tenant"), when(x, "from_unix"),
                          when(x, "to_unix")}, x));
    out += "\nhistory:\n" + (hist.empty() ? std::string("  (never governed)\n") : hist.str());
    Table comp(host_col({"ARRIVAL", "ADDRESS", "VM", "TYPE", "REPORTED BY"}), {});
    if (ip.contains("complaints") && ip["complaints"].is_array())
        for (const auto& c : ip["complaints"])
            comp.add(row({when(c, "arrival_unix"), s(c, "address"), s(c, "vm"), s(c, "feedback_type"),
                          s(c, "reporting_mta").empty() ? "-" : s(c, "reporting_mta")}, c));
    out += "\ncomplaints:\n" + (comp.empty() ? std::string("  none\n") : comp.str());
    return out + "\ndnsbl listings:\n" + render_dnsbl(ip.contains("dnsbl") ? ip["dnsbl"] : json(), fleet);
}

std::string render_dnsbl(const json& listings, bool host_column) {
    std::vector<std::string> cols{"ZONE", "ADDRESS", "SINCE", "UNTIL", "HOLDER", "CHARGED", "REASON"};
    if (host_column) cols.push_back("HOST");
    Table t(cols, {});
    if (listings.is_array())
        for (const auto& l : listings) {
            const bool now = !l.contains("to_unix");  // listed now: ip show's listed_now, vm show's all
            const std::string holder = s(l, "holder");
            std::vector<std::string> cells{s(l, "zone"), s(l, "address"), when(l, now ? "since_unix" : "from_unix"),
                   now ? std::string("listed now") : when(l, "to_unix"), holder,
                   l.value("charged", false) ? "yes"
                   : l.value("predates_holder", false) && holder.rfind("vm:", 0) == 0 ? "no (predates holder)"
                                                                                    : "no",
                   s(l, "reason").empty() ? "-" : s(l, "reason")};
            if (host_column) cells.push_back(s(l, "host").empty() ? "-" : s(l, "host"));
            t.add(cells);
        }
    return t.empty() ? std::string("  none\n") : t.str();
}

}  // namespace smtpgov::ctl
