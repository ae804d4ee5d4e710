"""The model a zero-shot evaluation scores: a checkpoint (this project's or the official one), the official
visual-only downstream weights completed with CLIP's text tower, or CLIP alone (`clip:NAME`, baselines only)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..model import EmoCLIP, ModelConfig, load_checkpoint, load_clip, with_text_tower

CLIP_PREFIX = "clip:"


def load_eval_model(checkpoint: str | Path, device: torch.device, text_tower: str | None = None,
                    seed: int = 0) -> tuple[EmoCLIP, dict[str, Any]]:
    """Load what `emoclip evaluate --checkpoint` names, and a record of what it is.

    Args:
        checkpoint: a checkpoint file, or `clip:NAME` (e.g. `clip:ViT-B/32`) for CLIP alone.
        device: where the model runs.
        text_tower: a CLIP name or file whose text tower and logit scale complete a visual-only checkpoint
            (the official downstream weights); EmoCLIP's text tower is CLIP's, frozen.
        seed: seeds the unused temporal transformer of a `clip:` model.
    Returns:
        (model in eval mode, record: {"checkpoint", "format", "layout", "visual_only", "text_tower", "clip_only"}).
    """
    text = str(checkpoint)
    if text.startswith(CLIP_PREFIX):
        name = text[len(CLIP_PREFIX):]
        clip = load_clip(name, device="cpu", seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = EmoCLIP(clip, ModelConfig(backbone=name), embed_dim=int(clip.visual.output_dim))
        record = {"checkpoint": text, "format": "clip", "layout": None, "visual_only": False, "text_tower": None,
                  "clip_only": True}
        return model.eval().to(device), record
    model = load_checkpoint(checkpoint, device=device)
    record = {"checkpoint": text, **{k: model.source.get(k) for k in ("format", "layout", "visual_only")},
              "text_tower": text_tower, "clip_only": False}
    if model.source.get("visual_only"):
        if not text_tower:
            raise UserError(f"{checkpoint} holds only the visual tower (the official downstream weights): add "
                            f"--text-tower ViT-B/32 to complete it with CLIP's text tower and logit scale")
        model = with_text_tower(model, load_clip(text_tower, device="cpu", seed=seed)).to(device)
    elif text_tower:
        raise UserError(f"--text-tower is only for visual-only checkpoints; {checkpoint} has its own text tower")
    return model, record
