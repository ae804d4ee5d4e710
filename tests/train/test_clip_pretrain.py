"""Tests for the contrastive CLIP pretraining stand-in (emoclip_lib.train.pretrain)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emoclip_lib.model.clip import load_clip
from emoclip_lib.train.pretrain import (assemble_data, clip_groups, embed_images, epoch_order, fingerprint,
                                       frame_positions, load_frames, lr_factor, pretrain_clip, training_pairs)
from emoclip_lib.errors import DataError, UserError
from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.data.tokenizer import tokenize

CAPTIONS = ("a bright red square face with the mouth wide open", "a dark blue round face frowning quietly")
FAST = dict(batch_size=8, lr=3e-3, frames_per_clip=2, progress=False)


def _write_clip(path: Path, kind: int, rng: np.random.Generator, n_frames: int = 8) -> None:
    """An mp4 of a bright red square (kind 0) or a dark blue disc (kind 1) on grey noise."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for _ in range(n_frames):
        img = rng.integers(90, 140, (64, 64, 3), dtype=np.uint8)  # BGR
        if kind == 0:
            img[14:50, 14:50] = (20, 20, 230)
        else:
            cv2.circle(img, (32, 32), 18, (120, 30, 10), -1)
        writer.write(img)
    writer.release()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ManifestRow]]:
    """16 clips of two visibly different kinds, each with its kind's caption; two folds repeat each row."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        _write_clip(root / f"c{i:02d}.mp4", i % 2, rng)
        for fold in (1, 2):
            rows.append(ManifestRow(f"c{i:02d}.mp4", "anger" if i % 2 == 0 else "sadness", CAPTIONS[i % 2],
                                    "train", fold, f"s{i}"))
    rows.append(ManifestRow("nocap.mp4", "happiness", "", "train", 1, "x"))  # skipped: no caption, no file
    return root, rows


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_pairs_dedupes_and_skips_uncaptioned(corpus) -> None:
    _, rows = corpus
    pairs = training_pairs(rows)
    assert [p.path for p in pairs] == [f"c{i:02d}.mp4" for i in range(16)]
    bad = [ManifestRow("a.mp4", "anger", "one", row_number=2), ManifestRow("a.mp4", "anger", "two", row_number=5)]
    with pytest.raises(DataError, match="rows 2 and 5"):
        training_pairs(bad)


def test_frame_positions_are_in_the_middle() -> None:
    assert frame_positions(100, 4) == [31, 43, 56, 68]
    assert frame_positions(1, 3) == [0, 0, 0]
    assert frame_positions(100, 1) == [50]


def test_lr_schedule_warms_up_then_decays() -> None:
    values = [lr_factor(s, 100, 10) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[9:], values[10:])) and values[-1] < 0.01


def test_epoch_order_keeps_subjects_together() -> None:
    rows = [ManifestRow(f"{i}.mp4", "anger", "c", subject=f"s{i % 3}") for i in range(12)] + [
        ManifestRow("x.mp4", "anger", "c"), ManifestRow("y.mp4", "anger", "c")]  # no subject: own groups
    groups = clip_groups(rows, by_subject=True)
    assert groups.tolist() == [0, 1, 2] * 4 + [3, 4]
    assert clip_groups(rows, by_subject=False).tolist() == list(range(14))
    order = epoch_order(groups, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(14))
    runs = [k for k, (a, b) in enumerate(zip(groups[order], groups[order][1:])) if a != b]
    assert len(runs) == 4  # five contiguous groups
    again = epoch_order(groups, torch.Generator().manual_seed(0))
    assert torch.equal(order, again) and not torch.equal(order, epoch_order(groups, torch.Generator().manual_seed(1)))


def test_fingerprint_tracks_captions_and_config(corpus) -> None:
    pairs = training_pairs(corpus[1])
    base = fingerprint(pairs, {"seed": 0})
    assert fingerprint(pairs, {"seed": 0}) == base
    assert fingerprint(pairs, {"seed": 1}) != base
    changed = [ManifestRow(pairs[0].path, "anger", "another caption"), *pairs[1:]]
    assert fingerprint(changed, {"seed": 0}) != base


def test_load_frames_shape_and_errors(corpus, tmp_path) -> None:
    root, rows = corpus
    frames = load_frames(training_pairs(rows)[:3], root, 2, 32, progress=False)
    assert frames.shape == (3, 2, 3, 32, 32) and frames.dtype == torch.uint8
    assert frames[0, :, 0].float().mean() > frames[0, :, 2].float().mean() + 50  # red square: R >> B
    with pytest.raises(DataError, match="missing.mp4"):
        load_frames([ManifestRow("missing.mp4", "anger", "x")], root, 2, 32, progress=False)


def test_bad_arguments_are_user_errors(corpus, tmp_path) -> None:
    root, rows = corpus
    with pytest.raises(UserError, match="batch_size"):
        pretrain_clip(rows, root, tmp_path / "p.pt", batch_size=1, progress=False)
    with pytest.raises(UserError, match="input resolution 32"):
        pretrain_clip(rows, root, tmp_path / "p.pt", size=64, progress=False)
    with pytest.raises(UserError, match="num_threads"):
        pretrain_clip(rows, root, tmp_path / "p.pt", num_threads=0, progress=False)
    with pytest.raises(UserError, match="web_pictures"):
        pretrain_clip(rows, root, tmp_path / "p.pt", web_pictures=-1, progress=False)
    with pytest.raises(UserError, match="at least 2 captioned clips"):
        pretrain_clip(rows[-1:], root, tmp_path / "p.pt", progress=False)


def test_deterministic_and_cached(corpus, tmp_path, monkeypatch) -> None:
    root, rows = corpus
    threads = torch.get_num_threads()
    a = _weights(pretrain_clip(rows, root, tmp_path / "a.pt", seed=3, epochs=2, **FAST))
    assert torch.get_num_threads() == threads  # the training's thread setting is restored
    b = _weights(pretrain_clip(rows, root, tmp_path / "b.pt", seed=3, epochs=2, **FAST))
    assert _same(a, b)
    assert not _same(a, _weights(load_clip("tiny", seed=3)))  # it did train
    meta = json.loads((tmp_path / "a.pt.json").read_text())
    assert meta["config"]["seed"] == 3 and meta["epochs_done"] == 2 and len(meta["losses"]) == 2
    assert meta["final_loss"] == meta["losses"][-1] and meta["clips"] == 16
    assert not (tmp_path / "a.pt.partial").exists()
    assert _same(a, _weights(load_clip(str(tmp_path / "a.pt"))))  # the cache is a loadable CLIP checkpoint
    assert a["token_embedding.weight"].shape == (49408, 64)  # every row again, not only the captions' ones

    import emoclip_lib.train.pretrain as cp

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the cache matches")

    with monkeypatch.context() as m:
        m.setattr(cp, "_train_epoch", no_training)
        assert _same(a, _weights(pretrain_clip(rows, root, tmp_path / "a.pt", seed=3, epochs=2, **FAST)))
    other = _weights(pretrain_clip(rows, root, tmp_path / "a.pt", seed=4, epochs=2, **FAST))  # retrains
    assert not _same(a, other)
    assert json.loads((tmp_path / "a.pt.json").read_text())["config"]["seed"] == 4


def test_resume_matches_uninterrupted_run(corpus, tmp_path, monkeypatch) -> None:
    root, rows = corpus
    full = _weights(pretrain_clip(rows, root, tmp_path / "full.pt", seed=1, epochs=3, **FAST))
    out = tmp_path / "stopped.pt"
    pretrain_clip(rows, root, out, seed=1, epochs=3, max_epochs_this_call=1, **FAST)  # stops after epoch 1
    assert not out.exists() and (tmp_path / "stopped.pt.partial").exists()
    assert _same(full, _weights(pretrain_clip(rows, root, out, seed=1, epochs=3, **FAST)))
    assert json.loads((tmp_path / "stopped.pt.json").read_text())["epochs_done"] == 3
    assert not (tmp_path / "stopped.pt.partial").exists()

    import emoclip_lib.train.pretrain as cp

    real, calls = cp._train_epoch, []

    def killed_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "killed.pt"
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(cp, "_train_epoch", killed_in_epoch_3)
        pretrain_clip(rows, root, out, seed=1, epochs=3, checkpoint_seconds=0, **FAST)
    saved = torch.load(tmp_path / "killed.pt.partial", weights_only=True)
    assert saved["meta"]["epochs_done"] == 2 and not out.exists()
    assert saved["state_dict"]["token_embedding.weight"].shape[0] < 1000  # the used rows only (train.vocabulary)
    resumed = pretrain_clip(rows, root, out, seed=1, epochs=3, **FAST)  # trains epoch 3 only
    assert json.loads((tmp_path / "killed.pt.json").read_text())["epochs_done"] == 3
    assert _same(full, _weights(resumed))


def test_learns_a_separable_set(corpus, tmp_path) -> None:
    root, rows = corpus
    model = pretrain_clip(rows, root, tmp_path / "sep.pt", seed=0, epochs=15, **FAST)
    meta = json.loads((tmp_path / "sep.pt.json").read_text())
    assert meta["losses"][-1] < meta["losses"][0] - 0.2
    pairs = training_pairs(rows)
    frames = load_frames(pairs, root, 2, 32, progress=False)[:, 1]  # (16, 3, 32, 32)
    with torch.no_grad():
        text = torch.nn.functional.normalize(model.encode_text(tokenize(list(CAPTIONS))), dim=-1)  # (2, D)
    predicted = (embed_images(model, frames) @ text.t()).argmax(1)  # (16,)
    truth = torch.tensor([CAPTIONS.index(p.caption) for p in pairs])
    assert (predicted == truth).float().mean() >= 0.9


def test_web_pictures_join_the_clips(corpus) -> None:
    root, rows = corpus
    pairs = training_pairs(rows)
    data = assemble_data(pairs, root, 2, 32, by_subject=True, web_pictures=5, seed=0, progress=False)
    assert data.frames.shape == (21, 2, 3, 32, 32) and data.tokens.shape == (21, 77)
    assert data.augment.tolist() == [True] * 16 + [False] * 5  # clip frames are augmented, pictures are not
    assert torch.equal(data.frames[16, 0], data.frames[16, 1])  # a picture fills every frame slot
    web_groups, clip_groups_ = set(data.groups[16:].tolist()), set(data.groups[:16].tolist())
    assert len(web_groups) == 5 and not web_groups & clip_groups_  # each picture is a group of its own
    none = assemble_data(pairs, root, 2, 32, by_subject=True, web_pictures=0, seed=0, progress=False)
    assert torch.equal(none.frames, data.frames[:16]) and torch.equal(none.tokens, data.tokens[:16])


def test_web_pictures_change_the_cached_model(corpus, tmp_path) -> None:
    root, rows = corpus
    plain = _weights(pretrain_clip(rows, root, tmp_path / "w.pt", seed=0, epochs=1, **FAST))
    web = _weights(pretrain_clip(rows, root, tmp_path / "w.pt", seed=0, epochs=1, web_pictures=8, **FAST))
    assert not _same(plain, web)  # not served from the clips-only cache
    meta = json.loads((tmp_path / "w.pt.json").read_text())
    assert meta["web_pictures"] == 8 and meta["config"]["web_pictures"] == 8
