"""Decoding video files and frame folders; temporal sampling."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emoclip_lib.errors import DataError, UserError
from emoclip_lib.data.video import (
    count_frames,
    list_frame_files,
    read_frames,
    sample_indices,
    window_indices,
    window_starts,
)


def write_mp4(path: Path, frames: int, size: tuple[int, int] = (32, 24)) -> Path:
    """Frame i is uniformly grey with level 20 * i (mp4v is lossy: compare with a tolerance)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    writer.release()
    return path


def test_read_video_all_and_selected_frames(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "v.mp4", 8)
    assert count_frames(path) == 8
    frames = read_frames(path)
    assert frames.dtype == torch.uint8 and frames.shape == (8, 3, 24, 32)
    levels = frames.float().mean(dim=(1, 2, 3))
    assert torch.allclose(levels, torch.arange(8) * 20.0, atol=6)
    picked = read_frames(path, np.array([5, 0, 5]))
    assert picked.shape == (3, 3, 24, 32)
    assert torch.equal(picked[0], frames[5]) and torch.equal(picked[1], frames[0]) and torch.equal(picked[2], frames[5])


def test_read_frame_folder_natural_order_and_mixed_sizes(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in (1, 2, 10):  # natural order: 1, 2, 10 (a plain sort would give 1, 10, 2)
        rgb = np.zeros((16, 20, 3), np.uint8)
        rgb[..., 0] = i  # red channel carries the frame number
        cv2.imwrite(str(folder / f"frame{i}.png"), rgb[..., ::-1])
    cv2.imwrite(str(folder / "frame11.jpg"), np.zeros((8, 8, 3), np.uint8))  # smaller: resized to 16x20
    (folder / "notes.txt").write_text("not a frame")
    assert [p.name for p in list_frame_files(folder)] == ["frame1.png", "frame2.png", "frame10.png", "frame11.jpg"]
    assert count_frames(folder) == 4
    frames = read_frames(folder)
    assert frames.shape == (4, 3, 16, 20)
    assert frames[:3, 0, 0, 0].tolist() == [1, 2, 10]  # RGB order, exact values (PNG is lossless)
    assert frames[:3, 1:].sum() == 0
    assert read_frames(folder, [2, 2, 0])[:, 0, 0, 0].tolist() == [10, 10, 1]


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing.mp4 does not exist"):
        read_frames(tmp_path / "missing.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(DataError, match="cannot decode video .*corrupt.mp4"):
        count_frames(corrupt)
    with pytest.raises(DataError, match="corrupt.mp4"):
        read_frames(corrupt, [0])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty has no frames"):
        read_frames(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read frame .*0.png"):
        read_frames(broken)
    video = write_mp4(tmp_path / "v.mp4", 3)
    with pytest.raises(UserError, match="frame index 3 is out of range .*v.mp4, which has 3 frames"):
        read_frames(video, [0, 3])


def test_sample_indices_evaluation_is_centred_and_deterministic() -> None:
    # 20 frames, every 2nd kept -> 10 kept frames 0, 2, ..., 18; centred window of 4 starts at kept index 3
    idx = sample_indices(20, 4, 2, train=False)
    assert idx.tolist() == [6, 8, 10, 12]
    assert idx.dtype == np.int64
    assert sample_indices(20, 4, 2, train=False).tolist() == idx.tolist()


def test_sample_indices_short_clips_loop() -> None:
    assert sample_indices(3, 7, 1, train=False).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert sample_indices(5, 4, 2, train=False).tolist() == [0, 2, 4, 0]
    assert sample_indices(1, 3, 4, train=False).tolist() == [0, 0, 0]


def test_sample_indices_training_wraps_and_is_reproducible() -> None:
    draws = [sample_indices(10, 6, 1, train=True, rng=np.random.default_rng(s)) for s in range(40)]
    for idx in draws:
        kept = np.arange(10)
        start = int(idx[0])
        assert idx.tolist() == kept[(start + np.arange(6)) % 10].tolist()  # consecutive, wrapping past the end
    assert len({int(d[0]) for d in draws}) > 5  # the start varies
    assert any(d[-1] < d[0] for d in draws)  # some windows wrap around
    a = sample_indices(50, 8, 2, True, np.random.default_rng(7))
    b = sample_indices(50, 8, 2, True, np.random.default_rng(7))
    assert a.tolist() == b.tolist() and all(i % 2 == 0 for i in a)
    with pytest.raises(UserError, match="needs a numpy Generator"):
        sample_indices(10, 4, 1, train=True)
    with pytest.raises(UserError, match="clip_len must be at least 1"):
        sample_indices(10, 0, 1, train=False)


def test_window_starts_cover_the_video() -> None:
    # 100 frames, every 2nd kept (50), windows of 16 kept frames with no overlap + an end-aligned tail window
    starts = window_starts(100, 16, 2)
    assert starts.tolist() == [0, 32, 64, 68]
    covered = np.unique(np.concatenate([window_indices(100, 16, 2, s) for s in starts]))
    assert covered.tolist() == list(range(0, 100, 2))
    assert window_starts(100, 16, 2, stride=8).tolist() == [0, 16, 32, 48, 64, 68]
    assert window_starts(40, 16, 2, stride=8).tolist() == [0, 8]
    assert window_starts(10, 16, 2).tolist() == [0]
    assert window_indices(10, 8, 2, 0).tolist() == [0, 2, 4, 6, 8, 0, 2, 4]
    with pytest.raises(UserError, match="stride"):
        window_starts(10, 4, 1, stride=0)
