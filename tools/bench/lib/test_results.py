#!/usr/bin/env python3
"""ctest bench.results: results.py's statistics, targets, JSON and table on canned runs."""
import copy
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

CLK = 100


def run(rnd, contender, ns, mode=None, vms=None, scenario="one-vm-flood", iface="tap", sent=1000000,
        seconds=2.0, judged=None, admitted=0, sources=1, legit=None):
    """A raw run whose generator + smtpgovd + ksoftirqd CPU comes to `ns` per frame (the
    whole machine's /proc/stat twice that: other load)."""
    return {"round": rnd, "scenario": scenario, "iface": iface, "contender": contender, "xdp_mode": mode,
            "vms": vms, "rate": 100, "burst": 200, "sources": sources,
            "judged": sent if judged is None else judged, "admitted": admitted,
            "busy_ticks": round(2 * ns * sent * CLK / 1e9), "clk_tck": CLK,
            "daemon_ns": 1000000 if contender == "smtpgov" else 0, "ksoftirqd_ns": 2000000,
            "flood_start_epoch": 1000.0, "flood_end_epoch": 1000.0 + seconds,
            "gen": {"frames_written": sent, "elapsed_s": seconds,
                    "cpu_user_s": 0.01, "cpu_sys_s": ns * sent / 1e9 - 0.01 - 0.003 + (0.001 if contender != "smtpgov" else 0.0)},
            "legit": legit}


def canned():
    runs = []
    for r, noise in ((1, 0), (2, 30), (3, -10)):
        runs += [run(r, "empty-xdp", 1700 + noise, "native"), run(r, "empty-xdp", 1900 + noise, "generic"),
                 run(r, "tc-drop", 1800 + noise),
                 run(r, "smtpgov", 1850 + noise, "native", 1, admitted=400 + r - 2),
                 run(r, "nftables", 2300 + noise, admitted=500),
                 run(r, "iptables-hashlimit", 2200 + noise, admitted=398),
                 run(r, "none", 4800 + noise, admitted=1000000),
                 run(r, "nftables", 2000, scenario="many-sources", sources=1000, admitted=400000),
                 run(r, "smtpgov", 1800, "native", 1, scenario="many-sources", sources=1000, admitted=401),
                 run(r, "smtpgov", 1900, "native", 1, scenario="flood-plus-legit", admitted=400,
                     legit={"ok": 20, "sessions": 20, "elapsed_s": 1.5,
                                                     "start_epoch": 1000.2, "end_epoch": 1001.7})]
    return runs


class Aggregate(unittest.TestCase):
    def setUp(self):
        self.rows = results.aggregate(canned(), {"p50_ms": 12.0, "p99_ms": 14.0})

    def row(self, contender, scenario="one-vm-flood", mode=None):
        return next(r for r in self.rows if r["contender"] == contender and r["scenario"] == scenario
                    and (mode is None or r["xdp_mode"] == mode))

    def test_floor_is_the_cheapest_hook_of_the_same_round(self):
        s = self.row("smtpgov")
        self.assertEqual(s["floor_hook"], "empty-xdp (native)")
        self.assertAlmostEqual(s["floor_ns_per_frame"], 1700, delta=1)
        self.assertAlmostEqual(s["receiver_ns_per_frame"], 150, delta=1)   # round noise cancels
        self.assertAlmostEqual(s["receiver_ns_per_frame_min"], 150, delta=1)
        self.assertAlmostEqual(self.row("empty-xdp", mode="generic")["receiver_ns_per_frame"], 200, delta=1)

    def test_expected_admitted_per_contender_semantics(self):
        self.assertEqual(self.row("smtpgov")["expected_admitted"], 400)          # 200 + 100 x 2 s
        self.assertEqual(self.row("nftables", "many-sources")["expected_admitted"], 400 * 1000)
        self.assertEqual(self.row("smtpgov", "many-sources")["expected_admitted"], 400)
        self.assertIsNone(self.row("none")["expected_admitted"])
        self.assertEqual(self.row("empty-xdp", mode="native")["expected_admitted"], 0)
        self.assertAlmostEqual(self.row("nftables")["accuracy_pct"], 25.0)
        self.assertIn("gateway aggregate", self.row("smtpgov", "many-sources")["limit"])

    def test_targets(self):
        s = self.row("smtpgov")
        # nftables 600 / 150 = 4x: met; hashlimit 500 / 150 = 3.33x: met
        self.assertTrue(s["targets"]["receiver_cost_3x_lower_than_nftables"])
        self.assertTrue(s["targets_met"])
        self.assertIsNone(self.row("nftables")["targets_met"])
        self.assertEqual(self.row("smtpgov", "flood-plus-legit")["legit_sessions_total"], 60)

    def test_a_miss_is_reported(self):
        runs = canned()
        for r in runs:
            if r["contender"] == "iptables-hashlimit":
                r["gen"]["cpu_sys_s"] = 1950 * r["judged"] / 1e9 - 0.01 - 0.002
        rows = results.aggregate(runs, {"p50_ms": 12.0, "p99_ms": 60.0})
        s = next(r for r in rows if r["contender"] == "smtpgov" and r["scenario"] == "one-vm-flood")
        self.assertFalse(s["targets"]["receiver_cost_3x_lower_than_iptables-hashlimit"])
        self.assertFalse(s["targets"]["detection_p99_le_50ms"])
        self.assertFalse(s["targets_met"])
        self.assertIn("no:", results.table(rows, {}, 3, True))

    def test_sessions_outside_the_flood_do_not_count(self):
        runs = canned()
        runs[-1]["legit"]["end_epoch"] = 1003.0   # round 3's sessions outlived the flood
        rows = results.aggregate(runs, None)
        s = next(r for r in rows if r["scenario"] == "flood-plus-legit")
        self.assertFalse(s["targets"]["legit_sessions_within_flood"])
        self.assertTrue(s["targets"]["no_legit_session_lost"])
        self.assertFalse(s["targets_met"])

    def test_lost_frames_make_a_row_invalid(self):
        runs = canned()
        runs[4]["judged"] -= 1   # round 1's nftables
        rows = results.aggregate(runs, None)
        self.assertFalse(next(r for r in rows if r["contender"] == "nftables"
                              and r["scenario"] == "one-vm-flood")["valid"])
        self.assertIsNone(next(r for r in rows if r["contender"] == "smtpgov")["detection_ms_p99"])


class Check(unittest.TestCase):
    def write(self, doc):
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        self.addCleanup(os.unlink, path)
        return path

    def doc(self):
        machine = {k: "x" for k in results.MACHINE_FIELDS}
        return {"machine": machine, "rows": results.aggregate(canned(), None)}

    def test_complete_document_passes(self):
        self.assertEqual(results.check(self.write(self.doc()), ["one-vm-flood"]), 0)

    def test_missing_field_invalid_row_and_missing_scenario_fail(self):
        for breakage in ("field", "valid", "scenario", "machine"):
            doc = copy.deepcopy(self.doc())
            if breakage == "field":
                del doc["rows"][0]["floor_ns_per_frame"]
            elif breakage == "valid":
                doc["rows"][0]["valid"] = False
            elif breakage == "machine":
                del doc["machine"]["spec_rstack_overflow"]
            with self.subTest(breakage):
                scen = ["one-vm-flood-veth"] if breakage == "scenario" else ["one-vm-flood"]
                self.assertEqual(results.check(self.write(doc), scen), 1)


if __name__ == "__main__":
    unittest.main()
