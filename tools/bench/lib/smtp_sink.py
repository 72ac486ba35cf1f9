#!/usr/bin/env python3
"""A minimal SMTP sink for tools/bench/run.sh's flood-plus-legit scenario: answers what
tools/bench/smtp_sessions.py sends (220, EHLO/MAIL/RCPT 250, DATA 354 ... 250, QUIT 221)
and discards the message. Bounded: it exits after --max-seconds.

  smtp_sink.py --addr 203.0.113.25 [--port 25] [--max-seconds 3600]
"""
import argparse
import asyncio
import sys


async def serve(reader, writer):
    try:
        writer.write(b"220 sink.bench.invalid ESMTP\r\n")
        await writer.drain()
        in_data = False
        while True:
            line = await asyncio.wait_for(reader.readline(), 60)
            if not line:
                break
            if in_data:
                if line in (b".\r\n", b".\n"):
                    in_data = False
                    writer.write(b"250 2.0.0 queued\r\n")
                else:
                    continue
            else:
                verb = line[:4].upper()
                if verb == b"DATA":
                    in_data = True
                    writer.write(b"354 go ahead\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"250 ok\r\n")
            await writer.drain()
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()


async def main_async(a):
    server = await asyncio.start_server(serve, a.addr, a.port, backlog=1024)
    print("listening", flush=True)
    async with server:
        await asyncio.sleep(a.max_seconds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--max-seconds", type=float, default=3600)
    asyncio.run(main_async(ap.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
