#include "render.h"

#include "addresses.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

using nlohmann::json;

namespace smtpgov::ctl {
namespace {

const char* kVerdicts[] = {"pass", "throttle", "steer", "block"};
const char* kReplies[] = {"synack", "rst", "2xx", "4xx", "5xx"};

std::string str(const json& j, const char* key, const std::string& dflt = "-") {
    if (!j.is_object() || !j.contains(key) || j[key].is_null()) return dflt;
    const json& v = j[key];
    if (v.is_string()) return v.get<std::string>().empty() ? dflt : v.get<std::string>();
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    if (v.is_number_float()) return fixed(v.get<double>(), 2);
    return v.dump();
}

double num(const json& j, const char* key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
    return j[key].get<double>();
}

uint64_t count(const json& j, const char* key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
    return j[key].get<uint64_t>();
}

std::string join(const json& arr, const std::string& sep) {
    std::string out;
    if (!arr.is_array()) return "";
    for (const auto& e : arr) out += (out.empty() ? "" : sep) + (e.is_string() ? e.get<std::string>() : e.dump());
    return out;
}

std::string kv_block(const std::vector<std::pair<std::string, std::string>>& kv) {
    size_t w = 0;
    for (const auto& [k, v] : kv) w = std::max(w, k.size());
    std::string out;
    for (const auto& [k, v] : kv) out += k + ":" + std::string(w - k.size() + 2, ' ') + v + "\n";
    return out;
}

const json& field(const json& j, const char* key) {
    static const json kNull;
    return j.is_object() && j.contains(key) ? j[key] : kNull;
}

}  // namespace

Table::Table(std::vector<std::string> headers, std::vector<Align> align)
    : headers_(std::move(headers)), align_(std::move(align)) {
    align_.resize(headers_.size(), Align::Left);
}

void Table::add(std::vector<std::string> row) {
    row.resize(headers_.size());
    rows_.push_back(std::move(row));
}

std::string Table::str() const {
    std::vector<size_t> w(headers_.size());
    for (size_t c = 0; c < headers_.size(); ++c) {
        w[c] = headers_[c].size();
        for (const auto& r : rows_) w[c] = std::max(w[c], r[c].size());
    }
    auto line = [&](const std::vector<std::string>& cells) {
        std::string out;
        for (size_t c = 0; c < cells.size(); ++c) {
            std::string pad(w[c] - cells[c].size(), ' ');
            bool last = c + 1 == cells.size();
            out += align_[c] == Align::Right ? pad + cells[c] : cells[c] + (last ? "" : pad);
            if (!last) out += "  ";
        }
        return out + "\n";
    };
    std::string out = line(headers_);
    for (const auto& r : rows_) out += line(r);
    return out;
}

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string utc_time(int64_t unix_s) {
    std::time_t t = std::time_t(unix_s);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string duration(int64_t s) {
    if (s < 0) s = 0;
    int64_t d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60, sec = s % 60;
    if (d) return std::to_string(d) + "d" + std::to_string(h) + "h";
    if (h) return std::to_string(h) + "h" + std::to_string(m) + "m";
    if (m) return std::to_string(m) + "m" + std::to_string(sec) + "s";
    return std::to_string(sec) + "s";
}

std::string render_pin(const json& pin) {
    if (!pin.is_object()) return "-";
    std::string out = str(pin, "tier");
    if (pin.contains("until_unix") && pin["until_unix"].is_number())
        out += " until " + utc_time(pin["until_unix"].get<int64_t>());
    else if (pin.contains("until_unix_ms") && pin["until_unix_ms"].is_number())
        out += " until " + utc_time(pin["until_unix_ms"].get<int64_t>() / 1000);
    else
        out += " until cleared";
    return out;
}

std::string render_vm_list(const json& vms) {
    Table t({"ID", "TENANT", "TIER", "PIN", "SCORE", "RATE/S", "PASS", "THROTTLE", "STEER", "BLOCK", "SPOOFED"},
            {Align::Left, Align::Left, Align::Left, Align::Left, Align::Right, Align::Right, Align::Right,
             Align::Right, Align::Right, Align::Right, Align::Right});
    for (const auto& vm : vms) {
        const json& syn = field(vm, "syn");
        t.add({str(vm, "id"), str(vm, "tenant"), str(vm, "tier"), field(vm, "pin").is_object() ? "yes" : "-",
               fixed(num(vm, "score"), 2), fixed(num(vm, "rate"), 1), std::to_string(count(syn, "pass")),
               std::to_string(count(syn, "throttle")), std::to_string(count(syn, "steer")),
               std::to_string(count(syn, "block")), std::to_string(count(vm, "spoofed"))});
    }
    return t.str();
}

namespace {

// "steered", or "steered (enforced: blocked, ...)" when the datapath applies another.
std::string tier_line(const json& vm) {
    const std::string tier = str(vm, "tier"), enforced = str(vm, "enforced");
    if (enforced == "-" || enforced == tier) return tier;
    return tier + " (enforced: " + enforced + ", no proxy takes its connections)";
}

std::string connections_line(const json& vm) {
    const json& c = field(vm, "connections");
    if (!c.is_object()) return "-";
    return std::to_string(count(c, "tracked")) + " tracked, " + std::to_string(count(c, "evicted")) + " evicted";
}

std::string proxy_line(const json& st) {
    const json& p = field(st, "proxy");
    if (!p.is_object()) return "-";
    std::string out;
    for (const auto& f : field(p, "families"))
        out += (out.empty() ? "" : ", ") + str(f, "address") + (f.value("up", false) ? " up" : " DOWN");
    return (out.empty() ? "none" : out) + " (fail mode " + str(p, "fail_mode") + ")";
}

}  // namespace

std::string render_vm_show(const json& vm) {
    const json& limits = field(vm, "limits");
    std::string out = kv_block({
        {"id", str(vm, "id")},
        {"tenant", str(vm, "tenant")},
        {"auto", field(vm, "auto").is_boolean() && vm["auto"].get<bool>() ? "yes" : "no"},
        {"interface", str(vm, "interface")},
        {"addresses", field(vm, "addresses").empty() ? "-" : join(vm["addresses"], ", ")},
        {"tier", tier_line(vm)},
        {"pin", render_pin(field(vm, "pin"))},
        {"score", fixed(num(vm, "score"), 2)},
        {"rate", fixed(num(vm, "rate"), 1) + " SYN/s"},
        {"limits", limits.is_object() ? str(limits, "rate") + "/s, burst " + str(limits, "burst") : "-"},
        {"spoofed", std::to_string(count(vm, "spoofed"))},
        {"rst sent", std::to_string(count(vm, "rst_sent"))},
        {"connections", connections_line(vm)},
        {"complaints", field(vm, "complaints").is_number() ? std::to_string(count(vm, "complaints")) : "-"},
    });
    Table syn({"VERDICT", "SYN"}, {Align::Left, Align::Right});
    for (const char* v : kVerdicts) syn.add({v, std::to_string(count(field(vm, "syn"), v))});
    out += "\n" + syn.str();
    Table rep({"REPLY", "COUNT"}, {Align::Left, Align::Right});
    for (const char* r : kReplies) rep.add({r, std::to_string(count(field(vm, "replies"), r))});
    out += "\n" + rep.str();
    if (vm.contains("dnsbl")) out += "\ndnsbl listings:\n" + render_dnsbl(vm["dnsbl"]);
    const json& tickets = field(vm, "tickets");
    if (tickets.is_array() && !tickets.empty()) {
        Table tk({"TIME", "TYPE", "FROM", "TO", "SCORE", "REASON"},
                 {Align::Left, Align::Left, Align::Left, Align::Left, Align::Right, Align::Left});
        for (const auto& e : tickets)
            tk.add({str(e, "time"), str(e, "type"), str(e, "from"), str(e, "to"), fixed(num(e, "score"), 2),
                    str(e, "reason")});
        out += "\nlast tickets:\n" + tk.str();
    } else {
        out += "\nlast tickets: none\n";
    }
    return out;
}

namespace {
// "rss 48.2 MB, heap in use 31.0 MB" (older daemons send no "memory": "-")
std::string memory_line(const json& m) {
    if (!m.is_object()) return "-";
    auto mb = [&](const char* k) { return fixed(num(m, k) / 1e6, 1) + " MB"; };
    return "rss " + mb("rss_bytes") + ", heap in use " + mb("heap_in_use_bytes");
}
}  // namespace

std::string render_status(const json& st) {
    const json& tiers = field(st, "tiers");
    const json& sweep = field(st, "sweep");
    std::string tiers_line;
    for (const char* t : {"ok", "throttled", "steered", "blocked"})
        tiers_line += (tiers_line.empty() ? "" : ", ") + std::string(t) + " " + std::to_string(count(tiers, t));
    std::string out = kv_block({
        {"version", str(st, "version")},
        {"uptime", duration(int64_t(num(st, "uptime_s")))},
        {"xdp mode", str(st, "xdp_mode")},
        {"vms", std::to_string(count(st, "vms")) + " (" + tiers_line + ")"},
        {"sweep", str(sweep, "interval_ms") + " ms interval, last took " + str(sweep, "last_ms") + " ms"},
        {"events lost", std::to_string(count(st, "events_lost"))},
        {"memory", memory_line(field(st, "memory"))},
        {"proxy", proxy_line(st)},
        {"connections", field(st, "connections").is_object()
                            ? std::to_string(count(field(st, "connections"), "tracked")) + " tracked, " +
                                  std::to_string(count(field(st, "connections"), "steered")) + " steered"
                            : "-"},
    });
    Table ifs({"INTERFACE", "IFINDEX", "MODE", "ATTACHED"}, {Align::Left, Align::Right, Align::Left, Align::Left});
    for (const auto& i : field(st, "interfaces"))
        ifs.add({str(i, "name"), str(i, "ifindex"), str(i, "mode"), str(i, "attached")});
    out += "\n" + (ifs.empty() ? std::string("interfaces: none attached\n") : ifs.str());
    Table dp({"DATAPATH", "PACKETS"}, {Align::Left, Align::Right});
    for (const auto& [k, v] : field(st, "datapath").items()) dp.add({k, v.is_number() ? v.dump() : "-"});
    if (!dp.empty()) out += "\n" + dp.str();
    Table maps({"MAP", "USED", "MAX", "FILL"}, {Align::Left, Align::Right, Align::Right, Align::Right});
    for (const auto& [k, v] : field(st, "maps").items()) {
        double used = num(v, "used"), max = num(v, "max");
        maps.add({k, std::to_string(count(v, "used")), std::to_string(count(v, "max")),
                  max > 0 ? fixed(100.0 * used / max, 1) + "%" : "-"});
    }
    if (!maps.empty()) out += "\n" + maps.str();
    return out;
}

std::string render_apply(const json& d) {
    const json& added = field(d, "added");
    const json& removed = field(d, "removed");
    const json& changed = field(d, "changed");
    bool ports = field(d, "ports_changed").is_boolean() && d["ports_changed"].get<bool>();
    if (added.empty() && removed.empty() && changed.empty() && !ports) return "policy applied: no changes\n";
    std::string out = "policy applied:\n";
    for (const auto& id : added) out += "  added    " + id.get<std::string>() + "\n";
    for (const auto& id : removed) out += "  removed  " + id.get<std::string>() + "\n";
    for (const auto& c : changed) out += "  changed  " + str(c, "id") + " (" + join(field(c, "fields"), ", ") + ")\n";
    if (ports) out += "  smtp ports changed (datapath program upgraded)\n";
    return out;
}

std::string render_top(const json& vms, const std::string& header, size_t max_rows) {
    json rows = json::array();
    for (const auto& vm : vms) {
        if (max_rows && rows.size() >= max_rows) break;
        rows.push_back(vm);
    }
    std::string out = header + "\n\n" + render_vm_list(rows);
    if (max_rows && vms.size() > max_rows)
        out += "... " + std::to_string(vms.size() - max_rows) + " more VMs\n";
    return out;
}

std::vector<std::string> render_problems(const json& problems) {
    std::vector<std::string> out;
    for (const auto& p : problems) {
        std::string path = str(p, "path", "");
        out.push_back((path.empty() ? "/" : path) + ": " + str(p, "reason", "invalid"));
    }
    return out;
}

}  // namespace smtpgov::ctl
