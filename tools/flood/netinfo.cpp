// Facts about the network smtpgov-flood runs in: all read through
// netns-aware interfaces (ioctl, netlink, /proc/self/net), never /sys.
#include "flood.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <string_view>
#include <vector>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/unique_fd.h"

namespace flood {

using smtpgov::UniqueFd;

void fail_errno(const std::string& what, int err)
{
    throw std::runtime_error(what + ": " + std::strerror(err));
}

namespace {
void ifreq_ioctl(const std::string& ifname, unsigned long req, ifreq& ifr)
{
    if (ifname.size() >= IFNAMSIZ)
        throw std::invalid_argument("interface name too long: " + ifname);
    UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s)
        fail_errno("socket", errno);
    std::memset(&ifr, 0, sizeof ifr);
    std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
    if (ioctl(s.get(), req, &ifr) < 0)
        fail_errno("interface " + ifname, errno);
}

bool in_prefix(const Addr& a, const uint8_t* net, unsigned len)
{
    for (unsigned i = 0; i < len; i++) {
        uint8_t bit = 0x80 >> (i % 8);
        if ((a.b[i / 8] & bit) != (net[i / 8] & bit))
            return false;
    }
    return true;
}

Route route4(const Addr& dst)
{
    std::ifstream f("/proc/self/net/route");
    std::string line, best_if;
    std::optional<Addr> best_gw;
    int best_len = -1;
    std::getline(f, line); // header
    while (std::getline(f, line)) {
        std::istringstream ss(line);
        std::string ifname;
        uint32_t dest, gw, flags, refcnt, use, metric, mask;
        if (!(ss >> ifname >> std::hex >> dest >> gw >> flags >> refcnt >> use >> metric >> mask))
            continue;
        if (!(flags & 1)) // RTF_UP
            continue;
        // the file prints the addresses as host-order numbers of network-order words
        uint8_t net[4], msk[4];
        std::memcpy(net, &dest, 4);
        std::memcpy(msk, &mask, 4);
        int len = __builtin_popcount(mask);
        if (len > best_len && in_prefix(dst, net, len)) {
            best_len = len;
            best_if = ifname;
            best_gw.reset();
            if (flags & 2) { // RTF_GATEWAY
                Addr g;
                std::memcpy(g.b.data(), &gw, 4);
                best_gw = g;
            }
        }
    }
    if (best_len < 0)
        throw std::runtime_error("no IPv4 route to " + dst.str());
    return {best_if, best_gw};
}

Route route6(const Addr& dst)
{
    std::ifstream f("/proc/self/net/ipv6_route");
    std::string dest, dlen, src, slen, nh, metric, ref, use, flags, ifname;
    std::string best_if;
    std::optional<Addr> best_gw;
    int best_len = -1;
    auto hex16 = [](const std::string& h, uint8_t* out) {
        for (int i = 0; i < 16; i++)
            out[i] = (uint8_t)std::stoul(h.substr(2 * i, 2), nullptr, 16);
    };
    while (f >> dest >> dlen >> src >> slen >> nh >> metric >> ref >> use >> flags >> ifname) {
        uint32_t fl = std::stoul(flags, nullptr, 16);
        if (!(fl & 1) || ifname == "lo")
            continue;
        uint8_t net[16];
        hex16(dest, net);
        int len = (int)std::stoul(dlen, nullptr, 16);
        if (len > best_len && in_prefix(dst, net, len)) {
            best_len = len;
            best_if = ifname;
            best_gw.reset();
            if (fl & 2) {
                Addr g;
                g.family = AF_INET6;
                hex16(nh, g.b.data());
                best_gw = g;
            }
        }
    }
    if (best_len < 0)
        throw std::runtime_error("no IPv6 route to " + dst.str());
    return {best_if, best_gw};
}
} // namespace

void enter_netns(const std::string& name)
{
    std::string path = name.find('/') == std::string::npos ? "/run/netns/" + name : name;
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        fail_errno("open " + path, errno);
    if (setns(fd.get(), CLONE_NEWNET) < 0)
        fail_errno("setns " + path, errno);
}

int ifindex_of(const std::string& ifname)
{
    ifreq ifr;
    ifreq_ioctl(ifname, SIOCGIFINDEX, ifr);
    return ifr.ifr_ifindex;
}

Mac mac_of(const std::string& ifname)
{
    ifreq ifr;
    ifreq_ioctl(ifname, SIOCGIFHWADDR, ifr);
    Mac m;
    std::memcpy(m.data(), ifr.ifr_hwaddr.sa_data, 6);
    return m;
}

Route route_to(const Addr& dst)
{
    return dst.family == AF_INET ? route4(dst) : route6(dst);
}

