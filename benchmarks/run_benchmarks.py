"""Run the EmoCLIP benchmark suite: every section side by side in one run, one JSON + one markdown table.

Sections: 1 training epoch (full vs cached path), 2 temporal transformer (ours vs official reference),
3 video loading, 4 zero-shot evaluation, 5 CUDA encoding and cache build (skipped without CUDA).
Results go to `<out>/<host-kind>-<date>[-quick][-sections-...].{json,md}`; the table is also printed.
Exit code 0 when every section ran (or was skipped) and every equal-output check passed, else 1.

Usage:
    .venv/bin/python benchmarks/run_benchmarks.py [--quick] [--sections 1,2,3] [--out DIR] [--threads N]
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from bench_common import BenchContext, SectionResult, host_kind, load_average, machine_info

SCHEMA = 1
# number -> (short name, module exposing `run(ctx) -> SectionResult`)
SECTIONS: dict[int, tuple[str, str]] = {
    1: ("training", "bench_training"),
    2: ("temporal", "bench_temporal"),
    3: ("loading", "bench_loading"),
    4: ("zeroshot", "bench_zeroshot"),
    5: ("cuda", "bench_cuda"),
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_sections(text: str) -> list[int]:
    """"1,2,3" -> [1, 2, 3] (sorted, unique); "all" -> every section.

    Args:
        text: comma-separated section numbers.
    """
    if text.strip().lower() == "all":
        return sorted(SECTIONS)
    try:
        chosen = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise SystemExit(f"--sections: expected numbers like 1,2,3, got {text!r}") from None
    bad = [n for n in chosen if n not in SECTIONS]
    if bad or not chosen:
        raise SystemExit(f"--sections: choose among {', '.join(map(str, SECTIONS))}, got {text!r}")
    return chosen


def run_section(number: int, ctx: BenchContext) -> SectionResult:
    """Run one section, turning a crash into an "error" result (the other sections still run).

    Args:
        number: section number (key of SECTIONS).
        ctx: suite context.
    """
    name, module_name = SECTIONS[number]
    start = time.perf_counter()
    try:
        result = importlib.import_module(module_name).run(ctx)
    except Exception as err:  # noqa: BLE001 - reported in the results, not fatal for the suite
        result = SectionResult(name, status="error", note=f"{type(err).__name__}: {err}",
                               details={"traceback": traceback.format_exc()})
    result.seconds = time.perf_counter() - start
    return result


def fmt(value: Any) -> str:
    """Table form of a value: 3 significant digits for small numbers, thousands separators for large ones.

    Args:
        value: number, string or None.
    """
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    v = float(value)
    if v != v or abs(v) == float("inf"):
        return str(v)
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown: machine line, one results table, the equal-output checks, section notes.

    Args:
        report: as written to the JSON file.
    """
    m, load = report["machine"], report["load_average"]
    quick = " (quick sizes)" if report["quick"] else ""
    lines = [f"# EmoCLIP benchmarks: {report['host_kind']}, {report['date']}{quick}", "",
             f"Machine: {m['cpu_model']}, {m['cpu_cores']} cores, torch {m['torch']}, {m['torch_threads']} threads, "
             f"device {m.get('gpu', m['device'])}; load average (1/5/15 min) before {load['before']}, "
             f"after {load['after']}; commit {m['git_commit']}.",
             f"Command: `{report['command']}` ({report['total_seconds']:.0f} s).", "",
             "`value` comes from wall-clock time; `from CPU time` is the same figure computed from the process's "
             "CPU time (about what an idle machine shows at the same thread count; `-` where it does not apply).", "",
             "| # | section | measurement | value | from CPU time | unit | notes |", "|---|---|---|---|---|---|---|"]
    for key, sec in report["sections"].items():
        num = key.split("_")[0]
        if sec["status"] != "ok":
            lines.append(f"| {num} | {_cell(sec['title'])} | {sec['status']} | - | - | | {_cell(sec['note'])} |")
        for row in sec["rows"]:
            lines.append(f"| {num} | {_cell(sec['title'])} | {_cell(row['name'])} | {fmt(row['value'])} | "
                         f"{fmt(row['cpu_value'])} | {row['unit']} | {_cell(row['note'])} |")
    lines += ["", "Equal-output checks:", "", "| # | check | value | limit | result |", "|---|---|---|---|---|"]
    for key, sec in report["sections"].items():
        for chk in sec["checks"]:
            lines.append(f"| {key.split('_')[0]} | {_cell(chk['name'])} | {chk['value']:.3g} | {chk['limit']:.3g} | "
                         f"{'pass' if chk['passed'] else 'FAIL'} |")
    notes = [f"- {key.split('_')[0]} ({sec['seconds']:.0f} s): {sec['note']}" for key, sec in report["sections"].items()
             if sec["note"]]
    if notes:
        lines += ["", "Notes:", ""] + notes
    return "\n".join(lines) + "\n"


def output_stem(kind: str, date: str, quick: bool, sections: list[int]) -> str:
    """File name (without extension) of a run's results.

    Args:
        kind: `host_kind(device)`.
        date: YYYY-MM-DD.
        quick: quick sizes.
        sections: the sections run.
    """
    stem = f"{kind}-{date}"
    if quick:
        stem += "-quick"
    if sections != sorted(SECTIONS):
        stem += "-sections-" + "-".join(map(str, sections))
    return stem


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the suite runs, numbers meaningless")
    parser.add_argument("--sections", default="all", help="comma-separated section numbers (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: benchmarks/results)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where sections 1-2 run (auto: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, write `<stem>.json` and `<stem>.md`, print the table.

    Args:
        argv: command-line arguments (default: sys.argv[1:]).
    """
    args = _parser().parse_args(argv)
    sections = parse_sections(args.sections)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available here")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    started = time.perf_counter()
    report: dict[str, Any] = {
        "schema": SCHEMA, "date": datetime.date.today().isoformat(),
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_kind": host_kind(device), "quick": args.quick, "seed": args.seed,
        "command": " ".join(["benchmarks/run_benchmarks.py"] + (sys.argv[1:] if argv is None else list(argv))),
        "machine": machine_info(device), "load_average": {"before": load_average(), "between_sections": []},
        "sections": {},
    }
    with tempfile.TemporaryDirectory(prefix="emoclip-bench-") as work:
        ctx = BenchContext(quick=args.quick, work_dir=Path(work), device=device, seed=args.seed,
                           progress=args.progress)
        for number in sections:
            name = SECTIONS[number][0]
            print(f"[section {number}: {name}] running ...", file=sys.stderr, flush=True)
            result = run_section(number, ctx)
            report["sections"][f"{number}_{name}"] = result.to_dict()
            report["load_average"]["between_sections"].append(load_average())
            print(f"[section {number}: {name}] {result.status} in {result.seconds:.1f} s", file=sys.stderr, flush=True)
    report["load_average"]["after"] = load_average()
    report["total_seconds"] = time.perf_counter() - started
    ok = all(s["status"] != "error" and all(c["passed"] for c in s["checks"]) for s in report["sections"].values())
    report["all_ok"] = ok
    args.out.mkdir(parents=True, exist_ok=True)
    stem = output_stem(report["host_kind"], report["date"], args.quick, sections)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    table = markdown(report)
    (args.out / f"{stem}.md").write_text(table, encoding="utf-8")
    print(table)
    print(f"wrote {args.out / stem}.json and .md", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
