"""Small run-time helpers shared by notebooks and commands: device choice, seeding, DataLoader settings, rounding."""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from .errors import UserError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` picks CUDA when available, else CPU; a device that does not exist here is an error.

    Args:
        device: "auto", "cpu", "cuda", "cuda:N" or a torch.device.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UserError(f"device {device!r} is not a device name ({err}); use 'auto', 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={str(device)!r} but no CUDA GPU is visible; use device='auto' or 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"device {device!r} is not supported; use 'auto', 'cpu' or 'cuda'")
    return dev


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; on CPU, runs are then bit-for-bit repeatable.

    Args:
        seed: the run's single seed.
        deterministic: ask torch for deterministic kernels where they exist.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def loader_settings(device: torch.device) -> dict[str, Any]:
    """DataLoader settings: workers from the CPU count and pinned memory on CUDA, none on CPU.

    Args:
        device: where the model runs.
    """
    if device.type != "cuda":
        return {"num_workers": 0, "pin_memory": False}
    return {"num_workers": max(1, min(8, (os.cpu_count() or 2) - 1)), "pin_memory": True}


def rounded(value: Any, digits: int = 3) -> Any:
    """Round every float in a nested structure (for the metric cells nbval compares).

    Args:
        value: numbers, lists, dicts.
        digits: decimals kept.
    """
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    if isinstance(value, (float, np.floating)):
        return round(float(value), digits)
    if isinstance(value, np.integer):
        return int(value)
    return value
