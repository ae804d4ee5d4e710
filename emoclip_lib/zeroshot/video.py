"""Video embeddings for zero-shot evaluation: model encoding over a DataLoader, the CLIP frame-average
baseline, and sliding-window probabilities over long videos."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import UserError
from ..data.preprocess import preprocess_frames
from ..data.video import window_indices, window_starts
from .prompts import model_scale, zero_shot_predict

EncodeVideoFn = Callable[[torch.Tensor], torch.Tensor]  # (B, T, 3, S, S) frames -> (B, D)


def frame_average_features(frame_feats: torch.Tensor) -> torch.Tensor:
    """CLIP frame-average video embedding from cached per-frame features.

    Args:
        frame_feats: (B, T, D) per-frame image embeddings.
    Returns:
        (B, D) unit-norm mean of the unit-norm frame embeddings.
    """
    if frame_feats.dim() != 3:
        raise UserError(f"frame features must be shaped (B, T, D), got {tuple(frame_feats.shape)}")
    return F.normalize(F.normalize(frame_feats.float(), dim=-1).mean(dim=1), dim=-1)  # (B, D)


@torch.no_grad()
def frame_average_embeddings(clip_model: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """The CLIP frame-average baseline: image embedding per frame, normalised, averaged, re-normalised.

    Args:
        clip_model: an OpenAI CLIP model (`encode_image`) or an EmoCLIP model (its CLIP backbone is used).
        frames: (B, T, 3, H, W) CLIP-normalised frames on the model's device.
    Returns:
        (B, D) float32 unit-norm embeddings.
    """
    if frames.dim() != 5:
        raise UserError(f"frames must be shaped (B, T, 3, H, W), got {tuple(frames.shape)}")
    if hasattr(clip_model, "encode_frames"):
        feats = clip_model.encode_frames(frames)  # (B, T, D)
    else:
        b, t = frames.shape[:2]
        dtype = getattr(clip_model, "dtype", frames.dtype)  # OpenAI CLIP: fp16 on CUDA
        feats = clip_model.encode_image(frames.flatten(0, 1).to(dtype)).float().view(b, t, -1)  # (B, T, D)
    return frame_average_features(feats)


def _video_fn(model_or_fn: nn.Module | EncodeVideoFn) -> EncodeVideoFn:
    if hasattr(model_or_fn, "encode_video"):
        return model_or_fn.encode_video
    if callable(model_or_fn):
        return model_or_fn
    raise UserError(f"expected a model with encode_video or a function frames -> (B, D), got {type(model_or_fn)}")


@torch.no_grad()
def encode_videos(model_or_fn: nn.Module | EncodeVideoFn, loader: Iterable[dict[str, Any] | None],
                  device: str | torch.device, progress: bool = True) -> tuple[torch.Tensor, list[str]]:
    """Encode every clip a DataLoader yields.

    Args:
        model_or_fn: an EmoCLIP model (its `encode_video` is used) or a function frames (B, T, 3, S, S)
            -> (B, D), e.g. `lambda f: frame_average_embeddings(clip, f)`.
        loader: yields `emoclip_lib.data.dataset.collate` batches (`frames`, `labels`, ...); None batches
            (every clip skipped) are ignored.
        device: where the frames are sent.
        progress: show a progress bar.
    Returns:
        emb (N, D) float32 on the CPU (not normalised), labels: the N `labels` fields.
    """
    fn = _video_fn(model_or_fn)
    was_training = isinstance(model_or_fn, nn.Module) and model_or_fn.training
    if was_training:
        model_or_fn.eval()
    chunks, labels = [], []
    try:
        for batch in tqdm(loader, desc="encode", disable=not progress):
            if batch is None:
                continue
            chunks.append(fn(batch["frames"].to(device, non_blocking=True)).float().cpu())  # (B, D)
            labels.extend(batch["labels"])
    finally:
        if was_training:
            model_or_fn.train()
    if not chunks:
        raise UserError("the loader yielded no clip: check the manifest split and the skipped videos")
    return torch.cat(chunks), labels


def _check_video(frames_uint8: torch.Tensor) -> None:
    if frames_uint8.dim() != 4 or frames_uint8.shape[1] != 3 or frames_uint8.shape[0] == 0:
        raise UserError(f"video frames must be shaped (T, 3, H, W) with T >= 1, got {tuple(frames_uint8.shape)}")
    if frames_uint8.dtype != torch.uint8:
        raise UserError(f"video frames must be uint8 (as read by emoclip_lib.data.video.read_frames), "
                        f"got {frames_uint8.dtype}")


@torch.no_grad()
def _frame_features(model: nn.Module, frames_uint8: torch.Tensor, index: np.ndarray, device: str | torch.device,
                    frame_batch: int, progress: bool) -> torch.Tensor:
    """Embeddings (U, D) of the frames `index` (each encoded once), preprocessed for the model."""
    chunks = []
    for lo in tqdm(range(0, len(index), frame_batch), desc="frames", disable=not progress):
        raw = frames_uint8[torch.as_tensor(index[lo : lo + frame_batch])].to(device)  # (n, 3, H, W)
        x = preprocess_frames(raw, model.input_resolution)  # (n, 3, S, S)
        chunks.append(model.encode_frames(x.unsqueeze(0))[0])  # (n, D)
    return torch.cat(chunks)


@torch.no_grad()
def window_probabilities(model: nn.Module, frames_uint8: torch.Tensor, clip_len: int, downsample: int,
                         stride: int | None, text_emb: torch.Tensor, device: str | torch.device,
                         scale: float | None = None, frame_batch: int = 64,
                         progress: bool = False) -> tuple[np.ndarray, torch.Tensor]:
    """Class probabilities of sliding windows over a long video.

    Every sampled frame is encoded once; overlapping windows share the frame embeddings and go
    through the temporal transformer (`encode_video_features`). Windows follow
    `emoclip_lib.data.video.window_starts`: together they cover every kept frame.

    Args:
        model: an EmoCLIP model (`encode_frames`, `encode_video_features`, `input_resolution`).
        frames_uint8: (T, 3, H, W) uint8 video frames, as read by `read_frames`.
        clip_len: kept frames per window.
        downsample: keep every `downsample`-th frame.
        stride: step between windows in kept frames (None: `clip_len`, no overlap).
        text_emb: (C, D) class embeddings.
        device: where the model lives.
        scale: softmax scale; None uses the model's learned scale `exp(logit_scale)`.
        frame_batch: frames encoded per forward pass.
        progress: show a progress bar over frame batches.
    Returns:
        starts (W,) int64 first frame of each window, probs (W, C) float32 on the CPU.
    """
    _check_video(frames_uint8)
    if int(frame_batch) < 1:
        raise UserError(f"frame_batch must be at least 1, got {frame_batch}")
    starts = window_starts(frames_uint8.shape[0], clip_len, downsample, stride)  # (W,)
    idx = np.stack([window_indices(frames_uint8.shape[0], clip_len, downsample, s) for s in starts])  # (W, L)
    unique, inverse = np.unique(idx, return_inverse=True)
    feats = _frame_features(model, frames_uint8, unique, device, frame_batch, progress)  # (U, D)
    windows = feats[torch.as_tensor(inverse.reshape(idx.shape), device=feats.device)]  # (W, L, D)
    video_emb = torch.cat([model.encode_video_features(windows[lo : lo + frame_batch])
                           for lo in range(0, len(windows), frame_batch)])  # (W, D)
    probs, _ = zero_shot_predict(video_emb, text_emb, model_scale(model) if scale is None else scale)
    return starts, probs.cpu()


def video_probabilities(model: nn.Module, frames_uint8: torch.Tensor, clip_len: int, downsample: int,
                        stride: int | None, text_emb: torch.Tensor, device: str | torch.device,
                        scale: float | None = None, frame_batch: int = 64) -> torch.Tensor:
    """Per-video class probabilities: the mean of `window_probabilities` over the windows.

    Args:
        model: an EmoCLIP model.
        frames_uint8: (T, 3, H, W) uint8 video frames.
        clip_len: kept frames per window.
        downsample: keep every `downsample`-th frame.
        stride: step between windows in kept frames (None: `clip_len`).
        text_emb: (C, D) class embeddings.
        device: where the model lives.
        scale: softmax scale; None uses the model's learned scale.
        frame_batch: frames encoded per forward pass.
    Returns:
        (C,) float32 probabilities summing to 1.
    """
    _, probs = window_probabilities(model, frames_uint8, clip_len, downsample, stride, text_emb, device,
                                    scale=scale, frame_batch=frame_batch)  # (W, C)
    return probs.mean(dim=0)
