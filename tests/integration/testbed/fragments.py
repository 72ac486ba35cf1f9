#!/usr/bin/env python3
"""Hand-made fragments and a receiver-side counter for fragments.sh (no scapy/hping3).

  fragments.py send --iface DEV --src-mac MAC --dst-mac MAC --src ADDR --dst ADDR
                    --variant NAME --count N --sport BASE [--dport 25] [--gap-ms 1]
      N attempts of one variant, each from source port BASE+i, as raw Ethernet frames
      on an AF_PACKET socket (nothing in the sender's stack touches them).
  fragments.py udp --dst ADDR --port P --count N --size BYTES
      N ordinary UDP datagrams that the sender's kernel fragments (MTU 1500).
  fragments.py listen OUT.json --udp-port P
      Counts what the receiver's IP layer hands up after reassembly: raw TCP sockets
      (IPv4 and IPv6) and UDP sockets on P. OUT.json is rewritten as counts change:
      {"tcp4.syn.25.21": n, ...} = family, kind (syn: SYN without ACK; ack; other),
      destination port, source port // 1000; {"udp6.3000": n} = family, datagram bytes.

Variants (a "SYN" is SYN without ACK, 20-byte TCP header):
  v4-tiny16      SYN in 16-byte fragments (hping3 -f): TCP[0:16] MF, TCP[16:20] at offset 2
  v4-tiny8-off1  TCP[0:8] MF, TCP[8:20] at offset 1 (RFC 3128's tiny + offset-1 pair)
  v4-overlap-off1 an ACK's whole header TCP[0:24] MF, then a SYN's TCP[8:28] at offset 1,
                 overlapping the first to turn the ACK into a SYN (RFC 1858)
  v4-whole       SYN with 16 payload bytes: TCP[0:24] MF (the whole header), TCP[24:36] at 3
  v4-ack         ACK with 64 payload bytes (an established flow's segment), same split
  v6-chain       SYN behind 7 destination-options headers (one more than the datapath walks)
  v6-tiny8-off1  fragment header + TCP[0:8] (M), then TCP[8:20] at offset 1
  v6-whole       fragment header + TCP[0:24] (M), then TCP[24:36] at offset 3
  v6-ack         ACK with 64 payload bytes, fragment headers, split as v6-whole
"""
import argparse
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import time

SYN, RST, ACK = 0x02, 0x04, 0x10


def csum(data, seed=0):
    if len(data) % 2:
        data += b"\0"
    s = seed + sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_segment(src, dst, sport, dport, flags, payload=b"", seq=0x1000):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, 0x2000 if flags & ACK else 0,
                      5 << 4, flags, 64240, 0, 0)
    seg = hdr + payload
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 6, len(seg))
    else:
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(seg), 6)
    c = csum(pseudo + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def ipv4(src, dst, ident, off8, more, data):
    frag = (0x2000 if more else 0) | off8
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident, frag, 64, 6, 0,
                    src.packed, dst.packed)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + data, 0x0800


def ipv6(src, dst, chain, data):
    """chain: list of (type, bytes) extension headers in order; the last next header is TCP."""
    body = b""
    types = [t for t, _ in chain] + [6]
    for i, (t, h) in enumerate(chain):
        body += bytes([types[i + 1]]) + h[1:]
    body += data
    h = struct.pack("!IHBB16s16s", 6 << 28, len(body), types[0], 64, src.packed, dst.packed)
    return h + body, 0x86DD


def dstopts8():
    return bytes([0, 0, 1, 4, 0, 0, 0, 0])   # next (filled in), length 0, PadN over 4 bytes


def frag6(off8, more, ident):
    return struct.pack("!BBHI", 0, 0, off8 << 3 | (1 if more else 0), ident)


