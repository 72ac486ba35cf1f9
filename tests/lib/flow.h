// One TCP connection a VM opens, as tests build its segments both ways: the VM's SYN,
// data and FIN towards the server it dials, and the server's (or a forger's) answers.
#pragma once

#include <smtpgov/abi.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "packet.h"

namespace sgt {

struct Flow {
    std::string vm = "10.1.0.2";
    std::string server = "198.51.100.7";
    uint16_t vm_port = 40000;
    uint16_t port = 25;
    uint32_t isn = 1000;           // the VM's SYN
    uint32_t server_isn = 70000;   // the server's SYN-ACK
    std::vector<uint16_t> vlans = {};

    bool v6() const { return vm.find(':') != std::string::npos; }

    // VM -> server and server -> VM, Ethernet (and VLAN tags) included, no flags yet.
    Packet out() const;
    Packet in() const;

    Bytes syn() const;
    // The VM's bytes [off, off + text) after its SYN, with ACK (acknowledging `acked`
    // bytes of the server's stream).
    Bytes vm_data(const std::string& text, uint32_t off = 0, uint32_t acked = 0) const;
    Bytes vm_fin(uint32_t off = 0) const;
    Bytes vm_rst(uint32_t off = 0) const;
    Bytes synack() const;   // acknowledges the SYN
    // The server's bytes [off, off + text), acknowledging `acked` bytes of the VM's.
    Bytes reply(const std::string& text, uint32_t off = 0, uint32_t acked = 0) const;

    sg_conn_key key(int ifindex) const;   // as the datapath keys it
    sg_conn_nat_key nat_key() const;
};

// Does an index entry (sg_conn_nat, sg_conn_ring) name connection k?
inline bool names(const std::optional<sg_conn_key>& v, const sg_conn_key& k)
{
    return v && std::memcmp(&*v, &k, sizeof(k)) == 0;
}

}  // namespace sgt
