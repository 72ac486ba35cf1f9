#!/usr/bin/env python3
"""An SMTP client that holds its session open (steering tests).

Connects to --dst (IPv4 or IPv6) port --port, reads the greeting, sends EHLO, writes
{"local": "ADDR:PORT", "peer": "ADDR:PORT", "banner": "..."} to --conn, then waits
until the file --gate exists (at most --hold-s seconds, a NOOP every 5 s so the session
stays busy), sends one message (Message-ID <MSGID.N@customer.example>; GTUBE in the
body with --gtube) and QUIT. The outcome goes to --out as JSON: the local/peer sockets,
the greeting, and the reply to the end of DATA (code and text), or the error.
"""
import argparse
import json
import os
import smtplib
import socket
import sys
import time

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def sockname(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dst", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--gate", required=True)
    ap.add_argument("--conn", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--msgid", default="session")
    ap.add_argument("--gtube", action="store_true")
    ap.add_argument("--hold-s", type=float, default=120)
    a = ap.parse_args()

    out = {"local": "", "peer": ""}
    try:
        s = smtplib.SMTP(timeout=30)
        code, banner = s.connect(a.dst, a.port)
        out.update(local=sockname(s.sock.getsockname()), peer=sockname(s.sock.getpeername()),
                   banner=f"{code} {banner.decode(errors='replace')}")
        s.ehlo("vm.customer.example")
        tmp = a.conn + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f)
        os.replace(tmp, a.conn)

        end = time.monotonic() + a.hold_s
        last_noop = time.monotonic()
        while not os.path.exists(a.gate):
            if time.monotonic() > end:
                raise TimeoutError("gate never opened")
            if time.monotonic() - last_noop > 5:
                s.noop()
                last_noop = time.monotonic()
            time.sleep(0.05)
        # the peer as the client sees it, again, after the wait
        out["peer_after"] = sockname(s.sock.getpeername())
        body = (f"From: vm@customer.example\r\nTo: someone@example.net\r\n"
                f"Subject: steering test {a.msgid}\r\n"
                f"Message-ID: <{a.msgid}.{os.getpid()}@customer.example>\r\n\r\n"
                f"hello from a steered VM\r\n" + (GTUBE + "\r\n" if a.gtube else ""))
        s.mail("vm@customer.example")
        code, text = s.rcpt("someone@example.net")
        if code >= 400:
            out.update(stage="rcpt", code=code, text=text.decode(errors="replace"))
        else:
            code, text = s.data(body.encode())
            out.update(stage="data", code=code, text=text.decode(errors="replace"))
        try:
            s.quit()
        except smtplib.SMTPException:
            pass
    except (OSError, smtplib.SMTPException, TimeoutError) as e:
        out.update(stage="error", code=0, text=f"{type(e).__name__}: {e}")
    with open(a.out, "w") as f:
        json.dump(out, f)
    print(json.dumps(out))
    return 0 if out.get("code", 0) else 1


if __name__ == "__main__":
    sys.exit(main())
