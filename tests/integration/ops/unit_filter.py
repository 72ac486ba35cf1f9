#!/usr/bin/env python3
"""unit_filter.py UNIT TRACE: checks a strace -f log (of one program, from its execve on)
against a systemd unit's sandbox: every system call within the unit's SystemCallFilter=
lines (expanded by `systemd-analyze syscall-filter`, applied in order: the allow list,
what it loses, what it gains), and nothing opened in /proc or /dev that the unit's
ProcSubset=pid and PrivateDevices=yes (when it sets them) hide. Exit 1 naming what the unit would refuse.
"""
import re, subprocess, sys
unit, trace = sys.argv[1], open(sys.argv[2]).read()
groups, cur = {}, None
for line in subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout.splitlines():
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    if not line.startswith(" ") and s.startswith("@"):
        cur = groups.setdefault(s, [])
    elif cur is not None:
        cur.append(s)
def expand(names):
    out = set()
    for n in names:
        out |= expand(groups[n]) if n.startswith("@") else {n}
    return out
allowed = None
for line in open(unit):
    if not line.startswith("SystemCallFilter="):
        continue
    v = line.split("=", 1)[1].split()
    deny = v[0].startswith("~")
    names = expand([v[0].lstrip("~")] + v[1:])
    if allowed is None:
        assert not deny, "the unit's first SystemCallFilter= must be an allow list"
        allowed = names
    elif deny:
        allowed -= names
    else:
        allowed |= names
used = set(re.findall(r"^\d+ +(?:<\.\.\. )?([a-z0-9_]+)[( ]", trace, re.M)) - {"exit", "resumed"}
refused = sorted(used - allowed)
print("system calls used: %d, refused by the unit: %s" % (len(used), refused or "none"))
# opened or looked at successfully (a path missing here, like libbpf's probe of
# /proc/version_signature, is missing under the unit too: nothing changes)
opened = {m.group(1) for m in re.finditer(r'"(/(?:proc|dev)/[^"]*)".*\) += (\d+)', trace)}
settings = {l.split("=", 1)[0]: l.split("=", 1)[1].strip() for l in open(unit) if "=" in l and not l.startswith("#")}
pid_only = settings.get("ProcSubset") == "pid"
private_dev = settings.get("PrivateDevices") == "yes"
bad = sorted(p for p in opened if pid_only and p.startswith("/proc/") and not re.match(r"/proc/(self|thread-self)(/|$)", p)
             or private_dev and p.startswith("/dev/") and p not in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full"))
print("paths in /proc and /dev:", sorted(opened) or "none")
assert not refused, "system calls outside SystemCallFilter=: %s" % refused
assert not bad, "paths ProcSubset=pid/PrivateDevices= hide: %s" % bad