std::optional<Addr> iface_addr(const std::string& ifname, int family)
{
    ifaddrs* ifa = nullptr;
    if (getifaddrs(&ifa) < 0)
        fail_errno("getifaddrs", errno);
    std::optional<Addr> found;
    for (ifaddrs* i = ifa; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || ifname != i->ifa_name || i->ifa_addr->sa_family != family)
            continue;
        Addr a;
        a.family = family;
        if (family == AF_INET) {
            std::memcpy(a.b.data(), &((sockaddr_in*)i->ifa_addr)->sin_addr, 4);
        } else {
            auto* s6 = (sockaddr_in6*)i->ifa_addr;
            if (IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr))
                continue;
            std::memcpy(a.b.data(), &s6->sin6_addr, 16);
        }
        found = a;
    }
    freeifaddrs(ifa);
    return found;
}

namespace {

// Sum of the ethtool statistics of a device whose names end with `suffix` (veth keeps
// them per queue: tx_queue_0_xdp_xmit_errors, ...); 0 when the driver has none.
uint64_t ethtool_stat_sum(const std::string& ifname, std::string_view suffix)
{
    UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s || ifname.size() >= IFNAMSIZ)
        return 0;
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
    auto call = [&](void* data) {
        ifr.ifr_data = static_cast<char*>(data);
        return ioctl(s.get(), SIOCETHTOOL, &ifr) == 0;
    };
    // ethtool_sset_info ends in a flexible array: one __u32 follows for one set
    std::vector<uint64_t> sset_buf((sizeof(ethtool_sset_info) + sizeof(uint32_t) + 7) / 8);
    auto* sset = reinterpret_cast<ethtool_sset_info*>(sset_buf.data());
    sset->cmd = ETHTOOL_GSSET_INFO;
    sset->sset_mask = 1ULL << ETH_SS_STATS;
    if (!call(sset) || !(sset->sset_mask & (1ULL << ETH_SS_STATS)) || sset->data[0] == 0)
        return 0;
    const uint32_t n = sset->data[0];
    std::vector<uint64_t> names((sizeof(ethtool_gstrings) + size_t(n) * ETH_GSTRING_LEN + 7) / 8);
    auto* gs = reinterpret_cast<ethtool_gstrings*>(names.data());
    gs->cmd = ETHTOOL_GSTRINGS;
    gs->string_set = ETH_SS_STATS;
    gs->len = n;
    std::vector<uint64_t> values((sizeof(ethtool_stats) + 7) / 8 + n);
    auto* st = reinterpret_cast<ethtool_stats*>(values.data());
    st->cmd = ETHTOOL_GSTATS;
    st->n_stats = n;
    if (!call(gs) || !call(st))
        return 0;
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n && i < st->n_stats; ++i) {
        const char* raw = reinterpret_cast<const char*>(gs->data) + size_t(i) * ETH_GSTRING_LEN;
        std::string_view name(raw, strnlen(raw, ETH_GSTRING_LEN));
        if (name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix)
            sum += st->data[i];
    }
    return sum;
}

} // namespace

IfStats iface_stats(const std::string& ifname)
{
    ifaddrs* ifa = nullptr;
    if (getifaddrs(&ifa) < 0)
        fail_errno("getifaddrs", errno);
    IfStats st;
    for (ifaddrs* i = ifa; i; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_PACKET && ifname == i->ifa_name && i->ifa_data) {
            auto* s = (rtnl_link_stats*)i->ifa_data;
            st.tx_packets = s->tx_packets;
            st.tx_dropped = s->tx_dropped;
        }
    }
    freeifaddrs(ifa);
    st.xdp_xmit_errors = ethtool_stat_sum(ifname, "_xdp_xmit_errors");
    return st;
}

std::optional<Mac> neigh_mac(const Addr& addr)
{
    UniqueFd s(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!s)
        fail_errno("netlink socket", errno);
    struct {
        nlmsghdr h;
        ndmsg nd;
    } req{};
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = RTM_GETNEIGH;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nd.ndm_family = (uint8_t)addr.family;
    if (send(s.get(), &req, sizeof req, 0) < 0)
        fail_errno("netlink neighbour dump", errno);
    std::optional<Mac> found;
    std::vector<char> buf(1 << 16);
    for (;;) {
        ssize_t n = recv(s.get(), buf.data(), buf.size(), 0);
        if (n < 0)
            fail_errno("netlink neighbour dump", errno);
        for (auto* h = (nlmsghdr*)buf.data(); NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
                return found;
            auto* nd = (ndmsg*)NLMSG_DATA(h);
            if (nd->ndm_state & (NUD_INCOMPLETE | NUD_FAILED | NUD_NOARP))
                continue;
            const uint8_t* dst = nullptr;
            const uint8_t* ll = nullptr;
            int len = (int)RTM_PAYLOAD(h);
            for (auto* a = (rtattr*)((char*)nd + NLMSG_ALIGN(sizeof *nd)); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                if (a->rta_type == NDA_DST && RTA_PAYLOAD(a) == addr.len())
                    dst = (const uint8_t*)RTA_DATA(a);
                if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6)
                    ll = (const uint8_t*)RTA_DATA(a);
            }
            if (dst && ll && !found && std::memcmp(dst, addr.b.data(), addr.len()) == 0) {
                Mac m;
                std::memcpy(m.data(), ll, 6);
                found = m;
            }
        }
    }
}

} // namespace flood
