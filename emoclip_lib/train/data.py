"""Training data plumbing: the validation split, caption filtering, and loaders whose batches know where
each sample sits in the epoch's global order (so that padded or unreadable samples can be masked)."""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .distributed import DistContext, PositionedSampler, make_sampler
from ..errors import UserError
from ..data import ManifestRow

logger = logging.getLogger(__name__)


def split_train_val(rows: list[ManifestRow], fraction: float = 0.1, group: str = "subject",
                    seed: int = 0) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """Carve a validation set out of the TRAINING rows, disjoint by subject (or by clip).

    With `group="subject"` all rows of a subject land on the same side; rows with an empty subject
    are grouped by their clip path (so a manifest without subjects gets a clip-disjoint split).
    Groups are drawn in a seeded order; each is held out when that brings the held-out count closer
    to `fraction` of the rows.

    Args:
        rows: training rows of one fold (never pass test rows: the test fold must stay unseen).
        fraction: share of rows to hold out, in [0, 1); 0 gives an empty validation set.
        group: "subject" or "clip".
        seed: seed of the group order.
    Returns:
        (train_rows, val_rows), each in the input order.
    Raises:
        UserError: for test rows, a bad fraction or group, or too few groups to split.
    """
    if group not in ("subject", "clip"):
        raise UserError(f"val_group must be 'subject' or 'clip', got {group!r}")
    if not 0.0 <= fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {fraction}")
    test_rows = [r for r in rows if r.split != "train"]
    if test_rows:
        raise UserError(f"split_train_val got {len(test_rows)} test row(s) (e.g. manifest row "
                        f"{test_rows[0].row_number}, {test_rows[0].path}); pass only the training rows: "
                        f"validation is carved from the training split, never from the test fold")
    if fraction == 0.0 or not rows:
        return list(rows), []
    keys = [r.subject if (group == "subject" and r.subject) else f"clip:{r.path}" for r in rows]
    groups = sorted(set(keys))
    if len(groups) < 2:
        raise UserError(f"cannot hold out a {group}-disjoint validation set: all {len(rows)} rows belong to "
                        f"one {group}; use val_group='clip' or val_fraction=0")
    order = np.random.default_rng(int(seed)).permutation(len(groups))
    sizes = {g: 0 for g in groups}
    for key in keys:
        sizes[key] += 1
    target = max(1, round(fraction * len(rows)))
    held: set[str] = set()
    count = 0
    for i in order:
        g = groups[int(i)]
        closer = abs(count + sizes[g] - target) < abs(count - target)
        if not closer or len(rows) - count - sizes[g] < 1:
            continue
        held.add(g)
        count += sizes[g]
    train = [r for r, k in zip(rows, keys) if k not in held]
    val = [r for r, k in zip(rows, keys) if k in held]
    return train, val


def drop_empty_captions(rows: list[ManifestRow]) -> tuple[list[ManifestRow], int]:
    """Remove rows without a caption (they have no text to contrast with).

    Args:
        rows: manifest rows.
    Returns:
        (rows with a non-blank caption, number dropped).
    """
    kept = [r for r in rows if r.caption.strip()]
    return kept, len(rows) - len(kept)


class PositionedDataset(Dataset):
    """Looks items up by the (index, position) pairs of a `PositionedSampler`; returns (item, position)."""

    def __init__(self, base: Dataset) -> None:
        """Args:
            base: dataset returning dicts (or None for an unreadable sample)."""
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        index, position = key
        return self.base[index], position


class PositionedCollate:
    """Collate (item, position) pairs into the valid items plus their slots in the local batch.

    A slot is valid when its item was readable and its position is a real sample (< `total`), not
    one of DistributedSampler's padding duplicates.
    """

    def __init__(self, inner: Callable[[list[Any]], Any], total: int) -> None:
        """Args:
            inner: collate function of the valid items.
            total: number of samples in the epoch (dataset length)."""
        self.inner, self.total = inner, int(total)

    def __call__(self, pairs: list[tuple[Any, int]]) -> dict[str, Any]:
        valid = [s for s, (item, pos) in enumerate(pairs) if item is not None and pos < self.total]
        missing = sum(1 for item, pos in pairs if item is None and pos < self.total)
        batch = self.inner([pairs[s][0] for s in valid]) if valid else None
        return {"batch": batch, "slots": torch.tensor(valid, dtype=torch.long),  # (n_valid,)
                "n_slots": len(pairs), "missing": missing}


def make_train_loader(dataset: Dataset, inner_collate: Callable[[list[Any]], Any], ctx: DistContext,
                      batch_size: int, seed: int, num_workers: int = 0) -> DataLoader:
    """Loader of positioned local batches in the seeded global order (call `loader.sampler.set_epoch`).

    Args:
        dataset: training dataset (items are dicts or None).
        inner_collate: collate of the valid items.
        ctx: process context.
        batch_size: GLOBAL batch size; each process loads batch_size / world_size.
        seed: shuffling seed.
        num_workers: DataLoader workers.
    """
    if batch_size % ctx.world_size:
        raise UserError(f"batch_size {batch_size} is the global batch and must be divisible by the "
                        f"{ctx.world_size} processes")
    sampler = PositionedSampler(make_sampler(dataset, ctx, seed), ctx)
    return DataLoader(PositionedDataset(dataset), batch_size=batch_size // ctx.world_size, sampler=sampler,
                      collate_fn=PositionedCollate(inner_collate, len(dataset)),  # type: ignore[arg-type]
                      num_workers=num_workers, pin_memory=ctx.device.type == "cuda")


def make_eval_loader(dataset: Dataset, inner_collate: Callable[[list[Any]], Any], batch_size: int,
                     num_workers: int = 0) -> DataLoader:
    """Single-process loader in dataset order, with the same positioned batches as training.

    Args:
        dataset: evaluation dataset.
        inner_collate: collate of the valid items.
        batch_size: clips per batch.
        num_workers: DataLoader workers.
    """
    sampler = PositionedSampler(make_sampler(dataset, DistContext(), seed=0, shuffle=False), DistContext())
    return DataLoader(PositionedDataset(dataset), batch_size=batch_size, sampler=sampler,
                      collate_fn=PositionedCollate(inner_collate, len(dataset)), num_workers=num_workers)
