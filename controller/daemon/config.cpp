#include "daemon/config.h"

#include "core/ip_prefix.h"
#include "core/json_strict.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/dnsbl.h"
#include "core/fleet.h"
#include "core/hypervisor.h"
#include "daemon/log.h"
#include "kern/xdp_hook.h"

namespace smtpgov::daemon {
namespace po = boost::program_options;
using nlohmann::json;
namespace {

// ---- checks: "" when the value is fine, else the reason ----

std::string xdp_mode(const std::string& v) {
    return kern::parse_xdp_mode(v) ? "" : "must be native, generic or auto, not \"" + v + "\"";
}

std::string log_level(const std::string& v) {
    return log::parse_level(v) ? "" : "must be error, warning, notice, info or debug";
}

std::string log_target(const std::string& v) {
    return log::parse_target(v) ? "" : "must be auto, journal or stderr";
}

std::string absolute_path(const std::string& v) {
    return !v.empty() && v[0] == '/' ? "" : "must be an absolute path";
}

std::string absolute_path_or_none(const std::string& v) { return v.empty() ? "" : absolute_path(v); }

std::string host_port_or_none(const std::string& v) {
    if (v.empty()) return "";
    auto colon = v.rfind(':');
    bool ok = colon != std::string::npos && colon + 1 < v.size() &&
              v.find_first_not_of("0123456789", colon + 1) == std::string::npos;
    return ok ? "" : "must be HOST:PORT, or \"\" to disable";
}

// A numeric ADDR:PORT ([v6]:PORT) to listen on, or "" (off).
std::string endpoint_or_none(const std::string& v) {
    if (v.empty()) return "";
    auto e = Endpoint::parse(v);
    return e ? "" : "must be ADDR:PORT or [IPv6]:PORT, or \"\" to disable (" + e.error().message + ")";
}

std::string http_url_or_none(const std::string& v) {
    if (v.empty() || v.rfind("http://", 0) == 0 || v.rfind("https://", 0) == 0) return "";
    return "must be an http:// or https:// URL";
}

std::string interface_name_or_glob(const std::string& v) {
    if (!v.empty() && v.size() <= 15 && v.find_first_of("/ ") == std::string::npos) return "";
    return "\"" + v + "\" is not an interface name or glob (at most 15 characters)";
}

std::string fleet_options(const json& v) {
    auto o = fleet::parse_options(v, "localhost");
    if (o) return "";
    // "fleet/etcd: why" -> "/etcd: why" (check_config puts the key first)
    std::string m = o.error().message.substr(std::string_view("fleet").size());
    return m.starts_with(": ") ? m.substr(2) : m;
}

std::string dnsbl_options(const json& v) {
    auto o = dnsbl::parse_options(v);
    if (o) return "";
    // "dnsbl/zones/0: why" -> "/zones/0: why" (check_config puts the key first)
    std::string m = o.error().message.substr(std::string_view("dnsbl").size());
    return m.starts_with(": ") ? m.substr(2) : m;
}

std::string interface_rules(const json& v) {
    auto r = hv::parse_interface_rules(v);
    if (r) return "";
    // "interface_rules/1/match: why" -> "/1/match: why" (check_config puts the key first)
    std::string m = r.error().message.substr(std::string_view("interface_rules").size());
    return m.starts_with(": ") ? m.substr(2) : m;
}

constexpr uint32_t kU32Max = std::numeric_limits<uint32_t>::max();

// ---- the keys: one entry each, in the order --help, check_config and docs show them ----

using Text = ConfigKey::Text;
using Count = ConfigKey::Count;
using List = ConfigKey::List;
using Doc = ConfigKey::Doc;

const ConfigKey kKeys[] = {
    {"interfaces", "VM-facing interface names or globs (repeat or comma-separate)",
     List{&Config::interfaces, interface_name_or_glob}},
    {"xdp_mode", "native | generic | auto", Text{&Config::xdp_mode, "auto", xdp_mode}},
    {"bpffs", "pin directory", Text{&Config::bpffs, "/sys/fs/bpf/smtpgov", absolute_path}},
    {"state_dir", "policy, slots and reputation", Text{&Config::state_dir, "/var/lib/smtpgov", absolute_path}},
    {"socket", "control socket", Text{&Config::socket, "/run/smtpgov/ctl.sock", absolute_path}},
    {"metrics_listen", "host:port of /metrics, \"\" for none",
     Text{&Config::metrics_listen, "127.0.0.1:9464", host_port_or_none}},
    {"policy_service_listen",
     "ADDR:PORT of the policy service (Postfix policy delegation and proxy verdicts), \"\" for none",
     Text{&Config::policy_service_listen, "127.0.0.1:10040", endpoint_or_none}},
    {"policy_service_token_file",
     "file with the token the proxy's spam reports must carry (token=), \"\": reports from any client",
     Text{&Config::policy_service_token_file, "", absolute_path_or_none}},
    {"policy", "policy file applied at start when no policy is persisted",
     Text{&Config::policy, "", absolute_path_or_none}},
    {"sweep_interval_ms", "counter sweep interval", Count{&Config::sweep_interval_ms, 1000, 10, 60000}},
    {"max_vms", "slots in the per-VM maps", Count{&Config::max_vms, 16384, 1, 1u << 22}},
    {"webhook_url", "POST tickets here (http/https)", Text{&Config::webhook_url, "", http_url_or_none}},
    {"log_level", "error | warning | notice | info | debug", Text{&Config::log_level, "info", log_level}},
    {"log_target", "auto (the journal when stderr is the journal) | journal (native protocol) | stderr",
     Text{&Config::log_target, "auto", log_target}},
    {"metrics_max_vm_series", "per-VM metric series cap, 0 = unlimited",
     Count{&Config::metrics_max_vm_series, 1000, 0, kU32Max}},
    {"gateway_interfaces", "interfaces (names or globs) where the source address names the VM",
     List{&Config::gateway_interfaces, interface_name_or_glob}},
    {"auto_hold_s", "seconds an escalated if:<name> entry keeps its tier after its interface is gone",
     Count{&Config::auto_hold_s, 300, 0, 30 * 86400}},
    {"address_taint_days", "ip check: an address complained about within this many days is tainted",
     Count{&Config::address_taint_days, 90, 1, 3650}},
    {"interface_rules",
     "stable VM ids for unregistered interfaces: [{\"match\": REGEX, \"id\": \"pve-$1\", \"tenant\": T}], first match wins",
     Doc{&Config::interface_rules, "[]", interface_rules}},
    {"fleet",
     "join a fleet through etcd: {\"etcd\": [URL, ...], \"host\": NAME, \"prefix\": \"/smtpgov\", \"cacert\", \"cert\", "
     "\"key\", \"user\", \"password_file\"} (README \"Running a fleet\")",
     Doc{&Config::fleet, "{}", fleet_options}},
    {"dnsbl",
     "DNSBL monitoring of every governed address: {\"zones\": [NAME or {\"zone\": NAME, \"ipv6\": true}], "
     "\"resolver\": \"ADDR:PORT\", \"interval_s\": 3600, \"queries_per_s\": 10, \"max_per_prefix\": 256} "
     "(README \"DNSBL monitoring\")",
     Doc{&Config::dnsbl, "{}", dnsbl_options}},
};

// The commands: the first one given wins, in this order.
const CommandFlag kCommands[] = {
    {"help,h", "show this help", Command::Help},
    {"version", "print the version", Command::Version},
    {"check-config", "validate the config and its policy, then exit 0 (valid) or 2", Command::CheckConfig},
    {"remove", "detach every smtpgov program and remove all pins, then exit", Command::Remove},
    {"cleanup", "same as --remove", Command::Remove},
};

// ---- per kind: default, config file, flag, check, JSON ----

void set_default(const Text& k, Config& c) { c.*k.field = k.fallback; }
void set_default(const Count& k, Config& c) { c.*k.field = k.fallback; }
void set_default(const List& k, Config& c) { (c.*k.field).clear(); }
void set_default(const Doc& k, Config& c) { c.*k.field = json::parse(k.fallback); }

Status from_file(const char* name, const Text& k, const json& v, Config& c) {
    if (!v.is_string()) return Error::msg(std::string("config: ") + name + " has the wrong type");
    c.*k.field = v.get<std::string>();
    return ok_status();
}

Status from_file(const char* name, const Count& k, const json& v, Config& c) {
    if (!v.is_number_unsigned()) return Error::msg(std::string("config: ") + name + " must be a non-negative integer");
    if (v.get<uint64_t>() > kU32Max)
        return Error::msg(std::string("config: ") + name + " must be at most " + std::to_string(kU32Max));
    c.*k.field = v.get<uint32_t>();
    return ok_status();
}

Status from_file(const char* name, const List& k, const json& v, Config& c) {
    if (!v.is_array() || !std::all_of(v.begin(), v.end(), [](const json& item) { return item.is_string(); }))
        return Error::msg(std::string("config: ") + name + " has the wrong type");
    c.*k.field = v.get<std::vector<std::string>>();
    return ok_status();
}

Status from_file(const char*, const Doc& k, const json& v, Config& c) {
    c.*k.field = v;  // its shape is judged by check_config, with the path of what is wrong
    return ok_status();
}

po::value_semantic* flag_value(const Text&) { return po::value<std::string>(); }
po::value_semantic* flag_value(const Doc&) { return po::value<std::string>(); }
po::value_semantic* flag_value(const Count&) { return po::value<uint32_t>(); }
po::value_semantic* flag_value(const List&) { return po::value<std::vector<std::string>>()->multitoken(); }

void from_flag(const Text& k, const po::variable_value& v, Config& c) { c.*k.field = v.as<std::string>(); }
void from_flag(const Count& k, const po::variable_value& v, Config& c) { c.*k.field = v.as<uint32_t>(); }
void from_flag(const Doc& k, const po::variable_value& v, Config& c) {
    auto doc = parse_json_strict(v.as<std::string>());
    c.*k.field = doc ? *doc : json(v.as<std::string>());  // not JSON: check_config says the shape is wrong
}
void from_flag(const List& k, const po::variable_value& v, Config& c) {
    c.*k.field = v.as<std::vector<std::string>>();
}

// "a,b" "c" -> "a" "b" "c", in the file as on the command line
void normalize(const Text&, Config&) {}
void normalize(const Count&, Config&) {}
void normalize(const Doc&, Config&) {}
void normalize(const List& k, Config& c) {
    std::vector<std::string> out;
    for (const auto& item : c.*k.field) {
        std::stringstream ss(item);
        std::string part;
        while (std::getline(ss, part, ','))
            if (!part.empty()) out.push_back(part);
    }
    c.*k.field = std::move(out);
}

void check(const char* name, const Text& k, const Config& c, std::vector<std::string>& problems) {
    if (auto why = k.check(c.*k.field); !why.empty()) problems.push_back(std::string(name) + ": " + why);
}
void check(const char* name, const Count& k, const Config& c, std::vector<std::string>& problems) {
    uint32_t v = c.*k.field;
    if (v < k.min || v > k.max)
        problems.push_back(std::string(name) + ": must be " + std::to_string(k.min) + ".." + std::to_string(k.max));
}
void check(const char* name, const Doc& k, const Config& c, std::vector<std::string>& problems) {
    if (auto why = k.check(c.*k.field); !why.empty()) problems.push_back(std::string(name) + ": " + why);
}
void check(const char* name, const List& k, const Config& c, std::vector<std::string>& problems) {
    for (const auto& item : c.*k.field)
        if (auto why = k.check_item(item); !why.empty()) problems.push_back(std::string(name) + ": " + why);
}

json value_json(const Text& k, const Config& c) { return c.*k.field; }
json value_json(const Count& k, const Config& c) { return c.*k.field; }
json value_json(const List& k, const Config& c) { return c.*k.field; }
json value_json(const Doc& k, const Config& c) { return c.*k.field; }

std::string shown_default(const Text& k) { return k.fallback; }
std::string shown_default(const Count& k) { return std::to_string(k.fallback); }
std::string shown_default(const List&) { return ""; }
std::string shown_default(const Doc& k) { return k.fallback; }

// ---- the table applied ----

const ConfigKey* find_key(std::string_view name) {
    for (const auto& k : kKeys)
        if (name == k.name) return &k;
    return nullptr;
}

Status apply_file(const json& doc, Config& c) {
    if (!doc.is_object()) return Error::msg("config: the document must be a JSON object");
    for (const auto& item : doc.items()) {
        const std::string& name = item.key();
        const json& value = item.value();  // not a structured binding: lambdas capture it (clang 14)
        const ConfigKey* key = find_key(name);
        if (!key) return Error::msg("config: unknown key \"" + name + "\"");
        auto s = std::visit([&](const auto& k) { return from_file(key->name, k, value, c); }, key->value);
        if (!s) return s;
    }
    return ok_status();
}

Status read_file(const std::string& path, Config& c) {
    std::ifstream in(path);
    if (!in) return Error::from_errno("config " + path);
    std::stringstream text;
    text << in.rdbuf();
    auto doc = parse_json_strict(text.str());
    if (!doc) return Error::msg("config " + path + ": not valid JSON (" + doc.error().message + ")");
    if (auto s = apply_file(*doc, c); !s) return Error::msg(path + ": " + s.error().message);
    return ok_status();
}

po::options_description command_options() {
    po::options_description cmds("Commands");
    for (const auto& f : kCommands) cmds.add_options()(f.option, f.help);
    return cmds;
}

po::options_description setting_options() {
    po::options_description keys("Settings (config file keys; flags override the file)");
    keys.add_options()("config", po::value<std::string>(), "JSON config file");
    for (const auto& k : kKeys) {
        std::string help = k.help, fallback = default_text(k);
        if (!fallback.empty()) help += " (default " + fallback + ")";
        auto* value = std::visit([](const auto& kind) { return flag_value(kind); }, k.value);
        keys.add_options()(flag_of(k.name).c_str(), value, help.c_str());
    }
    return keys;
}

Command command_of(const po::variables_map& vm) {
    for (const auto& f : kCommands) {
        std::string_view option = f.option;
        if (vm.count(std::string(option.substr(0, option.find(','))))) return f.command;
    }
    return Command::Run;
}

}  // namespace

Config::Config() {
    for (const auto& k : kKeys) std::visit([&](const auto& kind) { set_default(kind, *this); }, k.value);
}

std::span<const ConfigKey> config_keys() { return kKeys; }
std::span<const CommandFlag> command_flags() { return kCommands; }

std::string flag_of(std::string_view key) {
    std::string flag(key);
    for (char& ch : flag)
        if (ch == '_') ch = '-';
    return flag;
}

std::string default_text(const ConfigKey& key) {
    return std::visit([](const auto& kind) { return shown_default(kind); }, key.value);
}

Result<Invocation> parse_invocation(int argc, char** argv) {
    po::options_description all;
    all.add(command_options()).add(setting_options());
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(all).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        return Error::msg(e.what());
    }
    Invocation inv;
    std::ostringstream usage;
    usage << "usage: smtpgovd [--config FILE] [settings] [--check-config | --remove]\n" << all;
    inv.usage = usage.str();
    inv.command = command_of(vm);
    if (vm.count("config")) {
        inv.config_file = vm["config"].as<std::string>();
        if (auto s = read_file(inv.config_file, inv.config); !s) return s.error();
    }
    for (const auto& k : kKeys) {
        std::string flag = flag_of(k.name);
        std::visit(
            [&](const auto& kind) {
                if (vm.count(flag)) from_flag(kind, vm[flag], inv.config);
                normalize(kind, inv.config);
            },
            k.value);
    }
    return inv;
}

std::vector<std::string> check_config(const Config& c) {
    std::vector<std::string> problems;
    for (const auto& k : kKeys) std::visit([&](const auto& kind) { check(k.name, kind, c, problems); }, k.value);
    return problems;
}

json to_json(const Config& c) {
    json out = json::object();
    for (const auto& k : kKeys) out[k.name] = std::visit([&](const auto& kind) { return value_json(kind, c); }, k.value);
    return out;
}

}  // namespace smtpgov::daemon
