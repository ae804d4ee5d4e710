"""Fingerprints that key the feature caches: content hashes of videos (file bytes, or a frame folder's
names and images, remembered on disk per path + mtime + size so that a dataset is read in full only
once) and hashes of model weights (a tower, or any modules)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..data import list_frame_files
from ..errors import DataError
from ..io_utils import atomic_write_json

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def content_hash(path: str | Path) -> str:
    """sha256 of a video file's bytes, or of a frame folder's frame names and image bytes (natural order).

    Args:
        path: video file or frame folder.
    """
    path = Path(path)
    digest = hashlib.sha256()
    files = list_frame_files(path) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(f"{file.name}\0{file.stat().st_size}\0".encode())
        with open(file, "rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


def _signature(path: Path) -> str:
    """Cheap change detector: mtime and size of the file (of every frame file of a folder)."""
    files = list_frame_files(path) if path.is_dir() else [path]
    parts = []
    for file in files:
        st = file.stat()
        parts.append(f"{file.name}:{st.st_mtime_ns}:{st.st_size}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


class ContentHasher:
    """`content_hash` remembered on disk per (path, mtime, size), so that each file is read once."""

    def __init__(self, folder: str | Path | None, writer: str = "main") -> None:
        """Args:
            folder: where the `<writer>.json` indexes live (None keeps them in memory only).
            writer: this process's index name (distinct per process when several build at once)."""
        self.folder = Path(folder) if folder is not None else None
        self.writer = writer
        self.index: dict[str, dict[str, str]] = {}
        self.computed = 0  # hashes computed (not found in the index)
        for file in sorted(self.folder.glob("*.json")) if self.folder and self.folder.is_dir() else []:
            try:
                self.index.update(json.loads(file.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                logger.warning("ignoring unreadable hash index %s", file)

    def hash(self, path: str | Path) -> str:
        """Content hash of `path` (from the index when the file is unchanged).

        Args:
            path: video file or frame folder.
        Raises:
            DataError: when the path does not exist.
        """
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path} does not exist: check the dataset root and the manifest path")
        key, sig = str(path.resolve()), _signature(path)
        entry = self.index.get(key)
        if entry is None or entry.get("sig") != sig:
            entry = {"sig": sig, "sha256": content_hash(path)}
            self.index[key] = entry
            self.computed += 1
        return entry["sha256"]

    def save(self) -> None:
        """Write this writer's index atomically (no-op without a folder)."""
        if self.folder is not None:
            atomic_write_json(self.index, self.folder / f"{self.writer}.json")


def weights_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of named tensors (order-independent).

    Args:
        tensors: e.g. `dict(module.named_parameters())`.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())  # hashed in place, no copy
    return digest.hexdigest()


def tower_fingerprint(model: nn.Module, tower: str) -> str:
    """Fingerprint of the CLIP visual ("visual") or text ("text") tower of an EmoCLIP model.

    Args:
        model: EmoCLIP model (its `backbone` is OpenAI CLIP).
        tower: "visual" or "text".
    """
    named = dict(model.backbone.named_parameters())  # type: ignore[union-attr]
    named.update(dict(model.backbone.named_buffers()))  # type: ignore[union-attr]
    is_visual = {k: k.startswith("visual.") for k in named}
    keep = {k: v for k, v in named.items() if is_visual[k] == (tower == "visual") and k != "logit_scale"}
    return weights_fingerprint(keep)


def modules_fingerprint(modules: Sequence[tuple[str, nn.Module]]) -> str:
    """`weights_fingerprint` of the parameters and buffers of several modules.

    Args:
        modules: (prefix, module) pairs; keys are prefixed so that different modules never collide.
    """
    return weights_fingerprint({f"{prefix}.{key}": tensor for prefix, module in modules
                                for key, tensor in module.state_dict().items()})
