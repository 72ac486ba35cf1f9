#!/usr/bin/env python3
"""tools/bench/run.sh's rows: statistics over rounds, targets, results.json, table, plot.

  results.py --raw raw.jsonl --machine machine.json --detection detection.json
             --rounds N --quick 0|1 --out DIR      (writes DIR/results.json, results.png)
  results.py --check DIR/results.json [--scenarios LIST]   (exit 1 when a field is missing
             or a row is not valid; the smoke test's check)

A raw run (measure.sh) holds the generator's JSON (with its own CPU time), the
contender's judged count, the frames admitted at the far end, the CPU time of smtpgovd
and of the ksoftirqd threads during the flood, and the busy ticks of the whole machine
(/proc/stat). Per run: total ns/frame = (generator + smtpgovd + ksoftirqd CPU) / frames
sent: the receive path runs inside the generator's sends (no RPS), so this is the whole
cost, measured exactly and untouched by other load on the machine; machine ns/frame is
the same from /proc/stat (everything that ran, ours or not; 10 ms ticks). Per round, the
floor of an interface kind is the cheapest hook's (empty-xdp native or generic, tc-drop)
total ns/frame in that round, and receiver ns/frame = total - floor. Rows report min /
median / max over rounds and are judged on medians.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HOOKS = ("empty-xdp", "tc-drop")
PEERS = ("nftables", "iptables-hashlimit")
FLOOR_SCENARIO = {"tap": "one-vm-flood", "veth": "one-vm-flood-veth"}
ROW_FIELDS = ("contender", "scenario", "iface", "xdp_mode", "vms", "rounds", "frames_sent", "frames_judged",
              "valid", "mpps", "mpps_min", "mpps_max", "total_ns_per_frame", "receiver_ns_per_frame",
              "receiver_ns_per_frame_min", "receiver_ns_per_frame_max", "floor_ns_per_frame", "floor_hook",
              "admitted", "admitted_min", "admitted_max", "expected_admitted", "accuracy_pct", "limit",
              "legit_sessions_ok", "legit_sessions_total", "detection_ms_p50", "detection_ms_p99",
              "targets", "targets_met")
MACHINE_FIELDS = ("kernel", "cpu_model", "nproc", "spec_rstack_overflow", "date", "git_commit")
TARGET_RATIO, TARGET_ACCURACY_PCT, TARGET_DETECTION_MS = 3.0, 2.0, 50.0


def sent_of(run):
    g = run["gen"]
    return int(g["frames_written"] if "frames_written" in g else g["sent"])


def seconds_of(run):
    g = run["gen"]
    return float(g["elapsed_s"] if "elapsed_s" in g else g["duration_s"])


def judged_flood(run):
    """The contender's count of the flood's frames: the peers' rules count every new SMTP
    connection, so in flood-plus-legit the legitimate sessions' SYNs (one each) come off."""
    legit = run.get("legit") or {}
    return run["judged"] - (legit.get("sessions", 0) if run["contender"] in PEERS else 0)


def total_ns(run):
    g = run["gen"]
    gen_s = g["cpu_s"] if "cpu_s" in g else g["cpu_user_s"] + g["cpu_sys_s"]
    return (gen_s * 1e9 + run["daemon_ns"] + run["ksoftirqd_ns"]) / max(1, sent_of(run))


def machine_ns(run):
    return run["busy_ticks"] * 1e9 / run["clk_tck"] / max(1, sent_of(run))


def expected_admitted(run):
    """burst + rate x seconds of the contender's configured limit (None: no limit)."""
    c, sent = run["contender"], sent_of(run)
    if c in HOOKS:
        return 0
    if c == "none":
        return None
    allowance = run["burst"] + run["rate"] * seconds_of(run)
    if c == "smtpgov":   # one bucket: the VM's, or the gateway aggregate's
        return min(sent, allowance)
    # peers: a bucket per source; tap_writer cycles the sources, so each sends sent/S or one more
    n, extra = divmod(sent, run["sources"])
    return sum(min(n + (i < extra), allowance) for i in range(run["sources"]))


def limit_of(run):
    c, r, b, s = run["contender"], run["rate"], run["burst"], run["sources"]
    if c in HOOKS:
        return "drops every frame"
    if c == "none":
        return None
    if c == "smtpgov":
        who = "gateway aggregate of the 1,000 sources (one VM, 10.99.0.0/22)" if s > 1 else "per VM"
        return f"{who}: {r}/s, burst {b}"
    how = "nft meter" if c == "nftables" else "hashlimit srcip"
    return f"per source ({s} source{'s' if s > 1 else ''}), {how}: {r}/s, burst {b}"


def key(run):
    return (run["scenario"], run["contender"], run["xdp_mode"], run["vms"])


