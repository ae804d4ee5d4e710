"""VideoDataset items, reproducible training randomness, skipping bad videos, and collate."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.data.dataset import VideoDataset, collate
from emoclip_lib.errors import DataError, UserError
from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.data.preprocess import CLIP_MEAN, CLIP_STD

CLASSES = CANONICAL_CLASSES[:7]


def write_mp4(path: Path, frames: int, size: tuple[int, int] = (40, 32)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    rng = np.random.default_rng(frames)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()


def write_png_folder(folder: Path, frames: int) -> None:
    folder.mkdir(parents=True)
    for i in range(frames):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((20, 20, 3), 10 * i, np.uint8))


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    (tmp_path / "clips").mkdir()
    write_mp4(tmp_path / "clips" / "a.mp4", 12)
    write_mp4(tmp_path / "clips" / "b.mp4", 9)
    write_png_folder(tmp_path / "faces" / "c", 5)
    return tmp_path


def rows() -> list[ManifestRow]:
    return [ManifestRow("clips/a.mp4", "anger", "an angry man", "train", row_number=2),
            ManifestRow("clips/b.mp4", "disgust+anger", "", "train", row_number=3),
            ManifestRow("faces/c", "sadness", "a sad face", "train", row_number=4)]


def make(root: Path, rows_: list[ManifestRow] | None = None, **kw: object) -> VideoDataset:
    options = dict(clip_len=4, downsample=2, size=16)
    options.update(kw)
    return VideoDataset(rows() if rows_ is None else rows_, root, CLASSES, **options)  # type: ignore[arg-type]


def test_item_contents(root: Path) -> None:
    ds = make(root)
    assert len(ds) == 3
    item = ds[1]
    assert item["frames"].shape == (4, 3, 16, 16) and item["frames"].dtype == torch.float32
    assert item["label_ids"] == [CLASSES.index("disgust"), CLASSES.index("anger")]
    assert (item["labels"], item["caption"], item["index"], item["path"]) == ("disgust+anger", "", 1, "clips/b.mp4")
    # frame folder c: levels 0, 10, ..., 40; centred window of 4 over kept frames 0, 2, 4 -> 0, 2, 4, 0
    frames = ds[2]["frames"]
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    levels = (frames * std + mean).mean(dim=(1, 2, 3)) * 255
    assert torch.allclose(levels, torch.tensor([0.0, 20.0, 40.0, 0.0]), atol=0.05)


def test_evaluation_is_deterministic(root: Path) -> None:
    a, b = make(root), make(root, seed=99)
    b.set_epoch(3)
    assert torch.equal(a[0]["frames"], b[0]["frames"])


def test_training_randomness_depends_on_seed_epoch_index_only(root: Path) -> None:
    ds = make(root, train=True, augment=True, seed=5)
    first = [ds[i]["frames"] for i in range(3)]
    again = make(root, train=True, augment=True, seed=5)
    assert all(torch.equal(x, again[i]["frames"]) for i, x in enumerate(first))
    assert all(torch.equal(first[i], ds[i]["frames"]) for i in (2, 0, 1))  # order of access does not matter
    draws = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        draws.append(ds[0]["frames"])
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    other_seed = make(root, train=True, augment=True, seed=6)
    assert any(not torch.equal(first[i], other_seed[i]["frames"]) for i in range(3))


def test_worker_count_does_not_change_training_batches(root: Path) -> None:
    def batches(workers: int) -> torch.Tensor:
        ds = make(root, train=True, augment=True, seed=1)
        ds.set_epoch(2)
        loader = DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=collate)
        return torch.cat([b["frames"] for b in loader])

    assert torch.equal(batches(0), batches(2))


def test_skip_missing_and_corrupt_videos(root: Path) -> None:
    (root / "clips" / "bad.mp4").write_bytes(b"corrupt" * 40)
    bad_rows = rows() + [ManifestRow("clips/gone.mp4", "fear", row_number=5),
                         ManifestRow("clips/bad.mp4", "fear", row_number=6)]
    ds = make(root, bad_rows, on_error="skip")
    assert ds[3] is None and ds[4] is None and ds[3] is None
    assert len(ds.skipped) == 2
    assert ds.skipped[0].startswith("clips/gone.mp4: ") and "bad.mp4" in ds.skipped[1]
    batch = collate([ds[i] for i in range(5)])
    assert batch is not None and batch["dropped"] == 2 and batch["index"].tolist() == [0, 1, 2]
    assert collate([None, None]) is None
    strict = make(root, bad_rows)
    with pytest.raises(DataError, match=r"manifest row 5: .*gone.mp4 does not exist"):
        strict[3]


def test_collate_targets_and_primary(root: Path) -> None:
    ds = make(root)
    batch = collate([ds[0], None, ds[1], ds[2]])
    assert batch["frames"].shape == (3, 4, 3, 16, 16)
    anger, disgust, sadness = (CLASSES.index(c) for c in ("anger", "disgust", "sadness"))
    expected = torch.zeros(3, 7)
    expected[0, anger] = expected[1, [disgust, anger]] = expected[2, sadness] = 1.0
    assert torch.equal(batch["targets"], expected)
    assert batch["primary"].tolist() == [anger, disgust, sadness] and batch["primary"].dtype == torch.long
    assert batch["label_ids"] == [[anger], [disgust, anger], [sadness]]
    assert batch["captions"] == ["an angry man", "", "a sad face"]
    assert batch["dropped"] == 1


def test_bad_arguments(root: Path) -> None:
    with pytest.raises(UserError, match=r"manifest row 3 \(clips/b.mp4\): class 'disgust' is not among"):
        VideoDataset(rows(), root, ("anger", "sadness"))
    with pytest.raises(UserError, match="on_error"):
        make(root, on_error="ignore")
    with pytest.raises(UserError, match="clip_len"):
        make(root, clip_len=0)
