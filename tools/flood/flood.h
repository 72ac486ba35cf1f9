// smtpgov-flood: the pieces main.cpp wires together.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <nlohmann/json.hpp>

namespace flood {

// An IPv4 or IPv6 address, bytes in network order (IPv4 in the first 4).
struct Addr {
    int family = AF_INET;
    std::array<uint8_t, 16> b{};
    static Addr parse(const std::string& text);   // throws std::invalid_argument
    std::string str() const;
    size_t len() const { return family == AF_INET ? 4 : 16; }
};

// ADDR/LEN; "random" is 0.0.0.0/0 (IPv4) or ::/0 (IPv6), chosen per family.
struct Prefix {
    Addr addr;
    unsigned len = 0;
    static Prefix parse(const std::string& text);
};

using Mac = std::array<uint8_t, 6>;
Mac parse_mac(const std::string& text);
std::string mac_str(const Mac& m);

// ---- network namespace and interface facts (netinfo.cpp) -------------------
void enter_netns(const std::string& name);
int ifindex_of(const std::string& ifname);
Mac mac_of(const std::string& ifname);
struct Route { std::string ifname; std::optional<Addr> gateway; };
Route route_to(const Addr& dst);                 // from /proc/self/net/{route,ipv6_route}
std::optional<Addr> iface_addr(const std::string& ifname, int family);
std::optional<Mac> neigh_mac(const Addr& addr); // netlink neighbour dump, any device
// tx_dropped: the device's drops; xdp_xmit_errors: frames sent with XDP_TX/ndo_xdp_xmit
// that the driver refused (a veth whose peer ring is full), from its ethtool statistics.
struct IfStats { uint64_t tx_packets = 0, tx_dropped = 0, xdp_xmit_errors = 0; };
IfStats iface_stats(const std::string& ifname);

// ---- common options ----------------------------------------------------------
struct Bounds {
    double rate = 1000;      // per second; 0 = as fast as possible ("max")
    uint64_t count = 0;      // 0 = rate x duration
    double duration = 10;    // seconds, always bounded
};

struct SynOptions {
    Bounds bounds;
    std::vector<Addr> dst;
    std::vector<uint16_t> dports{25};
    std::optional<Addr> src;           // default: the interface's address
    std::optional<Prefix> spoof;
    uint16_t vlan = 0;
    std::string iface;                 // default: the route's device
    std::optional<Mac> dst_mac;
    std::string method = "auto";       // auto | live | packet
    uint32_t batch = 0;                // frames per BPF_PROG_RUN / sendmmsg (0: by rate)
};
nlohmann::json run_syn(const SynOptions& o);

struct SmtpOptions {
    Bounds bounds;
    std::vector<Addr> dst;
    std::vector<uint16_t> dports{25};
    std::optional<Addr> src;
    unsigned concurrency = 32;
    double timeout = 10;               // seconds per session
    std::string helo = "vm.testbed.invalid";
    std::string from = "sender@vm.testbed.invalid";
    std::string rcpt = "rcpt@example.org";
    size_t body_bytes = 512;
};
nlohmann::json run_smtp(const SmtpOptions& o);

struct VlanTagOptions { std::string iface; uint16_t vlan = 0; };
nlohmann::json run_vlantag(const VlanTagOptions& o);

// errno-carrying failure with context: "open /run/netns/x: No such file or directory"
[[noreturn]] void fail_errno(const std::string& what, int err);

} // namespace flood