def variant_packets(v, src, dst, sport, dport):
    """The IP packets (bytes, ethertype) of one attempt."""
    ident = sport & 0xFFFF
    if v == "v4-tiny16":
        t = tcp_segment(src, dst, sport, dport, SYN)
        return [ipv4(src, dst, ident, 0, True, t[:16]), ipv4(src, dst, ident, 2, False, t[16:])]
    if v == "v4-tiny8-off1":
        t = tcp_segment(src, dst, sport, dport, SYN)
        return [ipv4(src, dst, ident, 0, True, t[:8]), ipv4(src, dst, ident, 1, False, t[8:])]
    if v == "v4-overlap-off1":
        a = tcp_segment(src, dst, sport, dport, ACK, b"\0" * 8)
        s = tcp_segment(src, dst, sport, dport, SYN, b"\0" * 8)
        return [ipv4(src, dst, ident, 0, True, a[:24]), ipv4(src, dst, ident, 1, False, s[8:28])]
    if v in ("v4-whole", "v4-ack"):
        t = (tcp_segment(src, dst, sport, dport, SYN, b"\0" * 16) if v == "v4-whole"
             else tcp_segment(src, dst, sport, dport, ACK, b"A" * 64))
        return [ipv4(src, dst, ident, 0, True, t[:24]), ipv4(src, dst, ident, 3, False, t[24:])]
    if v == "v6-chain":
        t = tcp_segment(src, dst, sport, dport, SYN)
        return [ipv6(src, dst, [(60, dstopts8())] * 7, t)]
    if v == "v6-tiny8-off1":
        t = tcp_segment(src, dst, sport, dport, SYN)
        return [ipv6(src, dst, [(44, frag6(0, True, ident))], t[:8]),
                ipv6(src, dst, [(44, frag6(1, False, ident))], t[8:])]
    if v in ("v6-whole", "v6-ack"):
        t = (tcp_segment(src, dst, sport, dport, SYN, b"\0" * 16) if v == "v6-whole"
             else tcp_segment(src, dst, sport, dport, ACK, b"A" * 64))
        return [ipv6(src, dst, [(44, frag6(0, True, ident))], t[:24]),
                ipv6(src, dst, [(44, frag6(3, False, ident))], t[24:])]
    raise SystemExit("unknown variant " + v)


def mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def cmd_send(a):
    src, dst = ipaddress.ip_address(a.src), ipaddress.ip_address(a.dst)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    l2 = mac(a.dst_mac) + mac(a.src_mac)
    frames = 0
    for i in range(a.count):
        for pkt, etype in variant_packets(a.variant, src, dst, a.sport + i, a.dport):
            s.send(l2 + struct.pack("!H", etype) + pkt)
            frames += 1
        time.sleep(a.gap_ms / 1000)
    print(json.dumps({"variant": a.variant, "attempts": a.count, "frames": frames}))


def cmd_udp(a):
    fam = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, 10, 0)   # IP_MTU_DISCOVER = IP_PMTUDISC_DONT: no DF
    for _ in range(a.count):
        s.sendto(b"u" * a.size, (a.dst, a.port))
        time.sleep(0.001)
    print(json.dumps({"udp": a.count, "bytes": a.size}))


def cmd_listen(a):
    socks = {}
    for fam, name in ((socket.AF_INET, "tcp4"), (socket.AF_INET6, "tcp6")):
        socks[socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_TCP)] = name
    u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u4.bind(("0.0.0.0", a.udp_port))
    u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    u6.bind(("::", a.udp_port))
    socks[u4], socks[u6] = "udp4", "udp6"
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.setblocking(False)
    counts, dirty, stop = {}, True, []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def dump():
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(counts, f, sort_keys=True)
        os.replace(tmp, a.out)

    # counts are written when the sockets fall idle for 50 ms, not while a burst arrives
    while not stop:
        ready, _, _ = select.select(list(socks), [], [], 0.05)
        if not ready and dirty:
            dump()
            dirty = False
        for s in ready:
            try:
                data = s.recv(65535)
            except BlockingIOError:
                continue
            name = socks[s]
            if name.startswith("udp"):
                key = "%s.%d" % (name, len(data))
            else:
                tcp = data[(data[0] & 15) * 4:] if name == "tcp4" else data
                if len(tcp) < 14:
                    continue
                sport, dport = struct.unpack("!HH", tcp[:4])
                fl = tcp[13]
                kind = "syn" if fl & (SYN | ACK | RST) == SYN else "ack" if fl & ACK and not fl & RST else "other"
                key = "%s.%s.%d.%d" % (name, kind, dport, sport // 1000)
            counts[key] = counts.get(key, 0) + 1
            dirty = True
    dump()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    for opt in ("--iface", "--src-mac", "--dst-mac", "--src", "--dst", "--variant"):
        s.add_argument(opt, required=True)
    s.add_argument("--count", type=int, default=100)
    s.add_argument("--sport", type=int, required=True)
    s.add_argument("--dport", type=int, default=25)
    s.add_argument("--gap-ms", type=float, default=1)
    u = sub.add_parser("udp")
    u.add_argument("--dst", required=True)
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--count", type=int, default=100)
    u.add_argument("--size", type=int, default=3000)
    li = sub.add_parser("listen")
    li.add_argument("out")
    li.add_argument("--udp-port", type=int, required=True)
    a = p.parse_args()
    {"send": cmd_send, "udp": cmd_udp, "listen": cmd_listen}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
