"""The frame cache encodes each distinct frame of a clip view once (looped short clips), in passes of a
bounded size and at a chosen precision, with the numbers of the straightforward encoding of every position."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_clip

from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.data.dataset import VideoDataset, collate
from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.features import frame_cache as fc
from emoclip_lib.model.checkpoint import build_model
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig

CLASSES = CANONICAL_CLASSES[:7]
PREP = fc.Preprocessing(size=32, clip_len=4, downsample=2, train=True, augment=True, seed=3)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0).eval()


def _rows(root: Path, names: list[str]) -> list[ManifestRow]:
    return [ManifestRow(p, "anger", f"caption {p}", row_number=n + 2) for n, p in enumerate(names)]


@pytest.fixture()
def clips(tmp_path: Path) -> tuple[Path, list[ManifestRow]]:
    """Three 12-frame clips (6 kept frames: no repeats), a 6-image folder (3 kept: looped) and a 3-frame clip."""
    root = tmp_path / "data"
    root.mkdir()
    for i in range(3):
        write_clip(root / f"c{i}.mp4", seed=i)
    write_clip(root / "short.mp4", seed=9, frames=3)
    (root / "frames").mkdir()
    for j in range(6):
        cv2.imwrite(str(root / "frames" / f"{j}.png"), np.full((32, 32, 3), 30 * j, np.uint8))
    return root, _rows(root, ["c0.mp4", "c1.mp4", "c2.mp4", "frames", "short.mp4"])


def _reference(model, root: Path, rows: list[ManifestRow], view: int, prep: fc.Preprocessing = PREP) -> np.ndarray:
    """The encoding before distinct frames: every position of every clip of one batch through the tower."""
    dataset = VideoDataset(rows, root, CLASSES, prep.clip_len, prep.downsample, prep.size, prep.train, prep.augment,
                           prep.seed)
    dataset.set_epoch(view)
    batch = collate([dataset[i] for i in range(len(rows))])
    with torch.no_grad():
        return model.encode_frames(batch["frames"]).float().numpy()  # (B, T, D)


class Counting:
    """Counts the frames that go through `encode_frames`."""

    def __init__(self, model, monkeypatch) -> None:
        self.frames, self.calls, real = 0, 0, model.encode_frames

        def encode(frames: torch.Tensor) -> torch.Tensor:  # (B, T, 3, S, S)
            self.frames += frames.shape[0] * frames.shape[1]
            self.calls += 1
            return real(frames)

        monkeypatch.setattr(model, "encode_frames", encode)


def test_distinct_frames_plan():
    assert fc.distinct_frames(torch.tensor([[0, 2, 4, 6], [1, 3, 5, 7]])) is None
    keep, inverse = fc.distinct_frames(torch.tensor([[0, 2, 0, 2], [4, 6, 8, 10]]))
    assert keep.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [1, 3]]
    assert inverse.tolist() == [[0, 1, 0, 1], [2, 3, 4, 5]]


def test_dataset_items_carry_their_frame_indices(clips):
    root, rows = clips
    plain = VideoDataset(rows, root, CLASSES, 4, 2, 32, train=True, augment=True, seed=3)
    with_idx = VideoDataset(rows, root, CLASSES, 4, 2, 32, train=True, augment=True, seed=3, return_indices=True)
    a, b = plain[4], with_idx[4]
    assert "frame_indices" not in a and set(b) == set(a) | {"frame_indices"}
    assert torch.equal(a["frames"], b["frames"])
    idx = b["frame_indices"]
    assert idx.dtype == torch.int64 and idx.shape == (4,) and sorted(set(idx.tolist())) == [0, 2]  # looped
    assert torch.equal(b["frames"][0], b["frames"][2]) and torch.equal(b["frames"][1], b["frames"][3])
    batch = collate([with_idx[0], None, with_idx[4]])
    assert batch["frame_indices"].shape == (2, 4) and "frame_indices" not in collate([plain[0]])


def test_looped_clips_encode_distinct_frames_once_with_the_same_numbers(model, clips, tmp_path, monkeypatch):
    root, rows = clips
    prep = fc.Preprocessing(size=32, clip_len=8, downsample=2, train=True, augment=True, seed=3)
    counter = Counting(model, monkeypatch)
    paths = fc.build_frame_cache(model, rows, root, CLASSES, prep, [0, 1], tmp_path / "cache", batch_size=8,
                                 progress=False)
    # per view 40 positions: three clips of 6 kept frames, the folder's 3 and the short clip's 2, each looped
    # to 8; 23 distinct frames, filled up to 24 (a multiple of ROW_BLOCK)
    assert counter.frames == 2 * 24 and counter.calls == 2
    for view in (0, 1):
        expected = _reference(model, root, rows, view, prep)  # (5, 8, D), every position encoded
        for i in range(len(rows)):
            np.testing.assert_array_equal(np.load(paths[view][i]), expected[i])


def test_clips_without_repeats_are_encoded_as_before(model, clips, tmp_path, monkeypatch):
    root, rows = clips
    rows = rows[:3]
    counter = Counting(model, monkeypatch)
    paths = fc.build_frame_cache(model, rows, root, CLASSES, PREP, [0], tmp_path / "cache", batch_size=8,
                                 progress=False)
    assert counter.frames == 12 and counter.calls == 1  # one pass of the whole batch, as before
    expected = _reference(model, root, rows, 0)
    for i in range(3):
        np.testing.assert_array_equal(np.load(paths[0][i]), expected[i])


def test_frames_per_pass_splits_passes_without_changing_entries(model, tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    for i in range(6):
        write_clip(root / f"c{i}.mp4", seed=i, frames=40)
    rows = _rows(root, [f"c{i}.mp4" for i in range(6)])
    prep = fc.Preprocessing(size=32, clip_len=16, downsample=2, train=True, augment=True, seed=3)  # 20 kept frames
    whole = fc.build_frame_cache(model, rows, root, CLASSES, prep, [0], tmp_path / "a", batch_size=6,
                                 frames_per_pass=1000, progress=False)
    counter = Counting(model, monkeypatch)
    split = fc.build_frame_cache(model, rows, root, CLASSES, prep, [0], tmp_path / "b", batch_size=6,
                                 frames_per_pass=32, progress=False)
    assert counter.calls == 3 and counter.frames == 96  # 96 frames in three passes of 32
    for i in range(6):
        np.testing.assert_array_equal(np.load(split[0][i]), np.load(whole[0][i]))


def test_bf16_entries_are_close_and_keyed_apart(model, clips, tmp_path):
    root, rows = clips
    fp32 = fc.build_frame_cache(model, rows, root, CLASSES, PREP, [0], tmp_path / "cache", progress=False)
    bf16 = fc.build_frame_cache(model, rows, root, CLASSES, PREP, [0], tmp_path / "cache", precision="bf16",
                                progress=False)
    auto = fc.build_frame_cache(model, rows, root, CLASSES, PREP, [0], tmp_path / "cache", precision="auto",
                                progress=False)
    assert auto == fp32  # auto is fp32 on the CPU: the same entries
    for i in range(len(rows)):
        assert bf16[0][i] != fp32[0][i]
        a, b = torch.from_numpy(np.load(fp32[0][i])), torch.from_numpy(np.load(bf16[0][i]))  # (T, D)
        assert F.cosine_similarity(a, b, dim=-1).min() >= 0.999
