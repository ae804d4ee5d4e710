"""Section 1: one training epoch through the FULL path vs the CACHED-embedding path.

Both paths run the training engine's own pieces (`train_inputs.prepare_inputs`, `train_data.make_train_loader`,
`train_step.train_epoch`, `train_state.build_optimizer`) on the same synthetic mp4 clips, from the same
initial weights, in the paper's setting (2-layer temporal transformer, d_model 512, 16-frame clips every
2nd frame, batch 64, SGD, augmentation):
- full: decode (decord), preprocess (resize/crop 224, augment), CLIP frame + caption encoding every step,
  temporal model, loss, backward;
- cached: frame and caption embeddings built once on disk (`feature_cache`, timed as the one-time build),
  then temporal model + loss + backward over `CachedClipDataset`.
The measured seconds per clip are scaled to an epoch of `EPOCH_CLIPS` clips, and both paths must reach
the same epoch loss. `bench_epoch` (a colleague's) adds the in-memory cached epoch over 10,000 clips.

Backbone: `random:ViT-B/32` on CUDA. On the CPU a stand-in keeps ViT-B/32's input (224 px, 32-px patches)
and output (512-d) but the tiny test model's widths; the CPU table then adds a projection to ViT-B/32 from
its measured per-frame and per-caption encoding cost.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import bench_epoch
from bench_common import BenchContext, SectionResult, cuda_sync, measure, synthetic_clips
from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.model.clip import TINY_ARCH, load_clip, openai_clip_module
from emoclip_lib.train.distributed import DistContext
from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.model.emoclip import EmoCLIP, ModelConfig, TemporalConfig
from emoclip_lib.data.tokenizer import tokenize
from emoclip_lib.train.config import TrainConfig
from emoclip_lib.train.data import make_train_loader
from emoclip_lib.train.inputs import prepare_inputs
from emoclip_lib.train.state import build_optimizer
from emoclip_lib.train.step import ContrastiveStep, train_epoch

TITLE = "Training epoch: full path vs cached embeddings"
EPOCH_CLIPS = 10_045  # all MAFW clips
STANDIN = "tiny@224"  # CPU stand-in backbone (see the module docstring)


def _sizes(ctx: BenchContext) -> dict[str, Any]:
    if ctx.quick:
        return {"clips": 8, "batch": 4, "clip_len": 8, "src_frames": 16, "layouts": ("default",),
                "backbone": "tiny", "project": False, "epoch_batches": {"default": 1}, "epoch_clips": 16}
    cuda = ctx.device.type == "cuda"
    return {"clips": 128, "batch": 64, "clip_len": 16, "src_frames": 32, "layouts": ("default", "official"),
            "backbone": "random:ViT-B/32" if cuda else STANDIN, "project": not cuda,
            "epoch_batches": {"default": 20, "official": 4}, "epoch_clips": 10_000}


def standin_backbone(seed: int) -> nn.Module:
    """CLIP with ViT-B/32's input size, patch and output size but the tiny model's widths and depth.

    Args:
        seed: initialisation seed (global RNG untouched).
    """
    arch = {**TINY_ARCH, "embed_dim": 512, "image_resolution": 224, "vision_patch_size": 32}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = openai_clip_module().CLIP(**arch)
    return model.float().eval()


def _backbone(name: str, seed: int) -> nn.Module:
    return standin_backbone(seed) if name == STANDIN else load_clip(name, seed=seed)


def _model(backbone: nn.Module, name: str, layout: str, seed: int, device: torch.device) -> EmoCLIP:
    """A fresh EmoCLIP around a (shared, frozen) backbone; the temporal part is seeded."""
    dim = int(backbone.visual.output_dim)
    temporal = TemporalConfig.official(dim) if layout == "official" else TemporalConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EmoCLIP(backbone, ModelConfig(backbone=name, temporal=temporal), embed_dim=dim)
    return model.to(device)


def _config(s: dict[str, Any], cached: bool, cache_dir: Path, device: torch.device) -> TrainConfig:
    workers = 0 if device.type == "cpu" else min(8, max(1, (os.cpu_count() or 2) - 1))
    return TrainConfig(clip_len=s["clip_len"], downsample=2, batch_size=s["batch"], use_cache=cached,
                       cache_views=1, cache_dir=str(cache_dir), num_workers=workers, val_fraction=0.0,
                       select_metric="train_loss")


def time_path(model: EmoCLIP, rows: list[ManifestRow], root: Path, config: TrainConfig,
              dist: DistContext) -> dict[str, float]:
    """Prepare the inputs (building the cache on the cached path), then train one epoch.

    Args:
        model: the model (on `dist.device`); trained in place.
        rows: captioned clips.
        root: folder of the clips.
        config: training settings (`use_cache` picks the path).
        dist: single-process context.
    Returns:
        dict prepare_s (cache build or dataset set-up), epoch_s, the same as this process's CPU time
        (prepare_cpu_s, epoch_cpu_s), loss, samples.
    """
    sync = cuda_sync(dist.device) or (lambda: None)
    start, cpu_start = time.perf_counter(), time.process_time()
    inputs = prepare_inputs(model, rows, [], root, CANONICAL_CLASSES, config, Path(config.cache_dir or "."), dist,
                            progress=False)
    prepare_s, prepare_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    loader = make_train_loader(inputs.train, inputs.collate, dist, config.batch_size, config.seed,
                               config.num_workers)
    optimizer = build_optimizer(model, config)
    inputs.train.set_epoch(config.view_for_epoch(0, inputs.cached))
    loader.sampler.set_epoch(0)  # type: ignore[union-attr]
    model.train()
    sync()
    start, cpu_start = time.perf_counter(), time.process_time()
    stats = train_epoch(ContrastiveStep(model), loader, optimizer, inputs.spec, dist, progress=False)
    sync()
    return {"prepare_s": prepare_s, "epoch_s": time.perf_counter() - start, "prepare_cpu_s": prepare_cpu_s,
            "epoch_cpu_s": time.process_time() - cpu_start, "loss": float(stats["loss"]),
            "samples": int(stats["samples"])}


def _layout_run(ctx: BenchContext, s: dict[str, Any], backbone: nn.Module, layout: str, rows: list[ManifestRow],
                root: Path) -> dict[str, dict[str, float]]:
    """Warm up on a few clips with a throwaway model, then time both paths from equal initial weights."""
    dist = DistContext(device=ctx.device)
    warm_rows = rows[: min(len(rows), 8)]
    for cached in (False, True):
        warm = _config({**s, "batch": len(warm_rows)}, cached, ctx.work_dir / f"cache_warm_{layout}", ctx.device)
        time_path(_model(backbone, s["backbone"], layout, ctx.seed + 1, ctx.device), warm_rows, root, warm, dist)
    out = {}
    for path, cached in (("full", False), ("cached", True)):
        config = _config(s, cached, ctx.work_dir / f"cache_{layout}", ctx.device)
        model = _model(backbone, s["backbone"], layout, ctx.seed, ctx.device)
        out[path] = time_path(model, rows, root, config, dist)
    return out


def _tower_costs(backbone: nn.Module, frames: int, captions: list[str]) -> dict[str, float]:
    """Seconds per frame and per caption of a frozen CLIP (no gradient), on the CPU."""
    res = int(backbone.visual.input_resolution)
    images = torch.randn(frames, 3, res, res, generator=torch.Generator().manual_seed(0))  # (N, 3, S, S)
    tokens = tokenize(captions)  # (M, 77)
    with torch.no_grad():
        image = measure(lambda: backbone.encode_image(images), repeats=2, warmup=1)
        text = measure(lambda: backbone.encode_text(tokens), repeats=2, warmup=1)
    return {"s_per_frame": image["median_s"] / frames, "s_per_caption": text["median_s"] / len(captions),
            "cpu_s_per_frame": image["cpu_median_s"] / frames,
            "cpu_s_per_caption": text["cpu_median_s"] / len(captions)}


def _projection(ctx: BenchContext, standin: nn.Module, rows: list[ManifestRow]) -> dict[str, float]:
    """Per-frame / per-caption encoding cost of ViT-B/32 minus the stand-in's (both measured here)."""
    captions = [r.caption for r in rows]
    vit = load_clip("random:ViT-B/32", seed=ctx.seed)
    big = _tower_costs(vit, 16, captions[:16])
    del vit
    small = _tower_costs(standin, 256, captions[:64])
    return {"vit_b32": big, "standin": small,
            **{f"extra_{k}": big[k] - small[k] for k in big}}


