"""Tests of notebook 05's pipeline (emoclip_lib.pipeline.regression) on a tiny hand-made interview cohort."""
from __future__ import annotations

import json
import shutil

import matplotlib
import numpy as np
import pandas as pd
import pytest

from emoclip_lib.features import window_cache
from emoclip_lib.features.hashing import modules_fingerprint

from emoclip_lib.pipeline import regression as stage_regression
from emoclip_lib.model.checkpoint import build_model, save_checkpoint
from emoclip_lib.errors import UserError
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig
from emoclip_lib.downstream.regression import reference_agreement
from emoclip_lib.pipeline.regression import latent_agreement, run_regression
from emoclip_lib.pipeline.regression_plots import plot_metrics, plot_predictions
from conftest import random_video

matplotlib.use("Agg")
N_SUBJECTS = 6
FAST = {"models": "ridge", "n_boot": 5, "outer_folds": 2, "inner_folds": 2, "window_clip_len": 4, "window_downsample": 2,
        "window_stride": 4, "device": "cpu"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six subjects x one short video, a manifest (items a, b; b partly missing, c all missing), latent scores."""
    base = tmp_path_factory.mktemp("cohort")
    videos = base / "data" / "interviews" / "videos"
    videos.mkdir(parents=True)
    lines = ["path,subject,session,a,b,c"]
    for k in range(N_SUBJECTS):
        random_video(videos / f"p{k}.mp4", 10 + k, seed=k)
        lines.append(f"videos/p{k}.mp4,s{k},1,{k % 4 + 1},{'' if k == 1 else (3 * k) % 5 + 1},")
    (base / "data" / "interviews" / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    latent = ["subject,a,b"] + [f"s{k},{k % 4 + 1.2},{(3 * k) % 5 + 0.8}" for k in range(N_SUBJECTS)]
    (base / "data" / "interviews" / "latent.csv").write_text("\n".join(latent) + "\n", encoding="utf-8")
    model = build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0)
    save_checkpoint(model, base / "model.pt")
    return base


def make_run(tmp_path, cohort, interviews: bool = True, stage03: bool = True):
    """A run directory whose 01 results point at the cohort and whose 03 results name the checkpoint."""
    run = tmp_path / "run"
    shutil.copytree(cohort, run)
    entry = {"name": "interviews", "manifest": "data/interviews/manifest.csv", "root": "data/interviews",
             "latent_scores": "data/interviews/latent.csv", "items": ["a", "b", "c"]}
    prepared = {"format": "emoclip-prepare-2", "seed": 0, "train": None, "datasets": {},
                "interviews": entry if interviews else None}
    (run / "01_results.json").write_text(json.dumps(prepared), encoding="utf-8")
    if stage03:
        (run / "03_results.json").write_text(json.dumps({"checkpoint": "model.pt"}), encoding="utf-8")
    return run


def test_results_json_layout_and_outputs(tmp_path, cohort):
    run = make_run(tmp_path, cohort)
    out = run_regression(run, **FAST)
    saved = json.loads((run / "05_results.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(out["results"]))
    assert saved["status"] == "done" and saved["seed"] == 0 and saved["checkpoint"] == "model.pt"
    assert saved["data"]["items"] == ["a", "b", "c"] and saved["data"]["n_subjects"] == N_SUBJECTS
    assert saved["settings"]["encoders"] == ["emoclip", "clip_frame_avg"] and saved["settings"]["level"] == "subject"
    table = pd.DataFrame(saved["table"])
    assert list(table.columns) == list(stage_regression.COLUMNS)
    per_item = table[table["item"] != "average"]
    assert sorted(set(zip(per_item["encoder"], per_item["method"]))) == [
        ("clip_frame_avg", "ridge"), ("emoclip", "ridge"), ("none", "mean")]  # the mean baseline once
    assert len(per_item) == 3 * 2  # items a and b, three (encoder, method) pairs
    avg = table[(table["item"] == "average") & (table["encoder"] == "emoclip")].iloc[0]
    assert avg["pcc"] == pytest.approx(per_item[per_item["encoder"] == "emoclip"]["pcc"].mean())
    assert saved["averages"]["emoclip"]["ridge"]["pcc"] == pytest.approx(avg["pcc"])
    assert saved["best"]["method"] == "ridge" and saved["best"]["encoder"] in ("emoclip", "clip_frame_avg")
    preds = pd.read_csv(run / saved["predictions_file"])
    assert len(preds) == 5 * 3 + 6 * 3  # item b: 5 scored subjects; item a: 6; three series each
    assert set(preds.columns) >= {"encoder", "method", "item", "subject", "y_true", "y_pred"}
    latent = pd.DataFrame(saved["latent"])
    assert ("none", "ratings") in set(zip(latent["encoder"], latent["method"]))
    plot_metrics(out["table"])
    plot_predictions(out["predictions"], out["table"])


def test_missing_scores(tmp_path, cohort):
    out = run_regression(make_run(tmp_path, cohort), **FAST)
    table, skipped = out["table"], out["results"]["data"]["skipped_items"]
    assert set(table.loc[table["item"] == "a", "n"]) == {N_SUBJECTS}
    assert set(table.loc[table["item"] == "b", "n"]) == {N_SUBJECTS - 1}  # s1 has no b score
    assert "c" not in set(table["item"]) and "only 0 samples have a score" in skipped["c"]


def test_second_run_reads_the_feature_cache(tmp_path, cohort, monkeypatch):
    run = make_run(tmp_path, cohort)
    first = run_regression(run, **FAST)
    assert list((run / "cache" / "features").glob("*.npz"))

    def no_encoding(*args, **kwargs):
        raise AssertionError("a cached video was encoded again")

    monkeypatch.setattr(window_cache, "window_embeddings", no_encoding)
    second = run_regression(run, **FAST)
    pd.testing.assert_frame_equal(first["table"], second["table"])


def test_user_manifest_and_explicit_checkpoint(tmp_path, cohort):
    run = make_run(tmp_path, cohort, interviews=False, stage03=False)
    manifest = run / "data" / "interviews" / "manifest.csv"
    out = run_regression(run, checkpoint=run / "model.pt", interview_manifest=manifest, encoders="emoclip",
                         level="video", **FAST)
    res = out["results"]
    assert res["data"]["source"] == "manifest" and res["latent"] is None and res["checkpoint"] == "model.pt"
    assert set(out["table"]["encoder"]) == {"emoclip", "none"}
    assert "path" in out["predictions"].columns  # video level: one prediction per video


def test_a_run_without_interviews_is_skipped(tmp_path, cohort):
    run = make_run(tmp_path, cohort, interviews=False, stage03=False)
    out = run_regression(run, **FAST)
    saved = json.loads((run / "05_results.json").read_text(encoding="utf-8"))
    assert saved["status"] == "skipped" and "interview_manifest" in saved["reason"]
    assert out["table"].empty


@pytest.mark.parametrize("kwargs, message", [({"models": "ridge,forest"}, "models must name"),
                                             ({"encoders": "vit"}, "encoders must name"),
                                             ({"level": "session"}, "level must be one of")])
def test_bad_parameters_are_user_errors(tmp_path, cohort, kwargs, message):
    with pytest.raises(UserError, match=message):
        run_regression(make_run(tmp_path, cohort), **{**FAST, **kwargs})


def test_missing_training_results_name_notebook_03(tmp_path, cohort):
    with pytest.raises(UserError, match="notebook 03"):
        run_regression(make_run(tmp_path, cohort, stage03=False), **FAST)


def test_latent_agreement_compares_subject_means():
    latent = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]}, index=["s0", "s1", "s2", "s3"])
    preds = pd.DataFrame({"encoder": "emoclip", "method": "ridge", "item": "a",
                          "subject": ["s0", "s0", "s1", "s2", "s3", "s9"], "y_pred": [0.0, 2.0, 3.0, 5.0, 7.0, 1.0]})
    ratings = pd.DataFrame({"subject": ["s0", "s1", "s2", "s3"], "a": [1.0, 2.0, np.nan, 4.0]})
    out = latent_agreement(preds, ratings, latent).set_index(["method", "item"])
    assert out.loc[("ratings", "a"), "pcc"] == pytest.approx(1.0) and out.loc[("ratings", "a"), "n"] == 3
    assert out.loc[("ridge", "a"), "pcc"] == pytest.approx(1.0)  # subject means 1, 3, 5, 7; s9 has no latent
    assert out.loc[("ridge", "a"), "n"] == 4
    assert out.loc[("ridge", "a"), "ccc"] < 1.0  # shifted and scaled: not concordant
    assert out.loc[("ridge", "average"), "pcc"] == pytest.approx(1.0)


def test_reference_agreement_by_item_only():
    preds = pd.DataFrame({"item": ["a"] * 3 + ["b"] * 3, "subject": ["x", "y", "z"] * 2,
                          "y_pred": [1.0, 2.0, 3.0, 3.0, 2.0, 1.0]})
    ref = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]}, index=["x", "y", "z"])
    out = reference_agreement(preds, ref, by=("item",)).set_index("item")
    assert out.loc["a", "pcc"] == pytest.approx(1.0) and out.loc["b", "pcc"] == pytest.approx(-1.0)
    assert out.loc["average", "pcc"] == pytest.approx(0.0)


def test_a_fine_tuned_visual_tower_takes_the_baseline_from_clip_backbone(tmp_path, cohort):
    import torch

    from emoclip_lib.model.clip import load_clip

    run = make_run(tmp_path, cohort)
    model = build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4),
                                    freeze_visual=False), seed=0)
    save_checkpoint(model, run / "tuned.pt")
    torch.save(load_clip("tiny", seed=1).state_dict(), run / "clip.pt")
    (run / "03_results.json").write_text(json.dumps({"checkpoint": "tuned.pt", "clip_backbone": "clip.pt"}))
    encoders, recorded = stage_regression.load_encoders(run, None, "cpu")
    assert recorded == "tuned.pt"
    baseline = window_cache.make_encoder(encoders["clip_frame_avg"], "clip_frame_avg").fingerprint
    own = window_cache.make_encoder(encoders["emoclip"], "clip_frame_avg").fingerprint
    expected = modules_fingerprint([("backbone.visual", load_clip("tiny", seed=1).visual)])
    assert baseline == expected != own


def test_an_item_named_average_is_refused(tmp_path, cohort):
    run = make_run(tmp_path, cohort)
    manifest = run / "data" / "interviews" / "manifest.csv"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(",c\n", ",average\n", 1), encoding="utf-8")
    with pytest.raises(UserError, match="reserved"):
        run_regression(run, **FAST)


def test_fits_in_forked_processes_equal_those_of_one_process():
    rng = np.random.default_rng(0)
    tables = {}
    for name in ("emoclip", "clip_frame_avg"):
        feats = rng.normal(size=(12, 6))
        table = pd.DataFrame({"subject": [f"s{i}" for i in range(12)], "features": list(feats),
                              "a": feats[:, 0] + rng.normal(scale=0.3, size=12), "b": rng.normal(size=12)})
        table.attrs["items"] = ["a", "b"]
        tables[name] = table
    opts = {"seed": 0, "n_boot": 20, "outer_folds": 3, "inner_folds": 2}
    one = stage_regression._fit_all(tables, ["ridge", "svr"], opts, jobs=1, progress=False)
    forked = stage_regression._fit_all(tables, ["ridge", "svr"], opts, jobs=2, progress=False)
    assert list(forked) == [("emoclip", "a"), ("emoclip", "b"), ("clip_frame_avg", "a"), ("clip_frame_avg", "b")]
    for key, res in one.items():
        pd.testing.assert_frame_equal(forked[key].table, res.table)
        pd.testing.assert_frame_equal(forked[key].predictions_frame(), res.predictions_frame())
