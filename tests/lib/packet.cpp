#include "packet.h"

#include <arpa/inet.h>

#include <algorithm>
#include <stdexcept>

namespace sgt {
namespace {

void put16(Bytes& b, uint16_t v)
{
    b.push_back(uint8_t(v >> 8));
    b.push_back(uint8_t(v));
}

void put32(Bytes& b, uint32_t v)
{
    put16(b, uint16_t(v >> 16));
    put16(b, uint16_t(v));
}

void set16(Bytes& b, size_t off, uint16_t v)
{
    b[off] = uint8_t(v >> 8);
    b[off + 1] = uint8_t(v);
}

constexpr uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17, kExtFragment = 44, kProtoIcmp6 = 58;

}  // namespace

uint32_t inet_sum(const uint8_t* data, size_t len, uint32_t seed)
{
    uint64_t sum = seed;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += uint32_t(data[i]) << 8 | data[i + 1];
    if (len & 1)
        sum += uint32_t(data[len - 1]) << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return uint32_t(sum);
}

uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t seed)
{
    return uint16_t(~inet_sum(data, len, seed));
}

Bytes addr(const std::string& text)
{
    Bytes out(16);
    if (inet_pton(AF_INET, text.c_str(), out.data()) == 1) {
        out.resize(4);
        return out;
    }
    if (inet_pton(AF_INET6, text.c_str(), out.data()) == 1)
        return out;
    throw std::invalid_argument("bad address " + text);
}

Packet& Packet::eth(const Mac& src, const Mac& dst) { src_mac_ = src; dst_mac_ = dst; return *this; }
Packet& Packet::vlan(uint16_t vid, uint16_t tpid) { vlans_.emplace_back(tpid, vid); return *this; }
Packet& Packet::ethertype(uint16_t type) { l3_ = L3::raw; ethertype_ = type; return *this; }
Packet& Packet::ip_options(size_t bytes) { ip_opts_ = bytes; return *this; }
Packet& Packet::ext(uint8_t type, size_t bytes) { exts_.emplace_back(type, bytes); return *this; }
Packet& Packet::ip_version(uint8_t v) { version_ = v; return *this; }
Packet& Packet::l4(uint8_t proto) { l4_ = L4::raw; proto_ = proto; return *this; }
Packet& Packet::flags(uint8_t f) { flags_ = f; return *this; }
Packet& Packet::seq(uint32_t s) { seq_ = s; return *this; }
Packet& Packet::ackno(uint32_t a) { ack_ = a; ack_set_ = true; return *this; }
Packet& Packet::tcp_options(size_t bytes) { tcp_opts_ = bytes; return *this; }
Packet& Packet::payload(const Bytes& p) { payload_ = p; return *this; }
Packet& Packet::payload(const std::string& p) { payload_.assign(p.begin(), p.end()); return *this; }
Packet& Packet::l2_padding(size_t bytes) { padding_ = bytes; return *this; }
Packet& Packet::slice(size_t from, size_t len) { slice_from_ = from; slice_len_ = len; return *this; }

Packet& Packet::ipv4(const std::string& src, const std::string& dst)
{
    l3_ = L3::v4;
    src_ = addr(src);
    dst_ = addr(dst);
    return *this;
}

Packet& Packet::ipv6(const std::string& src, const std::string& dst)
{
    l3_ = L3::v6;
    src_ = addr(src);
    dst_ = addr(dst);
    return *this;
}

Packet& Packet::fragment(uint16_t offset8, bool more)
{
    frag_ = true;
    frag_off_ = offset8;
    frag_more_ = more;
    if (l3_ == L3::v6)
        exts_.emplace_back(kExtFragment, 8);
    return *this;
}

Packet& Packet::tcp(uint16_t sport, uint16_t dport)
{
    l4_ = L4::tcp;
    proto_ = kProtoTcp;
    sport_ = sport;
    dport_ = dport;
    return *this;
}

Packet& Packet::udp(uint16_t sport, uint16_t dport)
{
    l4_ = L4::udp;
    proto_ = kProtoUdp;
    sport_ = sport;
    dport_ = dport;
    return *this;
}

Packet& Packet::icmp(uint8_t type, uint8_t code, uint32_t rest)
{
    l4_ = L4::icmp;
    proto_ = l3_ == L3::v6 ? kProtoIcmp6 : kProtoIcmp;
    icmp_type_ = type;
    icmp_code_ = code;
    icmp_rest_ = rest;
    return *this;
}

// The L4 header and payload, checksum still zero.
Bytes Packet::l4_bytes() const
{
    Bytes l4;
    if (l4_ == L4::tcp) {
        put16(l4, sport_);
        put16(l4, dport_);
        put32(l4, seq_);
        put32(l4, ack_set_ ? ack_ : (flags_ & kAck) ? 0x1000 : 0);
        l4.push_back(uint8_t((20 + tcp_opts_) / 4) << 4);
        l4.push_back(flags_);
        put16(l4, 64240);
        put16(l4, 0);
        put16(l4, 0);
        for (size_t i = 0; i < tcp_opts_; i++)
            l4.push_back(i + 1 == tcp_opts_ ? 0 : 1);   // NOPs then EOL
    } else if (l4_ == L4::udp) {
        put16(l4, sport_);
        put16(l4, dport_);
        put16(l4, uint16_t(8 + payload_.size()));
        put16(l4, 0);
    } else if (l4_ == L4::icmp) {
        l4.push_back(icmp_type_);
        l4.push_back(icmp_code_);
        put16(l4, 0);
        put32(l4, icmp_rest_);
    }
    l4.insert(l4.end(), payload_.begin(), payload_.end());
    return l4;
}

