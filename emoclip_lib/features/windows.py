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
from ..runtime import autocast_context

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


# Passes of the image tower hold a multiple of this many frames (the last frame repeated to fill up): the
# CPU matmuls take a remainder path that rounds differently for other small row counts.
ROW_BLOCK = 4


@torch.no_grad()
def encode_frames_in_passes(model: nn.Module, frames: torch.Tensor, device: str | torch.device,
                            per_pass: int | None = None, precision: str = "fp32") -> torch.Tensor:
    """CLIP embeddings of frames, at most `per_pass` frames per forward pass of the image tower.

    Every pass holds a multiple of `ROW_BLOCK` frames (`per_pass` is rounded down to one; a short last
    pass is filled up with copies of its last frame, whose outputs are dropped), so that in fp32 on the
    CPU with 1 or 2 threads a frame's embedding does not depend on which frames share its pass: encoding
    only the distinct frames of looped clips, or in smaller passes, gives the bits of one pass over every
    position (tests/test_runtime_precision.py; benchmarks/bench_perf.py checks ViT-B/32). With more
    threads the kernels may round the last bit of some frames differently for other pass sizes, as they
    already did for a build's smaller last batch; results stay repeatable run to run.

    Args:
        model: an EmoCLIP model (`encode_frames`).
        frames: (N, 3, S, S) CLIP-normalised frames (any device).
        device: where the model lives.
        per_pass: most frames per pass (None: all at once).
        precision: "fp32" (default), "bf16", "fp16" or "auto" (`runtime.autocast_context`).
    Returns:
        (N, D) float32 frame embeddings on `device`.
    """
    n = frames.shape[0]
    step = max(n, 1) if per_pass is None else max(ROW_BLOCK, int(per_pass) // ROW_BLOCK * ROW_BLOCK)
    parts = []
    with autocast_context(device, precision):
        for lo in range(0, max(n, 1), step):
            part = frames[lo: lo + step]  # (n_k, 3, S, S)
            pad = -len(part) % ROW_BLOCK
            if pad and len(part):
                part = torch.cat([part, part[-1:].expand(pad, *part.shape[1:])])
            parts.append(model.encode_frames(part.to(device).unsqueeze(0))[0, :len(part) - pad].float())  # (n_k, D)
    return torch.cat(parts) if len(parts) > 1 else parts[0]


@torch.no_grad()
def encode_video_frames(model: nn.Module, path: str | Path, indices: np.ndarray, squares: np.ndarray | None,
                        device: str | torch.device, chunk: int = 64, progress: bool = False,
                        precision: str = "fp32") -> torch.Tensor:
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
        precision: "fp32" (default: as before), "bf16", "fp16" or "auto" (`runtime.autocast_context`).
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
        with autocast_context(device, precision):
            parts.append(model.encode_frames(x.unsqueeze(0))[0].float())  # (c, D)
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
                      progress: bool = False, precision: str = "fp32") -> VideoWindows:
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
        batch: frames encoded at once, and windows per temporal pass (16-64 frames a pass encode fastest
            on the CPU; benchmarks/bench_perf.py item 3).
        progress: show a progress bar over frame chunks.
        precision: frame-encoding precision, "fp32" (default), "bf16", "fp16" or "auto"; the temporal
            model and the frame average always run in fp32.
    Returns:
        the window starts and one (W, D) embedding matrix per pooling.
    """
    _check_sampling(clip_len, downsample, stride, batch)
    n = count_frames(path)
    starts = window_starts(n, clip_len, downsample, stride)  # (W,)
    squares = video_face_squares(path, n, crop, detector) if crop is not None else None
    idx = np.stack([window_indices(n, clip_len, downsample, int(s)) for s in starts])  # (W, L)
    unique, inverse = np.unique(idx, return_inverse=True)
    feats = encode_video_frames(model, path, unique, squares, device, batch, progress, precision)  # (U, D)
    windows = feats[torch.as_tensor(inverse.reshape(idx.shape), device=feats.device)]  # (W, L, D)
    emb = {p: pool_windows(model, windows, p, batch).float().cpu() for p in poolings}  # each (W, D)
    return VideoWindows(starts, n, emb)
