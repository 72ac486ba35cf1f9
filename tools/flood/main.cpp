// smtpgov-flood: load generator for the smtpgov testbed.
//   smtpgov-flood [syn] --dst ADDR... [--rate N|max] [--count N] [--duration S] ...
//   smtpgov-flood smtp  --dst ADDR... [--rate N] [--count N] [--concurrency N] ...
//   smtpgov-flood vlan-tag --iface DEV --vlan ID
// Exit status: 0 done, 1 runtime failure, 2 usage error (one line on stderr).
#include <csignal>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>

#include "flood.h"
#include "frame.h"
#include "options.h"
#include "pacer.h"

namespace po = boost::program_options;
using namespace flood;

namespace {

struct UsageError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// "a,b" and repeated flags both work
std::vector<std::string> split_all(const std::vector<std::string>& in)
{
    std::vector<std::string> out;
    for (const auto& s : in) {
        std::stringstream ss(s);
        std::string part;
        while (std::getline(ss, part, ','))
            if (!part.empty())
                out.push_back(part);
    }
    return out;
}

std::vector<Addr> parse_addrs(const po::variables_map& vm)
{
    std::vector<Addr> out;
    if (vm.count("dst"))
        for (const auto& s : split_all(vm["dst"].as<std::vector<std::string>>()))
            out.push_back(Addr::parse(s));
    if (out.empty())
        throw UsageError("--dst: at least one destination address");
    return out;
}

std::vector<uint16_t> parse_ports(const po::variables_map& vm)
{
    std::vector<uint16_t> out;
    if (vm.count("dport"))
        for (const auto& s : split_all(vm["dport"].as<std::vector<std::string>>())) {
            size_t used = 0;
            unsigned long p = std::stoul(s, &used);
            if (used != s.size() || p == 0 || p > 65535)
                throw UsageError("--dport: not a port: '" + s + "'");
            out.push_back((uint16_t)p);
        }
    if (out.empty())
        out.push_back(25);
    return out;
}

Bounds parse_bounds(const po::variables_map& vm)
{
    Bounds b;
    std::string r = vm["rate"].as<std::string>();
    if (r == "max") {
        b.rate = 0;
    } else {
        size_t used = 0;
        b.rate = std::stod(r, &used);
        if (used != r.size() || !(b.rate > 0))
            throw UsageError("--rate: a positive number or 'max'");
    }
    b.count = vm["count"].as<uint64_t>();
    b.duration = vm["duration"].as<double>();
    if (!(b.duration > 0) || b.duration > 3600)
        throw UsageError("--duration: seconds, 0 < d <= 3600 (every run is bounded)");
    return b;
}

void print_human(const nlohmann::json& j)
{
    const std::string mode = j["mode"];
    if (mode == "syn") {
        std::cout << "syn: sent " << j["sent"] << " SYNs in " << j["duration_s"].get<double>() << " s = "
                  << (uint64_t)j["rate"].get<double>() << "/s (target " << j["target_rate"] << ") via "
                  << j["method"].get<std::string>() << " on " << j["iface"].get<std::string>();
        if (j["vlan"].get<int>())
            std::cout << " vlan " << j["vlan"];
        if (j.contains("iface_xdp_xmit_errors") && j["iface_xdp_xmit_errors"].get<uint64_t>())
            std::cout << ", " << j["iface_xdp_xmit_errors"] << " refused by the device (XDP transmit ring full)";
        if (j["iface_tx_dropped"].get<uint64_t>())
            std::cout << ", " << j["iface_tx_dropped"] << " dropped by the device";
        std::cout << "\n";
        if (j.contains("fallback_reason"))
            std::cout << "  live frames not used: " << j["fallback_reason"].get<std::string>() << "\n";
    } else if (mode == "smtp") {
        std::cout << "smtp: " << j["sessions"] << " sessions in " << j["duration_s"].get<double>()
                  << " s: ok " << j["ok"] << ", reset " << j["reset"] << ", timed out " << j["timed_out"]
                  << ", rejected " << j["rejected"] << ", error " << j["error"] << " (p50 "
                  << j["latency_ms"]["p50"].get<double>() << " ms)\n";
        for (auto& [why, n] : j["reasons"].items())
            std::cout << "  " << why << ": " << n << "\n";
    } else {
        std::cout << j.dump() << "\n";
    }
}

SynOptions syn_options(const po::variables_map& vm, const std::optional<Addr>& src, unsigned vlan)
{
    SynOptions o;
    o.bounds = parse_bounds(vm);
    o.dst = parse_addrs(vm);
    o.dports = parse_ports(vm);
    o.src = src;
    if (vm.count("spoof")) {
        std::string sp = vm["spoof"].as<std::string>();
        if (sp == "random")
            sp = o.dst.front().family == AF_INET ? "0.0.0.0/0" : "::/0";
        o.spoof = Prefix::parse(sp);
    }
    o.vlan = (uint16_t)vlan;
    if (vm.count("iface"))
        o.iface = vm["iface"].as<std::string>();
    if (vm.count("dst-mac"))
        o.dst_mac = parse_mac(vm["dst-mac"].as<std::string>());
    o.method = vm["method"].as<std::string>();
    if (o.method != "auto" && o.method != "live" && o.method != "packet")
        throw UsageError("--method: auto, live or packet");
    o.batch = vm["batch"].as<uint32_t>();
    return o;
}

SmtpOptions smtp_options(const po::variables_map& vm, const std::optional<Addr>& src)
{
    SmtpOptions o;
    o.bounds = parse_bounds(vm);
    o.dst = parse_addrs(vm);
    o.dports = parse_ports(vm);
    o.src = src;
    o.concurrency = vm["concurrency"].as<unsigned>();
    o.timeout = vm["timeout"].as<double>();
    o.helo = vm["helo"].as<std::string>();
    o.from = vm["from"].as<std::string>();
    o.rcpt = vm["rcpt"].as<std::string>();
    o.body_bytes = vm["size"].as<size_t>();
    return o;
}

nlohmann::json run_mode(const std::string& mode, const po::variables_map& vm)
{
    if (mode != "syn" && mode != "smtp" && mode != "vlan-tag")
        throw UsageError("unknown mode '" + mode + "' (syn, smtp, vlan-tag)");
    if (vm.count("netns"))
        enter_netns(vm["netns"].as<std::string>());
    unsigned vlan = vm["vlan"].as<unsigned>();
    if (vlan > 4094)
        throw UsageError("--vlan: 0..4094");
    std::optional<Addr> src;
    if (vm.count("src"))
        src = Addr::parse(vm["src"].as<std::string>());
    if (mode == "syn")
        return run_syn(syn_options(vm, src, vlan));
    if (mode == "smtp")
        return run_smtp(smtp_options(vm, src));
    VlanTagOptions o;
    if (vm.count("iface"))
        o.iface = vm["iface"].as<std::string>();
    o.vlan = (uint16_t)vlan;
    return run_vlantag(o);
}

} // namespace

int main(int argc, char** argv)
{
    po::options_description common = flood::options();
    po::options_description all;
    all.add(common).add_options()("mode", po::value<std::string>()->default_value("syn"), "");
    po::positional_options_description pos;
    pos.add("mode", 1);

    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "smtpgov-flood: " << e.what() << "\n";
        return 2;
    }
    if (vm.count("help")) {
        std::cout << "usage: " << flood::kUsage << "\n" << common << "\n";
        return 0;
    }
    std::signal(SIGINT, [](int) { g_stop = true; });
    std::signal(SIGTERM, [](int) { g_stop = true; });

    nlohmann::json result;
    try {
        result = run_mode(vm["mode"].as<std::string>(), vm);
    } catch (const UsageError& e) {
        std::cerr << "smtpgov-flood: " << e.what() << "\n";
        return 2;
    } catch (const std::invalid_argument& e) {
        std::cerr << "smtpgov-flood: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "smtpgov-flood: " << e.what() << "\n";
        return 1;
    }
    if (vm.count("json"))
        std::cout << result.dump() << std::endl;
    else
        print_human(result);
    return 0;
}
