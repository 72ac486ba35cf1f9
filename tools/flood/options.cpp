#include "options.h"

#include <cstdint>
#include <string>
#include <vector>

namespace flood {

namespace po = boost::program_options;

po::options_description options()
{
    po::options_description common("Options");
    common.add_options()
        ("help,h", "this help")
        ("netns", po::value<std::string>(), "network namespace to run in (name under /run/netns, or a path)")
        ("json", "print the summary as one JSON object")
        ("dst", po::value<std::vector<std::string>>()->composing(), "destination address(es), v4/v6; a list cycles")
        ("dport", po::value<std::vector<std::string>>()->composing(), "destination port(s) (default 25); a list cycles")
        ("rate", po::value<std::string>()->default_value("1000"), "SYNs or sessions per second, or 'max'")
        ("count", po::value<uint64_t>()->default_value(0), "stop after this many (default: rate x duration)")
        ("duration", po::value<double>()->default_value(10), "stop after this many seconds")
        ("src", po::value<std::string>(), "source address (default: the interface's)")
        ("spoof", po::value<std::string>(), "syn: random source addresses: 'random' or CIDR")
        ("vlan", po::value<unsigned>()->default_value(0), "syn: 802.1Q tag; vlan-tag: the VLAN ID")
        ("iface", po::value<std::string>(), "syn: device to send on (default: the route's); vlan-tag: device")
        ("dst-mac", po::value<std::string>(), "syn: destination MAC (default: the next hop's neighbour entry)")
        ("method", po::value<std::string>()->default_value("auto"), "syn: auto | live | packet")
        ("batch", po::value<uint32_t>()->default_value(0), "syn: max frames per send call (default by rate)")
        ("concurrency", po::value<unsigned>()->default_value(32), "smtp: sessions in flight at most")
        ("timeout", po::value<double>()->default_value(10), "smtp: seconds per session")
        ("helo", po::value<std::string>()->default_value("vm.testbed.invalid"), "smtp: EHLO name")
        ("from", po::value<std::string>()->default_value("sender@vm.testbed.invalid"), "smtp: envelope sender")
        ("rcpt", po::value<std::string>()->default_value("rcpt@example.org"), "smtp: envelope recipient")
        ("size", po::value<size_t>()->default_value(512), "smtp: body bytes");
    return common;
}

} // namespace flood
