"""Frozen-backbone fast path: CLIP frame embeddings (and caption embeddings) cached on disk.

Layout under `cache_dir`:
- `frames/<k[:2]>/<k>.npy`: float32 (T, D) frame embeddings of one (clip, view); the key k hashes the
  clip's CONTENT (sha256 of the video file, or of a frame folder's listing and images), the visual
  tower's weights fingerprint and the preprocessing (size, clip_len, downsample, train, augment,
  seed, view). Renaming or moving a dataset keeps its cache; editing a video or the weights does not.
- `hashes/<writer>.json`: content hashes remembered per path + mtime + size (never rehash a file).
- `text/<fingerprint>.pt`: caption embeddings of a frozen text tower, keyed by sha256 of the text.
Every file is written atomically (temporary file + rename): a killed build resumes where it stopped.
View v of a clip is `VideoDataset(train=True, augment=...)` item after `set_epoch(v)`.

Each distinct frame of a clip view is encoded once: a short clip looped to `clip_len` positions (a 15-frame
clip in a 32-frame window) encodes its 15 frames and the embeddings are placed back into the (T, D) window.
Frames are encoded at most `runtime.frame_batch_size(device)` per pass of the image tower.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from .hashing import ContentHasher, tower_fingerprint
from .windows import encode_frames_in_passes
from ..data import VideoDataset, collate
from ..errors import DataError
from ..io_utils import atomic_torch_save, atomic_write
from ..data import ManifestRow
from ..data import tokenize
from ..runtime import frame_batch_size, resolve_precision
from ..workers import parallel_map, torch_workers

logger = logging.getLogger(__name__)

FRAME_CACHE_VERSION = 1  # bump when preprocessing or the file format changes: old entries are then ignored


@dataclass(frozen=True)
class Preprocessing:
    """How frames are prepared; part of every frame-cache key."""

    size: int
    clip_len: int
    downsample: int
    train: bool
    augment: bool
    seed: int

    def key(self, content: str, fingerprint: str, view: int) -> str:
        """Cache key of one (clip, view).

        Args:
            content: the clip's content hash.
            fingerprint: the visual tower's weights fingerprint.
            view: view number (dataset epoch); irrelevant (and ignored) without training randomness.
        """
        prep: dict[str, Any] = asdict(self)
        if not (self.train or self.augment):
            prep.update(seed=0, view=0)
        else:
            prep["view"] = int(view)
        blob = json.dumps({"v": FRAME_CACHE_VERSION, "content": content, "weights": fingerprint, **prep}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def entry_path(cache_dir: str | Path, key: str) -> Path:
    """File of a frame-cache entry.

    Args:
        cache_dir: cache root.
        key: from `Preprocessing.key`.
    """
    return Path(cache_dir) / "frames" / key[:2] / f"{key}.npy"


def _save_array(array: np.ndarray, path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)

    atomic_write(path, write)


@dataclass
class _BuildJob:
    """What one process builds: per view, the (row index, entry path) pairs still missing."""

    paths: dict[int, dict[int, str | None]]  # view -> row index -> entry path (None: unreadable clip)
    todo: dict[int, list[int]]  # view -> row indices to compute


def _plan(rows: Sequence[ManifestRow], root: Path, prep: Preprocessing, views: Sequence[int], shard: range,
          cache_dir: Path, fingerprint: str, hasher: ContentHasher, on_error: str, progress: bool) -> _BuildJob:
    """Hash the shard's clips and list the (clip, view) entries that are not on disk yet."""
    job = _BuildJob({v: {} for v in views}, {v: [] for v in views})
    for i in tqdm(shard, desc="hashing clips", disable=not progress, leave=False):
        try:
            content = hasher.hash(root / rows[i].path)
        except DataError as err:
            if on_error == "fail":
                raise DataError(f"manifest row {rows[i].row_number}: {err}") from None
            logger.warning("skipping manifest row %d: %s", rows[i].row_number, err)
            for v in views:
                job.paths[v][i] = None
            continue
        for v in views:
            path = entry_path(cache_dir, prep.key(content, fingerprint, v))
            job.paths[v][i] = str(path)
            if not path.is_file():
                job.todo[v].append(i)
    return job


