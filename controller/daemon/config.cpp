#include "daemon/config.h"

#include <boost/program_options.hpp>

#include <fstream>
#include <set>
#include <sstream>

#include "daemon/log.h"
#include "kern/xdp_hook.h"

namespace smtpgov::daemon {
namespace po = boost::program_options;
namespace {

std::string flag_of(std::string key) {
    for (char& c : key)
        if (c == '_') c = '-';
    return key;
}

Status apply_file(const nlohmann::json& doc, Config& c) {
    if (!doc.is_object()) return Error::msg("config: the document must be a JSON object");
    static const std::set<std::string> known{"interfaces", "xdp_mode", "bpffs", "state_dir", "socket",
                                             "metrics_listen", "policy", "sweep_interval_ms", "max_vms",
                                             "webhook_url", "log_level", "metrics_max_vm_series"};
    for (const auto& [key, value] : doc.items()) {
        if (!known.count(key)) return Error::msg("config: unknown key \"" + key + "\"");
        try {
            if (key == "interfaces") {
                c.interfaces = value.get<std::vector<std::string>>();
            } else if (key == "sweep_interval_ms" || key == "max_vms" || key == "metrics_max_vm_series") {
                if (!value.is_number_unsigned()) return Error::msg("config: " + key + " must be a non-negative integer");
                uint32_t v = value.get<uint32_t>();
                (key == "sweep_interval_ms" ? c.sweep_interval_ms : key == "max_vms" ? c.max_vms : c.metrics_max_vm_series) = v;
            } else {
                std::string v = value.get<std::string>();
                if (key == "xdp_mode") c.xdp_mode = v;
                else if (key == "bpffs") c.bpffs = v;
                else if (key == "state_dir") c.state_dir = v;
                else if (key == "socket") c.socket = v;
                else if (key == "metrics_listen") c.metrics_listen = v;
                else if (key == "policy") c.policy = v;
                else if (key == "webhook_url") c.webhook_url = v;
                else if (key == "log_level") c.log_level = v;
            }
        } catch (const nlohmann::json::exception&) {
            return Error::msg("config: " + key + " has the wrong type");
        }
    }
    return ok_status();
}

std::vector<std::string> split_list(const std::vector<std::string>& raw) {
    std::vector<std::string> out;
    for (const auto& item : raw) {
        std::stringstream ss(item);
        std::string part;
        while (std::getline(ss, part, ','))
            if (!part.empty()) out.push_back(part);
    }
    return out;
}

bool absolute(const std::string& p) { return !p.empty() && p[0] == '/'; }

}  // namespace

Result<Invocation> parse_invocation(int argc, char** argv) {
    Config d;  // defaults, shown in --help
    po::options_description cmds("Commands");
    cmds.add_options()
        ("help,h", "show this help")
        ("version", "print the version")
        ("check-config", "validate the config and its policy, then exit 0 (valid) or 2")
        ("remove", "detach every smtpgov program and remove all pins, then exit")
        ("cleanup", "same as --remove");
    po::options_description keys("Settings (config file keys; flags override the file)");
    keys.add_options()
        ("config", po::value<std::string>(), "JSON config file")
        ("interfaces", po::value<std::vector<std::string>>()->multitoken(), "VM-facing interface names or globs (repeat or comma-separate)")
        ("xdp-mode", po::value<std::string>(), "native | generic | auto (default auto)")
        ("bpffs", po::value<std::string>(), ("pin directory (default " + d.bpffs + ")").c_str())
        ("state-dir", po::value<std::string>(), ("policy, slots and reputation (default " + d.state_dir + ")").c_str())
        ("socket", po::value<std::string>(), ("control socket (default " + d.socket + ")").c_str())
        ("metrics-listen", po::value<std::string>(), "host:port of /metrics, \"\" for none (default 127.0.0.1:9464)")
        ("policy", po::value<std::string>(), "policy file applied at start when no policy is persisted")
        ("sweep-interval-ms", po::value<uint32_t>(), "counter sweep interval (default 1000)")
        ("max-vms", po::value<uint32_t>(), "slots in the per-VM maps (default 16384)")
        ("webhook-url", po::value<std::string>(), "POST tickets here (http/https)")
        ("log-level", po::value<std::string>(), "error | warning | notice | info | debug (default info)")
        ("metrics-max-vm-series", po::value<uint32_t>(), "per-VM metric series cap, 0 = unlimited (default 1000)");
    po::options_description all;
    all.add(cmds).add(keys);
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
    if (vm.count("help")) inv.command = Command::Help;
    else if (vm.count("version")) inv.command = Command::Version;
    else if (vm.count("check-config")) inv.command = Command::CheckConfig;
    else if (vm.count("remove") || vm.count("cleanup")) inv.command = Command::Remove;

    if (vm.count("config")) {
        inv.config_file = vm["config"].as<std::string>();
        std::ifstream in(inv.config_file);
        if (!in) return Error::from_errno("config " + inv.config_file);
        nlohmann::json doc = nlohmann::json::parse(in, nullptr, false);
        if (doc.is_discarded()) return Error::msg("config " + inv.config_file + ": not valid JSON");
        if (auto s = apply_file(doc, inv.config); !s) return Error::msg(inv.config_file + ": " + s.error().message);
    }
    Config& c = inv.config;
    auto str = [&](const char* key, std::string& into) {
        if (vm.count(flag_of(key))) into = vm[flag_of(key)].as<std::string>();
    };
    auto num = [&](const char* key, uint32_t& into) {
        if (vm.count(flag_of(key))) into = vm[flag_of(key)].as<uint32_t>();
    };
    if (vm.count("interfaces")) c.interfaces = vm["interfaces"].as<std::vector<std::string>>();
    c.interfaces = split_list(c.interfaces);
    str("xdp_mode", c.xdp_mode);
    str("bpffs", c.bpffs);
    str("state_dir", c.state_dir);
    str("socket", c.socket);
    str("metrics_listen", c.metrics_listen);
    str("policy", c.policy);
    num("sweep_interval_ms", c.sweep_interval_ms);
    num("max_vms", c.max_vms);
    str("webhook_url", c.webhook_url);
    str("log_level", c.log_level);
    num("metrics_max_vm_series", c.metrics_max_vm_series);
    return inv;
}

std::vector<std::string> check_config(const Config& c) {
    std::vector<std::string> p;
    if (!kern::parse_xdp_mode(c.xdp_mode)) p.push_back("xdp_mode: must be native, generic or auto, not \"" + c.xdp_mode + "\"");
    if (!log::parse_level(c.log_level)) p.push_back("log_level: must be error, warning, notice, info or debug");
    if (c.sweep_interval_ms < 10 || c.sweep_interval_ms > 60000) p.push_back("sweep_interval_ms: must be 10..60000");
    if (c.max_vms < 1 || c.max_vms > (1u << 22)) p.push_back("max_vms: must be 1..4194304");
    for (const auto& i : c.interfaces)
        if (i.empty() || i.size() > 15 || i.find('/') != std::string::npos || i.find(' ') != std::string::npos)
            p.push_back("interfaces: \"" + i + "\" is not an interface name or glob (at most 15 characters)");
    for (auto [key, path] : {std::pair{"bpffs", c.bpffs}, {"state_dir", c.state_dir}, {"socket", c.socket}})
        if (!absolute(path)) p.push_back(std::string(key) + ": must be an absolute path");
    if (!c.policy.empty() && !absolute(c.policy)) p.push_back("policy: must be an absolute path");
    if (!c.metrics_listen.empty()) {
        auto colon = c.metrics_listen.rfind(':');
        bool ok = colon != std::string::npos && colon + 1 < c.metrics_listen.size() &&
                  c.metrics_listen.find_first_not_of("0123456789", colon + 1) == std::string::npos;
        if (!ok) p.push_back("metrics_listen: must be HOST:PORT, or \"\" to disable");
    }
    if (!c.webhook_url.empty() && c.webhook_url.rfind("http://", 0) != 0 && c.webhook_url.rfind("https://", 0) != 0)
        p.push_back("webhook_url: must be an http:// or https:// URL");
    return p;
}

nlohmann::json to_json(const Config& c) {
    return {{"interfaces", c.interfaces}, {"xdp_mode", c.xdp_mode}, {"bpffs", c.bpffs},
            {"state_dir", c.state_dir}, {"socket", c.socket}, {"metrics_listen", c.metrics_listen},
            {"policy", c.policy}, {"sweep_interval_ms", c.sweep_interval_ms}, {"max_vms", c.max_vms},
            {"webhook_url", c.webhook_url}, {"log_level", c.log_level},
            {"metrics_max_vm_series", c.metrics_max_vm_series}};
}

}  // namespace smtpgov::daemon
