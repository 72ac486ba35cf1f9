#include "reference.h"

#include <algorithm>

namespace sgref {
namespace {

constexpr uint8_t kHopByHop = 0, kRouting = 43, kFragHdr = 44, kDestOpts = 60;

uint16_t be16(const sgt::Bytes& f, size_t off) { return uint16_t(f[off] << 8 | f[off + 1]); }

uint32_t be32(const sgt::Bytes& f, size_t off)
{
    return uint32_t(be16(f, off)) << 16 | be16(f, off + 2);
}

bool is_ext(uint8_t nh)
{
    return nh == kHopByHop || nh == kRouting || nh == kFragHdr || nh == kDestOpts;
}

bool is_vlan(uint16_t type) { return type == 0x8100 || type == 0x88a8; }

struct Cursor {
    const sgt::Bytes& f;
    size_t off;
    bool fits(size_t len) const { return off + len <= f.size(); }
};

// Parse results below zero (the datapath's SG_PARSE_*).
constexpr int kUnparsed = -1, kFragment = -2, kRefused = -3;

// Returns the L4 protocol or a parse result; `first` is set for a first fragment
// (MF at offset 0), in which the whole TCP header must be present.
int parse_v4(Cursor& c, Classification& out, uint32_t& rem, bool& first)
{
    if (!c.fits(20))
        return kUnparsed;
    unsigned version = c.f[c.off] >> 4, hlen = (c.f[c.off] & 0xf) * 4u;
    unsigned total = be16(c.f, c.off + 2);
    if (version != 4 || hlen < 20 || !c.fits(hlen) || total < hlen || !c.fits(total))
        return kUnparsed;
    uint16_t frag = be16(c.f, c.off + 6), offset = frag & 0x1fff;
    int proto = c.f[c.off + 9];
    out.l4_proto = uint8_t(proto);
    if (offset == 1 && proto == 6)
        return kRefused;   // RFC 1858: can rewrite the first fragment's TCP flags
    if (offset)
        return kFragment;
    first = frag & 0x2000;
    out.src.assign(c.f.begin() + c.off + 12, c.f.begin() + c.off + 16);
    out.dst.assign(c.f.begin() + c.off + 16, c.f.begin() + c.off + 20);
    rem = total - hlen;
    c.off += hlen;
    return proto;
}

// `first` is set by a fragment header at offset 0: from there on the chain and the
// TCP header must be whole in this fragment (RFC 7112).
int parse_v6(Cursor& c, Classification& out, uint32_t& rem, bool& first)
{
    if (!c.fits(40) || c.f[c.off] >> 4 != 6)
        return kUnparsed;
    uint32_t plen = be16(c.f, c.off + 4);
    if (!c.fits(40 + plen))
        return kUnparsed;
    out.src.assign(c.f.begin() + c.off + 8, c.f.begin() + c.off + 24);
    out.dst.assign(c.f.begin() + c.off + 24, c.f.begin() + c.off + 40);
    uint8_t nh = c.f[c.off + 6];
    rem = plen;
    c.off += 40;
    for (int i = 0; i < SG_MAX_V6_EXT_HDRS && is_ext(nh); i++) {
        if (!c.fits(8))
            return kUnparsed;
        uint32_t len = nh == kFragHdr ? 8 : (c.f[c.off + 1] + 1u) * 8;
        if (!c.fits(len) || len > rem)
            return kUnparsed;
        if (nh == kFragHdr) {
            out.l4_proto = c.f[c.off];
            if (be16(c.f, c.off + 2) & 0xfff8)
                return kFragment;
            first = true;
        }
        nh = c.f[c.off];
        c.off += len;
        rem -= len;
    }
    return is_ext(nh) ? kRefused : nh;   // a longer chain is not walked, and may hide TCP
}

}  // namespace

Classification classify(const sgt::Bytes& f, const std::vector<uint16_t>& ports)
{
    Classification out;
    if (f.size() < 14)
        return out;
    Cursor c{f, 14};
    uint16_t type = be16(f, 12);
    for (int i = 0; i < 2 && is_vlan(type); i++) {
        if (!c.fits(4))
            return out;
        type = be16(f, c.off + 2);
        c.off += 4;
    }
    out.l2_len = c.off;
    uint32_t rem = 0;
    bool first = false;
    int proto;
    if (type == 0x0800) {
        out.family = 4;
        proto = parse_v4(c, out, rem, first);
    } else if (type == 0x86dd) {
        out.family = 6;
        proto = parse_v6(c, out, rem, first);
    } else {
        // a third tag is deeper than the datapath walks and may hide a SYN
        out.result = is_vlan(type) ? SG_RES_REFUSED : SG_RES_NON_IP;
        return out;
    }
    // what a first fragment cuts short, fragments nobody classifies complete
    out.first_frag = first;
    if (proto >= 0)
        out.l4_proto = uint8_t(proto);
    sg_result cut = first ? SG_RES_REFUSED : SG_RES_UNPARSED;
    if (proto < 0) {
        out.result = proto == kFragment ? SG_RES_FRAGMENT : proto == kRefused ? SG_RES_REFUSED : cut;
        return out;
    }
    if (proto != 6) {
        out.result = SG_RES_NON_TCP;
        return out;
    }
    out.result = cut;
    if (!c.fits(20))
        return out;
    uint32_t doff = (f[c.off + 12] >> 4) * 4u;
    if (doff < 20 || !c.fits(doff) || doff > rem)
        return out;
    out.l4_off = c.off;
    out.sport = be16(f, c.off);
    out.dport = be16(f, c.off + 2);
    out.seq = be32(f, c.off + 4);
    out.flags = f[c.off + 13];
    out.payload_len = rem - doff;
    bool new_conn = (out.flags & (sgt::kSyn | sgt::kAck | sgt::kRst | sgt::kFin)) == sgt::kSyn;
    bool smtp = std::find(ports.begin(), ports.end(), out.dport) != ports.end();
    out.result = new_conn && smtp ? SG_RES_SMTP_SYN : SG_RES_NON_SMTP;
    return out;
}

sgt::Bytes reset_for(const sgt::Bytes& f, const Classification& c)
{
    sgt::Bytes r(f.begin(), f.begin() + c.l2_len);
    std::copy(f.begin() + 6, f.begin() + 12, r.begin());
    std::copy(f.begin(), f.begin() + 6, r.begin() + 6);
    if (c.family == 4) {
        sgt::Bytes h{0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0};
        h.insert(h.end(), c.dst.begin(), c.dst.end());
        h.insert(h.end(), c.src.begin(), c.src.end());
        uint16_t csum = sgt::inet_checksum(h.data(), h.size());
        h[10] = uint8_t(csum >> 8);
        h[11] = uint8_t(csum);
        r.insert(r.end(), h.begin(), h.end());
    } else {
        sgt::Bytes h{0x60, 0, 0, 0, 0, 20, 6, 64};
        h.insert(h.end(), c.dst.begin(), c.dst.end());
        h.insert(h.end(), c.src.begin(), c.src.end());
        r.insert(r.end(), h.begin(), h.end());
    }
    uint32_t ack = c.seq + 1 + c.payload_len;
    sgt::Bytes t{uint8_t(c.dport >> 8), uint8_t(c.dport), uint8_t(c.sport >> 8), uint8_t(c.sport),
                 0, 0, 0, 0,
                 uint8_t(ack >> 24), uint8_t(ack >> 16), uint8_t(ack >> 8), uint8_t(ack),
                 0x50, 0x14, 0, 0, 0, 0, 0, 0};
    sgt::Bytes pseudo(c.dst);
    pseudo.insert(pseudo.end(), c.src.begin(), c.src.end());
    if (c.family == 4)
        pseudo.insert(pseudo.end(), {0, 6, 0, 20});
    else
        pseudo.insert(pseudo.end(), {0, 0, 0, 20, 0, 0, 0, 6});
    uint16_t csum = sgt::inet_checksum(t.data(), t.size(), sgt::inet_sum(pseudo.data(), pseudo.size()));
    t[16] = uint8_t(csum >> 8);
    t[17] = uint8_t(csum);
    r.insert(r.end(), t.begin(), t.end());
    return r;
}

}  // namespace sgref
