"""EmoCLIP reproducibility suite: the shared library behind the notebooks and the `emoclip` command.

Public entry points are imported lazily so that `import emoclip_lib` stays cheap and side-effect free.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "load_clip": "clip_backbone",
    "tokenize": "tokenizer",
    "preprocess_frames": "preprocess",
    "build_model": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "EmoCLIP": "model",
    "ModelConfig": "model",
    "TemporalConfig": "model",
    "contrastive_loss": "model",
    "UserError": "errors",
}
__all__ = sorted(_EXPORTS) + ["metrics"]


def __getattr__(name: str) -> Any:
    if name == "metrics":
        return importlib.import_module(".metrics", __name__)
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'emoclip_lib' has no attribute {name!r}")