def spread(values):
    v = [x for x in values if x is not None]
    if not v:
        return None, None, None
    return min(v), statistics.median(v), max(v)


def floors(runs):
    """{(kind, round): (hook label, ns)} from the cheapest hook of each kind (by median)."""
    out = {}
    for kind in ("tap", "veth"):
        hooks = [r for r in runs if r["iface"] == kind and r["contender"] in HOOKS]
        preferred = [r for r in hooks if r["scenario"] == FLOOR_SCENARIO[kind]]
        hooks = preferred or hooks
        by_hook = {}
        for r in hooks:
            by_hook.setdefault((r["contender"], r["xdp_mode"]), []).append(r)
        if not by_hook:
            continue
        best = min(by_hook, key=lambda h: statistics.median(total_ns(r) for r in by_hook[h]))
        label = best[0] + (f" ({best[1]})" if best[1] else "")
        for r in by_hook[best]:
            out[(kind, r["round"])] = (label, total_ns(r))
    return out


def aggregate(runs, detection):
    fl = floors(runs)
    groups = {}
    for r in runs:
        groups.setdefault(key(r), []).append(r)
    rows = []
    for (scenario, contender, mode, vms), rs in groups.items():
        rs.sort(key=lambda r: r["round"])
        kind = rs[0]["iface"]
        legit = [r["legit"] for r in rs if r.get("legit")]
        recv = [total_ns(r) - fl[(kind, r["round"])][1] if (kind, r["round"]) in fl else None for r in rs]
        if scenario == "flood-plus-legit":
            recv = [None]   # the session client's CPU is in the window too
        mpps = spread(judged_flood(r) / seconds_of(r) / 1e6 for r in rs)
        rmin, rmed, rmax = spread(recv)
        adm = spread(r["admitted"] for r in rs)
        exp = [expected_admitted(r) for r in rs]
        acc = [100.0 * (r["admitted"] - e) / e if e else None for r, e in zip(rs, exp)]
        floor_vals = [fl[(kind, r["round"])][1] for r in rs if (kind, r["round"]) in fl]
        row = {
            "contender": contender, "scenario": scenario, "iface": kind, "xdp_mode": mode, "vms": vms,
            "rounds": len(rs),
            "frames_sent": int(statistics.median(sent_of(r) for r in rs)),
            "frames_judged": int(statistics.median(judged_flood(r) for r in rs)),
            "valid": all(judged_flood(r) == sent_of(r) for r in rs),
            # veth: the generator is paced (equal offered load); tap: as fast as write() goes
            "offered_fps": rs[0]["gen"].get("target_rate") if isinstance(rs[0]["gen"].get("target_rate"), (int, float)) else None,
            "mpps": mpps[1], "mpps_min": mpps[0], "mpps_max": mpps[2],
            "total_ns_per_frame": statistics.median(total_ns(r) for r in rs),
            "machine_ns_per_frame": statistics.median(machine_ns(r) for r in rs),
            "daemon_ms": statistics.median(r["daemon_ns"] / 1e6 for r in rs) if contender == "smtpgov" else None,
            "receiver_ns_per_frame": rmed, "receiver_ns_per_frame_min": rmin, "receiver_ns_per_frame_max": rmax,
            "floor_ns_per_frame": statistics.median(floor_vals) if floor_vals else None,
            "floor_hook": next((fl[(kind, r["round"])][0] for r in rs if (kind, r["round"]) in fl), None),
            "admitted": adm[1], "admitted_min": adm[0], "admitted_max": adm[2],
            "expected_admitted": statistics.median(exp) if None not in exp else None,
            "accuracy_pct": statistics.median(acc) if None not in acc else None,
            "limit": limit_of(rs[0]),
            "legit_sessions_ok": sum(x["ok"] for x in legit) if legit else None,
            "legit_sessions_total": sum(x["sessions"] for x in legit) if legit else None,
            # every round's sessions began after the flood began and ended before it ended
            "legit_within_flood": all(r["legit"]["start_epoch"] >= r["flood_start_epoch"] and
                                      r["legit"]["end_epoch"] <= r["flood_end_epoch"] for r in rs) if legit else None,
            "legit_elapsed_s": statistics.median(x["elapsed_s"] for x in legit) if legit else None,
            "flood_elapsed_s": statistics.median(seconds_of(r) for r in rs),
            "detection_ms_p50": detection["p50_ms"] if detection and contender == "smtpgov" else None,
            "detection_ms_p99": detection["p99_ms"] if detection and contender == "smtpgov" else None,
        }
        rows.append(row)
    judge(rows)
    order = {"one-vm-flood": 0, "one-vm-flood-veth": 1, "many-sources": 2, "flood-plus-legit": 3}
    corder = {"empty-xdp": 0, "tc-drop": 1, "smtpgov": 2, "nftables": 3, "iptables-hashlimit": 4, "none": 5}
    rows.sort(key=lambda r: (order.get(r["scenario"], 9), corder.get(r["contender"], 9), r["xdp_mode"] or "",
                             r["vms"] or 0))
    return rows


