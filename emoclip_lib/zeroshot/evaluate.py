"""Zero-shot scoring of manifest rows with a model: cached evaluation-view frame features, then metrics.

EmoCLIP and the CLIP frame-average baseline are scored on the same frames: both start from the
deterministic (centred-window) frame embeddings of the frozen visual tower (`features.frame_cache`),
pooled by `features.windows.pool_windows`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..data import COMPOUND_SEPARATOR
from ..data import ManifestRow
from ..features import Preprocessing, build_frame_cache
from ..model import EmoCLIP
from .classify import zero_shot_predict
from .prompts import label_indices
from .scoring import evaluate


def unique_rows(rows: Sequence[ManifestRow], single_label: bool = True) -> list[ManifestRow]:
    """One row per clip (manifests repeat clips per fold), optionally without compound samples.

    Args:
        rows: manifest rows.
        single_label: drop rows whose labels join several classes.
    """
    seen: dict[str, ManifestRow] = {}
    for row in rows:
        if single_label and COMPOUND_SEPARATOR in row.labels:
            continue
        seen.setdefault(row.path, row)
    return list(seen.values())


def eval_frame_features(model: EmoCLIP, rows: Sequence[ManifestRow], root: str | Path, classes: Sequence[str],
                        clip_len: int, downsample: int, cache_dir: str | Path, device: str | torch.device = "cpu",
                        progress: bool = False, random_window: bool = False, seed: int = 0,
                        precision: str = "fp32") -> tuple[torch.Tensor, list[ManifestRow]]:
    """Frame embeddings of each clip's centred window (or a seeded random one), from (and into) the disk cache.

    Args:
        model: EmoCLIP model with a frozen visual tower.
        rows: rows to encode (one per clip).
        root: dataset root.
        classes: class names the rows' labels belong to.
        clip_len: frames per window.
        downsample: keep every n-th frame.
        cache_dir: feature cache root (shared with training).
        device: where the visual tower runs.
        progress: show progress bars.
        random_window: a random start (wrapping) as the official test loaders take, seeded by `seed`,
            instead of the centred window.
        seed: seed of the random windows.
        precision: frame encoding, "fp32", "bf16", "fp16" or "auto" (`runtime.autocast_context`).
    Returns:
        (features (N, T, D), the rows that could be read, in order).
    """
    prep = Preprocessing(size=model.input_resolution, clip_len=clip_len, downsample=downsample,
                         train=random_window, augment=False, seed=seed if random_window else 0)
    paths = build_frame_cache(model, list(rows), root, tuple(classes), prep, [0], cache_dir, device=device,
                              progress=progress, precision=precision)[0]
    kept = [i for i in range(len(rows)) if paths.get(i)]
    feats = np.stack([np.load(paths[i], allow_pickle=False) for i in kept]) if kept else np.zeros((0, clip_len, 0))
    return torch.from_numpy(feats).float(), [rows[i] for i in kept]


def score(video_emb: torch.Tensor, rows: Sequence[ManifestRow], classes: Sequence[str],
          text_emb: torch.Tensor) -> dict[str, Any]:
    """Zero-shot UAR, WAR, per-class recall and confusion of single-label rows.

    Args:
        video_emb: (N, D) embeddings of `rows`.
        rows: their manifest rows.
        classes: label space, in the order of `text_emb`.
        text_emb: (C, D) class embeddings.
    """
    _, pred = zero_shot_predict(video_emb, text_emb)
    truth = label_indices([r.labels for r in rows], list(classes))
    return evaluate(truth, np.asarray(pred), list(classes))
