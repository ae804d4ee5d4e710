"""Video-level features for symptom-severity regression: sliding-window embeddings, cached on disk.

A long interview video is cut into windows of `clip_len` kept frames (every `downsample`-th frame),
advancing by `stride` kept frames; each window is embedded by an encoder, and the window
embeddings are summarised per video (`aggregate`: mean, std, ...) and optionally per subject.
Encoders: "emoclip" (the EmoCLIP video encoder) and "clip_frame_avg" (the CLIP image encoder per
frame, averaged over the window: the baseline). Both outputs are L2-normalised.

Window embeddings are cached, one `.npz` per (video content, encoder weights, encoder, sampling,
input size, face cropping), so re-running (or changing only the statistics) encodes nothing.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..features.hashing import content_hash
from ..errors import DataError, UserError
from ..data.faces import Detector, FaceCrop, crop_squares, video_face_squares
from ..features.frame_cache import weights_fingerprint as cache_weights_fingerprint
from ..io_utils import atomic_write
from ..data.manifest import read_interview_manifest
from ..data.preprocess import preprocess_frames
from ..data.video import count_frames, read_frames, window_indices, window_starts

ENCODERS: tuple[str, ...] = ("emoclip", "clip_frame_avg")
STATS: tuple[str, ...] = ("mean", "std", "max", "min", "median", "q10", "q90")  # any q1..q99 works too
CACHE_VERSION = 1
# An encoder function maps normalised clips (B, T, 3, S, S) to embeddings (B, D).
EncodeFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Encoder:
    """A named clip encoder with the fingerprint of the weights it uses (for cache keys)."""

    name: str
    fn: EncodeFn
    size: int  # input resolution (frames are resized/cropped to size x size)
    fingerprint: str  # sha256 of the weights `fn` depends on


def weights_fingerprint(modules: Sequence[tuple[str, nn.Module]]) -> str:
    """Fingerprint (`feature_cache.weights_fingerprint`) of the modules' parameters and buffers.

    Args:
        modules: (prefix, module) pairs; keys are prefixed so that different modules never collide.
    """
    return cache_weights_fingerprint({f"{prefix}.{key}": tensor for prefix, module in modules
                                      for key, tensor in module.state_dict().items()})


def make_encoder(model: nn.Module, name: str) -> Encoder:
    """Pick an encoder of an `EmoCLIP` model by name.

    Args:
        model: an `EmoCLIP` model (full or visual-only), in eval mode, on the target device.
        name: "emoclip" (video encoder) or "clip_frame_avg" (per-frame CLIP embeddings, each
            L2-normalised, averaged over the window, re-normalised).
    """
    if name == "emoclip":
        def fn(clips: torch.Tensor) -> torch.Tensor:  # (B, T, 3, S, S) -> (B, D)
            return F.normalize(model.encode_video(clips), dim=-1)
        parts = [("backbone.visual", model.backbone.visual), ("temporal", model.temporal)]
    elif name == "clip_frame_avg":
        def fn(clips: torch.Tensor) -> torch.Tensor:  # (B, T, 3, S, S) -> (B, D)
            frames = F.normalize(model.encode_frames(clips), dim=-1)  # (B, T, D)
            return F.normalize(frames.mean(dim=1), dim=-1)
        parts = [("backbone.visual", model.backbone.visual)]
    else:
        raise UserError(f"unknown encoder {name!r}: choose among {', '.join(ENCODERS)}")
    return Encoder(name, fn, model.input_resolution, weights_fingerprint(parts))


def _load_frames(path: Path, indices: np.ndarray, size: int, squares: np.ndarray | None,
                 chunk: int = 64) -> torch.Tensor:
    """Decode, face-crop (when `squares` is given) and normalise frames -> (N, 3, size, size)."""
    parts = []
    for lo in range(0, len(indices), chunk):
        idx = indices[lo: lo + chunk]
        frames = read_frames(path, idx)  # (c, 3, H, W) uint8
        if squares is not None:
            frames = crop_squares(frames, squares[idx], size)  # (c, 3, size, size)
        parts.append(preprocess_frames(frames, size))
    return torch.cat(parts)


def window_embeddings(encode_fn: EncodeFn, path: str | Path, clip_len: int, downsample: int,
                      stride: int | None, size: int, device: str | torch.device, crop: FaceCrop | None = None,
                      batch: int = 16, progress: bool = False,
                      detector: Detector | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embed sliding windows covering a whole video, decoding only the frames the windows use.

    Args:
        encode_fn: normalised clips (B, T, 3, size, size) on `device` -> (B, D).
        path: video file or frame folder.
        clip_len: kept frames per window.
        downsample: keep every `downsample`-th frame.
        stride: step between windows in kept frames (None = `clip_len`, no overlap).
        size: the encoder's input resolution.
        device: where `encode_fn` runs.
        crop: face-cropping settings, or None for the full (centre-cropped) frame.
        batch: windows encoded at once.
        progress: show a progress bar over window batches.
        detector: face detector for `crop` (default: the Haar cascade).
    Returns:
        (starts (W,) int64 first frame of each window, emb (W, D) float32).
    """
    path = Path(path)
    n = count_frames(path)
    starts = window_starts(n, clip_len, downsample, stride)  # (W,)
    squares = video_face_squares(path, n, crop, detector) if crop is not None else None
    out = []
    for lo in tqdm(range(0, len(starts), batch), desc=path.name, disable=not progress, leave=False):
        idx = np.stack([window_indices(n, clip_len, downsample, s) for s in starts[lo: lo + batch]])  # (b, T)
        uniq, inverse = np.unique(idx, return_inverse=True)
        frames = _load_frames(path, uniq, size, squares)  # (U, 3, S, S)
        clips = frames[torch.from_numpy(inverse.reshape(idx.shape))]  # (b, T, 3, S, S)
        with torch.no_grad():
            out.append(encode_fn(clips.to(device)).float().cpu())  # (b, D)
    return starts, torch.cat(out).numpy()


