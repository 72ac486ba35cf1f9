#include "flow.h"

#include <endian.h>

#include <cstring>

namespace sgt {

Packet Flow::out() const
{
    Packet p;
    p.eth();
    for (uint16_t vid : vlans)
        p.vlan(vid);
    if (v6())
        p.ipv6(vm, server);
    else
        p.ipv4(vm, server);
    return p.tcp(vm_port, port);
}

Packet Flow::in() const
{
    Packet p;
    p.eth(kGwMac, kVmMac);
    for (uint16_t vid : vlans)
        p.vlan(vid);
    if (v6())
        p.ipv6(server, vm);
    else
        p.ipv4(server, vm);
    return p.tcp(port, vm_port);
}

Bytes Flow::syn() const { return out().syn().seq(isn).build(); }

Bytes Flow::vm_data(const std::string& text, uint32_t off, uint32_t acked) const
{
    return out().flags(kAck | kPsh).seq(isn + 1 + off).ackno(server_isn + 1 + acked).payload(text).build();
}

Bytes Flow::vm_fin(uint32_t off) const
{
    return out().flags(kAck | kFin).seq(isn + 1 + off).ackno(server_isn + 1).build();
}

Bytes Flow::vm_rst(uint32_t off) const { return out().flags(kRst).seq(isn + 1 + off).build(); }

Bytes Flow::synack() const { return in().flags(kSyn | kAck).seq(server_isn).ackno(isn + 1).build(); }

Bytes Flow::reply(const std::string& text, uint32_t off, uint32_t acked) const
{
    return in().flags(kAck | kPsh).seq(server_isn + 1 + off).ackno(isn + 1 + acked).payload(text).build();
}

sg_conn_key Flow::key(int ifindex) const
{
    sg_conn_key k{};
    k.ifindex = uint32_t(ifindex);
    k.family = v6() ? 6 : 4;
    k.vm_port = htobe16(vm_port);
    k.dst_port = htobe16(port);
    Bytes a = addr(vm), b = addr(server);
    std::memcpy(k.vm_addr, a.data(), a.size());
    std::memcpy(k.dst_addr, b.data(), b.size());
    return k;
}

sg_conn_nat_key Flow::nat_key() const
{
    sg_conn_nat_key k{};
    k.family = v6() ? 6 : 4;
    k.vm_port = htobe16(vm_port);
    Bytes a = addr(vm);
    std::memcpy(k.vm_addr, a.data(), a.size());
    return k;
}

}  // namespace sgt
