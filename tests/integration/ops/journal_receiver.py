#!/usr/bin/env python3
"""A stand-in for journald's native socket: receives datagrams on SOCKET, parses the
native protocol (NAME=value lines, the binary-safe NAME\\n<le64 size><value>\\n form, and
entries passed as a sealed memfd with SCM_RIGHTS) and appends each entry as one JSON
object (field name -> value) to OUT. Runs until killed; writes READY_FILE once bound."""
import array
import fcntl
import json
import os
import socket
import struct
import sys

F_GET_SEALS = 1034
SEALS = 0x1 | 0x2 | 0x4 | 0x8  # F_SEAL_SEAL, SHRINK, GROW, WRITE


def parse(data):
    """One entry of the native protocol -> dict; raises ValueError on malformed input."""
    entry, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            i = nl + 1
        else:  # binary-safe: NAME\n, 64-bit little-endian size, value, \n
            name = line
            (size,) = struct.unpack_from("<Q", data, nl + 1)
            start = nl + 9
            value = data[start:start + size]
            if len(value) != size or data[start + size:start + size + 1] != b"\n":
                raise ValueError("binary field %r is cut short" % name)
            i = start + size + 1
        if not name or name.decode() != name.decode().upper():
            raise ValueError("bad field name %r" % name)
        entry[name.decode()] = value.decode("utf-8", "replace")
    return entry


def receive(sock):
    fds = array.array("i")
    data, anc, _, _ = sock.recvmsg(1 << 24, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if fds:
        fd = fds[0]
        seals = fcntl.fcntl(fd, F_GET_SEALS)
        if seals & SEALS != SEALS:
            raise ValueError("memfd not sealed (seals %#x)" % seals)
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        return parse(data), "memfd"
    return parse(data), "datagram"


def main():
    path, out, ready = sys.argv[1:4]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    open(ready, "w").close()
    with open(out, "a") as f:
        while True:
            try:
                entry, how = receive(sock)
                entry["_TRANSPORT_FORM"] = how
            except (ValueError, struct.error) as e:
                entry = {"_PARSE_ERROR": str(e)}
            f.write(json.dumps(entry) + "\n")
            f.flush()


if __name__ == "__main__":
    main()
