"""Writing synthetic clips (mp4v, 16 fps), CSV tables, and the fold layout of the synthetic manifests."""
from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from ..data import ManifestRow
from ..errors import UserError

FPS = 16
N_FOLDS = 5


def write_video(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    """Write RGB frames as an mp4 (MPEG-4 part 2, fourcc 'mp4v'); the bytes depend only on the frames.

    Args:
        path: output file; its folder must exist.
        frames: (T, H, W, 3) uint8 RGB.
        fps: frame rate.
    Raises:
        UserError: when OpenCV cannot open the file for writing.
    """
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise UserError(f"cannot write video {path}: check that the folder exists and is writable")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a UTF-8 CSV with the csv module's minimal quoting and '\\n' line ends.

    Args:
        path: output file.
        header: column names.
        rows: one sequence per row, in header order.
    """
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def fold_rows(clips: Sequence[tuple[str, str, str, int, str]]) -> list[ManifestRow]:
    """Expand clips into manifest rows: one row per clip and fold, test in its own fold.

    Args:
        clips: (path, labels, caption, fold of the clip, subject) per clip.
    Returns:
        rows ordered by fold then clip.
    """
    return [ManifestRow(path, labels, caption, "test" if clip_fold == fold else "train", fold, subject)
            for fold in range(1, N_FOLDS + 1) for path, labels, caption, clip_fold, subject in clips]


def subject_folds(n_subjects: int, rng: np.random.Generator) -> list[int]:
    """Assign subjects to folds 1..5 in equal shares (subject-disjoint folds).

    Args:
        n_subjects: number of subjects.
        rng: random source of the assignment.
    Returns:
        fold of each subject.
    """
    if n_subjects < N_FOLDS:
        raise UserError(f"{n_subjects} subjects cannot fill {N_FOLDS} subject-disjoint folds: use at least {N_FOLDS}")
    folds = [0] * n_subjects
    for rank, subject in enumerate(rng.permutation(n_subjects).tolist()):
        folds[subject] = rank % N_FOLDS + 1
    return folds
