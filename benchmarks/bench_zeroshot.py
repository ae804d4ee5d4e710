"""Time `zero_shot_predict` on random embeddings (default 10,000 videos x 512-d vs 43 class prompts).

Prints one JSON line: median / min / max seconds over the timed runs and the peak extra memory of
one call (process peak RSS growth, measured before any full-size call, plus tracemalloc's peak of
Python-level allocations). Usage:

    .venv/bin/python benchmarks/bench_zeroshot.py [--n 10000] [--dim 512] [--classes 43] [--runs 21]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
import tracemalloc

import torch

from emoclip_lib.zeroshot import zero_shot_predict


def _peak_rss_mib() -> float:
    """Process peak resident memory so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


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

    gen = torch.Generator().manual_seed(args.seed)
    video = torch.randn(args.n, args.dim, generator=gen)  # (N, D)
    text = torch.randn(args.classes, args.dim, generator=gen)  # (C, D)
    zero_shot_predict(video[:8], text)  # load kernels without touching the full-size peak

    rss_before = _peak_rss_mib()
    tracemalloc.start()
    probs, pred = zero_shot_predict(video, text)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    extra_rss = _peak_rss_mib() - rss_before
    del probs, pred

    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        zero_shot_predict(video, text)
        times.append(time.perf_counter() - start)
    print(json.dumps({
        "bench": "zero_shot_predict", "n": args.n, "dim": args.dim, "classes": args.classes, "runs": args.runs,
        "median_s": round(statistics.median(times), 6), "min_s": round(min(times), 6),
        "max_s": round(max(times), 6), "peak_extra_rss_mib": round(extra_rss, 2),
        "tracemalloc_peak_kib": round(py_peak / 1024, 2), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
