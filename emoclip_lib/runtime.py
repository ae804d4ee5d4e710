"""Small run-time helpers shared by notebooks and commands: device choice, seeding, DataLoader settings,
frame-encoding precision and batch size, rounding."""
from __future__ import annotations

import contextlib
import os
import random
import sys
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
        _deterministic_kernels()
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _deterministic_kernels() -> None:
    """torch's deterministic-algorithms flag, warnings only. `torch.use_deterministic_algorithms` also imports
    the `torch.compile` stack to set its own flag (2.8 s of notebook 05); nothing here compiles, so the
    kernel flag is set alone where torch has the setter (and the public call is made once compile is loaded)."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)


def loader_settings(device: torch.device) -> dict[str, Any]:
    """DataLoader settings: workers from the CPU count and pinned memory on CUDA, none on CPU.

    Args:
        device: where the model runs.
    """
    if device.type != "cuda":
        return {"num_workers": 0, "pin_memory": False}
    return {"num_workers": max(1, min(8, (os.cpu_count() or 2) - 1)), "pin_memory": True}


PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "auto")
_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Frames per forward pass of a CLIP image tower on the CPU: ViT-B/32 fp32 encodes 8.6, 7.9, 7.7 and 6.9
# frames/s at 16, 32, 64 and 256 frames a pass (one thread; benchmarks/bench_perf.py item 3, 2-core AVX-512
# box, results/perf-cpu-2c-2026-12-02.json): 16-64 are alike within the noise, 256 is 10-30 % slower.
CPU_FRAME_BATCH = 32


def resolve_precision(device: str | torch.device, precision: str = "fp32") -> str:
    """The concrete precision ("fp32", "bf16" or "fp16") that `precision` means on `device`.

    "auto" is bf16 on a CUDA GPU that has it (else fp16) and fp32 on the CPU, so that CPU results stay
    bit-for-bit repeatable; bf16 on the CPU is faster only where the CPU has bf16 units (AVX512-BF16, AMX).

    Args:
        device: where the model runs.
        precision: one of `PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dev = torch.device(device)
    if precision != "auto":
        return precision
    if dev.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast_context(device: str | torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """Autocast for inference at `precision` on `device`; "fp32" (the default) changes nothing.

    Matrix products and convolutions then run in bf16 / fp16 with fp32 accumulation; read the outputs
    with `.float()`.

    Args:
        device: where the model runs ("cpu", "cuda", ...).
        precision: one of `PRECISIONS` (see `resolve_precision`).
    """
    resolved = resolve_precision(device, precision)
    if resolved == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_DTYPES[resolved])


def frame_batch_size(device: str | torch.device, requested: int | None = None) -> int | None:
    """Most frames per forward pass of an image tower: `requested`, else `CPU_FRAME_BATCH` on the CPU and
    None (the whole batch at once) on a GPU.

    Args:
        device: where the model runs.
        requested: an explicit size (at least 1), or None for the device's default.
    """
    if requested is not None:
        if int(requested) < 1:
            raise UserError(f"frames per pass must be at least 1, got {requested}")
        return int(requested)
    return CPU_FRAME_BATCH if torch.device(device).type == "cpu" else None


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
