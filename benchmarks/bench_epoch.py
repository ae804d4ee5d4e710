"""Benchmark: one training epoch of the frozen-backbone fast path (cached features) on the CPU.

Trains the temporal transformer with SGD on 10,000 clips of random 16 x 512 frame features and random
caption embeddings, batch 64, through the engine's own loader and epoch loop, for the default layout
(TemporalConfig(layers=2, heads=8): 64-d heads, MLP 2048) and the official one (2048-d heads, MLP 512).
The official layout is about 10x heavier: by default it runs `--official-batches` batches and the epoch
time is extrapolated (reported as such); `--full-official` runs the whole epoch.

Usage:
    .venv/bin/python benchmarks/bench_epoch.py [--clips 10000] [--threads 2] [--official-batches 8] [--save]
Prints one JSON object; `--save` also writes it to `benchmarks/results/bench_epoch-<host>-<date>.json`
(`--out FILE` to choose the file). Target: under 60 s per epoch for the default layout with 2 threads.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from emoclip_lib.train.distributed import DistContext
from emoclip_lib.train.cached_dataset import collate_features
from emoclip_lib.model.emoclip import EmoCLIP, ModelConfig, TemporalConfig
from emoclip_lib.train.config import TrainConfig
from emoclip_lib.train.data import make_train_loader
from emoclip_lib.train.state import build_optimizer
from emoclip_lib.train.step import BatchSpec, ContrastiveStep, train_epoch

D_MODEL, FRAMES, BATCH = 512, 16, 64
RESULTS_DIR = Path(__file__).resolve().parent / "results"


class MemoryFeatures(Dataset):
    """Cached-path items held in memory (what `CachedClipDataset` returns, without the disk)."""

    def __init__(self, clips: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.features = torch.randn(clips, FRAMES, D_MODEL, generator=gen)  # (N, T, D)
        self.text = torch.randn(clips, D_MODEL, generator=gen)  # (N, D)

    def set_epoch(self, view: int) -> None:
        pass

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"features": self.features[index], "caption": "", "text_emb": self.text[index], "index": index}


def temporal_model(temporal: TemporalConfig, seed: int) -> EmoCLIP:
    """EmoCLIP without CLIP towers: on the cached path only the temporal part and the logit scale run."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return EmoCLIP(nn.Module(), ModelConfig(backbone="none", temporal=temporal), embed_dim=D_MODEL)


def time_epoch(dataset: MemoryFeatures, temporal: TemporalConfig, max_batches: int | None) -> dict[str, Any]:
    """Train one epoch (or its first `max_batches` batches) and time it."""
    model = temporal_model(temporal, seed=0).train()
    optimizer = build_optimizer(model, TrainConfig())  # the paper's SGD
    loader = make_train_loader(dataset, collate_features, DistContext(), BATCH, seed=0)
    loader.sampler.set_epoch(0)  # type: ignore[union-attr]
    total = len(loader)
    batches = total if max_batches is None else min(total, max_batches)
    spec = BatchSpec((FRAMES, D_MODEL), D_MODEL)
    start, cpu_start = time.perf_counter(), time.process_time()
    stats = train_epoch(ContrastiveStep(model), itertools.islice(loader, batches), optimizer, spec, DistContext(),
                        progress=False)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    scale = total / batches
    return {"params": sum(p.numel() for p in model.parameters()), "batches_run": batches, "batches_epoch": total,
            "seconds_run": round(seconds, 2), "epoch_seconds": round(seconds * scale, 2),
            "extrapolated": batches < total, "clips_per_second": round(len(dataset) / (seconds * scale), 1),
            # CPU time of the process spread over its threads: the wall time on an otherwise idle machine
            "cpu_epoch_seconds_per_thread": round(cpu_seconds * scale / torch.get_num_threads(), 2),
            "train_loss": None if math.isnan(stats["loss"]) else round(stats["loss"], 4)}


def time_loader(dataset: MemoryFeatures) -> float:
    """Seconds to iterate the epoch's batches without training (sampling + collate overhead)."""
    loader = make_train_loader(dataset, collate_features, DistContext(), BATCH, seed=0)
    loader.sampler.set_epoch(0)  # type: ignore[union-attr]
    start = time.perf_counter()
    for _ in loader:
        pass
    return round(time.perf_counter() - start, 2)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its JSON report.

    Args:
        argv: command-line arguments (default: sys.argv).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--official-batches", type=int, default=8, help="batches timed for the official layout")
    parser.add_argument("--full-official", action="store_true", help="run the official layout's whole epoch")
    parser.add_argument("--save", action="store_true", help="write the JSON under benchmarks/results/")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON to this file (implies --save)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = MemoryFeatures(args.clips, seed=0)
    report: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "clips": args.clips, "frames": FRAMES, "d_model": D_MODEL, "batch": BATCH, "optimizer": "sgd",
        "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu": cpu_name(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],  # other work competing for the cores
        "loader_only_seconds": time_loader(dataset),
        "default": time_epoch(dataset, TemporalConfig(layers=2, heads=8), None),
        "official": time_epoch(dataset, TemporalConfig.official(D_MODEL),
                               None if args.full_official else args.official_batches),
        "target_seconds": 60,
    }
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["default_meets_target"] = report["default"]["epoch_seconds"] < 60
    text = json.dumps(report, indent=2)
    print(text)
    if args.save or args.out is not None:
        out = args.out or RESULTS_DIR / f"bench_epoch-cpu-{os.cpu_count()}c-{report['date']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
