// SYN templates shared by both send methods: the BPF program (flood.bpf.c) and
// the AF_PACKET fallback finish a template the same way.
#pragma once

#include <random>

#include "flood.h"
#include "flood_abi.h"

namespace flood {

struct FrameLayout {
    uint32_t l3_off;   // 14, or 18 with an 802.1Q tag
    bool v6;
    uint32_t len() const { return l3_off + (v6 ? 40 : 20) + FLOOD_TCP_HLEN; }
};

flood_target make_target(const FrameLayout& l, const Mac& src_mac, const Mac& dst_mac, uint16_t vlan,
                         const Addr& src, const Addr& dst, uint16_t dport, bool spoof);
flood_params make_params(uint32_t n_v4, uint32_t n_v6, uint32_t l3_off, const std::optional<Prefix>& spoof4,
                         const std::optional<Prefix>& spoof6);

// The userspace twin of flood.bpf.c's build(): writes one finished SYN into out.
void finish_frame(const flood_target& t, const FrameLayout& l, const flood_params& p, std::mt19937_64& rng,
                  uint8_t* out);

// An ICMP/ICMPv6 echo request from src to dst carrying cookie as its payload.
std::vector<uint8_t> make_echo(uint32_t l3_off, const Mac& src_mac, const Mac& dst_mac, uint16_t vlan, const Addr& src,
                               const Addr& dst, const std::array<uint8_t, 16>& cookie);

} // namespace flood