def judge(rows):
    """smtpgov's targets, each True/False (None: not measured here); peers have none."""
    for row in rows:
        row["targets"], row["targets_met"] = None, None
        if row["contender"] != "smtpgov":
            continue
        t = {}
        peers = {p: next((x for x in rows if x["scenario"] == row["scenario"] and x["contender"] == p), None)
                 for p in PEERS}
        for p, x in peers.items():
            ok = x and x["receiver_ns_per_frame"] and row["receiver_ns_per_frame"] is not None
            ratio = x["receiver_ns_per_frame"] / max(row["receiver_ns_per_frame"], 1e-9) if ok else None
            row[f"cost_ratio_{p.replace('-', '_')}"] = ratio
            # the target: on a tap, in the mode an operator runs there (native); reported elsewhere
            if row["scenario"] == "one-vm-flood" and row["xdp_mode"] == "native":
                t[f"receiver_cost_{TARGET_RATIO:g}x_lower_than_{p}"] = None if ratio is None else ratio >= TARGET_RATIO
        acc = row["accuracy_pct"]
        t["admitted_within_2pct"] = None if acc is None else abs(acc) <= TARGET_ACCURACY_PCT
        if row["legit_sessions_total"] is not None:
            t["no_legit_session_lost"] = row["legit_sessions_ok"] == row["legit_sessions_total"]
            t["legit_sessions_within_flood"] = row["legit_within_flood"]
        p99 = row["detection_ms_p99"]
        t["detection_p99_le_50ms"] = None if p99 is None else p99 <= TARGET_DETECTION_MS
        t["valid"] = row["valid"]
        row["targets"] = t
        judged = [v for v in t.values() if v is not None]
        row["targets_met"] = all(judged) if judged else None


def fmt(v, spec="{:.0f}"):
    return "-" if v is None else spec.format(v)