def build_frame_cache(model: nn.Module, rows: Sequence[ManifestRow], root: str | Path, classes: tuple[str, ...],
                      prep: Preprocessing, views: Sequence[int], cache_dir: str | Path,
                      device: str | torch.device = "cpu", shard: range | None = None, writer: str = "main",
                      batch_size: int = 8, num_workers: int = 0, on_error: str = "skip", progress: bool = True,
                      fingerprint: str | None = None, frames_per_pass: int | None = None,
                      precision: str = "fp32") -> dict[int, dict[int, str | None]]:
    """Compute the missing frame-embedding entries of `rows` (those in `shard`) for every view.

    Args:
        model: EmoCLIP model with a frozen visual tower (`encode_frames`).
        rows: manifest rows (row i is dataset index i).
        root: dataset root.
        classes: class names accepted by `VideoDataset`.
        prep: preprocessing of the entries.
        views: view numbers to build (dataset epochs).
        cache_dir: cache root.
        device: where to run the visual tower.
        shard: row indices this process handles (default: all).
        writer: name of this process's hash index.
        batch_size: clips per forward pass.
        num_workers: DataLoader workers decoding videos.
        on_error: "skip" marks an unreadable clip None; "fail" raises DataError.
        progress: show progress bars.
        fingerprint: `tower_fingerprint(model, "visual")` when already known (hashing big towers takes time).
        frames_per_pass: most distinct frames per pass of the image tower (None: `runtime.frame_batch_size`,
            32 on the CPU, unlimited on a GPU); fp32 entries do not depend on it on 1-2 CPU threads
            (`windows.encode_frames_in_passes`).
        precision: "fp32" (default), "bf16", "fp16" or "auto" (`runtime.autocast_context`); entries of
            another precision than fp32 have their own keys.
    Returns:
        view -> row index -> entry path (None for unreadable clips), for the shard's rows.
    """
    cache_dir, root = Path(cache_dir), Path(root)
    shard = range(len(rows)) if shard is None else shard
    hasher = ContentHasher(cache_dir / "hashes", writer)
    fingerprint = fingerprint or tower_fingerprint(model, "visual")
    resolved = resolve_precision(device, precision)
    if resolved != "fp32":  # fp32 keys are those of earlier versions: their entries still hit
        fingerprint = f"{fingerprint}+{resolved}"
    job = _plan(rows, root, prep, views, shard, cache_dir, fingerprint, hasher, on_error, progress)
    if hasher.computed:
        hasher.save()
    total = sum(len(t) for t in job.todo.values())
    dataset = VideoDataset(list(rows), root, classes, prep.clip_len, prep.downsample, prep.size, prep.train,
                           prep.augment, prep.seed, on_error, return_indices=True)
    encoder = _FrameEncoder(model, device, frame_batch_size(device, frames_per_pass), resolved)
    with tqdm(total=total, desc="caching frame features", disable=not progress or total == 0) as bar:
        for view in views:
            if job.todo[view]:
                dataset.set_epoch(view)
                for index in _encode_view(encoder, dataset, job.todo[view], job.paths[view], batch_size,
                                          num_workers, bar):
                    job.paths[view][index] = None  # unreadable video (skipped and logged by the dataset)
    return job.paths