def _figures(s: dict[str, Any], run: dict[str, dict[str, float]], proj: dict[str, Any] | None,
             cpu: bool) -> dict[str, float]:
    """Per-epoch figures from wall-clock (cpu=False) or this process's CPU time (cpu=True)."""
    t = "cpu_" if cpu else ""
    scale = EPOCH_CLIPS / s["clips"]
    out = {"full": run["full"][f"epoch_{t}s"] * scale, "cached": run["cached"][f"epoch_{t}s"] * scale,
           "build_per_clip": run["cached"][f"prepare_{t}s"] / s["clips"]}
    if proj is not None:
        extra_frame = proj[f"extra_{t}s_per_frame"]
        extra_clip = s["clip_len"] * extra_frame + proj[f"extra_{t}s_per_caption"]  # seconds per clip
        out["full_vit"] = out["full"] + EPOCH_CLIPS * extra_clip
        out["build_per_clip_vit"] = out["build_per_clip"] + s["clip_len"] * extra_frame
    return out


def _add_layout_rows(result: SectionResult, s: dict[str, Any], layout: str, run: dict[str, dict[str, float]],
                     proj: dict[str, Any] | None, on_cpu: bool) -> None:
    w, c = _figures(s, run, proj, cpu=False), (_figures(s, run, proj, cpu=True) if on_cpu else None)

    def add(name: str, key: str, unit: str, note: str, over: str | None = None) -> None:
        def value(f: dict[str, float] | None) -> float | None:
            return None if f is None else (f[key] / f[over] if over else f[key])
        result.add(f"[{layout}] {name}", value(w), unit, note, cpu=value(c))

    note = f"measured on {s['clips']} clips, scaled to {EPOCH_CLIPS}; backbone {s['backbone']}"
    add("full-path epoch", "full", "s", note)
    add("cached-path epoch", "cached", "s", f"{note}; features read from the disk cache")
    add("full / cached", "full", "x", "per-epoch speed-up of the cache", over="cached")
    if proj is not None:
        add("full-path epoch, projected ViT-B/32", "full_vit", "s",
            "stand-in epoch + ViT-B/32's extra encoding cost per clip, measured here")
        add("full / cached, projected ViT-B/32", "full_vit", "x", "", over="cached")
    loss_full, loss_cached = run["full"]["loss"], run["cached"]["loss"]
    result.check(f"[{layout}] epoch loss, full vs cached path (abs diff)", abs(loss_full - loss_cached),
                 1e-3 * max(1.0, abs(loss_full)), f"losses {loss_full:.6f} / {loss_cached:.6f}; same weights, "
                 "same clips and order")


