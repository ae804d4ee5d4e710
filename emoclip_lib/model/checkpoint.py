"""Build, save and load EmoCLIP models: this project's checkpoints and the official EmoCLIP state dicts."""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from . import official
from .clip import build_clip_from_state_dict, build_visual_from_state_dict, load_clip
from ..errors import UserError
from ..io_utils import atomic_torch_save
from .emoclip import EmoCLIP, ModelConfig, TemporalConfig, VisualOnlyCLIP

FORMAT = "emoclip_lib.checkpoint"
FORMAT_VERSION = 1


def build_model(config: ModelConfig, device: str | torch.device = "cpu", seed: int = 0) -> EmoCLIP:
    """A new EmoCLIP model around the CLIP backbone named in `config` (temporal part seeded).

    Args:
        config: model settings; `config.backbone` is passed to `load_clip`.
        device: where the model lives.
        seed: seeds the temporal transformer's initialisation (and the `tiny` backbone).
    """
    backbone = load_clip(config.backbone, device="cpu", seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EmoCLIP(backbone, config, embed_dim=_embed_dim(backbone))
    return model.to(device)


def _embed_dim(backbone: nn.Module) -> int:
    return int(backbone.visual.output_dim)


def save_checkpoint(model: EmoCLIP, path: str | Path, meta: dict | None = None) -> Path:
    """Save the model, its config and free-form metadata atomically.

    Args:
        model: the model to save.
        path: destination `.pt` file.
        meta: plain JSON-like metadata (metrics, epoch, seed...).
    """
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "visual_only": isinstance(model.backbone, VisualOnlyCLIP),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "head_state": dict(model.head_state),
        "meta": meta or {},
    }
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", heads: int = 8) -> EmoCLIP:
    """Load a checkpoint saved by this project or by the official EmoCLIP code.

    Args:
        path: `.pt`/`.pth` file.
        device: where to put the model.
        heads: attention heads of an official checkpoint (not stored in it; the paper used 8).
    Raises:
        UserError: unreadable file, unknown or missing keys (listed).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        first = (str(err).strip().splitlines() or [""])[0]
        raise UserError(f"{path} is not a readable PyTorch checkpoint ({err.__class__.__name__}: {first})") from err
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        model = _from_project_payload(obj, path)
        model.source = {"format": FORMAT, "path": str(path)}
    else:
        state = obj.get("state_dict", obj.get("model", obj)) if isinstance(obj, dict) else None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise UserError(f"{path} holds no state dict of tensors: expected an EmoCLIP checkpoint")
        model = from_official_state(official.strip_ddp_prefix(state), heads=heads, source=str(path))
        model.source = {"format": "official", "path": str(path)}
    model.source.update(layout=model.config.temporal.layout, visual_only=isinstance(model.backbone, VisualOnlyCLIP))
    return model.eval().to(device)


def with_text_tower(model: EmoCLIP, clip: nn.Module) -> EmoCLIP:
    """A full EmoCLIP model from a visual-only one (the official downstream weights) and a CLIP.

    EmoCLIP keeps CLIP's text tower frozen, so CLIP's own text tower and logit scale complete the
    model: the visual tower and the temporal transformer come from `model`, the rest from `clip`.

    Args:
        model: an EmoCLIP model (typically `load_checkpoint` of a downstream checkpoint).
        clip: an OpenAI CLIP model of the same architecture (`load_clip("ViT-B/32")`).
    """
    if int(clip.visual.output_dim) != int(model.temporal.cls_token.shape[-1]):
        raise UserError(f"the text tower's CLIP embeds in {int(clip.visual.output_dim)} dimensions but the "
                        f"checkpoint in {int(model.temporal.cls_token.shape[-1])}: use the CLIP it was trained on")
    backbone = copy.deepcopy(clip).to(next(model.parameters()).device)
    backbone.visual = model.backbone.visual
    full = EmoCLIP(backbone, model.config, embed_dim=int(clip.visual.output_dim))
    full.temporal.load_state_dict(model.temporal.state_dict())
    with torch.no_grad():
        full.logit_scale.copy_(clip.logit_scale.detach().float().reshape(()))
    full.head_state, full.source = dict(model.head_state), {**getattr(model, "source", {}), "visual_only": False}
    return full.eval()


def _from_project_payload(obj: dict, path: Path) -> EmoCLIP:
    try:
        config = ModelConfig.from_dict(obj["model_config"])
    except TypeError as err:
        raise UserError(f"{path}: model_config has unknown settings ({err}); was it saved by a newer version?")
    state = obj["state_dict"]
    backbone_state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    backbone = _build_backbone(backbone_state, bool(obj.get("visual_only")), str(path))
    model = EmoCLIP(backbone, config, embed_dim=_embed_dim(backbone))
    _load_strict(model, state, str(path))
    model.head_state = dict(obj.get("head_state", {}))
    return model


def _build_backbone(backbone_state: dict[str, torch.Tensor], visual_only: bool, source: str) -> nn.Module:
    if not backbone_state:
        raise UserError(f"{source}: no `backbone.*` keys: the CLIP weights are missing")
    if visual_only:
        return VisualOnlyCLIP(build_visual_from_state_dict(backbone_state))
    return build_clip_from_state_dict(backbone_state)


def from_official_state(state: dict[str, torch.Tensor], heads: int = 8, source: str = "state dict") -> EmoCLIP:
    """Build an EmoCLIP model from an official-format state dict (full or downstream variant).

    Args:
        state: official keys without the DDP `module.` prefix.
        heads: attention heads of the temporal transformer.
        source: name used in error messages.
    """
    if not official.is_official_state(state):
        raise UserError(
            f"{source}: neither an emoclip_lib checkpoint nor an official EmoCLIP state dict "
            "(expected `temporal.cls_token` and `temporal.temporal_transformer.layers.*` keys)"
        )
    temporal, unknown = official.convert_temporal_keys(state)
    backbone_state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    head_state = {k: v for k, v in state.items() if k.startswith("mlp.")}
    known_prefixes = ("backbone.", "temporal.", "mlp.")
    unknown += [k for k in state if not k.startswith(known_prefixes) and k != "logit_scale"]
    if unknown:
        raise UserError(f"{source}: unknown keys {sorted(unknown)[:20]} ({len(unknown)} in all)")
    visual_only = "text_projection" not in backbone_state
    backbone = _build_backbone(backbone_state, visual_only, source)
    shape = official.temporal_shape(state, heads)
    config = ModelConfig(backbone=source, temporal=TemporalConfig(**shape, layout="official"))
    model = EmoCLIP(backbone, config, embed_dim=_embed_dim(backbone))
    full = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    full.update(temporal)
    full["logit_scale"] = state.get("logit_scale", model.logit_scale.detach()).reshape(())
    _load_strict(model, full, source)
    model.head_state = head_state
    return model


def _load_strict(model: EmoCLIP, state: dict[str, torch.Tensor], source: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UserError(f"{source}: missing keys {missing[:20]}; unexpected keys {unexpected[:20]}")
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        k = bad[0]
        raise UserError(f"{source}: {k} has shape {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
