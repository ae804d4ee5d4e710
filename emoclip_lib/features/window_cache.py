"""Window embeddings of long videos (`windows.window_embeddings`) cached on disk, one `.npz` per
(video content, encoder weights, encoder, sampling, input size, face cropping), so that re-running
(or changing only what is computed from the embeddings) encodes nothing.

Encoders: "emoclip" (EmoCLIP's video encoder) and "clip_frame_avg" (the CLIP frame average, the
baseline); both are stored L2-normalised. `cached_window_embeddings_multi` computes the missing entries of
several encoders of the same model object from one pass over the video (each frame decoded and encoded
once); encoders of different model objects get a pass each.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import FaceCrop
from ..errors import UserError
from ..io_utils import atomic_write
from ..runtime import resolve_precision
from .hashing import content_hash, modules_fingerprint
from .windows import POOLINGS, window_embeddings

ENCODERS: tuple[str, ...] = POOLINGS
WINDOW_CACHE_VERSION = 1  # bump when the sampling or the file format changes: old entries are then ignored


@dataclass
class Encoder:
    """A model and how it pools windows, with the fingerprint of the weights it uses (for cache keys)."""

    name: str  # one of ENCODERS
    model: nn.Module
    size: int  # input resolution (frames are resized/cropped to size x size)
    fingerprint: str  # sha256 of the weights the encoder depends on


def make_encoder(model: nn.Module, name: str) -> Encoder:
    """Pick an encoder of an `EmoCLIP` model by name.

    Args:
        model: an `EmoCLIP` model (full or visual-only), in eval mode, on the target device.
        name: "emoclip" (video encoder) or "clip_frame_avg" (per-frame CLIP embeddings, each
            L2-normalised, averaged over the window, re-normalised).
    """
    if name not in ENCODERS:
        raise UserError(f"unknown encoder {name!r}: choose among {', '.join(ENCODERS)}")
    parts = [("backbone.visual", model.backbone.visual)]
    if name == "emoclip":
        parts.append(("temporal", model.temporal))
    return Encoder(name, model, model.input_resolution, modules_fingerprint(parts))


def cache_key(video_sha256: str, fingerprint: str, encoder: str, clip_len: int, downsample: int,
              stride: int | None, size: int, crop: FaceCrop | None, precision: str = "fp32") -> str:
    """The cache file stem for one video under one setting (sha256 of all the settings).

    Args:
        video_sha256: `hashing.content_hash` of the video.
        fingerprint: `Encoder.fingerprint`.
        encoder, clip_len, downsample, stride, size, crop: as in `cached_window_embeddings` (stride None
            means `clip_len`).
        precision: resolved frame-encoding precision ("fp32", "bf16", "fp16"); fp32 adds nothing to the
            key, so entries written before precisions existed still hit.
    """
    parts = {"version": WINDOW_CACHE_VERSION, "video": video_sha256, "weights": fingerprint, "encoder": encoder,
             "clip_len": int(clip_len), "downsample": int(downsample),
             "stride": int(clip_len if stride is None else stride), "size": int(size),
             "crop": None if crop is None else crop.key()}
    if precision != "fp32":
        parts["precision"] = precision
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _read_entry(file: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(starts, emb) of a cache entry, or None when it is missing or damaged (then it is computed again)."""
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as data:
            return data["starts"], data["emb"]
    except (OSError, ValueError, KeyError):
        return None


def _write_entry(file: Path, starts: np.ndarray, emb: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, starts=starts, emb=emb)

    atomic_write(file, write)


def _same_model_groups(encoders: Sequence[Encoder]) -> list[list[Encoder]]:
    """Encoders grouped by model object (identity, not equal weights), in first-seen order."""
    groups: dict[int, list[Encoder]] = {}
    for enc in encoders:
        groups.setdefault(id(enc.model), []).append(enc)
    return list(groups.values())


def cached_window_embeddings_multi(encoders: Sequence[Encoder], path: str | Path, cache_dir: str | Path,
                                   clip_len: int = 32, downsample: int = 4, stride: int | None = None,
                                   device: str | torch.device = "cpu", crop: FaceCrop | None = None,
                                   batch: int = 16, progress: bool = False,
                                   precision: str = "fp32") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Window starts (W,) and unit-norm embeddings (W, D) of a video for several encoders, through the cache.

    The missing entries of encoders sharing one model object come from one `window_embeddings` pass
    (the same frame embeddings pooled both ways: the numbers are those of separate passes); each entry
    has the key `cached_window_embeddings` gives it.

    Args:
        encoders: from `make_encoder`, distinct names.
        path: video file or frame folder.
        cache_dir: folder of cached `.npz` files.
        clip_len, downsample, stride, device, crop, batch, progress: as in `windows.window_embeddings`.
        precision: frame-encoding precision ("fp32" default; others are cached under their own keys).
    Returns:
        encoder name -> (starts (W,), emb (W, D)).
    """
    names = [enc.name for enc in encoders]
    if len(set(names)) != len(names):
        raise UserError(f"encoders must have distinct names, got {', '.join(names)}")
    resolved, video = resolve_precision(device, precision), content_hash(path)
    files = {enc.name: Path(cache_dir) / (cache_key(video, enc.fingerprint, enc.name, clip_len, downsample, stride,
                                                    enc.size, crop, resolved) + ".npz") for enc in encoders}
    out = {name: entry for name in names if (entry := _read_entry(files[name])) is not None}
    for group in _same_model_groups([enc for enc in encoders if enc.name not in out]):
        poolings = tuple(enc.name for enc in group)
        windows = window_embeddings(group[0].model, path, clip_len, downsample, stride, device, poolings=poolings,
                                    crop=crop, batch=batch, progress=progress, precision=resolved)
        for name in poolings:
            emb = F.normalize(windows.embeddings[name], dim=-1).numpy()  # (W, D)
            _write_entry(files[name], windows.starts, emb)
            out[name] = (windows.starts, emb)
    return {name: out[name] for name in names}


def cached_window_embeddings(encoder: Encoder, path: str | Path, cache_dir: str | Path, clip_len: int = 32,
                             downsample: int = 4, stride: int | None = None, device: str | torch.device = "cpu",
                             crop: FaceCrop | None = None, batch: int = 16, progress: bool = False,
                             precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm window embeddings (W, D) and window starts (W,) of a video, through the disk cache.

    Entries are written atomically; an unreadable entry is computed again.

    Args:
        encoder: from `make_encoder`.
        path: video file or frame folder.
        cache_dir: folder of cached `.npz` files.
        clip_len, downsample, stride, device, crop, batch, progress: as in `windows.window_embeddings`.
        precision: frame-encoding precision ("fp32" default; others are cached under their own keys).
    """
    return cached_window_embeddings_multi([encoder], path, cache_dir, clip_len, downsample, stride, device, crop,
                                          batch, progress, precision)[encoder.name]