def _add_cache_rows(result: SectionResult, s: dict[str, Any], run: dict[str, dict[str, float]],
                    proj: dict[str, Any] | None, on_cpu: bool) -> None:
    w, c = _figures(s, run, proj, cpu=False), (_figures(s, run, proj, cpu=True) if on_cpu else None)
    result.add("cache build rate", 1.0 / w["build_per_clip"], "clips/s",
               f"hash + decode + encode + write, 1 view, backbone {s['backbone']}, 8 clips per pass",
               cpu=1.0 / c["build_per_clip"] if c else None)
    result.add(f"cache build, {EPOCH_CLIPS} clips x 2 views (one-time)", 2 * EPOCH_CLIPS * w["build_per_clip"], "s",
               "TrainConfig default cache_views=2", cpu=2 * EPOCH_CLIPS * c["build_per_clip"] if c else None)
    if proj is not None:
        result.add(f"cache build, {EPOCH_CLIPS} clips x 2 views, projected ViT-B/32",
                   2 * EPOCH_CLIPS * w["build_per_clip_vit"], "s",
                   f"ViT-B/32 image tower {proj['vit_b32']['s_per_frame'] * 1e3:.1f} ms/frame here",
                   cpu=2 * EPOCH_CLIPS * c["build_per_clip_vit"] if c else None)


def _add_memory_epoch_rows(result: SectionResult, s: dict[str, Any], layouts: tuple[str, ...]) -> dict[str, Any]:
    """The colleague's `bench_epoch`: cached epoch from in-memory features (CPU, whole or extrapolated)."""
    dataset = bench_epoch.MemoryFeatures(s["epoch_clips"], seed=0)
    out = {}
    for layout in layouts:
        temporal = TemporalConfig.official(bench_epoch.D_MODEL) if layout == "official" else TemporalConfig()
        rep = bench_epoch.time_epoch(dataset, temporal, s["epoch_batches"][layout])
        out[layout] = rep
        how = f"{rep['batches_run']} of {rep['batches_epoch']} batches, extrapolated" if rep["extrapolated"] else \
            "whole epoch"
        result.add(f"[{layout}] cached epoch, in-memory features (bench_epoch)", rep["epoch_seconds"], "s",
                   f"{s['epoch_clips']} clips, CPU, {how}", cpu=rep["cpu_epoch_seconds_per_thread"])
    return out


def run(ctx: BenchContext) -> SectionResult:
    """Time both training paths per temporal layout, the cache build, and (CPU) the ViT-B/32 projection.

    Args:
        ctx: suite context.
    """
    s = _sizes(ctx)
    result = SectionResult(TITLE)
    root = ctx.work_dir / "train_clips"
    rows = synthetic_clips(root, s["clips"], s["src_frames"], ctx.seed)
    backbone = _backbone(s["backbone"], ctx.seed)
    runs = {layout: _layout_run(ctx, s, backbone, layout, rows, root) for layout in s["layouts"]}
    proj = _projection(ctx, backbone, rows) if s["project"] else None
    for layout in s["layouts"]:
        _add_layout_rows(result, s, layout, runs[layout], proj, ctx.device.type == "cpu")
    _add_cache_rows(result, s, runs[s["layouts"][0]], proj, ctx.device.type == "cpu")
    memory = _add_memory_epoch_rows(result, s, s["layouts"])
    result.details = {"sizes": {k: v for k, v in s.items()}, "epoch_clips_scaled_to": EPOCH_CLIPS, "runs": runs,
                      "projection": proj, "bench_epoch": memory}
    if s["backbone"] == STANDIN:
        result.note = ("CPU: stand-in backbone (ViT-B/32 input and output sizes, tiny widths); "
                       "'projected ViT-B/32' rows add ViT-B/32's measured encoding cost")
    return result
