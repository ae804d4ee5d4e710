"""Section 5 (CUDA only): ViT-B/32 frame encoding throughput and the embedding-cache build rate.

`random:ViT-B/32` (real architecture, random weights: same speed as the released ones) encodes random
224 x 224 frames without gradient in fp32 and under fp16 / bf16 autocast over a batch-size sweep. The
achieved TFLOP/s uses the FLOPs of one frame counted by `torch.utils.flop_counter.FlopCounterMode`
(`bench_common.forward_flops`: a multiply-add is 2 FLOPs, about 8.8 GFLOPs for ViT-B/32; the 4.4 quoted
before were multiply-adds, which halved every "% of peak") and is compared with a dense matmul measured in
the same run at that precision (`bench_common.matmul_peak_tflops`) and with the card's datasheet peak where
the device name is in `PEAK_TFLOPS`. Then `feature_cache.build_frame_cache` encodes synthetic mp4 clips
(decode on CPU workers, encode on the GPU) to give the cache build rate. Skipped with a note when CUDA is
not available. Sized to finish in well under 5 minutes.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench_common import (BenchContext, SectionResult, cuda_sync, forward_flops, matmul_peak_tflops, measure,
                          synthetic_clips)
from emoclip_lib.model.checkpoint import build_model
from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.model.clip import load_clip
from emoclip_lib.features.frame_cache import Preprocessing, build_frame_cache
from emoclip_lib.model.emoclip import ModelConfig

TITLE = "CUDA: ViT-B/32 frame encoding and cache build"
# Dense (no sparsity) peak TFLOP/s per precision; "fp32" is the non-tensor-core rate (TF32 off, torch's default).
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 PCIE": {"fp32": 51.0, "tf32": 378.0, "fp16": 756.0, "bf16": 756.0},
    "H100": {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4},  # SXM
    "H200": {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4},
    "A100": {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0},
}
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def peak_tflops(device_name: str, precision: str) -> float | None:
    """Dense peak TFLOP/s of a known card (first matching key of `PEAK_TFLOPS`), else None.

    Args:
        device_name: e.g. "NVIDIA H100 80GB HBM3".
        precision: "fp32", "tf32", "fp16" or "bf16".
    """
    upper = device_name.upper()
    for key, table in PEAK_TFLOPS.items():
        if all(part in upper for part in key.split()):
            return table.get(precision)
    return None


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _encode_rate(visual: nn.Module, batch: int, dtype: torch.dtype | None, repeats: int,
                 device: torch.device) -> float:
    """Frames per second of the visual tower (no gradient) at one batch size and precision."""
    res = int(visual.input_resolution)
    images = torch.randn(batch, 3, res, res, device=device)  # (B, 3, S, S)

    def step() -> None:
        with torch.no_grad(), _autocast(device, dtype):
            visual(images)

    t = measure(step, repeats=repeats, warmup=2, sync=cuda_sync(device))
    return batch / t["median_s"]


def _precision_check(result: SectionResult, visual: nn.Module, device: torch.device) -> None:
    """Mixed-precision embeddings must stay close to fp32 ones (cosine similarity)."""
    res = int(visual.input_resolution)
    images = torch.randn(64, 3, res, res, generator=torch.Generator().manual_seed(0)).to(device)  # (64, 3, S, S)
    with torch.no_grad():
        ref = visual(images).float()  # (64, D)
        for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
            with _autocast(device, dtype):
                emb = visual(images).float()  # (64, D)
            cos = F.cosine_similarity(ref, emb, dim=-1).min()
            result.check(f"{name} vs fp32 frame embeddings (1 - min cosine)", float(1.0 - cos), 0.01)


def _peak_note(tflops: float, measured: float, device_name: str, key: str) -> str:
    """"x% of the measured matmul, y% of the datasheet peak" for one precision."""
    sheet = peak_tflops(device_name, key)
    note = f"{100 * tflops / measured:.1f}% of the {measured:.1f} TFLOP/s {key} matmul measured in this run"
    return note + (f", {100 * tflops / sheet:.1f}% of the {sheet:g} TFLOP/s {key} datasheet peak" if sheet else "")


def encode_sweep(result: SectionResult, visual: nn.Module, device: torch.device, device_name: str,
                 batches: tuple[int, ...], repeats: int) -> dict[str, Any]:
    """Frames/s per precision and batch size; one table row per precision (its best batch) with % of peak.

    Args:
        result: where rows and checks go.
        visual: CLIP visual tower on `device` (float32 weights).
        device: where it runs.
        device_name: looked up in `PEAK_TFLOPS`.
        batches: batch sizes to try.
        repeats: timed calls per point.
    """
    res = int(visual.input_resolution)
    flops = forward_flops(visual, torch.zeros(1, 3, res, res, device=device))  # FLOPs of one frame
    rates: dict[str, dict[int, float]] = {}
    measured: dict[str, float] = {}
    for precision, dtype in DTYPES.items():
        rates[precision] = {b: _encode_rate(visual, b, dtype, repeats, device) for b in batches}
        best_batch = max(rates[precision], key=rates[precision].__getitem__)
        best = rates[precision][best_batch]
        tflops = best * flops / 1e12
        key = "tf32" if precision == "fp32" and torch.backends.cuda.matmul.allow_tf32 else precision
        measured[key] = matmul_peak_tflops(device, dtype or torch.float32, n=8192, repeats=repeats)
        sweep = ", ".join(f"{b}: {r:.0f}" for b, r in rates[precision].items())
        peaks = _peak_note(tflops, measured[key], device_name, key)
        result.add(f"ViT-B/32 encode, {precision}{'' if dtype is None else ' autocast'}", best, "frames/s",
                   f"best at batch {best_batch}; {tflops:.1f} TFLOP/s, {peaks}; sweep {sweep}")
    _precision_check(result, visual, device)
    return {"device_name": device_name, "batches": list(batches), "frames_per_s": rates,
            "flops_per_frame": flops, "matmul_tflops": measured}


def _cache_build(ctx: BenchContext, result: SectionResult, quick: bool) -> dict[str, Any]:
    clips, frames, clip_len = (8, 16, 8) if quick else (256, 32, 16)
    root = ctx.work_dir / "train_clips"  # shared with section 1 (same names, same content)
    rows = synthetic_clips(root, clips, frames, ctx.seed)
    model = build_model(ModelConfig(backbone="random:ViT-B/32"), device=ctx.device, seed=ctx.seed)
    prep = Preprocessing(size=model.input_resolution, clip_len=clip_len, downsample=2, train=True, augment=True,
                         seed=ctx.seed)
    workers = min(8, max(1, (os.cpu_count() or 2) - 1))
    out = {}
    for batch in (8, 32):
        cache_dir = ctx.work_dir / f"cuda_cache_b{batch}"
        start = time.perf_counter()
        build_frame_cache(model, rows, root, CANONICAL_CLASSES, prep, [0], cache_dir,
                          device=ctx.device, batch_size=batch, num_workers=workers, progress=ctx.progress)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        out[batch] = {"seconds": seconds, "clips_per_s": clips / seconds}
        result.add(f"cache build, {batch} clips per pass", clips / seconds, "clips/s",
                   f"{clips} clips x {clip_len} frames, {workers} decode workers, fp32 (first pass incl. start-up)")
    return out


def run(ctx: BenchContext) -> SectionResult:
    """Encoding sweep and cache build on CUDA; a skipped section elsewhere.

    Args:
        ctx: suite context.
    """
    result = SectionResult(TITLE)
    if ctx.device.type != "cuda":
        result.status = "skipped"
        why = "the suite runs on the CPU (--device cpu)" if torch.cuda.is_available() else \
            "torch.cuda.is_available() is False on this machine"
        result.note = f"{why}: section skipped"
        return result
    torch.cuda.reset_peak_memory_stats()
    visual = load_clip("random:ViT-B/32", device=ctx.device).visual
    batches = (8, 32) if ctx.quick else (32, 128, 512, 1024)
    sweep = encode_sweep(result, visual, ctx.device, torch.cuda.get_device_name(ctx.device), batches,
                         3 if ctx.quick else 10)
    sweep["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del visual
    result.details = {"sweep": sweep, "cache_build": _cache_build(ctx, result, ctx.quick),
                      "gflops_per_frame": sweep["flops_per_frame"] / 1e9,
                      "allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    return result
