"""Smoke test of `benchmarks/bench_perf.py --quick`: it runs, writes its JSON and markdown, and every
equal-output check passes. No timing assertions."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
ITEMS = ("1 ", "2 ", "3 ", "4 ", "5 ", "6 ", "7 ", "8 ")


def test_quick_perf_benchmark_runs_and_its_checks_pass(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "bench_perf.py"), "--quick", "--threads", "1",
                           "--device", "cpu", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=BENCH_DIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jsons, mds = sorted(tmp_path.glob("perf-*-quick.json")), sorted(tmp_path.glob("perf-*-quick.md"))
    assert len(jsons) == 1 and len(mds) == 1 and jsons[0].stem == mds[0].stem
    report = json.loads(jsons[0].read_text(encoding="utf-8"))
    assert report["all_ok"] is True and report["quick"] is True and report["machine"]["torch_threads"] == 1
    section = report["sections"]["perf"]
    names = [row["name"] for row in section["rows"]]
    assert all(any(name.startswith(item) or name.startswith("3/7") for name in names) for item in ITEMS)
    assert all(isinstance(row["value"], (int, float)) and row["value"] == row["value"] for row in section["rows"])
    checks = section["checks"]
    assert len(checks) >= 7 and all(c["passed"] for c in checks)
    assert {"1_frames", "2_interviews", "3_7_encode", "4_regression", "5_web_adamw", "6_flops",
            "8_end_to_end"} <= set(section["details"])
    assert section["details"]["6_flops"]["flops_per_frame"] > 0
    assert mds[0].read_text(encoding="utf-8") in proc.stdout