def table(rows, machine, rounds, quick):
    out = [f"kernel {machine.get('kernel')}, {machine.get('cpu_model')}, {machine.get('nproc')} CPUs, "
           f"spec_rstack_overflow: {machine.get('spec_rstack_overflow')}, load {machine.get('loadavg')}",
           f"{rounds} interleaved rounds{' (--quick)' if quick else ''}; min / median / max; judged on medians", "",
           "| scenario | contender | xdp | vms | valid | Mpps | total ns/frame | receiver ns/frame | floor | "
           "admitted / expected (accuracy) | legit ok | detection p50/p99 ms | targets met |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mp = f"{fmt(r['mpps_min'], '{:.3f}')} / {fmt(r['mpps'], '{:.3f}')} / {fmt(r['mpps_max'], '{:.3f}')}"
        rc = "-" if r["receiver_ns_per_frame"] is None else (
            f"{fmt(r['receiver_ns_per_frame_min'])} / {fmt(r['receiver_ns_per_frame'])} / "
            f"{fmt(r['receiver_ns_per_frame_max'])}")
        ad = "-" if r["expected_admitted"] is None and r["contender"] != "none" else (
            f"{fmt(r['admitted'])} / {fmt(r['expected_admitted'])} ({fmt(r['accuracy_pct'], '{:+.1f}%')})")
        lg = "-" if r["legit_sessions_total"] is None else f"{r['legit_sessions_ok']}/{r['legit_sessions_total']}"
        dt = "-" if r["detection_ms_p99"] is None else f"{r['detection_ms_p50']:.1f} / {r['detection_ms_p99']:.1f}"
        tm = "-" if r["targets_met"] is None else ("yes" if r["targets_met"] else "no: " + ", ".join(
            k for k, v in r["targets"].items() if v is False))
        out.append(f"| {r['scenario']} | {r['contender']} | {r['xdp_mode'] or '-'} | {r['vms'] or '-'} | "
                   f"{'yes' if r['valid'] else 'NO'} | {mp} | {fmt(r['total_ns_per_frame'])} | {rc} | "
                   f"{fmt(r['floor_ns_per_frame'])} | {ad} | {lg} | {dt} | {tm} |")
    return "\n".join(out)


COLOURS = {"empty-xdp": 0x8c8c8c, "tc-drop": 0xb0b0b0, "smtpgov": 0x3b75af, "nftables": 0xdd8452,
           "iptables-hashlimit": 0xc44e52, "none": 0x55a868}


def label(r):
    short = {"one-vm-flood": "tap", "one-vm-flood-veth": "veth", "many-sources": "1k-src", "flood-plus-legit": "legit"}
    mode = {"native": "drv", "generic": "gen"}.get(r["xdp_mode"])
    vms = r["vms"] and (f"{r['vms'] // 1000}k" if r["vms"] >= 1000 else str(r["vms"]))
    extra = " ".join(x for x in (mode, vms) if x)
    return f"{short.get(r['scenario'], r['scenario'])} {r['contender'].replace('iptables-', '')}" + (
        f" {extra}" if extra else "")


def plot(rows, path):
    """Three panels (gnuplot): Mpps, receiver ns/frame, admitted accuracy, per row."""
    data = path + ".dat"
    num = lambda v: "NaN" if v is None else f"{v:.4f}"
    with open(data, "w") as f:
        for i, r in enumerate(rows):
            f.write(f"{i} \"{label(r)}\" {num(r['mpps'])} {num(r['receiver_ns_per_frame'])} "
                    f"{num(r['accuracy_pct'])} {COLOURS.get(r['contender'], 0)}\n")
    acc = [r["accuracy_pct"] for r in rows if r["accuracy_pct"] is not None] or [0]
    lo, hi = min(-5, min(acc) - 2), max(5, max(acc) + 2)

    def panel(col, field, extra=""):
        """One bar chart of a column, or an empty frame when no row has that figure."""
        if all(r[field] is None for r in rows):
            return 'set yrange [0:1]\nplot 0 lc rgb "white"\nset autoscale y'
        return f'plot "{data}" using 1:{col}:6:xtic(2) with boxes lc rgb variable{extra}'

    script = f"""
set terminal pngcairo size 1300,1250 font ",9"
set output "{path}"
set multiplot layout 3,1 margins 0.06,0.99,0.09,0.95 spacing 0,0.13 title "smtpgov side by side: medians over rounds (tools/bench/run.sh); grey: empty programs, blue: smtpgov, orange: nftables, red: hashlimit, green: no filter"
set style fill solid 0.7 border -1
set boxwidth 0.7
set grid ytics
set xtics rotate by -45 left
set xrange [-0.8:{len(rows) - 0.2}]
unset key
set title "throughput: frames judged per second (Mpps); tap: in the writer's thread, veth: in the sender's"
{panel(3, "mpps")}
set title "receiver cost: ns per frame over the floor (the cheapest hook on that interface kind, same generator)"
{panel(4, "receiver_ns_per_frame")}
set title "admitted vs burst + rate x seconds of each one's configured limit (%); dashed: +-2%"
set yrange [{lo:.1f}:{hi:.1f}]
{panel(5, "accuracy_pct", ', 2 dt 2 lc rgb "black", -2 dt 2 lc rgb "black"')}
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    os.unlink(data)
    if r.returncode:
        sys.exit(f"results.py: gnuplot failed: {r.stderr.strip()}")


def check(path, scenarios):
    with open(path) as f:
        doc = json.load(f)
    problems = [f"machine.{k} missing" for k in MACHINE_FIELDS if k not in doc.get("machine", {})]
    rows = doc.get("rows", [])
    if not rows:
        problems.append("no rows")
    for r in rows:
        problems += [f"row {label(r)}: field {k} missing" for k in ROW_FIELDS if k not in r]
        if not r.get("valid"):
            problems.append(f"row {label(r)}: not valid (judged {r.get('frames_judged')} of {r.get('frames_sent')})")
        if r.get("contender") in HOOKS + PEERS + ("smtpgov",) and r.get("scenario") != "flood-plus-legit" \
                and r.get("receiver_ns_per_frame") is None:
            problems.append(f"row {label(r)}: no receiver cost")
    for s in scenarios:
        if not any(r.get("scenario") == s and r.get("contender") == "smtpgov" for r in rows):
            problems.append(f"no smtpgov row for {s}")
    for p in problems:
        print("results.py --check:", p, file=sys.stderr)
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw")
    ap.add_argument("--machine")
    ap.add_argument("--detection")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--quick", default="0")
    ap.add_argument("--out")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--check")
    ap.add_argument("--scenarios", default="")
    a = ap.parse_args()
    if a.check:
        return check(a.check, [s for s in a.scenarios.split(",") if s])
    if not (a.raw and a.machine and a.detection and a.out):
        ap.error("--raw, --machine, --detection and --out (or --check)")
    with open(a.raw) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    if not runs:
        sys.exit("results.py: no runs in " + a.raw)
    with open(a.machine) as f:
        machine = json.load(f)
    with open(a.detection) as f:
        detection = json.load(f)
    rows = aggregate(runs, detection)
    quick = a.quick == "1"
    doc = {"machine": machine, "rounds": a.rounds, "quick": quick,
           "detection": detection, "rows": rows}
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(table(rows, machine, a.rounds, quick))
    if not a.no_plot:
        plot(rows, os.path.join(a.out, "results.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
