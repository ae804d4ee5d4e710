"""The one window encoder: sliding windows of kept frames over a video, pooled into video embeddings.

A window holds `clip_len` kept frames (every `downsample`-th frame), windows advance by `stride` kept
frames and together cover the video (`data.video.window_starts`; a short video is one looped window).
Every distinct frame the windows use is decoded once (in chunks, never the whole video at once),
face-cropped when face squares are given, preprocessed and encoded once by the CLIP image tower;
overlapping windows share those frame embeddings. A window is then pooled by EmoCLIP's temporal
transformer ("emoclip") or by the CLIP frame average ("clip_frame_avg"), from the same frames.
Zero-shot prediction (`zeroshot.predict`) and interview features (`downstream`) both use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data import Detector, FaceCrop, crop_squares, video_face_squares
from ..data import preprocess_frames
from ..data import count_frames, read_frames, window_indices, window_starts
from ..errors import UserError

POOLINGS: tuple[str, ...] = ("emoclip", "clip_frame_avg")


def frame_average(frame_feats: torch.Tensor) -> torch.Tensor:
    """The CLIP frame-average video embedding: the normalised mean of the normalised frame embeddings.

    Args:
        frame_feats: (B, T, D) per-frame image embeddings.
    Returns:
        (B, D) unit-norm float32 embeddings.
    """
    if frame_feats.dim() != 3:
        raise UserError(f"frame features must be shaped (B, T, D), got {tuple(frame_feats.shape)}")
    return F.normalize(F.normalize(frame_feats.float(), dim=-1).mean(dim=1), dim=-1)  # (B, D)


@torch.no_grad()
def pool_windows(model: nn.Module, frame_feats: torch.Tensor, pooling: str = "emoclip",
                 batch: int = 256) -> torch.Tensor:
    """Video embeddings (N, D) of windows of frame embeddings: EmoCLIP's temporal model or the frame average.

    Args:
        model: an EmoCLIP model (`encode_video_features`).
        frame_feats: (N, T, D) frame embeddings of N windows.
        pooling: "emoclip" or "clip_frame_avg".
        batch: windows per temporal forward pass.
    Returns:
        (N, D) float32 embeddings: unit-norm for the frame average, as the temporal model gives them otherwise.
    """
    if pooling == "clip_frame_avg":
        return frame_average(frame_feats)
    if pooling != "emoclip":
        raise UserError(f"unknown pooling {pooling!r}: choose among {', '.join(POOLINGS)}")
    outs = [model.encode_video_features(frame_feats[i: i + batch]) for i in range(0, len(frame_feats), batch)]
    return torch.cat(outs) if outs else frame_feats.new_zeros((0, frame_feats.shape[-1]))


@torch.no_grad()
def encode_video_frames(model: nn.Module, path: str | Path, indices: np.ndarray, squares: np.ndarray | None,
                        device: str | torch.device, chunk: int = 64, progress: bool = False) -> torch.Tensor:
    """CLIP embeddings of the frames `indices` of a video, decoded and encoded `chunk` frames at a time.

    Args:
        model: an EmoCLIP model (`encode_frames`, `input_resolution`).
        path: video file or frame folder.
        indices: (U,) frame indices, each encoded once.
        squares: (num_frames, 3) face squares x0, y0, side (`data.faces.video_face_squares`), or None to
            keep the whole frame (resized and centre-cropped).
        device: where the model lives.
        chunk: frames decoded and encoded at once.
        progress: show a progress bar.
    Returns:
        (U, D) float32 frame embeddings on `device`.
    """
    size = model.input_resolution
    parts = []
    for lo in tqdm(range(0, len(indices), chunk), desc=Path(path).name, disable=not progress, leave=False):
        idx = indices[lo: lo + chunk]
        frames = read_frames(path, idx)  # (c, 3, H, W) uint8
        if squares is not None:
            frames = crop_squares(frames, squares[idx], size)  # (c, 3, S, S)
        x = preprocess_frames(frames.to(device), size)  # (c, 3, S, S)
        parts.append(model.encode_frames(x.unsqueeze(0))[0])  # (c, D)
    return torch.cat(parts)


@dataclass
class VideoWindows:
    """Window embeddings of one video."""

    starts: np.ndarray  # (W,) first frame of each window
    num_frames: int  # frames in the video
    embeddings: dict[str, torch.Tensor]  # pooling -> (W, D) float32 on the CPU


def _check_sampling(clip_len: int, downsample: int, stride: int | None, batch: int) -> None:
    for name, value in (("clip_len", clip_len), ("downsample", downsample), ("stride", stride), ("batch", batch)):
        if value is not None and int(value) < 1:
            raise UserError(f"{name} must be at least 1, got {value}")


@torch.no_grad()
def window_embeddings(model: nn.Module, path: str | Path, clip_len: int, downsample: int, stride: int | None,
                      device: str | torch.device, poolings: Sequence[str] = ("emoclip",),
                      crop: FaceCrop | None = None, detector: Detector | None = None, batch: int = 64,
                      progress: bool = False) -> VideoWindows:
    """Embed sliding windows covering a whole video, encoding each frame the windows use once.

    Args:
        model: an EmoCLIP model in eval mode on `device` (a visual-only one works for both poolings).
        path: video file or frame folder.
        clip_len: kept frames per window.
        downsample: keep every `downsample`-th frame.
        stride: step between windows in kept frames (None = `clip_len`, no overlap).
        device: where the model lives.
        poolings: which video embeddings to compute, among `POOLINGS` (they share the frame embeddings).
        crop: face-cropping settings (a face track from `data.faces.video_face_squares`), or None for
            the full frame.
        detector: face detector for `crop` (default: the Haar cascade).
        batch: frames encoded at once, and windows per temporal pass.
        progress: show a progress bar over frame chunks.
    Returns:
        the window starts and one (W, D) embedding matrix per pooling.
    """
    _check_sampling(clip_len, downsample, stride, batch)
    n = count_frames(path)
    starts = window_starts(n, clip_len, downsample, stride)  # (W,)
    squares = video_face_squares(path, n, crop, detector) if crop is not None else None
    idx = np.stack([window_indices(n, clip_len, downsample, int(s)) for s in starts])  # (W, L)
    unique, inverse = np.unique(idx, return_inverse=True)
    feats = encode_video_frames(model, path, unique, squares, device, batch, progress)  # (U, D)
    windows = feats[torch.as_tensor(inverse.reshape(idx.shape), device=feats.device)]  # (W, L, D)
    emb = {p: pool_windows(model, windows, p, batch).float().cpu() for p in poolings}  # each (W, D)
    return VideoWindows(starts, n, emb)