def cache_key(video_sha256: str, fingerprint: str, encoder: str, clip_len: int, downsample: int,
              stride: int | None, size: int, crop: FaceCrop | None) -> str:
    """The cache file stem for one video under one setting (sha256 of all the settings).

    Args:
        video_sha256: `content_hash.content_hash` of the video.
        fingerprint: `Encoder.fingerprint`.
        encoder, clip_len, downsample, stride, size, crop: as in `window_embeddings` (stride None
            means `clip_len`).
    """
    parts = {"version": CACHE_VERSION, "video": video_sha256, "weights": fingerprint, "encoder": encoder,
             "clip_len": int(clip_len), "downsample": int(downsample),
             "stride": int(clip_len if stride is None else stride), "size": int(size),
             "crop": None if crop is None else crop.key()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cached_window_embeddings(encoder: Encoder, path: str | Path, cache_dir: str | Path, clip_len: int = 32,
                             downsample: int = 4, stride: int | None = None, device: str | torch.device = "cpu",
                             crop: FaceCrop | None = None, batch: int = 16,
                             progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`window_embeddings` through the disk cache (written atomically; unreadable entries are redone).

    Args:
        encoder: from `make_encoder`.
        path: video file or frame folder.
        cache_dir: folder of cached `.npz` files.
        clip_len, downsample, stride, device, crop, batch, progress: as in `window_embeddings`.
    """
    key = cache_key(content_hash(path), encoder.fingerprint, encoder.name, clip_len, downsample, stride,
                    encoder.size, crop)
    file = Path(cache_dir) / f"{key}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as data:
                return data["starts"], data["emb"]
        except (OSError, ValueError, KeyError):
            pass  # a damaged entry: encode again and overwrite it
    starts, emb = window_embeddings(encoder.fn, path, clip_len, downsample, stride, encoder.size, device,
                                    crop=crop, batch=batch, progress=progress)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, starts=starts, emb=emb)

    atomic_write(file, write)
    return starts, emb


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


def extract_features(manifest_path: str | Path, root: str | Path, model: nn.Module, encoder: str = "emoclip",
                     cache_dir: str | Path = "feature_cache", clip_len: int = 32, downsample: int = 4,
                     stride: int | None = None, crop: FaceCrop | None = None,
                     stats: Sequence[str] = ("mean", "std"), device: str | torch.device = "cpu",
                     batch: int = 16, progress: bool = True) -> pd.DataFrame:
    """Features of every video of an interview manifest (cached window embeddings, aggregated).

    Args:
        manifest_path: interview manifest (`path,subject,session,<items...>`).
        root: folder the manifest paths are relative to.
        model: `EmoCLIP` model on `device` (put in eval mode here).
        encoder: "emoclip" or "clip_frame_avg".
        cache_dir: window-embedding cache folder.
        clip_len: kept frames per window (paper: 32).
        downsample: keep every `downsample`-th frame (paper's zero-shot runs: 4).
        stride: window step in kept frames (None = `clip_len`).
        crop: face-cropping settings, or None for full frames.
        stats: per-video statistics of the window embeddings (see `aggregate`).
        device: where the model runs.
        batch: windows encoded at once.
        progress: progress bar over videos.
    Returns:
        one row per video: path, subject, session, one column per item (NaN = missing), n_windows,
        features (ndarray); `attrs["items"]` lists the items, `attrs["settings"]` the settings.
    """
    rows, items = _read_checked_manifest(manifest_path, root)
    aggregate(np.zeros((1, 1)), stats)  # checks the statistic names before any encoding
    enc = make_encoder(model.eval(), encoder)
    records = []
    for row in tqdm(rows, desc=f"features ({encoder})", unit="video", disable=not progress):
        try:
            starts, emb = cached_window_embeddings(enc, Path(root) / row.path, cache_dir, clip_len, downsample,
                                                   stride, device, crop, batch)
        except UserError as err:
            raise type(err)(f"{manifest_path}:{row.row_number}: {err}") from None
        scores = {i: np.nan if row.scores[i] is None else row.scores[i] for i in items}
        records.append({"path": row.path, "subject": row.subject, "session": row.session, **scores,
                        "n_windows": len(starts), "features": aggregate(emb, stats)})
    table = pd.DataFrame(records, columns=["path", "subject", "session", *items, "n_windows", "features"])
    table.attrs["items"] = list(items)
    table.attrs["settings"] = {"encoder": encoder, "clip_len": clip_len, "downsample": downsample,
                               "stride": clip_len if stride is None else stride, "stats": list(stats),
                               "crop": None if crop is None else json.loads(crop.key())}
    return table


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