def _encode_view(encoder: _FrameEncoder, dataset: VideoDataset, todo: list[int], paths: dict[int, str | None],
                 batch_size: int, num_workers: int, bar: tqdm) -> list[int]:
    """Encode the `todo` clips of one view, on the CPU in one forked worker per core (worker k takes every
    k-th clip; the entries equal those of one process: the tower's fp32 frame outputs did not depend on the
    thread count on 1-2 threads, `tests/features/test_feature_cache.py`); the clips that could not be read."""
    jobs = torch_workers(torch.device(encoder.device), len(todo) // max(1, batch_size)) if num_workers == 0 else 1
    if jobs == 1:
        return _encode(encoder, dataset, todo, paths, batch_size, num_workers, bar)
    failed: list[int] = []
    shards = [todo[k::jobs] for k in range(jobs)]
    for shard, lost in zip(shards, parallel_map(lambda part: _encode(encoder, dataset, part, paths, batch_size, 0),
                                                shards, "", False, jobs, chunksize=1)):
        failed += lost
        bar.update(len(shard))
    return failed


def _collate_counted(items: list[Any]) -> tuple[Any, int]:
    return collate(items), len(items)


def distinct_frames(frame_indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Positions of the distinct frames of each clip, and where every position finds its frame.

    Args:
        frame_indices: (B, T) frame index of every position of every clip.
    Returns:
        (keep, inverse): keep (U, 2) long (clip, position) of the first occurrence of each distinct frame,
        inverse (B, T) long index into keep; None when no clip repeats a frame.
    """
    keep, inverse = [], torch.empty(frame_indices.shape, dtype=torch.long)
    for b, row in enumerate(frame_indices.tolist()):
        first: dict[int, int] = {}
        for t, frame in enumerate(row):
            if frame not in first:
                first[frame] = len(keep)
                keep.append((b, t))
            inverse[b, t] = first[frame]
    if len(keep) == frame_indices.numel():
        return None
    return torch.tensor(keep, dtype=torch.long).view(-1, 2), inverse


@dataclass
class _FrameEncoder:
    """How clip frames are encoded: the model, its device, frames per pass and the (resolved) precision."""

    model: nn.Module
    device: str | torch.device
    per_pass: int | None
    precision: str

    def __call__(self, frames: torch.Tensor, frame_indices: torch.Tensor | None) -> torch.Tensor:
        """(B, T, 3, S, S) frames of B clips (and their (B, T) frame indices) -> (B, T, D) float32 on the CPU."""
        b, t = frames.shape[:2]
        plan = None if frame_indices is None else distinct_frames(frame_indices)
        flat = frames.flatten(0, 1) if plan is None else frames[plan[0][:, 0], plan[0][:, 1]]  # (U, 3, S, S)
        feats = encode_frames_in_passes(self.model, flat, self.device, self.per_pass, self.precision).cpu()
        return feats.view(b, t, -1) if plan is None else feats[plan[1]]  # (B, T, D)


def _encode(encoder: _FrameEncoder, dataset: VideoDataset, todo: list[int], paths: dict[int, str | None],
            batch_size: int, num_workers: int, bar: tqdm | None = None) -> list[int]:
    """Encode the `todo` clips of one view and write one entry file per clip; the clips that could not be read."""
    loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, collate_fn=_collate_counted,
                        num_workers=num_workers)
    done: set[int] = set()
    with torch.no_grad():
        for batch, count in loader:
            if batch is not None:
                feats = encoder(batch["frames"], batch.get("frame_indices")).numpy()  # (B, T, D)
                for index, array in zip(batch["index"].tolist(), feats):
                    _save_array(np.ascontiguousarray(array), Path(paths[index]))  # type: ignore[arg-type]
                    done.add(index)
            if bar is not None:
                bar.update(count)
    return [index for index in todo if index not in done]


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _load_text_store(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        return {}
    try:
        store = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged cache file is rebuilt, not fatal
        logger.warning("rebuilding unreadable caption cache %s (%s)", path, err)
        return {}
    return dict(store) if isinstance(store, dict) else {}


def caption_embeddings(model: nn.Module, captions: Sequence[str], cache_dir: str | Path,
                       device: str | torch.device = "cpu", batch_size: int = 256, write: bool = True,
                       progress: bool = True) -> dict[str, torch.Tensor]:
    """Embeddings of a frozen text tower, cached per (text, weights fingerprint).

    Args:
        model: EmoCLIP model (`encode_text`).
        captions: texts (repeats allowed).
        cache_dir: cache root.
        device: where to run the text tower.
        batch_size: captions per forward pass.
        write: save new embeddings to disk (False on all but one process).
        progress: show a progress bar.
    Returns:
        caption -> float32 (D,) embedding on the CPU.
    """
    path = Path(cache_dir) / "text" / f"{tower_fingerprint(model, 'text')}.pt"
    store = _load_text_store(path)
    wanted = list(dict.fromkeys(captions))
    missing = [c for c in wanted if _text_key(c) not in store]
    for start in tqdm(range(0, len(missing), batch_size), desc="caching caption features",
                      disable=not progress or not missing):
        chunk = missing[start:start + batch_size]
        with torch.no_grad():
            emb = model.encode_text(tokenize(chunk).to(device)).float().cpu()  # (n, D)
        store.update({_text_key(c): e.clone() for c, e in zip(chunk, emb)})
        if write:
            atomic_torch_save(store, path)
    return {c: store[_text_key(c)] for c in wanted}
