#!/usr/bin/env python3
"""N complete SMTP sessions with C parallel clients (tools/bench/steering.sh).

Each session: connect to --dst:--port, greeting, EHLO, MAIL, RCPT, DATA with a small
message (Message-ID <TAG-I@customer.example>), QUIT. A session is ok when the end of
DATA got 250 and QUIT got 221. Bounded: every reply waits at most --timeout-s, the
whole run at most --deadline-s (sessions not finished by then count as failed).
Prints one JSON object: sessions, ok, failed, elapsed_s (first connect to last end;
start_epoch and end_epoch: the same instants on the wall clock),
latency_ms of the ok sessions (connect to the reply to QUIT), errors by reason.
"""
import argparse
import asyncio
import json
import sys
import time


class SmtpError(Exception):
    pass


async def reply(reader):
    """One (possibly multi-line) SMTP reply: its code."""
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpError("connection closed")
        if len(line) < 4:
            raise SmtpError(f"bad reply line {line!r}")
        if line[3:4] != b"-":
            return int(line[:3])


async def command(reader, writer, line, want):
    writer.write(line)
    await writer.drain()
    code = await reply(reader)
    if code != want:
        raise SmtpError(f"{line.split(b' ')[0].strip().decode()} {code}")


async def session(a, i):
    msgid = f"{a.tag}-{i}@customer.example"
    body = (f"From: vm@customer.example\r\nTo: someone@example.net\r\n"
            f"Subject: smtpgov steering benchmark {a.tag} {i}\r\n"
            f"Message-ID: <{msgid}>\r\n\r\n"
            "A small clean message from the benchmark VM.\r\n.\r\n").encode()
    start = time.monotonic()
    reader, writer = await asyncio.open_connection(a.dst, a.port)
    try:
        code = await reply(reader)
        if code != 220:
            raise SmtpError(f"greeting {code}")
        await command(reader, writer, b"EHLO vm.customer.example\r\n", 250)
        await command(reader, writer, b"MAIL FROM:<vm@customer.example>\r\n", 250)
        await command(reader, writer, b"RCPT TO:<someone@example.net>\r\n", 250)
        await command(reader, writer, b"DATA\r\n", 354)
        await command(reader, writer, body, 250)
        await command(reader, writer, b"QUIT\r\n", 221)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
    return start, time.monotonic()


async def run(a):
    queue = list(range(a.sessions))
    results = []   # (ok, start, end, reason)

    async def worker():
        while queue:
            i = queue.pop()
            t0 = time.monotonic()
            try:
                s, e = await asyncio.wait_for(session(a, i), a.timeout_s)
                results.append((True, s, e, ""))
            except asyncio.TimeoutError:
                results.append((False, t0, time.monotonic(), "timeout"))
            except (OSError, SmtpError) as ex:
                reason = str(ex) if isinstance(ex, SmtpError) else type(ex).__name__
                results.append((False, t0, time.monotonic(), reason))

    workers = [asyncio.ensure_future(worker()) for _ in range(min(a.concurrency, a.sessions))]
    done, pending = await asyncio.wait(workers, timeout=a.deadline_s)
    for w in pending:
        w.cancel()
    unfinished = a.sessions - len(results)
    ok = [r for r in results if r[0]]
    errors = {}
    for r in results:
        if not r[0]:
            errors[r[3]] = errors.get(r[3], 0) + 1
    if unfinished:
        errors["deadline"] = unfinished
    starts = [r[1] for r in results] or [0.0]
    ends = [r[2] for r in results] or [0.0]
    to_epoch = time.time() - time.monotonic()
    return {
        # wall clock of the first connect and the last end (run.sh checks they fall within a flood)
        "start_epoch": min(starts) + to_epoch,
        "end_epoch": max(ends) + to_epoch,
        "sessions": a.sessions,
        "ok": len(ok),
        "failed": a.sessions - len(ok),
        "elapsed_s": max(ends) - min(starts),
        "latency_ms": sorted((r[2] - r[1]) * 1000.0 for r in ok),
        "errors": errors,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dst", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--tag", default="bench")
    ap.add_argument("--timeout-s", type=float, default=30)
    ap.add_argument("--deadline-s", type=float, default=300)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(run(a))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
