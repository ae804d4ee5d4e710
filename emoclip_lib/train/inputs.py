"""Datasets a training run feeds on: decoded frames, or cached CLIP features when the visual tower is frozen."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from . import distributed as D
from ..data import VideoDataset, collate
from ..features import Preprocessing, build_frame_cache, caption_embeddings
from ..features import tower_fingerprint
from .cached_dataset import CachedClipDataset, collate_features
from ..data import ManifestRow
from ..model import EmoCLIP
from .config import TrainConfig
from .step import BatchSpec


@dataclass
class TrainInputs:
    """Training and validation datasets (both with `set_epoch`), their collate, and the input shapes."""

    train: Any  # VideoDataset or CachedClipDataset
    val: Any | None  # same kind in evaluation mode, None without validation rows
    collate: Callable[[list[Any]], Any]
    spec: BatchSpec
    cached: bool  # True on the frozen-backbone fast path


def tower_trains(model: EmoCLIP, tower: str) -> bool:
    """Whether any parameter of the CLIP "visual" or "text" tower requires a gradient.

    Args:
        model: the model.
        tower: "visual" or "text".
    """
    return any(p.requires_grad and n.startswith("visual.") == (tower == "visual")
               for n, p in model.backbone.named_parameters())


def prepare_inputs(model: EmoCLIP, train_rows: list[ManifestRow], val_rows: list[ManifestRow], root: Path,
                   classes: tuple[str, ...], config: TrainConfig, run_dir: Path, ctx: D.DistContext,
                   progress: bool = True) -> TrainInputs:
    """Build the datasets of a run, filling the feature cache first on the fast path.

    Args:
        model: the model (on its device).
        train_rows: captioned training rows.
        val_rows: captioned validation rows (may be empty).
        root: dataset root.
        classes: class names.
        config: training settings (`use_cache`, `cache_views`, `cache_dir`, ...).
        run_dir: run folder (default cache location `run_dir/feature_cache`).
        ctx: process context (the cache is built by all processes, each a share of the clips).
        progress: show progress bars (rank 0 only).
    """
    size, embed = model.input_resolution, int(model.temporal.cls_token.shape[-1])
    cached = config.use_cache
    if cached and tower_trains(model, "visual"):
        warnings.warn("use_cache=True is ignored: the visual tower trains, so frame features change", stacklevel=4)
        cached = False
    if not cached:
        def video_dataset(rows: list[ManifestRow], train: bool) -> VideoDataset:
            return VideoDataset(rows, root, classes, config.clip_len, config.downsample, size, train=train,
                                augment=config.augment and train, seed=config.seed, on_error=config.on_error)

        val = video_dataset(val_rows, False) if val_rows else None
        spec = BatchSpec((config.clip_len, 3, size, size), None)
        return TrainInputs(video_dataset(train_rows, True), val, collate, spec, False)
    cache_dir = Path(config.cache_dir) if config.cache_dir else run_dir / "feature_cache"
    show = progress and ctx.is_main
    text_emb = None
    if not tower_trains(model, "text"):
        captions = [r.caption for r in train_rows + val_rows]
        text_emb = caption_embeddings(model, captions, cache_dir, ctx.device, write=ctx.is_main, progress=show)
    fingerprint = tower_fingerprint(model, "visual")
    train_prep = Preprocessing(size, config.clip_len, config.downsample, True, config.augment, config.seed)
    views = list(range(config.cache_views))
    paths = _build(model, train_rows, root, classes, train_prep, views, cache_dir, config, ctx, show, fingerprint)
    train = CachedClipDataset(paths, [r.caption for r in train_rows], text_emb)
    val = None
    if val_rows:
        val_prep = Preprocessing(size, config.clip_len, config.downsample, False, False, config.seed)
        val_paths = _build(model, val_rows, root, classes, val_prep, [0], cache_dir, config, ctx, show, fingerprint)
        val = CachedClipDataset(val_paths, [r.caption for r in val_rows], text_emb)
    spec = BatchSpec((config.clip_len, embed), embed if text_emb is not None else None)
    return TrainInputs(train, val, collate_features, spec, True)


def _build(model: EmoCLIP, rows: list[ManifestRow], root: Path, classes: tuple[str, ...], prep: Preprocessing,
           views: Sequence[int], cache_dir: Path, config: TrainConfig, ctx: D.DistContext,
           progress: bool, fingerprint: str) -> list[list[str | None]]:
    """Every process builds its share of the entries; the shares are then exchanged."""
    part = build_frame_cache(model, rows, root, classes, prep, views, cache_dir, ctx.device,
                             shard=range(ctx.rank, len(rows), ctx.world_size), writer=f"rank{ctx.rank}",
                             batch_size=config.cache_batch_size, num_workers=config.num_workers,
                             on_error=config.on_error, progress=progress, fingerprint=fingerprint,
                             precision=config.cache_precision)
    merged: list[list[str | None]] = [[None] * len(rows) for _ in views]
    for share in D.gather_objects(part, ctx):
        for slot, view in enumerate(views):
            for index, path in share[view].items():
                merged[slot][index] = path
    return merged

