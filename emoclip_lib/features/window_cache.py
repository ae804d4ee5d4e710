"""Window embeddings of long videos (`windows.window_embeddings`) cached on disk, one `.npz` per
(video content, encoder weights, encoder, sampling, input size, face cropping), so that re-running
(or changing only what is computed from the embeddings) encodes nothing.

Encoders: "emoclip" (EmoCLIP's video encoder) and "clip_frame_avg" (the CLIP frame average, the
baseline); both are stored L2-normalised.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import FaceCrop
from ..errors import UserError
from ..io_utils import atomic_write
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
              stride: int | None, size: int, crop: FaceCrop | None) -> str:
    """The cache file stem for one video under one setting (sha256 of all the settings).

    Args:
        video_sha256: `hashing.content_hash` of the video.
        fingerprint: `Encoder.fingerprint`.
        encoder, clip_len, downsample, stride, size, crop: as in `cached_window_embeddings` (stride None
            means `clip_len`).
    """
    parts = {"version": WINDOW_CACHE_VERSION, "video": video_sha256, "weights": fingerprint, "encoder": encoder,
             "clip_len": int(clip_len), "downsample": int(downsample),
             "stride": int(clip_len if stride is None else stride), "size": int(size),
             "crop": None if crop is None else crop.key()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cached_window_embeddings(encoder: Encoder, path: str | Path, cache_dir: str | Path, clip_len: int = 32,
                             downsample: int = 4, stride: int | None = None, device: str | torch.device = "cpu",
                             crop: FaceCrop | None = None, batch: int = 16,
                             progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm window embeddings (W, D) and window starts (W,) of a video, through the disk cache.

    Entries are written atomically; an unreadable entry is computed again.

    Args:
        encoder: from `make_encoder`.
        path: video file or frame folder.
        cache_dir: folder of cached `.npz` files.
        clip_len, downsample, stride, device, crop, batch, progress: as in `windows.window_embeddings`.
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
    video = window_embeddings(encoder.model, path, clip_len, downsample, stride, device, poolings=(encoder.name,),
                              crop=crop, batch=batch, progress=progress)
    starts, emb = video.starts, F.normalize(video.embeddings[encoder.name], dim=-1).numpy()  # (W,), (W, D)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, starts=starts, emb=emb)

    atomic_write(file, write)
    return starts, emb
