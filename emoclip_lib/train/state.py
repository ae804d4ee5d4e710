"""Optimiser, schedule and the resumable training state (`last.pt`) of the contrastive engine."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..io_utils import atomic_torch_save
from ..model import EmoCLIP
from .config import RESUME_FREE_KEYS, TrainConfig

STATE_FORMAT = "emoclip_lib.train_state"
STATE_VERSION = 1


def param_groups(model: EmoCLIP, config: TrainConfig) -> list[dict[str, Any]]:
    """Temporal transformer + logit scale at `lr`; unfrozen CLIP towers at `lr * backbone_lr_scale`.

    Args:
        model: the model (its `requires_grad` flags say what trains).
        config: training settings.
    """
    head = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("backbone.")]
    tower = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")]
    groups: list[dict[str, Any]] = [{"params": head, "lr": config.lr, "name": "temporal"}]
    if tower:
        groups.append({"params": tower, "lr": config.lr * config.backbone_lr_scale, "name": "backbone"})
    return groups


def build_optimizer(model: EmoCLIP, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay; the paper's choice) or AdamW over `param_groups`.

    Args:
        model: the model.
        config: training settings.
    """
    groups = param_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch schedule `config.lr_factor` (step it once after every epoch).

    Args:
        optimizer: the optimizer.
        config: training settings.
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: config.lr_factor(epoch))


def rng_state() -> dict[str, Any]:
    """Global torch, CUDA, numpy and Python random states, in `weights_only`-loadable types."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"name": name, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "python": {"version": version, "internal": list(internal), "gauss": gauss}}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned.

    Args:
        state: from `rng_state`.
    """
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


def trainable_state(model: EmoCLIP) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters that train (frozen towers are identified by fingerprint instead).

    Args:
        model: the model.
    """
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_state(path: str | Path, model: EmoCLIP, optimizer: torch.optim.Optimizer, scheduler: Any,
               scaler: Any, epoch: int, history: list[dict[str, Any]], config: TrainConfig,
               best: dict[str, Any] | None, frozen_fingerprint: str) -> Path:
    """Write the resumable training state atomically.

    Args:
        path: destination (`run_dir/last.pt`).
        model: the model.
        optimizer: its optimizer.
        scheduler: its LR scheduler.
        scaler: GradScaler or None.
        epoch: number of completed epochs.
        history: per-epoch records so far.
        config: training settings.
        best: {"epoch", "value", "metric"} of best.pt, or None.
        frozen_fingerprint: fingerprint of the frozen parameters (checked on resume).
    """
    payload = {"format": STATE_FORMAT, "version": STATE_VERSION, "epoch": int(epoch),
               "trainable": trainable_state(model), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
               "rng": rng_state(), "history": history, "config": config.to_dict(),
               "model_config": model.config.to_dict(), "best": best, "frozen_fingerprint": frozen_fingerprint}
    return atomic_torch_save(payload, path)


def read_state(path: str | Path) -> dict[str, Any]:
    """Read a `last.pt` training state.

    Args:
        path: the file.
    Raises:
        UserError: unreadable or not a training state.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise UserError(f"cannot resume: {path} is unreadable ({err.__class__.__name__}: {err}); delete it to "
                        f"start over") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UserError(f"cannot resume: {path} is not a training state written by emoclip_lib.train.loop")
    return state


def check_compatible(state: dict[str, Any], model: EmoCLIP, config: TrainConfig, frozen_fingerprint: str,
                     path: str | Path) -> None:
    """Refuse to resume a run with different settings, model layout or frozen weights.

    Args:
        state: from `read_state`.
        model: the model to resume into.
        config: the settings of this call.
        frozen_fingerprint: fingerprint of this model's frozen parameters.
        path: the state file (for messages).
    """
    old, new = state["config"], config.to_dict()
    changed = sorted(k for k in set(old) | set(new) if k not in RESUME_FREE_KEYS and old.get(k) != new.get(k))
    if changed:
        diffs = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise UserError(f"cannot resume {path}: settings changed ({diffs}); restore them or use a new run_dir")
    if state["model_config"] != model.config.to_dict():
        raise UserError(f"cannot resume {path}: the model configuration differs from the saved run's; restore "
                        f"it, or delete {Path(path).parent} (or pass resume=False) to train anew")
    if state["frozen_fingerprint"] != frozen_fingerprint:
        raise UserError(f"cannot resume {path}: the frozen CLIP weights differ from the saved run's (another "
                        f"backbone, seed or pretraining); build the model from the same backbone and seed, or "
                        f"delete {Path(path).parent} (or pass resume=False) to train anew")


def restore(state: dict[str, Any], model: EmoCLIP, optimizer: torch.optim.Optimizer, scheduler: Any,
            scaler: Any) -> None:
    """Load weights, optimizer, scheduler, scaler and RNG states from a training state.

    Args:
        state: from `read_state` (checked with `check_compatible`).
        model: the model.
        optimizer: its optimizer.
        scheduler: its LR scheduler.
        scaler: GradScaler or None.
    """
    saved = state["trainable"]
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(saved) != set(params):
        raise UserError("cannot resume: the saved trainable parameters differ from the model's (was a tower "
                        "frozen or unfrozen?)")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(saved[name])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
