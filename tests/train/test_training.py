"""Contrastive training engine: settings, validation split, schedules, outputs, exact resume, cache equivalence."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_clip

from emoclip_lib.model.checkpoint import build_model, load_checkpoint
from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.errors import UserError
from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig
from emoclip_lib.train.config import TrainConfig
from emoclip_lib.train.data import split_train_val
from emoclip_lib.train.state import build_optimizer
from emoclip_lib.train.loop import train

CLASSES = CANONICAL_CLASSES[:7]


pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ManifestRow]]:
    root = tmp_path_factory.mktemp("clips")
    rows = []
    for i in range(10):
        write_clip(root / f"c{i}.mp4", seed=i)
        caption = "" if i == 3 else f"a face showing expression number {i}"
        rows.append(ManifestRow(f"c{i}.mp4", CLASSES[i % 7], caption, "train", subject=f"s{i % 5}", row_number=i + 2))
    return root, rows


def tiny_model(**kw: bool):
    return build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4), **kw), seed=0)


def config(**kw: object) -> TrainConfig:
    base: dict = dict(epochs=3, batch_size=4, clip_len=4, downsample=2, lr=0.05)
    base.update(kw)
    return TrainConfig(**base)


def run(data, run_dir: Path, model=None, **kw: object):
    root, rows = data
    model = model or tiny_model()
    result = train(model, rows[:8], rows[8:], root, CLASSES, config(**kw), run_dir=run_dir, progress=False)
    return model, result


def test_defaults_follow_the_paper():
    c = TrainConfig()
    assert (c.optimizer, c.lr, c.momentum, c.weight_decay) == ("sgd", 1e-3, 0.9, 5e-4)
    assert (c.schedule, c.milestones, c.gamma, c.epochs) == ("step", (15, 35, 50), 0.1, 30)
    assert (c.batch_size, c.clip_len, c.downsample, c.augment) == (64, 32, 2, True)
    assert (c.backbone_lr_scale, c.use_cache, c.cache_views, c.amp, c.compile) == (1e-3, True, 2, None, False)
    assert (c.num_workers, c.seed, c.on_error, c.val_fraction, c.val_group) == (None, 0, "skip", 0.1, "subject")


def test_from_dict_rejects_unknown_and_bad_settings():
    with pytest.raises(UserError, match=r"learning_rate.*valid settings: .*\blr\b"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(UserError, match="optimizer must be one of sgd, adamw"):
        TrainConfig.from_dict({"optimizer": "rmsprop"})
    with pytest.raises(UserError, match="wrong type"):
        TrainConfig.from_dict({"epochs": "many"})
    with pytest.raises(UserError, match="view_schedule='fresh'"):
        TrainConfig.from_dict({"view_schedule": "fresh"})
    c = TrainConfig.from_dict({"milestones": [5, 10], "schedule": "cosine"})
    assert c.milestones == (5, 10) and TrainConfig.from_dict(c.to_dict()) == c


def test_lr_schedules():
    step = TrainConfig()
    assert [step.lr_factor(e) for e in (0, 14, 15, 34, 35, 50)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.001])
    cos = TrainConfig(schedule="cosine", warmup_epochs=2, epochs=10, min_lr_ratio=0.1)
    factors = [cos.lr_factor(e) for e in range(10)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(a > b for a, b in zip(factors[2:], factors[3:])) and factors[-1] > 0.1


def test_views_cycle_with_the_cache():
    c = TrainConfig(cache_views=3)
    assert [c.view_for_epoch(e, cached=True) for e in range(5)] == [0, 1, 2, 0, 1]
    assert [c.view_for_epoch(e, cached=False) for e in range(5)] == [0, 1, 2, 3, 4]
    cyc = TrainConfig(cache_views=3, view_schedule="cycle", use_cache=False)
    assert [cyc.view_for_epoch(e, cached=False) for e in range(5)] == [0, 1, 2, 0, 1]


def test_split_is_subject_disjoint_and_seeded():
    rows = [ManifestRow(f"v{i}.mp4", "anger", "c", "train", subject=f"p{i % 6}") for i in range(30)]
    train_rows, val_rows = split_train_val(rows, 0.2, "subject", seed=1)
    assert {r.subject for r in train_rows}.isdisjoint({r.subject for r in val_rows})
    assert sorted(train_rows + val_rows, key=rows.index) == rows and len(val_rows) == 5
    assert split_train_val(rows, 0.2, "subject", seed=1) == (train_rows, val_rows)
    assert split_train_val(rows, 0.0, "subject") == (rows, [])


def test_split_without_subjects_is_clip_disjoint_and_refuses_test_rows():
    rows = [ManifestRow(f"v{i}.mp4", "anger", "c", "train") for i in range(10)]
    train_rows, val_rows = split_train_val(rows, 0.3, "subject", seed=0)
    assert len(val_rows) == 3 and {r.path for r in train_rows}.isdisjoint({r.path for r in val_rows})
    with pytest.raises(UserError, match="never from the test fold"):
        split_train_val(rows + [ManifestRow("t.mp4", "anger", "c", "test", row_number=9)], 0.1)
    with pytest.raises(UserError, match="one subject"):
        split_train_val([ManifestRow(f"v{i}", "anger", "c", subject="p") for i in range(4)], 0.5)


def test_unfrozen_tower_gets_the_scaled_learning_rate():
    model = tiny_model(freeze_text=False)
    groups = build_optimizer(model, TrainConfig(lr=0.01)).param_groups
    assert [g["name"] for g in groups] == ["temporal", "backbone"]
    assert groups[1]["lr"] == pytest.approx(0.01 * 1e-3)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for n, p in model.named_parameters()
                                                    if n.startswith("backbone.") and p.requires_grad}
    assert len(build_optimizer(tiny_model(), TrainConfig()).param_groups) == 1


def test_outputs_history_and_dropped_captions(data, tmp_path):
    model, result = run(data, tmp_path / "run", epochs=2)
    assert result.dropped_empty_captions == {"train": 1, "val": 0} and result.used_cache
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history == result.history and [h["epoch"] for h in history] == [1, 2]
    assert all(h["train_samples"] == 7 and h["val_samples"] == 2 and np.isfinite(h["val_loss"]) for h in history)
    best_epoch = min(history, key=lambda h: h["val_loss"])["epoch"]
    assert result.best_epoch == best_epoch and result.best_value == pytest.approx(history[best_epoch - 1]["val_loss"])
    best = load_checkpoint(result.best_path)
    if best_epoch == 2:
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in best.state_dict().items())
    assert result.last_path.is_file()


@pytest.mark.parametrize("use_cache", [True, False])
def test_resume_after_a_kill_gives_identical_weights(data, tmp_path, use_cache):
    reference, ref_result = run(data, tmp_path / "full", use_cache=use_cache)

    def killed_at_epoch_2(model):
        if killed_at_epoch_2.calls == 1:
            raise KeyboardInterrupt("simulated kill")
        killed_at_epoch_2.calls += 1
        return {}
    killed_at_epoch_2.calls = 0
    root, rows = data
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), rows[:8], rows[8:], root, CLASSES, config(use_cache=use_cache),
              run_dir=tmp_path / "killed", progress=False, evaluate_fn=killed_at_epoch_2)
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["epoch"] == 1
    resumed = tiny_model()
    result = train(resumed, rows[:8], rows[8:], root, CLASSES, config(use_cache=use_cache),
                   run_dir=tmp_path / "killed", progress=False, resume=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert [h["train_loss"] for h in result.history] == [h["train_loss"] for h in ref_result.history]


def test_resume_refuses_changed_settings(data, tmp_path):
    run(data, tmp_path / "run", epochs=1)
    root, rows = data
    with pytest.raises(UserError, match="lr: 0.05 -> 0.1"):
        train(tiny_model(), rows[:8], rows[8:], root, CLASSES, config(epochs=2, lr=0.1), run_dir=tmp_path / "run",
              resume=True, progress=False)


def test_cached_and_uncached_paths_train_the_same_model(data, tmp_path):
    cached, a = run(data, tmp_path / "a", use_cache=True, cache_views=2)
    direct, b = run(data, tmp_path / "b", use_cache=False, cache_views=2, view_schedule="cycle")
    assert a.used_cache and not b.used_cache
    assert [h["view"] for h in a.history] == [h["view"] for h in b.history] == [0, 1, 0]
    for key, value in cached.state_dict().items():
        assert torch.allclose(value, direct.state_dict()[key], atol=1e-5), key
    assert [h["val_loss"] for h in a.history] == pytest.approx([h["val_loss"] for h in b.history], abs=1e-5)


def test_model_selection_on_an_evaluator_metric(data, tmp_path):
    scores = iter([0.2, 0.6, 0.4])
    root, rows = data
    result = train(tiny_model(), rows[:8], rows[8:], root, CLASSES, config(select_metric="val_uar"),
                   run_dir=tmp_path / "run", progress=False, evaluate_fn=lambda m: {"uar": next(scores)})
    assert [h["val_uar"] for h in result.history] == [0.2, 0.6, 0.4]
    assert result.best_epoch == 2 and torch.load(result.best_path, weights_only=True)["meta"]["epoch"] == 2
    with pytest.raises(UserError, match="needs an evaluate_fn"):
        train(tiny_model(), rows[:8], rows[8:], root, CLASSES, config(select_metric="val_uar"),
              run_dir=tmp_path / "other", progress=False)


def test_unfrozen_text_tower_trains_and_cuda_options_warn_on_cpu(data, tmp_path):
    model = tiny_model(freeze_text=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(UserWarning) as caught:
        run(data, tmp_path / "run", model=model, epochs=1, amp=True, compile=True)
    messages = {str(w.message) for w in caught}
    assert {"amp=True is ignored on cpu: it is only used on CUDA",
            "compile=True is ignored on cpu: it is only used on CUDA"} <= messages
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "backbone.token_embedding.weight" in changed and "temporal.cls_token" in changed
    assert not any(k.startswith("backbone.visual.") for k in changed)
