#include "frame.h"

#include <cstring>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <unistd.h>

namespace flood {

Addr Addr::parse(const std::string& text)
{
    Addr a;
    std::string t = text;
    if (t.size() > 2 && t.front() == '[' && t.back() == ']')
        t = t.substr(1, t.size() - 2);
    if (inet_pton(AF_INET, t.c_str(), a.b.data()) == 1)
        return a;
    a.family = AF_INET6;
    if (inet_pton(AF_INET6, t.c_str(), a.b.data()) == 1)
        return a;
    throw std::invalid_argument("not an IPv4 or IPv6 address: '" + text + "'");
}

std::string Addr::str() const
{
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(family, b.data(), buf, sizeof buf);
    return buf;
}

Prefix Prefix::parse(const std::string& text)
{
    auto slash = text.find('/');
    if (slash == std::string::npos)
        throw std::invalid_argument("spoof prefix must be ADDR/LEN or 'random': '" + text + "'");
    Prefix p;
    p.addr = Addr::parse(text.substr(0, slash));
    size_t used = 0;
    unsigned long len = std::stoul(text.substr(slash + 1), &used);
    if (used != text.size() - slash - 1 || len > p.addr.len() * 8)
        throw std::invalid_argument("bad prefix length in '" + text + "'");
    p.len = (unsigned)len;
    return p;
}

Mac parse_mac(const std::string& text)
{
    Mac m;
    unsigned v[6];
    char extra;
    if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &extra) != 6)
        throw std::invalid_argument("not a MAC address: '" + text + "'");
    for (int i = 0; i < 6; i++) {
        if (v[i] > 0xff)
            throw std::invalid_argument("not a MAC address: '" + text + "'");
        m[i] = (uint8_t)v[i];
    }
    return m;
}

std::string mac_str(const Mac& m)
{
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    return buf;
}

namespace {
// one's-complement sum of 16-bit words in memory order (RFC 1071: order-independent)
uint32_t sum16(const uint8_t* p, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint16_t w;
        std::memcpy(&w, p + i, 2);
        s += w;
    }
    if (n & 1) {
        uint8_t last[2] = {p[n - 1], 0};
        uint16_t w;
        std::memcpy(&w, last, 2);
        s += w;
    }
    return s;
}

uint32_t words(uint32_t v) { return (v & 0xffff) + (v >> 16); }

uint16_t fold(uint32_t s)
{
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

void put16(uint8_t* p, uint16_t host) { uint16_t n = htons(host); std::memcpy(p, &n, 2); }

void prefix_words(const Prefix& p, uint32_t* base, uint32_t* mask, int n)
{
    uint8_t m[16] = {};
    for (unsigned i = 0; i < p.len; i++)
        m[i / 8] |= (uint8_t)(0x80 >> (i % 8));
    std::memcpy(base, p.addr.b.data(), 4 * n);
    std::memcpy(mask, m, 4 * n);
}
} // namespace

flood_target make_target(const FrameLayout& l, const Mac& src_mac, const Mac& dst_mac, uint16_t vlan,
                         const Addr& src, const Addr& dst, uint16_t dport, bool spoof)
{
    flood_target t{};
    uint8_t* f = t.frame;
    std::memcpy(f, dst_mac.data(), 6);
    std::memcpy(f + 6, src_mac.data(), 6);
    uint16_t proto = l.v6 ? ETH_P_IPV6 : ETH_P_IP;
    if (l.l3_off == ETH_HLEN + 4) {
        put16(f + 12, ETH_P_8021Q);
        put16(f + 14, vlan & 0x0fff);
        put16(f + 16, proto);
    } else {
        put16(f + 12, proto);
    }
    uint8_t* ip = f + l.l3_off;
    uint8_t* tcp = ip + (l.v6 ? 40 : 20);
    uint8_t pseudo[40] = {};
    size_t pseudo_len;
    if (l.v6) {
        ip[0] = 0x60;
        put16(ip + 4, FLOOD_TCP_HLEN);
        ip[6] = IPPROTO_TCP;
        ip[7] = 64;
        if (!spoof)
            std::memcpy(ip + 8, src.b.data(), 16);
        std::memcpy(ip + 24, dst.b.data(), 16);
        std::memcpy(pseudo, ip + 8, 32);          // src (zero when spoofed) + dst
        pseudo[35] = FLOOD_TCP_HLEN;              // upper-layer length (32 bits)
        pseudo[39] = IPPROTO_TCP;
        pseudo_len = 40;
    } else {
        ip[0] = 0x45;
        put16(ip + 2, 20 + FLOOD_TCP_HLEN);
        put16(ip + 6, 0x4000);                    // DF
        ip[8] = 64;
        ip[9] = IPPROTO_TCP;
        if (!spoof)
            std::memcpy(ip + 12, src.b.data(), 4);
        std::memcpy(ip + 16, dst.b.data(), 4);
        t.ip_sum = sum16(ip, 20);
        std::memcpy(pseudo, ip + 12, 8);
        pseudo[9] = IPPROTO_TCP;
        pseudo[11] = FLOOD_TCP_HLEN;
        pseudo_len = 12;
    }
    put16(tcp + 2, dport);
    tcp[12] = (FLOOD_TCP_HLEN / 4) << 4;
    tcp[13] = 0x02;                               // SYN
    put16(tcp + 14, 64240);
    tcp[20] = 2;                                  // MSS option
    tcp[21] = 4;
    put16(tcp + 22, 1460);
    t.tcp_sum = sum16(pseudo, pseudo_len) + sum16(tcp, FLOOD_TCP_HLEN);
    return t;
}

