"""Data side of the CLIP pretraining (`clip_pretrain`): (frame, caption) pairs, decoded frames, batch order.

Frames are decoded once per clip (a few, evenly spaced in the expressive middle of the clip), resized to
the model's resolution and kept in memory as uint8.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError
from ..data import ManifestRow
from ..data import normalize, resize_center_crop_uint8
from ..synth import web_stills
from ..data import tokenize
from ..data import count_frames, read_frames
from ..workers import parallel_map

# Frames are taken evenly from this span of the clip (fractions of its length): the expressive middle.
FRAME_SPAN: tuple[float, float] = (0.25, 0.75)


def training_pairs(rows: list[ManifestRow]) -> list[ManifestRow]:
    """The rows to pretrain on: captioned rows, one per path (a manifest repeats a clip once per fold).

    Args:
        rows: manifest rows (usually the training split).
    Raises:
        DataError: when one path carries two different captions.
    """
    seen: dict[str, ManifestRow] = {}
    for row in rows:
        if not row.caption.strip():
            continue
        first = seen.setdefault(row.path, row)
        if first.caption != row.caption:
            raise DataError(f"manifest rows {first.row_number} and {row.row_number} give {row.path} two "
                            f"different captions; a clip must have one caption in every fold")
    return sorted(seen.values(), key=lambda r: r.path)


def frame_positions(num_frames: int, frames_per_clip: int) -> list[int]:
    """Evenly spaced frame indices in the middle of a clip (`FRAME_SPAN`), repeats allowed for short clips.

    Args:
        num_frames: frames in the video (>= 1).
        frames_per_clip: how many indices to return.
    """
    lo, hi = FRAME_SPAN
    fractions = [lo + (hi - lo) * (k + 0.5) / frames_per_clip for k in range(frames_per_clip)]
    return [min(num_frames - 1, int(f * num_frames)) for f in fractions]


def load_frames(rows: list[ManifestRow], root: str | Path, frames_per_clip: int, size: int,
                progress: bool = True) -> torch.Tensor:
    """Decode a few middle frames of each clip, resized and centre-cropped to `size`, as uint8.

    Args:
        rows: one row per clip (see `training_pairs`).
        root: dataset root the rows' paths are relative to.
        frames_per_clip: frames kept per clip (evenly spaced, see `frame_positions`).
        size: side length of the kept frames (the model's input resolution).
        progress: show a progress bar.
    Returns:
        uint8 tensor (N, F, 3, size, size).
    """
    def decode(row: ManifestRow) -> torch.Tensor:
        path = Path(root) / row.path
        frames = read_frames(path, frame_positions(count_frames(path), frames_per_clip))  # (F, 3, H, W)
        return resize_center_crop_uint8(frames, size)  # (F, 3, size, size)

    out = torch.empty(len(rows), frames_per_clip, 3, size, size, dtype=torch.uint8)
    for i, frames in enumerate(parallel_map(decode, rows, "decoding frames", progress, chunksize=8)):  # every core
        out[i] = frames
    return out


def clip_groups(rows: list[ManifestRow], by_subject: bool) -> torch.Tensor:
    """Group id per clip, numbered in order of appearance: its subject (a row without one is its own group).

    Args:
        rows: one row per clip.
        by_subject: group clips by `subject`; False puts every clip in its own group.
    Returns:
        (N,) int64 tensor.
    """
    ids: dict[object, int] = {}
    for i, row in enumerate(rows):
        ids.setdefault(row.subject if by_subject and row.subject else i, len(ids))
    return torch.tensor([ids[r.subject if by_subject and r.subject else i] for i, r in enumerate(rows)])


def epoch_order(groups: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random order of the clips that keeps each group (subject) together, groups in random order.

    Args:
        groups: (N,) int64 group id of each clip; all-distinct ids give a plain random permutation.
        g: random source.
    Returns:
        (N,) int64 permutation of the clip indices.
    """
    perm = torch.randperm(len(groups), generator=g)  # (N,)
    rank = torch.randperm(int(groups.max()) + 1, generator=g)  # a random rank per group
    return perm[torch.sort(rank[groups[perm]], stable=True).indices]


class PretrainData(NamedTuple):
    """Everything one pretraining epoch draws from: N training clips first, then the web pictures."""

    frames: torch.Tensor  # (N + M, F, 3, S, S) uint8; a web picture is repeated F times
    tokens: torch.Tensor  # (N + M, 77) caption tokens
    groups: torch.Tensor  # (N + M,) batch group of each item (a subject, or the item alone)
    augment: torch.Tensor  # (N + M,) bool: augment this item (training clips) or not (web pictures)


def assemble_data(pairs: list[ManifestRow], root: str | Path, frames_per_clip: int, size: int, by_subject: bool,
                  web_pictures: int, seed: int, progress: bool = True,
                  web_cache: str | Path | None = None) -> PretrainData:
    """Decode the training clips' frames and draw `web_pictures` synthetic web pictures (`synth_web`).

    Args:
        pairs: one row per clip (see `training_pairs`).
        root: dataset root the rows' paths are relative to.
        frames_per_clip: frames kept per clip.
        size: the model's input resolution.
        by_subject: group clips by subject (see `clip_groups`); web pictures are each their own group.
        web_pictures: number of web pictures (0 = the training clips only).
        seed: seed of the web corpus.
        progress: show progress bars.
        web_cache: folder keeping the drawn web pictures for the next run (`synth.web_stills`), or None.
    """
    frames = load_frames(pairs, root, frames_per_clip, size, progress)  # (N, F, 3, S, S)
    stills, captions = web_stills(web_pictures, seed, size, progress, cache_dir=web_cache)  # (M, 3, S, S)
    groups = clip_groups(pairs, by_subject)
    first = int(groups.max()) + 1 if len(groups) else 0
    return PretrainData(
        frames=torch.cat([frames, stills[:, None].expand(-1, frames_per_clip, -1, -1, -1)]),
        tokens=tokenize([r.caption for r in pairs] + captions),
        groups=torch.cat([groups, first + torch.arange(web_pictures)]),
        augment=torch.cat([torch.ones(len(pairs), dtype=torch.bool), torch.zeros(web_pictures, dtype=torch.bool)]))


@torch.no_grad()
def embed_images(model: nn.Module, frames: torch.Tensor, device: str | torch.device = "cpu",
                 batch_size: int = 512) -> torch.Tensor:
    """L2-normalised CLIP image embeddings of uint8 frames already at the model's resolution.

    Args:
        model: OpenAI CLIP (its mode is left unchanged; CLIP has no dropout or batch norm).
        frames: (N, 3, S, S) uint8 frames, e.g. `load_frames(...)[:, k]`.
        device: where to run the image tower.
        batch_size: frames per forward pass.
    Returns:
        (N, D) float32 CPU tensor.
    """
    out = [F.normalize(model.encode_image(normalize(chunk).to(device)).float(), dim=-1).cpu()
           for chunk in frames.split(batch_size)]
    return torch.cat(out)
