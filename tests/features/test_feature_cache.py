"""Frozen-backbone feature cache: content keys, views, resumable builds, caption cache, cached dataset."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import write_clip

from emoclip_lib import workers
from emoclip_lib.features import frame_cache as fc
from emoclip_lib.features import hashing
from emoclip_lib.model.checkpoint import build_model
from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.data.dataset import VideoDataset
from emoclip_lib.errors import DataError
from emoclip_lib.train.cached_dataset import CachedClipDataset, collate_features
from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig
from emoclip_lib.data.tokenizer import tokenize

CLASSES = CANONICAL_CLASSES[:7]
PREP = fc.Preprocessing(size=32, clip_len=4, downsample=2, train=True, augment=True, seed=3)


pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, list[ManifestRow]]:
    root = tmp_path / "data"
    root.mkdir()
    for i in range(3):
        write_clip(root / f"c{i}.mp4", seed=i)
    (root / "frames").mkdir()
    for j in range(6):
        cv2.imwrite(str(root / "frames" / f"{j}.png"), np.full((32, 32, 3), 30 * j, np.uint8))
    rows = [ManifestRow(p, "anger", f"caption {p}", row_number=n + 2)
            for n, p in enumerate(["c0.mp4", "c1.mp4", "c2.mp4", "frames"])]
    return root, rows


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0)


def build(model, data, cache_dir: Path, views=(0, 1), **kw):
    root, rows = data
    return fc.build_frame_cache(model, rows, root, CLASSES, PREP, list(views), cache_dir, progress=False, **kw)


def test_content_hash_follows_bytes_not_names(tmp_path):
    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    write_clip(a, seed=1)
    shutil.copy(a, b)
    write_clip(c, seed=2)
    assert hashing.content_hash(a) == hashing.content_hash(b) != hashing.content_hash(c)


def test_hash_index_avoids_rehashing_and_sees_edits(data, tmp_path):
    root, _ = data
    first = hashing.ContentHasher(tmp_path / "hashes")
    folder_hash = first.hash(root / "frames")
    first.hash(root / "c0.mp4")
    first.save()
    again = hashing.ContentHasher(tmp_path / "hashes", writer="other")
    assert again.hash(root / "frames") == folder_hash and again.computed == 0
    cv2.imwrite(str(root / "frames" / "2.png"), np.zeros((32, 32, 3), np.uint8))
    os.utime(root / "frames" / "2.png", ns=(1, 1))
    assert again.hash(root / "frames") != folder_hash and again.computed == 1
    with pytest.raises(DataError, match="does not exist"):
        again.hash(root / "missing.mp4")


def test_keys_separate_views_weights_and_preprocessing(model):
    visual = hashing.tower_fingerprint(model, "visual")
    assert PREP.key("h", visual, 0) != PREP.key("h", visual, 1) != PREP.key("h", "other", 1)
    assert PREP.key("h", visual, 0) != fc.Preprocessing(64, 4, 2, True, True, 3).key("h", visual, 0)
    evaluation = fc.Preprocessing(32, 4, 2, train=False, augment=False, seed=3)
    assert evaluation.key("h", visual, 0) == evaluation.key("h", visual, 5)
    text = hashing.tower_fingerprint(model, "text")
    changed = build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0)
    with torch.no_grad():
        changed.backbone.token_embedding.weight[0, 0] += 1.0
    assert hashing.tower_fingerprint(changed, "visual") == visual and hashing.tower_fingerprint(changed, "text") != text


def test_entries_are_the_frame_embeddings_of_each_view(model, data, tmp_path):
    root, rows = data
    paths = build(model, data, tmp_path / "cache")
    dataset = VideoDataset(rows, root, CLASSES, 4, 2, 32, train=True, augment=True, seed=3)
    for view in (0, 1):
        dataset.set_epoch(view)
        for i in (0, 3):
            expected = model.encode_frames(dataset[i]["frames"][None])[0]  # (T, D)
            got = torch.from_numpy(np.load(paths[view][i]))
            assert torch.allclose(got, expected, atol=1e-5)
    assert not np.allclose(np.load(paths[0][0]), np.load(paths[1][0]))


def test_build_resumes_after_a_kill(model, data, tmp_path, monkeypatch):
    reference = build(model, data, tmp_path / "ref")
    saved, real_save = [], fc._save_array

    def dying_save(array, path):
        if len(saved) == 3:
            raise KeyboardInterrupt("simulated kill")
        saved.append(path)
        real_save(array, path)

    monkeypatch.setattr(fc, "_save_array", dying_save)
    monkeypatch.setattr(fc, "torch_workers", lambda device, jobs: 1)  # the kill lands in this process
    with pytest.raises(KeyboardInterrupt):
        build(model, data, tmp_path / "cache", batch_size=1)
    monkeypatch.setattr(fc, "_save_array", real_save)
    assert len(list((tmp_path / "cache" / "frames").rglob("*.npy"))) == 3
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    resumed = build(model, data, tmp_path / "cache")
    mtimes = {p: os.stat(p).st_mtime_ns for p in map(Path, resumed[0].values())}
    for view in (0, 1):
        for i in range(4):
            assert np.array_equal(np.load(resumed[view][i]), np.load(reference[view][i]))
    build(model, data, tmp_path / "cache")  # nothing left to compute: files untouched
    assert mtimes == {p: os.stat(p).st_mtime_ns for p in mtimes}


@pytest.mark.skipif(not workers.can_fork(), reason="needs fork")
def test_entries_built_in_forked_workers_equal_those_built_here(model, data, tmp_path, monkeypatch):
    monkeypatch.setattr(fc, "torch_workers", lambda device, jobs: 1)
    here = build(model, data, tmp_path / "a", batch_size=1)
    monkeypatch.setattr(fc, "torch_workers", lambda device, jobs: 2)
    (data[0] / "c1.mp4").write_bytes(b"not a video")  # an unreadable clip, found in a worker
    forked = build(model, data, tmp_path / "b", batch_size=1)
    for view in (0, 1):
        assert forked[view][1] is None
        for i in (0, 2, 3):
            assert Path(forked[view][i]).name == Path(here[view][i]).name
            assert np.array_equal(np.load(forked[view][i]), np.load(here[view][i]))


def test_unreadable_clips_are_skipped_or_fail(model, data, tmp_path):
    root, rows = data
    (root / "c1.mp4").write_bytes(b"not a video")
    paths = build(model, data, tmp_path / "cache", views=(0,))
    assert paths[0][1] is None and paths[0][0] is not None
    os.remove(root / "c2.mp4")
    assert build(model, data, tmp_path / "cache", views=(0,))[0][2] is None
    with pytest.raises(DataError, match="manifest row 4"):
        build(model, data, tmp_path / "other", views=(0,), on_error="fail")


def test_caption_cache_matches_and_is_reused(model, tmp_path, monkeypatch):
    captions = ["a smiling face", "a frowning face", "a smiling face"]
    got = fc.caption_embeddings(model, captions, tmp_path, progress=False)
    expected = model.encode_text(tokenize(["a smiling face", "a frowning face"]))
    assert list(got) == ["a smiling face", "a frowning face"]
    assert torch.allclose(torch.stack(list(got.values())), expected, atol=1e-5)

    def no_encoding(tokens):
        raise AssertionError("cached captions were encoded again")
    monkeypatch.setattr(model, "encode_text", no_encoding)
    again = fc.caption_embeddings(model, captions[:2], tmp_path, progress=False)
    assert all(torch.equal(again[c], got[c]) for c in again)


def test_cached_dataset_views_and_collate(model, data, tmp_path):
    paths = build(model, data, tmp_path / "cache")
    _, rows = data
    dataset = CachedClipDataset([[paths[v][i] for i in range(4)] for v in (0, 1)], [r.caption for r in rows])
    dataset.set_epoch(3)  # view 3 % 2 = 1
    assert torch.equal(dataset[2]["features"], torch.from_numpy(np.load(paths[1][2])))
    batch = collate_features([dataset[0], None, dataset[2]])
    assert batch["features"].shape == (2, 4, 64) and batch["text_emb"] is None
    assert batch["index"].tolist() == [0, 2] and batch["captions"] == [rows[0].caption, rows[2].caption]
    Path(paths[1][1]).write_bytes(b"garbage")  # an entry not read yet (read ones are kept in memory)
    with pytest.raises(DataError, match="delete it"):
        dataset[1]
