"""Time `zero_shot_predict` on random embeddings (default 10,000 videos x 512-d vs 43 class prompts).

Prints one JSON line: median / min / max seconds over the timed runs, the peak extra memory of one
call (growth of the process's peak RSS over its RSS before the call: on Linux the peak is reset first
through /proc/self/clear_refs, elsewhere the lifetime peak is used, which can hide a small call), the
Python-level peak (tracemalloc) and the largest difference from a plain reference computation. Usage:

    .venv/bin/python benchmarks/bench_zeroshot.py [--n 10000] [--dim 512] [--classes 43] [--runs 21]

As section 4 of `run_benchmarks.py`, `run(ctx)` starts this script in a fresh process, so that the
peak-memory figure is not hidden by what earlier sections allocated.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import torch
import torch.nn.functional as F

from emoclip_lib.zeroshot.classify import zero_shot_predict

TITLE = "Zero-shot evaluation"


def _peak_rss_mib() -> float:
    """Process peak resident memory so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _status_mib(field: str) -> float | None:
    """A `VmRSS` / `VmHWM` line of /proc/self/status in MiB (None off Linux)."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_extra_mib(fn: Any) -> tuple[Any, float, str]:
    """Call fn(); return its result, the peak RSS growth during the call (MiB) and how it was measured."""
    before = _status_mib("VmRSS")
    if before is not None and _reset_peak_rss():
        out = fn()
        return out, (_status_mib("VmHWM") or before) - before, "VmHWM after clear_refs"
    peak_before = _peak_rss_mib()
    out = fn()
    return out, _peak_rss_mib() - peak_before, "ru_maxrss growth"


def _reference_diff(video: torch.Tensor, text: torch.Tensor, probs: torch.Tensor, pred: torch.Tensor) -> dict:
    """Differences from softmax(100 * cos) computed the plain way (normalised copies of both sides)."""
    logits = 100.0 * F.normalize(video, dim=-1) @ F.normalize(text, dim=-1).t()  # (N, C)
    return {"max_abs_prob_diff": float((logits.softmax(dim=1) - probs).abs().max()),
            "pred_mismatches": int((logits.argmax(dim=1) != pred).sum())}


def measure_zeroshot(n: int, dim: int, classes: int, runs: int, seed: int = 0) -> dict[str, Any]:
    """Time `zero_shot_predict` and measure its peak extra memory (call in a fresh process for the RSS figure).

    Args:
        n: video embeddings.
        dim: embedding size.
        classes: class prompts.
        runs: timed runs (the median is reported).
        seed: seed of the random embeddings.
    """
    gen = torch.Generator().manual_seed(seed)
    video = torch.randn(n, dim, generator=gen)  # (N, D)
    text = torch.randn(classes, dim, generator=gen)  # (C, D)
    zero_shot_predict(video[:8], text)  # load kernels without touching the full-size peak

    tracemalloc.start()
    (probs, pred), extra_rss, how = _peak_extra_mib(lambda: zero_shot_predict(video, text))
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    reference = _reference_diff(video, text, probs, pred)
    del probs, pred

    times, cpu_times = [], []
    for _ in range(runs):
        start, cpu_start = time.perf_counter(), time.process_time()
        zero_shot_predict(video, text)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {
        "bench": "zero_shot_predict", "n": n, "dim": dim, "classes": classes, "runs": runs,
        "median_s": round(statistics.median(times), 6), "min_s": round(min(times), 6),
        "max_s": round(max(times), 6), "cpu_median_s": round(statistics.median(cpu_times), 6),
        "peak_extra_rss_mib": round(extra_rss, 2), "peak_method": how,
        "output_mib": round((n * classes * 4 + n * 8) / 2**20, 2),  # probs (N, C) float32 + pred (N,) int64
        "tracemalloc_peak_kib": round(py_peak / 1024, 2), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        **reference,
    }


def run(ctx: Any) -> Any:
    """Section 4 of the suite: this script in a fresh process, its JSON line turned into table rows.

    Args:
        ctx: `bench_common.BenchContext`.
    """
    from bench_common import SectionResult

    n, runs = (500, 3) if ctx.quick else (10_000, 21)
    cmd = [sys.executable, __file__, "--n", str(n), "--runs", str(runs), "--threads", str(torch.get_num_threads()),
           "--seed", str(ctx.seed)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    result = SectionResult(TITLE, details=data)
    shape = f"{data['n']} x {data['dim']}-d embeddings vs {data['classes']} prompts, CPU"
    result.add("zero_shot_predict time", data["median_s"], "s", f"{shape}, median of {data['runs']}",
               cpu=data["cpu_median_s"])
    result.add("zero-shot throughput", data["n"] / data["median_s"], "videos/s", shape,
               cpu=data["n"] / data["cpu_median_s"] if data["cpu_median_s"] > 0 else None)
    result.add("zero_shot_predict peak extra memory (RSS)", data["peak_extra_rss_mib"], "MiB",
               f"fresh process, {data['peak_method']}; output alone {data['output_mib']:.2f} MiB; "
               f"python-level peak {data['tracemalloc_peak_kib']:.0f} KiB")
    result.check("probabilities vs plain softmax(100 cos) (max abs diff)", data["max_abs_prob_diff"], 1e-5)
    result.check("predictions differing from plain argmax (count)", data["pred_mismatches"], 0)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line.

    Args:
        argv: command-line arguments (default: sys.argv[1:]).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="video embeddings")
    parser.add_argument("--dim", type=int, default=512, help="embedding size")
    parser.add_argument("--classes", type=int, default=43, help="class prompts (MAFW: 11 single + 32 compound)")
    parser.add_argument("--runs", type=int, default=21, help="timed runs (the median is reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(json.dumps(measure_zeroshot(args.n, args.dim, args.classes, args.runs, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
