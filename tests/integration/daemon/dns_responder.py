#!/usr/bin/env python3
"""A scriptable DNS responder for the DNSBL fault test (dnsbl_faults.sh), stdlib only.

usage: dns_responder.py ADDR PORT CONTROL_FILE LOG_FILE

Answers A and TXT queries on UDP and TCP. CONTROL_FILE (JSON, read at every query) says
how: {"mode": MODE, "listed": ["203.0.113.10", ...]}. Modes:
  normal       a listed address (and RFC 5782's 127.0.0.2): A 127.0.0.2 and TXT
               "sgdb fault test listing"; else NXDOMAIN
  world        every name listed (127.0.0.1 too: a list that was shut down with a wildcard)
  servfail     RCODE 2 to everything
  timeout      no answer at all
  truncated    UDP: an empty answer with the TC bit; TCP: the connection closed unanswered
  list_refuses A 127.255.255.254 (Spamhaus: query through a public/open resolver)
  outside      A 198.51.100.80 (an NXDOMAIN-rewriting resolver)
Every query is appended to LOG_FILE as "MODE PROTO QTYPE QNAME".
"""
import json
import socket
import struct
import sys
import threading
import time

ADDR, PORT, CONTROL, LOG = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
LIFETIME_S = 300  # bounded: the test is over long before
lock = threading.Lock()


def control():
    try:
        with open(CONTROL) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"mode": "normal", "listed": []}


def parse_question(msg):
    """(id, flags, qname, qtype, end of question) or None."""
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd != 1:
        return None
    labels, i = [], 12
    while i < len(msg) and msg[i] != 0:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    if i + 5 > len(msg):
        return None
    qtype = struct.unpack("!H", msg[i + 1:i + 3])[0]
    return qid, flags, ".".join(labels).lower(), qtype, i + 5


def rr(rtype, rdata):
    return struct.pack("!HHHIH", 0xC00C, rtype, 1, 1, len(rdata)) + rdata


def reply(msg, q, rcode=0, answers=(), tc=False):
    qid, flags, _, _, end = q
    out_flags = 0x8000 | (flags & 0x0100) | 0x0080 | rcode | (0x0200 if tc else 0)
    head = struct.pack("!HHHHHH", qid, out_flags, 1, len(answers), 0, 0)
    return head + msg[12:end] + b"".join(answers)


def address_of(qname):
    """The IPv4 address of a reversed-octet query name, or None."""
    parts = qname.split(".")
    if len(parts) < 5 or not all(p.isdigit() for p in parts[:4]):
        return None
    return ".".join(reversed(parts[:4]))


def answer(msg, proto):
    q = parse_question(msg)
    if q is None:
        return None
    c = control()
    mode = c.get("mode", "normal")
    with lock, open(LOG, "a") as f:
        f.write(f"{mode} {proto} {q[3]} {q[2]}\n")
    qtype = q[3]
    a = lambda quad: rr(1, socket.inet_aton(quad))
    if mode == "timeout":
        return None
    if mode == "servfail":
        return reply(msg, q, rcode=2)
    if mode == "truncated":
        return reply(msg, q, tc=True) if proto == "udp" else None
    if mode == "list_refuses":
        return reply(msg, q, answers=[a("127.255.255.254")] if qtype == 1 else [])
    if mode == "outside":
        return reply(msg, q, answers=[a("198.51.100.80")] if qtype == 1 else [])
    if mode != "world" and address_of(q[2]) not in c.get("listed", []) + ["127.0.0.2"]:
        return reply(msg, q, rcode=3)
    if qtype == 16:
        text = b"sgdb fault test listing"
        return reply(msg, q, answers=[rr(16, bytes([len(text)]) + text)])
    return reply(msg, q, answers=[a("127.0.0.2")] if qtype == 1 else [])


def serve_udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ADDR, PORT))
    while True:
        msg, peer = s.recvfrom(4096)
        out = answer(msg, "udp")
        if out is not None:
            s.sendto(out, peer)


def serve_tcp_conn(c):
    with c:
        c.settimeout(5)
        try:
            head = c.recv(2)
            if len(head) < 2:
                return
            n = struct.unpack("!H", head)[0]
            msg = b""
            while len(msg) < n:
                chunk = c.recv(n - len(msg))
                if not chunk:
                    return
                msg += chunk
            out = answer(msg, "tcp")
            if out is not None:
                c.sendall(struct.pack("!H", len(out)) + out)
                time.sleep(0.1)
        except OSError:
            pass


def serve_tcp():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ADDR, PORT))
    s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_tcp_conn, args=(c,), daemon=True).start()


for target in (serve_udp, serve_tcp):
    threading.Thread(target=target, daemon=True).start()
time.sleep(LIFETIME_S)
