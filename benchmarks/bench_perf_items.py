"""Items 1, 2, 4 and 5 of `bench_perf.py`: each measured before and after in the same run, outputs compared.

The "before" paths the library no longer has are written out here, as they were:
1. frame cache: every position of a looped clip through the image tower, the whole batch in one pass;
2. interview features: one `extract_features` call (one decode and encode of every video) per encoder;
4. regression: the inner grid search in this process (`n_jobs=1`);
5. web pictures drawn every run (no cache); AdamW's per-tensor update (torch's CPU default).
"""
from __future__ import annotations

import hashlib
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch.utils.data import DataLoader

from bench_common import SectionResult, measure, synthetic_clips
from emoclip_lib.data import CANONICAL_CLASSES, VideoDataset, collate
from emoclip_lib.downstream import extract_features, feature_matrix
from emoclip_lib.downstream.nested_cv import default_n_jobs, grouped_nested_cv
from emoclip_lib.features import frame_cache as fc
from emoclip_lib.model import contrastive_loss, load_clip
from emoclip_lib.synth import ITEMS
from emoclip_lib.synth import backdrop, web
from emoclip_lib.synth.people import sample_scene
from emoclip_lib.train import pretrain


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _ratio_row(result: SectionResult, name: str, before: tuple[float, float], after: tuple[float, float],
               note: str) -> float:
    """One "before / after" row (wall and CPU time); returns the wall ratio."""
    ratio = before[0] / after[0]
    result.add(name, ratio, "x", note, cpu=before[1] / after[1] if after[1] > 0 else None)
    return ratio


def _old_frame_cache(model: torch.nn.Module, rows: list, root: Path, prep: fc.Preprocessing,
                     batch: int) -> list[np.ndarray]:
    """The frame cache's encoding before distinct frames: every position, the whole batch in one pass."""
    dataset = VideoDataset(rows, root, CANONICAL_CLASSES, prep.clip_len, prep.downsample, prep.size, prep.train,
                           prep.augment, prep.seed)
    out = []
    with torch.no_grad():
        for items in DataLoader(dataset, batch_size=batch, collate_fn=collate):
            out += list(model.encode_frames(items["frames"]).float().numpy())  # each (T, D)
    return out


def frames_item(result: SectionResult, model: torch.nn.Module, work: Path, quick: bool) -> dict[str, Any]:
    """Item 1: 15-frame clips looped to 32 positions, frame cache before / after distinct-frame encoding."""
    clips = 2
    rows = synthetic_clips(work / "short_clips", clips, 15)
    prep = fc.Preprocessing(size=model.input_resolution, clip_len=32, downsample=1, train=False, augment=False,
                            seed=0)
    old, wall_b, cpu_b = timed(lambda: _old_frame_cache(model, rows, work / "short_clips", prep, 8))
    paths, wall_a, cpu_a = timed(lambda: fc.build_frame_cache(model, rows, work / "short_clips", CANONICAL_CLASSES,
                                                              prep, [0], work / "frame_cache_new", progress=False))
    new = [np.load(paths[0][i]) for i in range(clips)]
    diff = max(float(np.abs(a - b).max()) for a, b in zip(old, new))
    result.check("1 frame cache: distinct-frame entries vs every position encoded (max abs diff)", diff, 0.0,
                 "fp32, same numbers required")
    ratio = _ratio_row(result, "1 frame cache, 15-frame clips looped to 32: before / after", (wall_b, cpu_b),
                       (wall_a, cpu_a), f"{clips} clips, 32 -> 15 frames encoded per clip; decoding (and, after, "
                       f"content hashing) included")
    return {"clips": clips, "before_s": wall_b, "after_s": wall_a, "ratio": ratio, "frames_before": 32 * clips,
            "frames_after": 15 * clips}


def _interview_manifest(work: Path, videos: int, frames: int) -> tuple[Path, Path]:
    rows = synthetic_clips(work / "interviews", videos, frames, seed=7)
    manifest = work / "interviews.csv"
    lines = ["path,subject,session,score"] + [f"{r.path},s{i // 2},{i % 2},{i % 5}" for i, r in enumerate(rows)]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest, work / "interviews"


def interview_item(result: SectionResult, model: torch.nn.Module, work: Path, quick: bool) -> dict[str, Any]:
    """Item 2: both encoders' interview features, one call per encoder / one call for both (best of 2)."""
    videos, frames = (2, 24) if quick else (4, 240)
    manifest, root = _interview_manifest(work, videos, frames)
    opts = dict(clip_len=32, downsample=4, progress=False)
    both = ("emoclip", "clip_frame_avg")
    times: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for rep in range(2):  # fresh cache folders every time: everything is computed
        before, *t_b = timed(lambda: {e: extract_features(manifest, root, model, e, work / f"wc_b{rep}", **opts)
                                      for e in both})
        after, *t_a = timed(lambda: extract_features(manifest, root, model, both, work / f"wc_a{rep}", **opts))
        times["before"].append(tuple(t_b))
        times["after"].append(tuple(t_a))
    diff = max(float(np.abs(feature_matrix(before[e]) - feature_matrix(after[e])).max()) for e in both)
    result.check("2 interview features: both encoders in one pass vs one pass each (max abs diff)", diff, 0.0)
    best_b, best_a = min(times["before"]), min(times["after"])
    ratio = _ratio_row(result, "2 interview features, 2 encoders: before / after", best_b, best_a,
                       f"{videos} videos x {frames} frames, tiny CLIP, best of 2 (decode and encode both halve)")
    return {"videos": videos, "frames": frames, "before_s": best_b[0], "after_s": best_a[0], "ratio": ratio}


