#!/usr/bin/env python3
"""smtpgov scanning proxy: report rspamd's verdicts to smtpgovd's policy service.

rspamd (deploy/proxy/rspamd/override.d/logging.inc) writes one line per scanned message:

    ... smtpgov-verdict ip=198.18.1.2 port=39485 qid=<2193F13C12B> action=<reject>
        score=15.00/15.00 forced=<reject "Gtube pattern"; ...> mid=<...> symbols=[GTUBE(0.00)]

The client's ADDR:PORT is taken from Postfix's log by queue id (smtpd logs
"QID: client=unknown[ADDR]:PORT" with smtpd_client_port_logging; rspamd knows the port
of IPv4 clients only), falling back to rspamd's own ip/port. That is the SMTP client
Postfix received: the VM (a steered connection keeps the VM's source address and port),
so smtpgovd finds the VM in its connection table. Each spam verdict (actions reject,
add header, rewrite subject) becomes one request in the policy delegation format
(docs/internals.md, "Policy service"), answered by one "action=..." line: OK when
smtpgovd charged it to the VM, REJECT <why> when it did not (no live steered connection
from that client, or more than 32 reports for one connection): a report must arrive
while the connection is live (until 30 s after both sides closed it).

    request=smtpgov_report
    client_address=198.18.1.2
    client_port=39485
    verdict=spam
    action=reject
    score=15.00
    queue_id=2193F13C12B
    reason=Gtube pattern
    <empty line>

(smtpgovd reads client_address, client_port and verdict; the rest is for its log.)
With --token-file (the file smtpgovd's policy_service_token_file names, readable by
this reporter's group), each report also carries token=<the file's line>; smtpgovd
refuses reports without it when it has one.

Reports are sent in log order; while the policy service cannot be reached (smtpgovd
restarting) the reporter retries the same report every second, and gives a report up
after --give-up-s (default 600). The log offset is saved after every report (--offset
FILE), so a restarted reporter neither repeats nor loses verdicts. rspamd writes the line
for every message, GTUBE included, which rspamd's modules (metadata_exporter among them)
never see: GTUBE skips them all.

Usage: verdicts.py --log RSPAMD_LOG --maillog POSTFIX_LOG --policy HOST:PORT --offset FILE
                   [--pidfile FILE] [--token-file FILE]
"""
import argparse
import os
import re
import signal
import socket
import sys
import time
from collections import OrderedDict

LINE = re.compile(
    r"smtpgov-verdict ip=(?P<ip>\S*) port=(?P<port>\d*) qid=<(?P<qid>[^>]*)> "
    r"action=<(?P<action>[^>]*)> score=(?P<score>[-\d.]+)/[-\d.]+ "
    r"forced=<(?P<forced>.*?)> mid=<")
CLIENT = re.compile(r"\]: (?P<qid>[0-9A-Za-z]+): client=[^\[\s]*\[(?P<ip>[^\]]+)\]:(?P<port>\d+)")
SPAM_ACTIONS = {"reject", "add header", "rewrite subject"}
ATTR_SAFE = re.compile(r"[\x00-\x1f=]")   # a value is one line; '=' is kept out of reasons


def log(msg):
    print(time.strftime("%Y-%m-%d %H:%M:%S"), "verdicts:", msg, file=sys.stderr, flush=True)


def parse(line):
    """The report of one rspamd log line, or None (not a verdict line, or not spam)."""
    m = LINE.search(line)
    if not m:
        return None
    if m["action"] not in SPAM_ACTIONS:
        return None
    reason = ""
    f = re.match(r'\w[\w ]*? "([^"]*)"', m["forced"])
    if f:
        reason = f.group(1)
    return {
        "request": "smtpgov_report",
        "client_address": m["ip"],
        "client_port": m["port"],
        "verdict": "spam",
        "action": m["action"],
        "score": m["score"],
        "queue_id": m["qid"] if m["qid"] != "undef" else "",
        "reason": reason,
    }


