// Userspace reference classifier: the datapath's parsing and RST rules written
// independently as plain byte-offset code, for the differential test.
#pragma once

#include <smtpgov/abi.h>

#include <cstdint>
#include <vector>

#include "packet.h"

namespace sgref {

struct Classification {
    sg_result result = SG_RES_UNPARSED;   // one of the seven per-frame classes
    size_t l2_len = 0;
    int family = 0;                       // 4 or 6 once an IP header was accepted
    sgt::Bytes src, dst;
    uint16_t sport = 0, dport = 0;
    uint32_t seq = 0;
    uint32_t payload_len = 0;             // TCP payload inside the IP datagram
    uint8_t flags = 0;
    size_t l4_off = 0;                    // where the TCP header starts (a parsed segment)
    uint8_t l4_proto = 0;                 // L4 protocol, also of a non-first fragment
    bool first_frag = false;              // IPv4 MF at offset 0, or an IPv6 fragment header at 0
};

Classification classify(const sgt::Bytes& frame, const std::vector<uint16_t>& ports);

// The RST+ACK the datapath must answer an SMTP SYN with (result == SG_RES_SMTP_SYN).
sgt::Bytes reset_for(const sgt::Bytes& frame, const Classification& c);

}  // namespace sgref
