// checksum_errors (packet.h): a frame's checksums recomputed from scratch, so tests
// check the datapath's incremental updates against an independent computation.
#include <string>

#include "packet.h"

namespace sgt {
namespace {

constexpr uint8_t kIcmp = 1, kTcp = 6, kUdp = 17, kIcmp6 = 58;

uint16_t be16(const Bytes& f, size_t off) { return uint16_t(f[off] << 8 | f[off + 1]); }

// The pseudo-header sum of an L4 segment of `len` bytes.
uint32_t pseudo_sum(const Bytes& f, size_t l3, bool v6, uint8_t proto, size_t len)
{
    Bytes p;
    size_t alen = v6 ? 16 : 4, src = l3 + (v6 ? 8 : 12);
    p.insert(p.end(), f.begin() + long(src), f.begin() + long(src + 2 * alen));
    if (v6)
        p.insert(p.end(), {uint8_t(len >> 24), uint8_t(len >> 16), uint8_t(len >> 8), uint8_t(len), 0, 0, 0, proto});
    else
        p.insert(p.end(), {0, proto, uint8_t(len >> 8), uint8_t(len)});
    return inet_sum(p.data(), p.size());
}

std::string check_l4(const Bytes& f, size_t l3, bool v6, uint8_t proto, size_t l4, size_t len)
{
    if (l4 + len > f.size())
        return "L4 runs past the frame";
    uint32_t seed = proto == kIcmp ? 0 : pseudo_sum(f, l3, v6, proto, len);
    if (proto != kTcp && proto != kUdp && proto != kIcmp && proto != kIcmp6)
        return "";
    if (inet_checksum(&f[l4], len, seed) != 0)
        return "L4 (protocol " + std::to_string(proto) + ") checksum";
    // an ICMPv4 error quotes an IPv4 header with its own checksum
    size_t in = l4 + 8;
    if (proto == kIcmp && (f[l4] == 3 || f[l4] == 11) && in + 20 <= l4 + len && f[in] >> 4 == 4 &&
        inet_checksum(&f[in], (f[in] & 0xf) * 4u) != 0)
        return "quoted IPv4 header checksum";
    return "";
}

}  // namespace

std::string checksum_errors(const Bytes& f)
{
    size_t off = 12;
    uint16_t type = be16(f, off);
    for (int i = 0; i < 2 && (type == 0x8100 || type == 0x88a8); i++)
        type = be16(f, off += 4);
    size_t l3 = off + 2;
    if (type == 0x0800) {
        size_t hlen = (f[l3] & 0xf) * 4u, total = be16(f, l3 + 2);
        if (inet_checksum(&f[l3], hlen) != 0)
            return "IPv4 header checksum";
        if (be16(f, l3 + 6) & 0x3fff)
            return "";   // a fragment: its L4 checksum covers the whole datagram
        return check_l4(f, l3, false, f[l3 + 9], l3 + hlen, total - hlen);
    }
    if (type != 0x86dd)
        return "";
    uint8_t nh = f[l3 + 6];
    size_t pos = l3 + 40, end = l3 + 40 + be16(f, l3 + 4);
    while (nh == 0 || nh == 43 || nh == 60 || nh == 44) {
        if (nh == 44)
            return "";
        size_t len = (f[pos + 1] + 1u) * 8;
        nh = f[pos];
        pos += len;
    }
    return check_l4(f, l3, true, nh, pos, end - pos);
}

}  // namespace sgt
