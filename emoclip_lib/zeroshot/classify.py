"""Zero-shot classification: a video takes the class of highest cosine similarity; probabilities are a
softmax over scaled cosines (100 as in CLIP, or the model's learned scale)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UserError

CLIP_SCALE = 100.0  # exp(ln 100): CLIP's logit scale at initialisation


def model_scale(model: Any) -> float:
    """The multiplier a model applies to cosines: exp(logit_scale) (100 for an untrained CLIP).

    Args:
        model: an EmoCLIP or OpenAI CLIP model (anything with a `logit_scale` holding the log-scale).
    """
    if not hasattr(model, "logit_scale"):
        raise UserError(f"{type(model).__name__} has no logit_scale: pass scale=100.0 instead")
    return float(torch.as_tensor(model.logit_scale).detach().float().exp())


@torch.no_grad()
def zero_shot_predict(video_emb: torch.Tensor, text_emb: torch.Tensor,
                      scale: float | torch.Tensor = CLIP_SCALE) -> tuple[torch.Tensor, torch.Tensor]:
    """Classify videos by cosine similarity to class text embeddings.

    Args:
        video_emb: (N, D) video embeddings (normalised here).
        text_emb: (C, D) class embeddings (normalised here).
        scale: multiplier of the cosines before the softmax: 100 as in CLIP, or `model_scale(model)`.
    Returns:
        probs (N, C) float32 softmax(scale * cos), pred (N,) int64 argmax (first class on ties).
    """
    if video_emb.dim() != 2 or text_emb.dim() != 2:
        raise UserError(f"expected video_emb (N, D) and text_emb (C, D), got {tuple(video_emb.shape)} "
                        f"and {tuple(text_emb.shape)}")
    if video_emb.shape[1] != text_emb.shape[1]:
        raise UserError(f"embedding sizes differ: videos have D={video_emb.shape[1]}, texts D={text_emb.shape[1]}; "
                        "encode both with the same model")
    if text_emb.shape[0] == 0:
        raise UserError("text_emb has no class: give at least one class embedding")
    v = video_emb.float()  # (N, D); divided by its norms after the product: no (N, D) copy
    t = F.normalize(text_emb.float().to(v.device), dim=-1)  # (C, D)
    norms = v.norm(dim=1, keepdim=True).clamp_min_(1e-12)  # (N, 1)
    logits = (v @ t.t()).div_(norms).mul_(float(scale))  # (N, C) scaled cosines
    pred = logits.argmax(dim=1)  # (N,)
    return logits.softmax(dim=1), pred
