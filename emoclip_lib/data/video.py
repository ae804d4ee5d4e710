"""Video decoding (video files through decord, frame folders through PIL) and temporal sampling.

Temporal sampling keeps every `downsample`-th frame and takes a window of `clip_len` of those:
a random start in training, wrapping around the end of the clip (as the official code does), and
the centred window in evaluation. A clip with fewer than `clip_len` kept frames is looped (its
kept frames repeated from the first one) until the window is full, so sampling never fails.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import DataError, UserError

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")


def natural_key(name: str) -> list[object]:
    """Sort key putting `frame2.png` before `frame10.png`.

    Args:
        name: a file name.
    """
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | Path) -> list[Path]:
    """The image files of a frame folder (*.jpg, *.jpeg, *.png), in natural order.

    Args:
        folder: a folder holding one image per frame.
    """
    files = [p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.name))


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what native code (FFmpeg, decord) writes to the process's stderr inside the block.

    File descriptor 2 points to /dev/null inside the block and is restored after it, also on an
    exception; Python-level text written to `sys.stderr` inside the block is dropped too, so keep
    progress bars outside it.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _open_video(path: Path):  # -> decord.VideoReader
    """Open a video with decord on the CPU, turning its errors into DataError."""
    import decord  # imported here: frame-folder datasets never need it

    try:
        return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as err:  # decord raises RuntimeError/DECORDError with a C++ message
        raise DataError(f"cannot decode video {path}: {str(err).splitlines()[0]}; the file may be corrupt "
                        f"or truncated, re-extract it from the dataset archive") from None


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path} does not exist: check the dataset root and the manifest path")


def count_frames(path: str | Path) -> int:
    """Number of frames of a video file or frame folder (cheap: no pixel decoding).

    Args:
        path: video file or folder of frames.
    Raises:
        DataError: for a missing, unreadable or empty video.
    """
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        count = len(list_frame_files(path))
    else:
        count = len(_open_video(path))
    if count < 1:
        raise DataError(f"{path} has no frames (frame folders need *.jpg, *.jpeg or *.png files)")
    return count


def _check_indices(path: Path, indices: Sequence[int], count: int) -> list[int]:
    """Indices as a list of ints, each within [0, count)."""
    out = [int(i) for i in indices]
    if not out:
        raise UserError(f"no frame indices requested for {path}")
    bad = [i for i in out if i < 0 or i >= count]
    if bad:
        raise UserError(f"frame index {bad[0]} is out of range for {path}, which has {count} frames")
    return out


def _read_folder(folder: Path, indices: Sequence[int] | None) -> np.ndarray:
    """Decode frames from a folder of images -> (T, H, W, 3) uint8."""
    from PIL import Image

    files = list_frame_files(folder)
    if not files:
        raise DataError(f"{folder} has no frames (frame folders need *.jpg, *.jpeg or *.png files)")
    wanted = list(range(len(files))) if indices is None else _check_indices(folder, indices, len(files))
    cache: dict[int, np.ndarray] = {}
    size: tuple[int, int] | None = None
    for i in dict.fromkeys(wanted):
        try:
            with Image.open(files[i]) as img:
                img = img.convert("RGB")
                size = size or img.size
                if img.size != size:  # frames of one clip must share a size: resize odd ones out
                    img = img.resize(size, Image.BILINEAR)
                cache[i] = np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read frame {files[i]}: {err}; replace or delete the broken image") from None
    return np.stack([cache[i] for i in wanted])


def _read_video(path: Path, indices: Sequence[int] | None) -> np.ndarray:
    """Decode frames from a video file -> (T, H, W, 3) uint8."""
    reader = _open_video(path)
    count = len(reader)
    if count < 1:
        raise DataError(f"{path} has no frames; re-extract it from the dataset archive")
    wanted = list(range(count)) if indices is None else _check_indices(path, indices, count)
    try:
        return reader.get_batch(wanted).asnumpy()
    except Exception as err:
        raise DataError(f"cannot decode frames of {path}: {str(err).splitlines()[0]}; the file may be "
                        f"corrupt or truncated") from None


def read_frames(path: str | Path, indices: Sequence[int] | np.ndarray | None = None) -> torch.Tensor:
    """Decode a video file or a frame folder.

    Args:
        path: video file (any format decord/FFmpeg reads) or folder of *.jpg/*.jpeg/*.png frames
            (natural sort order; frames whose size differs from the first are resized to it).
        indices: frame indices to decode (repeats allowed); None decodes every frame.
    Returns:
        uint8 tensor (T, 3, H, W), RGB.
    Raises:
        DataError: for a missing, unreadable or corrupt file, naming it.
    """
    path = Path(path)
    _check_exists(path)
    array = _read_folder(path, indices) if path.is_dir() else _read_video(path, indices)  # (T, H, W, 3)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()  # (T, 3, H, W)


def _check_sampling(num_frames: int, clip_len: int, downsample: int) -> None:
    for name, value in (("num_frames", num_frames), ("clip_len", clip_len), ("downsample", downsample)):
        if int(value) < 1:
            raise UserError(f"{name} must be at least 1, got {value}")


def window_indices(num_frames: int, clip_len: int, downsample: int, start: int) -> np.ndarray:
    """Frame indices of the window beginning at frame `start`, looping over the kept frames.

    Args:
        num_frames: frames in the video.
        clip_len: frames in the window.
        downsample: keep every `downsample`-th frame (0, d, 2d, ...).
        start: first frame of the window; must be a multiple of `downsample`.
    Returns:
        int64 array (clip_len,).
    """
    _check_sampling(num_frames, clip_len, downsample)
    kept = np.arange(0, num_frames, downsample, dtype=np.int64)  # (N,)
    first = int(start) // downsample
    return kept[(first + np.arange(clip_len)) % len(kept)]


def sample_indices(num_frames: int, clip_len: int, downsample: int, train: bool,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Pick the frames of one clip.

    Args:
        num_frames: frames in the video (>= 1).
        clip_len: frames to return.
        downsample: keep every `downsample`-th frame before windowing.
        train: random start anywhere among the kept frames, wrapping around the end (needs `rng`);
            otherwise the centred window (deterministic).
        rng: random generator for training.
    Returns:
        int64 array (clip_len,) of frame indices; short clips are looped.
    """
    _check_sampling(num_frames, clip_len, downsample)
    kept = -(-num_frames // downsample)  # number of kept frames
    if train:
        if rng is None:
            raise UserError("sample_indices(train=True) needs a numpy Generator `rng` for reproducibility")
        first = int(rng.integers(0, kept))
    else:
        first = max(0, (kept - clip_len) // 2)
    return window_indices(num_frames, clip_len, downsample, first * downsample)


def window_starts(num_frames: int, clip_len: int, downsample: int, stride: int | None = None) -> np.ndarray:
    """Start frames of sliding windows covering a long video (use with `window_indices`).

    Windows hold `clip_len` kept frames and advance by `stride` kept frames (default `clip_len`:
    no overlap); a last window aligned with the end is added when the stride leaves a tail uncovered.
    A video with at most `clip_len` kept frames gets the single start 0 (that window is looped).

    Args:
        num_frames: frames in the video.
        clip_len: kept frames per window.
        downsample: keep every `downsample`-th frame.
        stride: step between windows in kept frames.
    Returns:
        int64 array of start frame indices (multiples of `downsample`).
    """
    _check_sampling(num_frames, clip_len, downsample)
    stride = clip_len if stride is None else int(stride)
    if stride < 1:
        raise UserError(f"stride must be at least 1, got {stride}")
    kept = -(-num_frames // downsample)
    if kept <= clip_len:
        return np.zeros(1, dtype=np.int64)
    firsts = list(range(0, kept - clip_len + 1, stride))
    if firsts[-1] != kept - clip_len:
        firsts.append(kept - clip_len)
    return np.asarray(firsts, dtype=np.int64) * downsample