def regression_item(result: SectionResult, quick: bool) -> dict[str, Any]:
    """Item 4: the nested CV of one item for ridge, SVR and MLP, inner grid search in 1 / n processes."""
    rng = np.random.default_rng(0)
    n, d = (20, 16) if quick else (40, 128)  # notebook 05: 40 subjects x (mean, std) of 64-d embeddings
    X, groups = rng.normal(size=(n, d)), np.arange(n)
    y = X[:, :4].sum(axis=1) + rng.normal(size=n)
    jobs = default_n_jobs()
    grids = {"mlp": {"alpha": [0.1, 10.0]}} if quick else {}

    def run(n_jobs: int | None) -> list[np.ndarray]:
        with threadpool_limits(limits=1):  # as pipeline.regression runs it
            return [grouped_nested_cv(X, y, groups, model=m, param_grid=grids.get(m), n_jobs=n_jobs).y_pred
                    for m in ("ridge", "svr", "mlp")]

    grouped_nested_cv(X, y, groups, model="ridge", n_jobs=jobs)  # start the worker processes once
    walls: dict[str, list[float]] = {"one": [], "many": []}
    for _ in range(1 if quick else 2):  # alternated, best of each: a busy shared machine varies a lot
        one, wall, _ = timed(lambda: run(1))
        walls["one"].append(wall)
        many, wall, _ = timed(lambda: run(None))
        walls["many"].append(wall)
    wall_b, wall_a = min(walls["one"]), min(walls["many"])
    diff = max(float(np.nanmax(np.abs(a - b))) for a, b in zip(one, many))
    result.check(f"4 regression: predictions with the default n_jobs (mlp: {jobs}) vs n_jobs=1 (max abs diff)",
                 diff, 0.0)
    result.add("4 nested CV (ridge+svr+mlp, 1 item): before / after", wall_b / wall_a, "x",
               f"best of {len(walls['one'])}; n_jobs 1 -> default (mlp: {jobs}); {n} subjects x {d} features; notebook 05 runs {len(ITEMS)} "
               f"items x 2 encoders: {wall_b * len(ITEMS) * 2:.0f} s -> {wall_a * len(ITEMS) * 2:.0f} s")
    return {"n_jobs": jobs, "before_s": walls["one"], "after_s": walls["many"], "ratio": wall_b / wall_a}


def _noise_share(count: int) -> float:
    """Seconds per call of `backdrop.noise_bank` (one call per picture)."""
    rng = np.random.default_rng(0)
    scene = sample_scene(rng)
    return measure(lambda: [backdrop.noise_bank(scene, rng) for _ in range(count)], repeats=1)["median_s"] / count


def web_item(result: SectionResult, work: Path, quick: bool) -> dict[str, Any]:
    """Item 5: web pictures drawn / from the disk cache (same bytes), and AdamW per-tensor / multi-tensor."""
    n = 20 if quick else 200
    drawn, wall_b, cpu_b = timed(lambda: web.web_stills(n, seed=0, size=32, progress=False))
    web.web_stills(n, seed=0, size=32, progress=False, cache_dir=work / "web")  # writes the cache
    cached, wall_a, cpu_a = timed(lambda: web.web_stills(n, seed=0, size=32, progress=False, cache_dir=work / "web"))
    same = hashlib.sha256(drawn[0].numpy().tobytes()).digest() == hashlib.sha256(cached[0].numpy().tobytes()).digest()
    result.check("5 web pictures: cached vs drawn (bytes differ: 1)", float(not same or drawn[1] != cached[1]), 0.0)
    noise = _noise_share(10 if quick else 50)
    _ratio_row(result, "5 web pictures: drawn / from the cache", (wall_b, cpu_b), (wall_a, cpu_a),
               f"{n} pictures at 32 px; 6000 drawn: {6000 * wall_b / n:.0f} s, of which noise_bank "
               f"{6000 * noise:.0f} s ({100 * noise * n / wall_b:.0f}%)")
    adam = _adamw_item(result, 3 if quick else 20)
    return {"pictures": n, "draw_s": wall_b, "cache_s": wall_a, "noise_bank_s_per_picture": noise, **adam}


def _adamw_item(result: SectionResult, steps: int) -> dict[str, Any]:
    """Seconds per AdamW step on the tiny CLIP: torch's CPU default (per tensor) vs `_make_optimizer` (foreach)."""
    times, weights = {}, {}
    for name in ("per-tensor", "foreach"):
        model = load_clip("tiny", seed=0).train()
        opt = pretrain._make_optimizer(model, 2e-3, 0.1)
        if name == "per-tensor":
            for group in opt.param_groups:
                group["foreach"] = False
        res, gen, step_s = int(model.visual.input_resolution), torch.Generator().manual_seed(0), []
        for _ in range(steps):
            images, tokens = torch.randn(16, 3, res, res, generator=gen), torch.randint(1, 400, (16, 77), generator=gen)
            opt.zero_grad(set_to_none=True)
            contrastive_loss(pretrain.clip_logits(model, images, tokens)).backward()
            start = time.process_time()
            opt.step()
            step_s.append(time.process_time() - start)
        times[name], weights[name] = statistics.median(step_s[1:] or step_s), model.state_dict()  # 1st: state init
    diff = max(float((weights["foreach"][k] - weights["per-tensor"][k]).abs().max()) for k in weights["foreach"])
    result.check(f"5 AdamW foreach vs per-tensor weights after {steps} steps (max abs diff)", diff, 0.0)
    result.add("5 AdamW step (tiny CLIP): per-tensor / foreach", times["per-tensor"] / times["foreach"], "x",
               f"{1e3 * times['per-tensor']:.1f} -> {1e3 * times['foreach']:.1f} ms per step (CPU time)")
    return {"adamw_step_s": times}
