"""Torch dataset over manifest rows: decode, sample, resize/crop, augment, normalise; and its collate."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError, UserError
from .manifest import ManifestRow
from .preprocess import augment_clip, normalize, resize_center_crop
from .video import count_frames, read_frames, sample_indices

logger = logging.getLogger(__name__)

ON_ERROR_CHOICES: tuple[str, ...] = ("fail", "skip")


class VideoDataset(Dataset):
    """Clips of the manifest rows, ready for the model.

    Each item is a dict: `frames` float32 (T, 3, size, size) CLIP-normalised, `label_ids` (indices
    into `classes` of every component class), `labels` (the manifest field), `caption`, `index`
    and `path` (as in the manifest). Training randomness (window start, augmentation) depends only
    on (seed, epoch, index), so results do not depend on the number of DataLoader workers; call
    `set_epoch` at the start of every epoch.

    With `on_error="skip"` a missing or corrupt video makes `__getitem__` return None (dropped by
    `collate`), is logged as a warning and is appended to `skipped` ("path: reason"). `skipped` is
    filled in the process that loads the item: with DataLoader workers, read the warnings (or run
    `emoclip validate` beforehand) for the complete list.

    With `return_indices=True` each item also holds `frame_indices`, the (T,) int64 frame index of every
    position (a short clip is looped, so indices repeat), and `collate` stacks them; the frame at a
    position depends only on its index (augmentation is identical for every frame of a clip).
    """

    def __init__(self, rows: list[ManifestRow], root: str | Path, classes: tuple[str, ...], clip_len: int = 32,
                 downsample: int = 2, size: int = 224, train: bool = False, augment: bool = False, seed: int = 0,
                 on_error: str = "fail", return_indices: bool = False) -> None:
        """Args:
            rows: manifest rows (e.g. `select(read_manifest(f), fold=1, split="train")`).
            root: dataset root the row paths are relative to.
            classes: class names; `label_ids` index into this tuple. Every row's labels must be in it.
            clip_len: frames per clip.
            downsample: keep every `downsample`-th frame before windowing.
            size: output side (resize shortest side, centre crop).
            train: random window start (else the deterministic centred window).
            augment: random rotation and flip, identical for every frame of a clip.
            seed: base seed of all randomness.
            on_error: "fail" raises DataError on a bad video; "skip" returns None for it.
            return_indices: add `frame_indices` (T,) to every item (off: items as before).
        """
        if on_error not in ON_ERROR_CHOICES:
            raise UserError(f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, got {on_error!r}")
        for name, value in (("clip_len", clip_len), ("downsample", downsample), ("size", size)):
            if int(value) < 1:
                raise UserError(f"{name} must be at least 1, got {value}")
        self.rows = list(rows)
        self.root = Path(root)
        self.classes = tuple(classes)
        self.clip_len, self.downsample, self.size = int(clip_len), int(downsample), int(size)
        self.train, self.augment, self.seed, self.on_error = bool(train), bool(augment), int(seed), on_error
        self.return_indices = bool(return_indices)
        self.epoch = 0
        self.skipped: list[str] = []
        lookup = {name: i for i, name in enumerate(self.classes)}
        self._label_ids = [self._row_label_ids(row, lookup) for row in self.rows]

    def _row_label_ids(self, row: ManifestRow, lookup: dict[str, int]) -> list[int]:
        unknown = [name for name in row.label_list if name not in lookup]
        if unknown:
            raise UserError(f"manifest row {row.row_number} ({row.path}): class {unknown[0]!r} is not among "
                            f"the dataset classes ({', '.join(self.classes)}); filter the rows or pass the classes")
        return [lookup[name] for name in row.label_list]

    def set_epoch(self, epoch: int) -> None:
        """Change the training randomness for a new epoch.

        Args:
            epoch: epoch number (0-based).
        """
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def _generators(self, index: int) -> tuple[np.random.Generator, torch.Generator]:
        """Independent numpy and torch generators seeded by (seed, epoch, index)."""
        seq = np.random.SeedSequence([self.seed, self.epoch, index])
        np_seq, torch_seq = seq.spawn(2)
        torch_gen = torch.Generator().manual_seed(int(torch_seq.generate_state(1, dtype=np.uint64)[0] >> 1))
        return np.random.default_rng(np_seq), torch_gen

    def _load(self, index: int) -> tuple[torch.Tensor, np.ndarray]:
        """Decode, sample and preprocess one clip -> float32 (T, 3, size, size) and its (T,) frame indices."""
        path = self.root / self.rows[index].path
        rng, torch_gen = self._generators(index)
        num_frames = count_frames(path)
        indices = sample_indices(num_frames, self.clip_len, self.downsample, self.train, rng)  # (T,)
        frames = resize_center_crop(read_frames(path, indices), self.size)  # (T, 3, S, S) in [0, 1]
        if self.augment:
            frames = augment_clip(frames, torch_gen)
        return normalize(frames), indices

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        row = self.rows[index]
        try:
            frames, indices = self._load(index)  # (T, 3, S, S), (T,)
        except DataError as err:
            if self.on_error == "fail":
                raise DataError(f"manifest row {row.row_number}: {err}") from None
            entry = f"{row.path}: {err}"
            if entry not in self.skipped:
                self.skipped.append(entry)
                logger.warning("skipping manifest row %d: %s", row.row_number, err)
            return None
        item = {"frames": frames, "label_ids": list(self._label_ids[index]), "labels": row.labels,
                "caption": row.caption, "index": index, "path": row.path, "num_classes": len(self.classes)}
        if self.return_indices:
            item["frame_indices"] = torch.from_numpy(np.asarray(indices, dtype=np.int64))  # (T,)
        return item


def collate(batch: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Stack dataset items, dropping the None items of skipped videos.

    Args:
        batch: items from `VideoDataset.__getitem__`.
    Returns:
        dict with `frames` (B, T, 3, S, S), `label_ids` (list of lists), `targets` multi-hot (B, C)
        float, `primary` (B,) long (first label, -1 if none), `labels`, `captions`, `paths`,
        `index` (B,) long and `dropped` (how many items were None), plus `frame_indices` (B, T) long when
        the items carry them; None when every item was dropped.
    """
    items = [item for item in batch if item is not None]
    if not items:
        return None
    num_classes = int(items[0]["num_classes"])
    targets = torch.zeros(len(items), num_classes)  # (B, C)
    for b, item in enumerate(items):
        targets[b, item["label_ids"]] = 1.0
    primary = torch.tensor([item["label_ids"][0] if item["label_ids"] else -1 for item in items],
                           dtype=torch.long)  # (B,)
    out = {
        "frames": torch.stack([item["frames"] for item in items]),  # (B, T, 3, S, S)
        "label_ids": [list(item["label_ids"]) for item in items],
        "targets": targets,
        "primary": primary,
        "labels": [item["labels"] for item in items],
        "captions": [item["caption"] for item in items],
        "paths": [item["path"] for item in items],
        "index": torch.tensor([item["index"] for item in items], dtype=torch.long),  # (B,)
        "dropped": len(batch) - len(items),
    }
    if all("frame_indices" in item for item in items):
        out["frame_indices"] = torch.stack([item["frame_indices"] for item in items])  # (B, T)
    return out