// TCP, UDP and ICMPv6 sum a pseudo-header; ICMPv4 only its message.
void Packet::l4_checksum(Bytes& l4) const
{
    uint32_t seed = 0;
    if (l4_ != L4::icmp || l3_ == L3::v6) {
        Bytes pseudo(src_);
        pseudo.insert(pseudo.end(), dst_.begin(), dst_.end());
        if (l3_ == L3::v4) {
            pseudo.push_back(0);
            pseudo.push_back(proto_);
            put16(pseudo, uint16_t(l4.size()));
        } else {
            put32(pseudo, uint32_t(l4.size()));
            put32(pseudo, proto_);
        }
        seed = inet_sum(pseudo.data(), pseudo.size());
    }
    size_t csum_off = l4_ == L4::tcp ? 16 : l4_ == L4::udp ? 6 : 2;
    set16(l4, csum_off, inet_checksum(l4.data(), l4.size(), seed));
}

// The IP header(s) in front of l4 (which may be one fragment's share).
Bytes Packet::l3_header(size_t l4_len) const
{
    Bytes l3;
    if (l3_ == L3::v4) {
        size_t hlen = 20 + ip_opts_;
        l3.push_back(uint8_t((version_ >= 0 ? version_ : 4) << 4 | (hlen / 4)));
        l3.push_back(0);
        put16(l3, uint16_t(hlen + l4_len));
        put16(l3, 0x1c46);
        put16(l3, uint16_t((frag_more_ ? 0x2000 : 0) | (frag_ ? frag_off_ & 0x1fff : 0x4000)));
        l3.push_back(64);
        l3.push_back(proto_);
        put16(l3, 0);
        l3.insert(l3.end(), src_.begin(), src_.end());
        l3.insert(l3.end(), dst_.begin(), dst_.end());
        for (size_t i = 0; i < ip_opts_; i++)
            l3.push_back(i + 1 == ip_opts_ ? 0 : 1);
        set16(l3, 10, inet_checksum(l3.data(), l3.size()));
    } else if (l3_ == L3::v6) {
        size_t ext_len = 0;
        for (auto& e : exts_)
            ext_len += e.second;
        put32(l3, uint32_t(version_ >= 0 ? version_ : 6) << 28);
        put16(l3, uint16_t(ext_len + l4_len));
        l3.push_back(exts_.empty() ? proto_ : exts_[0].first);
        l3.push_back(64);
        l3.insert(l3.end(), src_.begin(), src_.end());
        l3.insert(l3.end(), dst_.begin(), dst_.end());
        for (size_t i = 0; i < exts_.size(); i++) {
            uint8_t next = i + 1 < exts_.size() ? exts_[i + 1].first : proto_;
            size_t start = l3.size();
            l3.resize(start + exts_[i].second, 0);
            l3[start] = next;
            if (exts_[i].first == kExtFragment) {
                set16(l3, start + 2, uint16_t(frag_off_ << 3 | (frag_more_ ? 1 : 0)));
                l3[start + 7] = 0x2a;   // identification
            } else {
                l3[start + 1] = uint8_t(exts_[i].second / 8 - 1);
                l3[start + 2] = 1;      // PadN option covering the rest
                l3[start + 3] = uint8_t(exts_[i].second - 4);
            }
        }
    }
    return l3;
}

Bytes Packet::datagram() const
{
    // L4 first: its checksum needs the final length, the IP header needs the L4 length.
    Bytes l4 = l4_bytes();
    if (l4_ != L4::none && l4_ != L4::raw)
        l4_checksum(l4);
    if (slice_from_ || slice_len_ < l4.size()) {
        size_t from = std::min(slice_from_, l4.size());
        l4 = Bytes(l4.begin() + long(from), l4.begin() + long(from + std::min(slice_len_, l4.size() - from)));
    }
    Bytes l3 = l3_header(l4.size());
    l3.insert(l3.end(), l4.begin(), l4.end());
    return l3;
}

Bytes Packet::build() const
{
    Bytes f(dst_mac_.begin(), dst_mac_.end());
    f.insert(f.end(), src_mac_.begin(), src_mac_.end());
    for (auto& [tpid, vid] : vlans_) {
        put16(f, tpid);
        put16(f, vid);
    }
    put16(f, l3_ == L3::v4 ? 0x0800 : l3_ == L3::v6 ? 0x86dd : ethertype_);
    Bytes l3 = datagram();
    f.insert(f.end(), l3.begin(), l3.end());
    f.resize(f.size() + padding_, 0);
    return f;
}

std::vector<std::pair<std::string, size_t>> Packet::boundaries() const
{
    std::vector<std::pair<std::string, size_t>> b;
    size_t off = 14;
    b.emplace_back("ethernet", off);
    for (size_t i = 0; i < vlans_.size(); i++)
        b.emplace_back("vlan" + std::to_string(i + 1), off += 4);
    if (l3_ == L3::v4) {
        b.emplace_back("ipv4", off += 20);
        if (ip_opts_)
            b.emplace_back("ipv4 options", off += ip_opts_);
    } else if (l3_ == L3::v6) {
        b.emplace_back("ipv6", off += 40);
        for (auto& e : exts_)
            b.emplace_back("ipv6 ext " + std::to_string(e.first), off += e.second);
    }
    if (l4_ == L4::tcp) {
        b.emplace_back("tcp", off += 20);
        if (tcp_opts_)
            b.emplace_back("tcp options", off += tcp_opts_);
    } else if (l4_ == L4::udp) {
        b.emplace_back("udp", off += 8);
    }
    if (!payload_.empty())
        b.emplace_back("payload", off += payload_.size());
    return b;
}

}  // namespace sgt
