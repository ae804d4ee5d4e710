"""Interview features for symptom-severity regression: window embeddings summarised per video and subject.

Each video of an interview manifest is cut into windows and embedded by an encoder
(`features.window_cache`: "emoclip" or the "clip_frame_avg" baseline, cached on disk; both from one pass
over each video when they share a model); the window embeddings are summarised per video (`aggregate`:
mean, std, ...) and optionally per subject.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data import FaceCrop
from ..data import read_interview_manifest
from ..errors import DataError, UserError
from ..features import cached_window_embeddings_multi, make_encoder
from ..workers import parallel_map, torch_workers

STATS: tuple[str, ...] = ("mean", "std", "max", "min", "median", "q10", "q90")  # any q1..q99 works too
STAT_PATTERN = re.compile(r"mean|std|max|min|median|q([1-9]|[1-9][0-9])")  # the statistics `aggregate` knows


def aggregate(emb: np.ndarray, stats: Sequence[str] = ("mean", "std")) -> np.ndarray:
    """Summarise window embeddings into one vector: the statistics concatenated in the given order.

    Args:
        emb: (W, D) window embeddings.
        stats: any of mean, std (population, ddof=0), max, min, median, qNN (NN-th percentile, 1-99).
    Returns:
        (len(stats) * D,) float64.
    """
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise UserError(f"aggregate needs a non-empty (W, D) array of window embeddings, got shape {x.shape}")
    simple = {"mean": np.mean, "std": np.std, "max": np.max, "min": np.min, "median": np.median}
    parts = []
    for stat in stats:
        match = re.fullmatch(r"q(\d{1,2})", stat)
        if stat in simple:
            parts.append(simple[stat](x, axis=0))
        elif match and 1 <= int(match.group(1)) <= 99:
            parts.append(np.quantile(x, int(match.group(1)) / 100.0, axis=0))
        else:
            raise UserError(f"unknown statistic {stat!r}: use mean, std, max, min, median or q1..q99 (e.g. q10)")
    if not parts:
        raise UserError("no statistics requested: give at least one, e.g. mean")
    return np.concatenate(parts)


RESERVED_COLUMNS: tuple[str, ...] = ("path", "subject", "session", "n_windows", "n_videos", "features")


def _read_checked_manifest(manifest_path: str | Path, root: str | Path) -> tuple[list, list[str]]:
    """Read an interview manifest; DataError for an item named like a table column or a missing video."""
    rows, items = read_interview_manifest(manifest_path)
    clash = [i for i in items if i in RESERVED_COLUMNS]
    if clash:
        raise DataError(f"{manifest_path}:1: item column {clash[0]!r} clashes with a feature-table column; "
                        f"rename it")
    for row in rows:
        if not (Path(root) / row.path).exists():
            raise DataError(f"{manifest_path}:{row.row_number}: {Path(root) / row.path} does not exist; "
                            f"check --root and the manifest path")
    return rows, items


def _encoder_models(model: nn.Module | Mapping[str, nn.Module], names: list[str]) -> dict[str, nn.Module]:
    """Encoder name -> model (in eval mode): one model for every encoder, or a mapping name -> model."""
    if not names or len(set(names)) != len(names):
        raise UserError(f"give one or more distinct encoders, got {names}")
    if not isinstance(model, Mapping):
        return {name: model.eval() for name in names}
    missing = [name for name in names if name not in model]
    if missing:
        raise UserError(f"no model given for encoder {missing[0]!r} (models for: {', '.join(model)})")
    return {name: model[name].eval() for name in names}


def _table(records: list[dict], items: list[str], settings: dict) -> pd.DataFrame:
    table = pd.DataFrame(records, columns=["path", "subject", "session", *items, "n_windows", "features"])
    table.attrs["items"] = list(items)
    table.attrs["settings"] = settings
    return table


def extract_features(manifest_path: str | Path, root: str | Path, model: nn.Module | Mapping[str, nn.Module],
                     encoder: str | Sequence[str] = "emoclip", cache_dir: str | Path = "feature_cache",
                     clip_len: int = 32, downsample: int = 4, stride: int | None = None,
                     crop: FaceCrop | None = None, stats: Sequence[str] = ("mean", "std"),
                     device: str | torch.device = "cpu", batch: int = 16, progress: bool = True,
                     precision: str = "fp32") -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Features of every video of an interview manifest (cached window embeddings, aggregated).

    Several encoders at once (`encoder=("emoclip", "clip_frame_avg")`) decode and encode each video once
    for all the encoders that share one model object; the tables are those of one call per encoder.

    Args:
        manifest_path: interview manifest (`path,subject,session,<items...>`).
        root: folder the manifest paths are relative to.
        model: `EmoCLIP` model on `device` (put in eval mode here), or a mapping encoder -> model (as
            `pipeline.regression.load_encoders` returns; the same object for two encoders shares the pass).
        encoder: "emoclip" or "clip_frame_avg", or a sequence of them.
        cache_dir: window-embedding cache folder.
        clip_len: kept frames per window (paper: 32).
        downsample: keep every `downsample`-th frame (paper's zero-shot runs: 4).
        stride: window step in kept frames (None = `clip_len`).
        crop: face-cropping settings, or None for full frames.
        stats: per-video statistics of the window embeddings (see `aggregate`).
        device: where the model runs.
        batch: windows encoded at once.
        progress: progress bar over videos.
        precision: frame-encoding precision, "fp32" (default), "bf16", "fp16" or "auto".
    Returns:
        one row per video: path, subject, session, one column per item (NaN = missing), n_windows,
        features (ndarray); `attrs["items"]` lists the items, `attrs["settings"]` the settings. For a
        sequence of encoders, a dict encoder -> such a table.
    """
    names = [encoder] if isinstance(encoder, str) else list(encoder)
    rows, items = _read_checked_manifest(manifest_path, root)
    aggregate(np.zeros((1, 1)), stats)  # checks the statistic names before any encoding
    encs = [make_encoder(m, name) for name, m in _encoder_models(model, names).items()]
    records: dict[str, list[dict]] = {name: [] for name in names}

    def embed(row: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        try:
            return cached_window_embeddings_multi(encs, Path(root) / row.path, cache_dir, clip_len, downsample,
                                                  stride, device, crop, batch, precision=precision)
        except UserError as err:
            raise type(err)(f"{manifest_path}:{row.row_number}: {err}") from None

    videos = parallel_map(embed, rows, f"features ({', '.join(names)})", progress,  # one video per core on CPU
                          torch_workers(torch.device(device), len(rows)), chunksize=1)
    for row, found in zip(rows, videos):
        scores = {i: np.nan if row.scores[i] is None else row.scores[i] for i in items}
        for name, (starts, emb) in found.items():
            records[name].append({"path": row.path, "subject": row.subject, "session": row.session, **scores,
                                  "n_windows": len(starts), "features": aggregate(emb, stats)})
    common = {"clip_len": clip_len, "downsample": downsample, "stride": clip_len if stride is None else stride,
              "stats": list(stats), "crop": None if crop is None else json.loads(crop.key())}
    tables = {name: _table(records[name], items, {"encoder": name, **common}) for name in names}
    return tables[encoder] if isinstance(encoder, str) else tables


def feature_matrix(table: pd.DataFrame) -> np.ndarray:
    """The `features` column as an (N, F) float64 matrix.

    Args:
        table: from `extract_features`, `subject_features` or `load_features`.
    """
    if len(table) == 0:
        raise UserError("the feature table is empty: the manifest lists no videos")
    return np.stack([np.asarray(f, dtype=np.float64) for f in table["features"]])


def subject_features(table: pd.DataFrame) -> pd.DataFrame:
    """Average the video features and item scores of each subject (missing scores are skipped).

    Args:
        table: per-video table from `extract_features` or `load_features`.
    Returns:
        one row per subject (sorted): subject, item scores (NaN when all the subject's are missing),
        n_videos, features.
    """
    items = list(table.attrs.get("items", []))
    feats = feature_matrix(table)
    groups = table.groupby("subject", sort=True).indices  # subject -> row positions
    records = [{"subject": s, **{i: float(np.nan if table[i].iloc[idx].isna().all()
                                          else table[i].iloc[idx].mean()) for i in items},
                "n_videos": len(idx), "features": feats[idx].mean(axis=0)} for s, idx in groups.items()]
    out = pd.DataFrame(records, columns=["subject", *items, "n_videos", "features"])
    out.attrs = dict(table.attrs)
    return out
