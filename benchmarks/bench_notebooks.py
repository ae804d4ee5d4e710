"""Wall time of each notebook of the synthetic profile, run headless with papermill into a fresh run dir.

Budgets from the issues: notebooks 02 + 03 under 4 minutes, notebook 05 under 2 minutes, the whole chain under
4 minutes, on 2 quiet CPU cores.

    python benchmarks/bench_notebooks.py [--out benchmarks/results] [--keep RUN_DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from bench_common import cpu_model
from emoclip_lib.pipeline.reproduce import NOTEBOOK_DIR, execute_notebook, notebook_paths


def time_notebooks(run_dir: Path) -> dict[str, float]:
    """Execute every numbered notebook in order into `run_dir`; seconds per notebook.

    Args:
        run_dir: an empty run directory.
    """
    seconds = {}
    for path in notebook_paths(NOTEBOOK_DIR):
        start = time.perf_counter()
        execute_notebook(path, run_dir / path.name, {"run_dir": str(run_dir)})  # as `emoclip reproduce` does
        seconds[path.stem] = round(time.perf_counter() - start, 1)
        print(f"{path.stem}: {seconds[path.stem]} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--keep", default=None, help="run directory to use and keep (default: a temporary one)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.keep or tmp).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        seconds = time_notebooks(run_dir)
        pretrain = run_dir / "backbone" / "clip_pretrained.pt.json"  # the tiny CLIP's own fit time (noisiest part)
        pretrain_fit_s = round(json.loads(pretrain.read_text())["seconds"], 1) if pretrain.is_file() else None
    stems = list(seconds)
    report = {
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version(),
                    "load_before": load_before,
                    "load_after": os.getloadavg()},
        "seconds": seconds,
        "total_s": round(sum(seconds.values()), 1),
        "pretrain_fit_s": pretrain_fit_s,
        "budget_02_03_s": {"value": round(sum(seconds[s] for s in stems if s[:2] in ("02", "03")), 1), "limit": 240},
        "budget_05_s": {"value": next((seconds[s] for s in stems if s.startswith("05")), None), "limit": 120},
        "budget_chain_s": {"value": round(sum(seconds.values()), 1), "limit": 240},
    }
    out = Path(args.out) / f"notebooks-cpu-{os.cpu_count()}c-{time.strftime('%Y-%m-%d')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
