#include "steer_model.h"

#include <linux/bpf.h>

namespace sgref {
namespace {

constexpr uint8_t kTcp = 6;

uint16_t get16(const sgt::Bytes& f, size_t off) { return uint16_t(f[off] << 8 | f[off + 1]); }

void put16(sgt::Bytes& f, size_t off, uint16_t v)
{
    f[off] = uint8_t(v >> 8);
    f[off + 1] = uint8_t(v);
}

// RFC 1624 eqn. 3 over big-endian words: HC' = ~(~HC + sum of (~m + m')).
uint16_t csum_update(uint16_t check, const std::vector<std::pair<uint16_t, uint16_t>>& changes)
{
    uint64_t sum = uint16_t(~check);
    for (auto [from, to] : changes)
        sum += uint16_t(~from) + uint32_t(to);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
}

}  // namespace

SteerModel::SteerModel(const sgt::Bytes& proxy4, const sgt::Bytes& proxy6, uint16_t proxy_port, uint32_t conn_per_vm)
    : proxy4_(proxy4), proxy6_(proxy6), proxy_port_(proxy_port), per_vm_(conn_per_vm)
{
}

SteerModel::Key SteerModel::key_of(const Classification& c)
{
    Key k{uint8_t(c.family)};
    k.insert(k.end(), c.src.begin(), c.src.end());
    k.insert(k.end(), {uint8_t(c.sport >> 8), uint8_t(c.sport)});
    k.insert(k.end(), c.dst.begin(), c.dst.end());
    k.insert(k.end(), {uint8_t(c.dport >> 8), uint8_t(c.dport)});
    return k;
}

SteerModel::Key SteerModel::nat_key_of(const Key& k)
{
    size_t alen = k[0] == 4 ? 4 : 16;
    return Key(k.begin(), k.begin() + long(1 + alen + 2));   // family, VM address and port
}

void SteerModel::forget(const Key& k)
{
    auto e = entries_.find(k);
    if (e == entries_.end())
        return;
    auto r = ring_.find(e->second.ring_idx);
    if (r != ring_.end() && r->second == k)
        ring_.erase(r);
    auto n = nat_.find(nat_key_of(k));
    if (e->second.steered && n != nat_.end() && n->second == k)
        nat_.erase(n);
    entries_.erase(e);
}

// Destination address and port to the proxy; the IPv4 header and TCP checksums follow.
sgt::Bytes SteerModel::rewrite(const sgt::Bytes& f, const Classification& c) const
{
    sgt::Bytes out = f;
    const sgt::Bytes& proxy = c.family == 4 ? proxy4_ : proxy6_;
    size_t l3 = c.l2_len, dst = l3 + (c.family == 4 ? 16 : 24), l4 = c.l4_off;
    std::vector<std::pair<uint16_t, uint16_t>> addr;
    for (size_t i = 0; i < proxy.size(); i += 2)
        addr.emplace_back(get16(f, dst + i), uint16_t(proxy[i] << 8 | proxy[i + 1]));
    std::copy(proxy.begin(), proxy.end(), out.begin() + long(dst));
    if (c.family == 4)
        put16(out, l3 + 10, csum_update(get16(f, l3 + 10), addr));
    auto tcp = addr;
    tcp.emplace_back(c.dport, proxy_port_);
    put16(out, l4 + 2, proxy_port_);
    put16(out, l4 + 16, csum_update(get16(f, l4 + 16), tcp));
    return out;
}

SteerModel::Outcome SteerModel::syn(const sgt::Bytes& f, const Classification& c)
{
    Outcome o{XDP_PASS, f, {}};
    Key k = key_of(c);
    bool steer = c.dport == 25;
    auto e = entries_.find(k);
    if (e != entries_.end() && e->second.isn == c.seq) {
        if (e->second.steered)
            o.out = rewrite(f, c);
        return o;   // sent again: its entry, steered or not
    }
    forget(k);
    auto n = nat_.find(nat_key_of(k));
    if (steer && n != nat_.end() && n->second != k && entries_.count(n->second) && entries_[n->second].steered) {
        o.results[SG_RES_NAT_CONFLICT] = 1;
        o.action = XDP_DROP;
        return o;
    }
    uint32_t idx = uint32_t(conn_seq_++ % per_vm_);
    auto r = ring_.find(idx);
    if (r != ring_.end()) {
        auto old = entries_.find(r->second);
        if (old != entries_.end() && old->second.ring_idx == idx) {
            forget(r->second);
            o.results[SG_RES_CONN_EVICTED] = 1;
        }
    }
    entries_[k] = Entry{c.seq, idx, steer};
    ring_[idx] = k;
    o.results[SG_RES_CONN_NEW] = 1;
    if (steer) {
        nat_[nat_key_of(k)] = k;
        o.out = rewrite(f, c);
    }
    return o;
}

SteerModel::Outcome SteerModel::segment(const sgt::Bytes& f, const Classification& c)
{
    Outcome o{XDP_PASS, f, {}};
    Key k = key_of(c);
    auto e = entries_.find(k);
    if (e == entries_.end()) {
        if (c.dport == 25) {   // a steered VM's lost flow: never to the server it dialled
            o.action = XDP_DROP;
            o.results[SG_RES_STEER_LOST] = 1;
        }
        return o;
    }
    if (e->second.steered)
        o.out = rewrite(f, c);
    if (c.flags & sgt::kRst)
        forget(k);
    return o;
}

SteerModel::Outcome SteerModel::frame(const sgt::Bytes& f, const Classification& c)
{
    if (c.result == SG_RES_REFUSED)
        return {XDP_DROP, f, {}};
    if ((c.first_frag || c.result == SG_RES_FRAGMENT) && c.l4_proto == kTcp)
        return {XDP_DROP, f, {{SG_RES_STEER_FRAG, 1}}};
    if (c.result == SG_RES_SMTP_SYN)
        return syn(f, c);
    bool smtp = c.dport == 25 || c.dport == 465 || c.dport == 587;
    if (c.result == SG_RES_NON_SMTP && smtp)
        return segment(f, c);
    return {XDP_PASS, f, {}};
}

}  // namespace sgref