class PostfixClients:
    """Queue id -> client ADDR:PORT, from Postfix's log (read as far as it goes)."""

    TAIL = 16 << 20      # on start, the last 16 MiB of the log are enough
    KEEP = 100000        # queue ids remembered

    def __init__(self, path):
        self.path, self.f, self.ino, self.pending = path, None, None, b""
        self.clients = OrderedDict()

    def _read(self):
        if self.f is None:
            try:
                self.f = open(self.path, "rb")
            except OSError:
                return
            st = os.fstat(self.f.fileno())
            self.ino = st.st_ino
            if st.st_size > self.TAIL:
                self.f.seek(st.st_size - self.TAIL)
                self.f.readline()
        while True:
            chunk = self.f.readline()
            if not chunk:
                break
            self.pending += chunk
            if not self.pending.endswith(b"\n"):
                continue
            m = CLIENT.search(self.pending.decode(errors="replace"))
            self.pending = b""
            if m:
                self.clients[m["qid"]] = (m["ip"], m["port"])
                self.clients.move_to_end(m["qid"])
                while len(self.clients) > self.KEEP:
                    self.clients.popitem(last=False)
        try:
            if os.stat(self.path).st_ino != self.ino:     # rotated: the new one from its start
                self.f.close()
                self.f = open(self.path, "rb")
                self.ino = os.fstat(self.f.fileno()).st_ino
        except OSError:
            pass

    def lookup(self, qid, wait_s=5.0):
        end = time.monotonic() + wait_s
        while True:
            self._read()
            if qid in self.clients:
                return self.clients[qid]
            if time.monotonic() >= end:
                return None
            time.sleep(0.1)


def encode(report):
    return "".join(f"{k}={ATTR_SAFE.sub(' ', v)}\n" for k, v in report.items()).encode() + b"\n"


def split_hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def send(policy, report, timeout=5.0):
    """One request, one reply; returns the reply's action (raises OSError when unreachable)."""
    with socket.create_connection(split_hostport(policy), timeout=timeout) as s:
        s.sendall(encode(report))
        buf = b""
        while not buf.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    for line in buf.decode(errors="replace").splitlines():
        if line.startswith("action="):
            return line[len("action="):]
    raise OSError(f"no action in the reply: {buf[:200]!r}")


class Offset:
    """(inode, offset) of the log, saved atomically."""

    def __init__(self, path):
        self.path = path

    def load(self):
        try:
            ino, off = open(self.path).read().split()
            return int(ino), int(off)
        except (OSError, ValueError):
            return None, 0

    def save(self, ino, off):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{ino} {off}\n")
        os.replace(tmp, self.path)


def follow(args):
    postfix = PostfixClients(args.maillog)
    store = Offset(args.offset)
    ino, off = store.load()
    f = None
    pending = b""
    while True:
        if f is None:
            try:
                f = open(args.log, "rb")
            except OSError:
                time.sleep(0.2)
                continue
            st = os.fstat(f.fileno())
            if st.st_ino != ino or st.st_size < off:
                off = 0             # a new or truncated log: from its start
            ino = st.st_ino
            f.seek(off)
        chunk = f.readline()
        if not chunk:
            # end of the file: a rotated log is reopened, otherwise wait for more
            try:
                if os.stat(args.log).st_ino != ino:
                    f.close()
                    f, ino, off, pending = None, None, 0, b""
                    continue
            except OSError:
                pass
            time.sleep(0.1)
            continue
        pending += chunk
        if not pending.endswith(b"\n"):
            continue                # a line still being written
        line, pending = pending.decode(errors="replace"), b""
        report = parse(line)
        if report:
            client = postfix.lookup(report["queue_id"]) if report["queue_id"] else None
            if client:
                report["client_address"], report["client_port"] = client
            if report["client_address"] and report["client_port"] not in ("", "0"):
                deliver(args, report)
            else:
                log(f"no client port for queue id {report['queue_id'] or '?'} "
                    f"({report['client_address']}): verdict {report['action']} not reported")
        off = f.tell()
        store.save(ino, off)


def client_of(report):
    a, p = report["client_address"], report["client_port"]
    return f"[{a}]:{p}" if ":" in a else f"{a}:{p}"


def deliver(args, report):
    first = time.monotonic()
    warned = False
    while True:
        try:
            answer = send(args.policy, {**report, "token": args.token} if args.token else report)
            log(f"{client_of(report)} {report['action']} "
                f"({report['reason'] or report['score']}): policy service answered {answer}")
            return
        except OSError as e:
            if time.monotonic() - first > args.give_up_s:
                log(f"gave up reporting {client_of(report)}: {e}")
                return
            if not warned:
                log(f"policy service {args.policy} unreachable ({e}); retrying every second")
                warned = True
            time.sleep(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", required=True)
    ap.add_argument("--maillog", required=True)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--offset", required=True)
    ap.add_argument("--pidfile")
    ap.add_argument("--give-up-s", type=float, default=600)
    ap.add_argument("--token-file")
    args = ap.parse_args()
    args.token = ""
    if args.token_file:
        try:
            with open(args.token_file) as f:
                args.token = f.read().rstrip("\r\n")
        except OSError as e:
            sys.exit(f"verdicts.py: cannot read the token: {e}")
        if not args.token or any(c in args.token for c in "\r\n"):
            sys.exit(f"verdicts.py: {args.token_file} holds no one-line token")
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(f"following {args.log}, reporting to {args.policy}")
    try:
        follow(args)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