flood_params make_params(uint32_t n_v4, uint32_t n_v6, uint32_t l3_off, const std::optional<Prefix>& spoof4,
                         const std::optional<Prefix>& spoof6)
{
    flood_params p{};
    p.n_v4 = n_v4;
    p.n_v6 = n_v6;
    p.l3_off = l3_off;
    p.spoof = (spoof4 ? FLOOD_SPOOF_V4 : 0) | (spoof6 ? FLOOD_SPOOF_V6 : 0);
    if (spoof4)
        prefix_words(*spoof4, &p.spoof4_base, &p.spoof4_mask, 1);
    if (spoof6)
        prefix_words(*spoof6, p.spoof6_base, p.spoof6_mask, 4);
    return p;
}

void finish_frame(const flood_target& t, const FrameLayout& l, const flood_params& p, std::mt19937_64& rng,
                  uint8_t* out)
{
    std::memcpy(out, t.frame, l.len());
    uint8_t* ip = out + l.l3_off;
    uint8_t* tcp = ip + (l.v6 ? 40 : 20);
    uint64_t r = rng();
    uint16_t sport = htons((uint16_t)(1024 + (r & 0xffff) % (65536 - 1024)));
    uint32_t seq = (uint32_t)(r >> 32);
    uint32_t tsum = t.tcp_sum + sport + words(seq);
    std::memcpy(tcp, &sport, 2);
    std::memcpy(tcp + 4, &seq, 4);
    bool spoof = p.spoof & (l.v6 ? FLOOD_SPOOF_V6 : FLOOD_SPOOF_V4);
    if (spoof && l.v6) {
        for (int i = 0; i < 4; i++) {
            uint32_t a = (p.spoof6_base[i] & p.spoof6_mask[i]) | ((uint32_t)rng() & ~p.spoof6_mask[i]);
            std::memcpy(ip + 8 + 4 * i, &a, 4);
            tsum += words(a);
        }
    } else if (spoof) {
        uint32_t a = (p.spoof4_base & p.spoof4_mask) | ((uint32_t)rng() & ~p.spoof4_mask);
        std::memcpy(ip + 12, &a, 4);
        tsum += words(a);
        uint16_t c = fold(t.ip_sum + words(a));
        std::memcpy(ip + 10, &c, 2);
    }
    if (!spoof && !l.v6) {
        uint16_t c = fold(t.ip_sum);
        std::memcpy(ip + 10, &c, 2);
    }
    uint16_t c = fold(tsum);
    std::memcpy(tcp + 16, &c, 2);
}

std::vector<uint8_t> make_echo(uint32_t l3_off, const Mac& src_mac, const Mac& dst_mac, uint16_t vlan, const Addr& src,
                               const Addr& dst, const std::array<uint8_t, 16>& cookie)
{
    bool v6 = dst.family == AF_INET6;
    uint32_t iplen = v6 ? 40 : 20, icmplen = 8 + (uint32_t)cookie.size();
    std::vector<uint8_t> f(l3_off + iplen + icmplen, 0);
    std::memcpy(f.data(), dst_mac.data(), 6);
    std::memcpy(f.data() + 6, src_mac.data(), 6);
    uint16_t proto = v6 ? ETH_P_IPV6 : ETH_P_IP;
    if (l3_off == ETH_HLEN + 4) {
        put16(&f[12], ETH_P_8021Q);
        put16(&f[14], vlan & 0x0fff);
        put16(&f[16], proto);
    } else {
        put16(&f[12], proto);
    }
    uint8_t* ip = &f[l3_off];
    uint8_t* icmp = ip + iplen;
    icmp[0] = v6 ? 128 : 8;                       // echo request
    put16(icmp + 4, (uint16_t)getpid());
    put16(icmp + 6, 1);
    std::memcpy(icmp + 8, cookie.data(), cookie.size());
    uint32_t sum = sum16(icmp, icmplen);
    if (v6) {
        ip[0] = 0x60;
        put16(ip + 4, (uint16_t)icmplen);
        ip[6] = IPPROTO_ICMPV6;
        ip[7] = 64;
        std::memcpy(ip + 8, src.b.data(), 16);
        std::memcpy(ip + 24, dst.b.data(), 16);
        uint8_t pseudo[8] = {0, 0, 0, (uint8_t)icmplen, 0, 0, 0, IPPROTO_ICMPV6};
        sum += sum16(ip + 8, 32) + sum16(pseudo, 8);
    } else {
        ip[0] = 0x45;
        put16(ip + 2, (uint16_t)(20 + icmplen));
        ip[8] = 64;
        ip[9] = IPPROTO_ICMP;
        std::memcpy(ip + 12, src.b.data(), 4);
        std::memcpy(ip + 16, dst.b.data(), 4);
        uint16_t c = fold(sum16(ip, 20));
        std::memcpy(ip + 10, &c, 2);
    }
    uint16_t c = fold(sum);
    std::memcpy(icmp + 2, &c, 2);
    return f;
}

} // namespace flood
