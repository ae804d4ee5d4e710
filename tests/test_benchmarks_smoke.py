"""Smoke test of the benchmark suite: `run_benchmarks.py --quick` end to end, its files and checks.

No timing assertions: only the layout of the JSON and markdown results and the equal-output checks.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
SECTION_KEYS = ["1_training", "2_temporal", "3_loading", "4_zeroshot", "5_cuda"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "run_benchmarks.py"), "--quick", "--threads", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    return proc, out


def _report(out: Path) -> tuple[dict, str]:
    jsons, mds = sorted(out.glob("*.json")), sorted(out.glob("*.md"))
    assert len(jsons) == 1 and len(mds) == 1
    assert jsons[0].stem == mds[0].stem and jsons[0].stem.endswith("-quick")
    return json.loads(jsons[0].read_text(encoding="utf-8")), mds[0].read_text(encoding="utf-8")


def test_quick_suite_passes_and_writes_json(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    report, _ = _report(out)
    assert report["schema"] == 1 and report["quick"] is True and report["all_ok"] is True
    machine = report["machine"]
    for key in ("cpu_model", "cpu_cores", "torch", "torch_threads", "device"):
        assert machine[key] not in (None, "")
    assert machine["torch_threads"] == 1 and machine["torch"] == torch.__version__
    assert report["host_kind"].startswith("cuda-" if torch.cuda.is_available() else "cpu-")
    assert "before" in report["load_average"] and "after" in report["load_average"]
    assert list(report["sections"]) == SECTION_KEYS
    for key, section in report["sections"].items():
        expected = "skipped" if key == "5_cuda" and not torch.cuda.is_available() else "ok"
        assert section["status"] == expected, (key, section["note"])
        for row in section["rows"]:
            assert set(row) == {"name", "value", "cpu_value", "unit", "note"}
            assert isinstance(row["value"], (int, float)) and row["value"] == row["value"]  # a number, not NaN
            assert row["cpu_value"] is None or row["cpu_value"] == row["cpu_value"]
        if expected == "ok":
            assert section["rows"] and section["checks"], key
        assert all(check["passed"] and check["value"] <= check["limit"] for check in section["checks"])


def test_quick_suite_equal_output_checks(quick_run):
    _, out = quick_run
    report, _ = _report(out)
    names = {key: [c["name"] for c in s["checks"]] for key, s in report["sections"].items()}
    assert any("full vs cached" in n for n in names["1_training"])  # same epoch loss on both training paths
    assert any("official reference" in n for n in names["2_temporal"])  # same outputs with the same weights
    assert any("0 and 2 workers" in n for n in names["3_loading"])
    runs = report["sections"]["1_training"]["details"]["runs"]["default"]
    assert runs["full"]["samples"] == runs["cached"]["samples"] > 0


def test_quick_suite_markdown_matches_json(quick_run):
    proc, out = quick_run
    report, md = _report(out)
    assert md in proc.stdout  # the table is printed too
    assert "| # | section | measurement | value | from CPU time | unit | notes |" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| ") and line.count("|") == 8]
    expected = sum(len(s["rows"]) + (s["status"] != "ok") for s in report["sections"].values())
    assert len(table_rows) - 1 == expected  # minus the header row
    n_checks = sum(len(s["checks"]) for s in report["sections"].values())
    assert md.count("| pass |") == n_checks and "FAIL" not in md
    assert report["machine"]["cpu_model"] in md


def test_helpers(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    import run_benchmarks as rb

    assert rb.parse_sections("3,1,1") == [1, 3]
    assert rb.parse_sections("all") == [1, 2, 3, 4, 5]
    with pytest.raises(SystemExit, match="choose among"):
        rb.parse_sections("1,9")
    assert rb.output_stem("cpu-2c", "2025-01-02", False, [1, 2, 3, 4, 5]) == "cpu-2c-2025-01-02"
    assert rb.output_stem("cpu-2c", "2025-01-02", True, [2, 4]) == "cpu-2c-2025-01-02-quick-sections-2-4"
    assert [rb.fmt(v) for v in (None, 12345.6, 3.14159, 0.0012345, "x")] == ["-", "12,346", "3.14", "0.00123", "x"]


def test_crashing_section_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    import run_benchmarks as rb
    from bench_common import BenchContext

    monkeypatch.setitem(rb.SECTIONS, 9, ("broken", "no_such_bench_module"))
    result = rb.run_section(9, BenchContext(quick=True, work_dir=tmp_path, device=torch.device("cpu")))
    assert result.status == "error" and "no_such_bench_module" in result.note
    assert "Traceback" in result.details["traceback"]
