"""One contrastive training step and epoch (global-batch InfoNCE, optional AMP), and the validation loss."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .distributed import DistContext, gather, gather_with_grad, sum_across
from ..model import EmoCLIP, contrastive_loss
from ..data import tokenize


class ContrastiveStep(nn.Module):
    """The forward of a training step (what DDP wraps): video and text embeddings and exp(logit_scale)."""

    def __init__(self, model: EmoCLIP) -> None:
        """Args:
            model: the EmoCLIP model being trained."""
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor, text: torch.Tensor, video_is_features: bool,
                text_is_embedding: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Args:
            video: (b, T, D) cached frame features or (b, T, 3, S, S) frames.
            text: (b, D) cached caption embeddings or (b, 77) tokens.
            video_is_features: whether `video` holds features.
            text_is_embedding: whether `text` holds embeddings.
        Returns:
            video embeddings (b, D), text embeddings (b, D), scalar exp(logit_scale).
        """
        v = self.model.encode_video_features(video) if video_is_features else self.model.encode_video(video)
        t = text if text_is_embedding else self.model.encode_text(text)
        return v, t, self.model.logit_scale.exp()


@dataclass(frozen=True)
class BatchSpec:
    """Shape of one sample's inputs, used to build a placeholder when a process's batch is empty."""

    video_shape: tuple[int, ...]  # (T, D) for cached features, (T, 3, S, S) for frames
    text_dim: int | None  # D when caption embeddings are cached, None when captions are tokenized

    def inputs(self, batch: dict[str, Any] | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs of a collated batch, or a one-sample zero placeholder when `batch` is None.

        Args:
            batch: from `collate` (frames) or `collate_features` (features), or None.
            device: target device.
        """
        if batch is None:
            video = torch.zeros(1, *self.video_shape)
            text = torch.zeros(1, self.text_dim) if self.text_dim is not None else tokenize([""])
        else:
            video = batch["features"] if self.video_is_features else batch["frames"]
            text = batch["text_emb"] if self.text_dim is not None else tokenize(batch["captions"])
        return video.to(device, non_blocking=True), text.to(device, non_blocking=True)

    @property
    def video_is_features(self) -> bool:
        """Whether the video input is cached frame features."""
        return len(self.video_shape) == 2


def autocast(device: torch.device, enabled: bool, dtype: str = "bf16") -> contextlib.AbstractContextManager:
    """Mixed-precision context on CUDA (a no-op elsewhere or when disabled).

    Args:
        device: training device.
        enabled: whether AMP is on.
        dtype: "bf16" or "fp16".
    """
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if dtype == "bf16" else torch.float16)


def global_contrastive_loss(video: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, slots: torch.Tensor,
                            n_slots: int, ctx: DistContext) -> tuple[torch.Tensor, int]:
    """Symmetric InfoNCE over the valid samples of the GLOBAL batch (all processes' slots gathered).

    Args:
        video: (n, D) video embeddings of the valid local samples (or a 1-sample placeholder if none).
        text: (n, D) text embeddings, same rows.
        scale: exp(logit_scale).
        slots: (n_valid,) slot of each valid sample within the local batch.
        n_slots: local batch length (the same on every process).
        ctx: process context.
    Returns:
        (loss, number of valid samples in the global batch). Every process gets the same loss.
    """
    dev = video.device
    v_full = video.new_zeros(n_slots, video.shape[1])  # (n_slots, D)
    t_full = text.new_zeros(n_slots, text.shape[1])  # (n_slots, D)
    if slots.numel():
        v_full = v_full.index_copy(0, slots.to(dev), video)
        t_full = t_full.index_copy(0, slots.to(dev), text)
    else:  # placeholder input: keep every parameter in the graph with a zero gradient
        v_full = v_full + 0.0 * video.sum()
        t_full = t_full + 0.0 * text.sum()
    mask = torch.zeros(n_slots, dtype=torch.bool, device=dev)
    mask[slots.to(dev)] = True
    v_all, t_all = gather_with_grad(v_full, ctx), gather_with_grad(t_full, ctx)  # (W * n_slots, D)
    keep = gather(mask, ctx).nonzero().squeeze(1)  # (n_valid_global,)
    if keep.numel() == 0:
        return (v_all.sum() + t_all.sum() + scale) * 0.0, 0
    v = F.normalize(v_all[keep], dim=-1)
    t = F.normalize(t_all[keep], dim=-1)
    return contrastive_loss(scale * v @ t.t()), int(keep.numel())


def train_epoch(step: nn.Module, loader: Iterable[dict[str, Any]], optimizer: torch.optim.Optimizer,
                spec: BatchSpec, ctx: DistContext, amp: bool = False, amp_dtype: str = "bf16",
                scaler: torch.amp.GradScaler | None = None, progress: bool = True,
                desc: str = "train") -> dict[str, float]:
    """One pass over a positioned loader (see `train_data.make_train_loader`).

    Args:
        step: `ContrastiveStep` (possibly DDP-wrapped or compiled).
        loader: yields dicts `batch`, `slots`, `n_slots`, `missing`.
        optimizer: the optimizer.
        spec: input shapes (placeholder for empty local batches).
        ctx: process context.
        amp: autocast on CUDA.
        amp_dtype: "bf16" or "fp16".
        scaler: GradScaler for fp16 (None otherwise).
        progress: show a progress bar (rank 0 only).
        desc: progress bar label.
    Returns:
        dict `loss` (mean over valid samples), `samples` (valid samples), `missing` (unreadable samples).
    """
    loss_sum, count, missing = 0.0, 0, 0
    for item in tqdm(loader, desc=desc, disable=not (progress and ctx.is_main), leave=False):
        video, text = spec.inputs(item["batch"], ctx.device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(ctx.device, amp, amp_dtype):
            v, t, scale = step(video, text, spec.video_is_features, spec.text_dim is not None)
        loss, n = global_contrastive_loss(v.float(), t.float(), scale.float(), item["slots"], item["n_slots"], ctx)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        loss_sum += float(loss.detach()) * n
        count += n
        missing += int(item["missing"])
    missing_all = int(sum_across(torch.tensor([missing], device=ctx.device), ctx).item())
    return {"loss": loss_sum / count if count else math.nan, "samples": count, "missing": missing_all}


def evaluate_loss(model: EmoCLIP, loader: Iterable[dict[str, Any]], spec: BatchSpec, device: torch.device,
                  amp: bool = False, amp_dtype: str = "bf16", progress: bool = True) -> dict[str, float]:
    """Mean contrastive loss over fixed batches (single process, no gradient).

    Args:
        model: the model (unwrapped).
        loader: positioned loader in a fixed order (`train_data.make_eval_loader`).
        spec: input shapes.
        device: where the model lives.
        amp: autocast on CUDA.
        amp_dtype: "bf16" or "fp16".
        progress: show a progress bar.
    Returns:
        dict `loss` (mean over valid samples; NaN without any) and `samples`.
    """
    step, ctx = ContrastiveStep(model), DistContext(device=device)
    loss_sum, count = 0.0, 0
    with torch.no_grad():
        for item in tqdm(loader, desc="val loss", disable=not progress, leave=False):
            if item["batch"] is None:
                continue
            video, text = spec.inputs(item["batch"], device)
            with autocast(device, amp, amp_dtype):
                v, t, scale = step(video, text, spec.video_is_features, spec.text_dim is not None)
            loss, n = global_contrastive_loss(v.float(), t.float(), scale.float(), item["slots"],
                                              item["n_slots"], ctx)
            loss_sum += float(loss) * n
            count += n
    return {"loss": loss_sum / count if count else math.nan, "samples": count}
