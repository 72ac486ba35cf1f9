#!/usr/bin/env python3
"""tools/bench/live_flood.sh's table: live_table.py RUNS.jsonl ROUNDS FRAMES

One line per contender: runs, frames sent and judged (the receiver's own counter), Mpps
min / median / max over the rounds and the ratio of its median to the empty program's.
Exit 1 unless every run went out as live frames and its receiver judged every frame sent.
"""
import json
import statistics
import sys


def main():
    runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    rounds, frames = int(sys.argv[2]), int(sys.argv[3])
    order = []
    for r in runs:
        if r["contender"] not in order:
            order.append(r["contender"])
    base = statistics.median(r["mpps"] for r in runs if r["contender"] == "empty") if "empty" in order else None
    print(f"single-VM live-frame SYN flood through a veth: {rounds} interleaved rounds x {frames} frames")
    print(f"{'contender':<18} {'runs':>4} {'sent':>10} {'judged':>10} {'valid':>5}  "
          f"{'Mpps min / median / max':>26} {'vs empty':>8}")
    ok = True
    for c in order:
        rs = [r for r in runs if r["contender"] == c]
        sent, judged = sum(r["sent"] for r in rs), sum(r["judged"] for r in rs)
        valid = all(r["judged"] == r["sent"] == frames and r["method"] == "xdp-live-frames" for r in rs)
        ok = ok and valid
        m = sorted(r["mpps"] for r in rs)
        med = statistics.median(m)
        ratio = f"{med / base:.2f}x" if base else "-"
        print(f"{c:<18} {len(rs):>4} {sent:>10} {judged:>10} {'yes' if valid else 'NO':>5}  "
              f"{m[0]:>8.2f} / {med:>6.2f} / {m[-1]:>6.2f} {ratio:>8}")
    if not ok:
        print("not valid: a receiver judged fewer frames than were sent, or a run fell back from live frames",
              file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
