"""Datasets over cached frame embeddings (see `feature_cache`): what the frozen-backbone fast path trains on."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError, UserError


class CachedClipDataset(Dataset):
    """Cached frame embeddings of a list of clips, one entry file per (clip, view).

    Items: dict `features` float32 (T, D), `caption`, `text_emb` ((D,) or None) and `index`, or None
    for an unreadable clip. `set_epoch(v)` selects view v % number of views. Entries read once are kept in
    memory (up to `memory_bytes`; entry files are named by their content, so they never change): a
    training then reads each file once instead of once per epoch.
    """

    def __init__(self, view_paths: Sequence[Sequence[str | None]], captions: Sequence[str],
                 text_emb: dict[str, torch.Tensor] | None = None, memory_bytes: int = 256 << 20) -> None:
        """Args:
            view_paths: per view, the entry path of every clip (None when unreadable).
            captions: caption of every clip.
            text_emb: caption -> embedding (frozen text tower), or None to return captions only.
            memory_bytes: entries kept in memory after their first read, at most this many bytes (0: none;
                with DataLoader workers, each worker keeps its own)."""
        if not view_paths or any(len(p) != len(captions) for p in view_paths):
            raise UserError("CachedClipDataset needs at least one view and one path per caption")
        self.view_paths = [list(p) for p in view_paths]
        self.captions, self.text_emb, self.view = list(captions), text_emb, 0
        self.memory_bytes, self._kept_bytes = int(memory_bytes), 0
        self._kept: dict[str, torch.Tensor] = {}

    def set_epoch(self, view: int) -> None:
        """Args:
            view: view number (taken modulo the number of cached views)."""
        self.view = int(view) % len(self.view_paths)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        path = self.view_paths[self.view][index]
        if path is None:
            return None
        features = self._kept.get(path)
        if features is None:
            features = self._read(path)  # (T, D)
        caption = self.captions[index]
        text = self.text_emb[caption] if self.text_emb is not None else None
        return {"features": features, "caption": caption, "text_emb": text, "index": index}

    def _read(self, path: str) -> torch.Tensor:
        """One entry file, kept in memory while the budget allows."""
        try:
            features = torch.from_numpy(np.load(path, allow_pickle=False))  # (T, D)
        except (OSError, ValueError) as err:
            raise DataError(f"feature cache file {path} is unreadable ({err}); delete it (or the whole cache "
                            f"folder) and run again to rebuild it") from None
        size = features.numel() * features.element_size()
        if self._kept_bytes + size <= self.memory_bytes:
            self._kept[path], self._kept_bytes = features, self._kept_bytes + size
        return features


def collate_features(items: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Stack cached items (None items are dropped).

    Args:
        items: from `CachedClipDataset` (or any dataset with the same item keys).
    Returns:
        dict `features` (B, T, D), `captions`, `text_emb` (B, D) or None, `index` (B,); None if empty.
    """
    kept = [item for item in items if item is not None]
    if not kept:
        return None
    has_text = all(item["text_emb"] is not None for item in kept)
    return {"features": torch.stack([item["features"] for item in kept]),  # (B, T, D)
            "captions": [item["caption"] for item in kept],
            "text_emb": torch.stack([item["text_emb"] for item in kept]) if has_text else None,  # (B, D)
            "index": torch.tensor([item["index"] for item in kept], dtype=torch.long)}  # (B,)
