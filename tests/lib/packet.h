// Fluent builder for test frames: Ethernet, VLAN tags, IPv4 (options, fragments),
// IPv6 (extension headers, fragments), TCP/UDP/ICMP, payload, with correct checksums.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sgt {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

inline constexpr Mac kVmMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
inline constexpr Mac kGwMac{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01};

inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10,
                         kEce = 0x40, kCwr = 0x80;

// One's complement sum folded to 16 bits, complemented (seed: partial sum, host order).
uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t seed = 0);
uint32_t inet_sum(const uint8_t* data, size_t len, uint32_t seed = 0);
Bytes addr(const std::string& text);   // inet_pton of an IPv4 or IPv6 literal
// Every checksum of a frame recomputed: IPv4 header, TCP/UDP/ICMP(v6) with its
// pseudo-header; inside an ICMP error also the quoted IPv4 header. "" when all hold,
// else what failed.
std::string checksum_errors(const Bytes& frame);

class Packet {
public:
    Packet& eth(const Mac& src = kVmMac, const Mac& dst = kGwMac);
    Packet& vlan(uint16_t vid, uint16_t tpid = 0x8100);
    Packet& ethertype(uint16_t type);            // L3 is raw payload (ARP, LLDP, ...)
    Packet& ipv4(const std::string& src, const std::string& dst);
    Packet& ipv6(const std::string& src, const std::string& dst);
    Packet& ip_options(size_t bytes);             // IPv4 options (NOPs + EOL), multiple of 4
    Packet& fragment(uint16_t offset8, bool more); // IPv4 fields, or an IPv6 fragment header
    Packet& ext(uint8_t type, size_t bytes = 8);  // IPv6 extension header, multiple of 8
    Packet& ip_version(uint8_t v);                // corrupt the version nibble
    Packet& tcp(uint16_t sport, uint16_t dport);
    Packet& udp(uint16_t sport, uint16_t dport);
    Packet& l4(uint8_t proto);                    // other IP protocol, payload only
    // ICMP (IPv4) or ICMPv6 (after ipv6()): type, code, the 4 bytes after the checksum;
    // the payload is the quoted packet (e.g. another Packet's datagram(), cut short)
    Packet& icmp(uint8_t type, uint8_t code, uint32_t rest = 0);
    Packet& flags(uint8_t f);
    Packet& syn() { return flags(flags_ | kSyn); }
    Packet& ack() { return flags(flags_ | kAck); }
    Packet& fin() { return flags(flags_ | kFin); }
    Packet& rst() { return flags(flags_ | kRst); }
    Packet& ece() { return flags(flags_ | kEce); }
    Packet& cwr() { return flags(flags_ | kCwr); }
    Packet& seq(uint32_t s);
    Packet& ackno(uint32_t a);                    // the acknowledgment number (default 0x1000 with ACK)
    Packet& tcp_options(size_t bytes);            // multiple of 4, up to 40
    Packet& payload(const Bytes& p);
    Packet& payload(const std::string& p);
    Packet& l2_padding(size_t bytes);             // trailing bytes outside the IP datagram
    // The datagram carries only bytes [from, from + len) of the L4 segment (checksum over
    // the whole segment): one fragment's share, with fragment() setting its offset.
    Packet& slice(size_t from, size_t len = SIZE_MAX);

    Bytes build() const;
    Bytes datagram() const;                       // the IP datagram alone (no Ethernet)
    // Offsets where each header ends in the built frame, outermost first (unsliced).
    std::vector<std::pair<std::string, size_t>> boundaries() const;

private:
    enum class L3 { none, raw, v4, v6 };
    enum class L4 { none, tcp, udp, icmp, raw };
    Bytes l4_bytes() const;
    void l4_checksum(Bytes& l4) const;
    Bytes l3_header(size_t l4_len) const;
    Mac src_mac_ = kVmMac, dst_mac_ = kGwMac;
    std::vector<std::pair<uint16_t, uint16_t>> vlans_;   // tpid, vid
    uint16_t ethertype_ = 0;
    L3 l3_ = L3::none;
    Bytes src_, dst_;
    size_t ip_opts_ = 0;
    bool frag_ = false, frag_more_ = false;
    uint16_t frag_off_ = 0;
    std::vector<std::pair<uint8_t, size_t>> exts_;
    int version_ = -1;
    L4 l4_ = L4::none;
    uint8_t proto_ = 0;
    uint16_t sport_ = 0, dport_ = 0;
    uint8_t flags_ = 0;
    uint32_t seq_ = 0x12345678;
    uint32_t ack_ = 0;
    bool ack_set_ = false;
    uint8_t icmp_type_ = 0, icmp_code_ = 0;
    uint32_t icmp_rest_ = 0;
    size_t tcp_opts_ = 0;
    Bytes payload_;
    size_t padding_ = 0;
    size_t slice_from_ = 0, slice_len_ = SIZE_MAX;
};

}  // namespace sgt
