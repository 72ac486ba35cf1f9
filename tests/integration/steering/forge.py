#!/usr/bin/env python3
"""Forged SMTP "evidence" from the internet (steering tests, issue 9).

Sends, with raw sockets, TCP segments from an SMTP server's address and port 25 to a
VM that never dialled it: bare RSTs (and RST+ACK), SYN-ACKs, and data segments carrying
rejection replies (554 "blocked using Trend Micro RBL+", 421 Spamhaus), each to a random
port of the VM with random sequence numbers. What the old TC reply path counted as
evidence against the VM. Prints the numbers sent as JSON.

  forge.py --src 203.0.113.25 --dst 198.18.1.2 [--rst 1500] [--synack 500] [--reply 300]
"""
import argparse
import ipaddress
import json
import random
import socket
import struct
import time

REPLIES = [
    "554 5.7.1 Service unavailable; Client host [{vm}] blocked using Trend Micro RBL+."
    "Please see http://www.mail-abuse.com/cgi-bin/lookup?ip_address={vm}\r\n",
    "421 4.7.0 [TSS04] Messages from {vm} temporarily deferred due to unexpected volume"
    " or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes\r\n",
    "554 5.7.1 Mail from {vm} not allowed - 5.7.1 [BL23] Connections not accepted from IP"
    " addresses on Spamhaus XBL\r\n",
]
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b""):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    else:
        pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(hdr) + len(payload), 6)
    c = csum(pseudo + hdr + payload)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


def ipv4(src, dst, segment):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), random.getrandbits(16), 0,
                      64, 6, 0, src.packed, dst.packed)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + segment


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", required=True)
    ap.add_argument("--sport", type=int, default=25)
    ap.add_argument("--rst", type=int, default=1500)
    ap.add_argument("--synack", type=int, default=500)
    ap.add_argument("--reply", type=int, default=300)
    ap.add_argument("--pps", type=float, default=5000)
    a = ap.parse_args()
    src, dst = ipaddress.ip_address(a.src), ipaddress.ip_address(a.dst)
    if src.version == 4:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        send = lambda seg: s.sendto(ipv4(src, dst, seg), (a.dst, 0))
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
        s.bind((a.src, 0))
        send = lambda seg: s.sendto(seg, (a.dst, 0))   # our checksum, over our pseudo-header

    sent = {"rst": 0, "rst_ack": 0, "synack": 0, "reply": 0}
    gap = 1.0 / a.pps
    r = lambda: random.getrandbits(32)
    port = lambda: random.randint(1024, 65535)
    for i in range(a.rst):
        if i % 2:
            send(tcp(src, dst, a.sport, port(), r(), r(), RST | ACK))
            sent["rst_ack"] += 1
        else:
            send(tcp(src, dst, a.sport, port(), r(), 0, RST))
            sent["rst"] += 1
        time.sleep(gap)
    for _ in range(a.synack):
        send(tcp(src, dst, a.sport, port(), r(), r(), SYN | ACK))
        sent["synack"] += 1
        time.sleep(gap)
    for i in range(a.reply):
        text = REPLIES[i % len(REPLIES)].format(vm=a.dst).encode()
        send(tcp(src, dst, a.sport, port(), r(), r(), PSH | ACK, text))
        sent["reply"] += 1
        time.sleep(gap)
    print(json.dumps(sent))


if __name__ == "__main__":
    main()
