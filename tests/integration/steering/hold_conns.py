#!/usr/bin/env python3
"""Hold many TCP connections open (steering tests: a VM past its conn_per_vm).

  hold_conns.py client --dst ADDR --port 25 --count 500 --gate FILE [--hold-s 90]
      opens COUNT connections (non-blocking connects, all in flight at once), prints
      {"opened": N, "established": M} once every connect has finished, then holds them
      until FILE exists (or --hold-s) and closes them.
  hold_conns.py server --addr ADDR --port 25 [--hold-s 90]
      accepts every connection, greets it with 220 and keeps it open until --hold-s.
"""
import argparse
import json
import os
import select
import socket
import sys
import time


def client(a):
    fam = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    socks = []
    for _ in range(a.count):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect((a.dst, a.port))
        except BlockingIOError:
            pass
        socks.append(s)
        time.sleep(a.gap)
    # every connect finished (or failed) within 20 s
    pending = set(socks)
    established = 0
    end = time.monotonic() + 20
    while pending and time.monotonic() < end:
        _, w, _ = select.select([], list(pending)[:1000], [], 0.5)
        for s in w:
            pending.discard(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                established += 1
    print(json.dumps({"opened": len(socks), "established": established}), flush=True)
    end = time.monotonic() + a.hold_s
    while not os.path.exists(a.gate) and time.monotonic() < end:
        time.sleep(0.1)
    for s in socks:
        s.close()


def server(a):
    fam = socket.AF_INET6 if ":" in a.addr else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.addr, a.port))
    srv.listen(4096)
    srv.settimeout(0.5)
    held = []
    end = time.monotonic() + a.hold_s
    while time.monotonic() < end:
        try:
            c, _ = srv.accept()
        except socket.timeout:
            continue
        try:
            c.sendall(b"220 holder ESMTP\r\n")
        except OSError:
            pass
        held.append(c)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("client")
    c.add_argument("--dst", required=True)
    c.add_argument("--port", type=int, default=25)
    c.add_argument("--count", type=int, default=500)
    c.add_argument("--gap", type=float, default=0.002)
    c.add_argument("--gate", required=True)
    c.add_argument("--hold-s", type=float, default=90)
    s = sub.add_parser("server")
    s.add_argument("--addr", required=True)
    s.add_argument("--port", type=int, default=25)
    s.add_argument("--hold-s", type=float, default=90)
    a = ap.parse_args()
    (client if a.mode == "client" else server)(a)


if __name__ == "__main__":
    sys.exit(main())
