// A userspace model of the connection table and steering for one VM in tier steered
// (docs/internals.md "Connections"), written independently of bpf/lib for the
// differential test: which frames it refuses, which it rewrites and how (RFC 1624
// checksum updates), and what the table counts in sg_global.
#pragma once

#include <smtpgov/abi.h>

#include <array>
#include <cstdint>
#include <map>
#include <vector>

#include "packet.h"
#include "reference.h"

namespace sgref {

class SteerModel {
public:
    struct Outcome {
        uint32_t action = 0;                          // XDP_*
        sgt::Bytes out;                               // the frame as it leaves
        std::map<sg_result, uint64_t> results;        // sg_global beyond the frame's class
    };

    // proxy4/proxy6 with one port, steered port 25; each owner keeps conn_per_vm entries.
    SteerModel(const sgt::Bytes& proxy4, const sgt::Bytes& proxy6, uint16_t proxy_port, uint32_t conn_per_vm);

    // The frame from the steered VM, classified with SMTP ports 25, 465, 587.
    Outcome frame(const sgt::Bytes& f, const Classification& c);

private:
    using Key = std::vector<uint8_t>;   // family, VM address and port, destination and port
    struct Entry {
        uint32_t isn;
        uint32_t ring_idx;
        bool steered;
    };

    static Key key_of(const Classification& c);
    static Key nat_key_of(const Key& k);
    Outcome syn(const sgt::Bytes& f, const Classification& c);
    Outcome segment(const sgt::Bytes& f, const Classification& c);
    void forget(const Key& k);
    sgt::Bytes rewrite(const sgt::Bytes& f, const Classification& c) const;

    sgt::Bytes proxy4_, proxy6_;
    uint16_t proxy_port_;
    uint32_t per_vm_;
    uint64_t conn_seq_ = 0;
    std::map<Key, Entry> entries_;
    std::map<uint32_t, Key> ring_;
    std::map<Key, Key> nat_;
};

}  // namespace sgref
