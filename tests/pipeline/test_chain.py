"""The whole chain at a tiny size through `emoclip reproduce`, on the real-data path (synthetic releases in the
official layouts -> converters -> validation -> curation -> training -> zero-shot evaluation -> regression),
and killed runs (`emoclip train` in pretraining, cache building and an epoch; `emoclip reproduce` in notebook 04)
that resume to the weights and results of an uninterrupted run."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from emoclip_lib.data import read_manifest
from emoclip_lib.errors import UserError
from emoclip_lib.pipeline import reproduce
from emoclip_lib.pipeline.run_dir import RunLock
from emoclip_lib.zeroshot import scored_clips

TINY = {"synth_size": "tiny", "pretrain_epochs": 1, "pretrain_web_pictures": 16, "epochs": 2, "n_seeds": 1,
        "folds": [5], "loco_classes": ["neutral", "anger"], "n_boot": 0, "outer_folds": 2, "inner_folds": 2,
        "models": "ridge"}  # fold 5 holds the tiny world's compound clip (anger+disgust) in its test split


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chain") / "run"
    reproduce("synthetic", out, TINY, progress=False)
    return out


def results(run: Path, stage: str) -> dict:
    return json.loads((run / f"{stage}_results.json").read_text(encoding="utf-8"))


def test_every_notebook_ran_on_converted_releases(chain):
    record = json.loads((chain / "run.json").read_text())
    assert list(record["stages"]) == ["01", "02", "03", "04", "05"]
    prepared = results(chain, "01")
    assert list(prepared["datasets"]) == ["mafw", "dfew", "ferv39k", "afew"]
    for name, entry in prepared["datasets"].items():
        assert entry["manifest"] == f"manifests/{name}.csv" and (chain / entry["root"]).is_dir()
    assert results(chain, "05")["status"] == "done"
    assert [p.name for p in sorted(chain.glob("*.ipynb"))][:1] == ["01_data_preparation.ipynb"]


def test_training_uses_single_label_clips_of_the_fold_only(chain):
    trained = results(chain, "03")["runs"]
    rows = read_manifest(chain / "manifests" / "train_curated.csv")
    singles = [r for r in rows if r.fold == 5 and r.split == "train" and "+" not in r.labels]
    assert [(r["seed"], r["fold"]) for r in trained] == [(0, 5)]
    assert trained[0]["n_train"] + trained[0]["n_val"] == len(singles)
    assert any("+" in r.labels and r.fold == 5 and r.split == "train" for r in read_manifest(
        chain / "manifests" / "mafw.csv", known=None)) is False  # its compound clip is a fold-5 test clip


def test_only_test_clips_are_scored_per_fold(chain):
    scored = results(chain, "04")["datasets"]
    assert set(scored) == {"MAFW", "DFEW", "FERV39k", "AFEW"} and scored["MAFW"]["kind"] == "within"
    for display, res in scored.items():
        name = display.lower()
        rows = read_manifest(chain / "manifests" / f"{name}.csv", known=None)
        for record in res["records"]:
            assert record["n"] == len(scored_clips(rows, record["fold"])), (display, record["fold"])
        folds = sorted({str(r["fold"]) for r in res["records"]})
        assert folds == (["5"] if name == "mafw" else ["1", "2", "3", "4", "5"] if name == "dfew" else ["None"])
    assert (results(chain, "04")["protocol"]["clip_len"], results(chain, "04")["protocol"]["downsample"]) == (16, 2)


def test_compound_clips_are_scored_and_loco_skips_empty_classes_before_training(chain):
    out = results(chain, "04")
    assert out["compound"]["n"] == 1 and "anger+disgust" in out["compound"]["runs"][0]["labels"]
    loco = out["loco"]
    assert [(r["fold"], r["class"]) for r in loco["classes"]] == [(5, "neutral")]
    assert loco["skipped"] == [{"fold": 5, "class": "anger", "reason": "no single-label test clip of the class"}]
    assert sorted(p.name for p in (chain / "loco" / "fold5").iterdir()) == ["neutral"]  # no training for anger


def test_a_second_command_in_a_locked_run_folder_is_refused(chain):
    with RunLock(chain):
        with pytest.raises(UserError, match=f"in use by process {os.getpid()}"):
            reproduce("synthetic", chain, TINY, progress=False)


def _train(out: Path, capture: bool = False) -> subprocess.Popen:
    args = [sys.executable, "-m", "emoclip_lib.cli", "train", "--profile", "synthetic", "--out", str(out),
            "--no-progress", *[x for k, v in TINY.items() for x in ("-p", k, json.dumps(v))],
            "-p", "pretrain_epochs", "3", "-p", "epochs", "4"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if capture else subprocess.DEVNULL,
                            start_new_session=True, text=True)


def _kill_when(proc: subprocess.Popen, path: Path, delay: float = 0.0, timeout: float = 240.0) -> None:
    """SIGKILL the run (and its children) `delay` seconds after `path` appears."""
    start = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path.name} appeared"
        assert time.monotonic() - start < timeout
        time.sleep(0.02)
    time.sleep(delay)
    assert proc.poll() is None, f"the run ended within {delay} s of {path.name}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_killed_training_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    _, err = (first := _train(reference, capture=True)).communicate()
    assert first.returncode == 0, err[-3000:]
    fold = killed / "train" / "seed0" / "fold5"
    for path, delay in ((killed / "02_results.json", 1.5),  # during the backbone's pretraining
                        (fold / "train_config.json", 0.0),  # while the frame cache is built
                        (fold / "last.pt", 0.0)):  # after the first epoch
        _kill_when(_train(killed), path, delay)
    _, err = (last := _train(killed, capture=True)).communicate()
    assert last.returncode == 0, err[-3000:]
    for rel in ("backbone/clip_pretrained.pt", "train/seed0/fold5/best.pt", "train/seed0/fold5/last.pt"):
        a, b = torch.load(reference / rel, weights_only=True), torch.load(killed / rel, weights_only=True)
        sa, sb = a.get("state_dict", a.get("trainable")), b.get("state_dict", b.get("trainable"))
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), rel
    assert not [p for p in killed.rglob("*.tmp")]  # killed writes leave no temporary behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed", "reference"]  # nothing outside the runs


def _untimed(value: object) -> object:
    """`value` without its "seconds" entries (wall times differ between runs)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k != "seconds"}
    return [_untimed(v) for v in value] if isinstance(value, list) else value


def _reproduce(out: Path, capture: bool = False) -> subprocess.Popen:
    args = [sys.executable, "-m", "emoclip_lib.cli", "reproduce", "--profile", "synthetic", "--out", str(out),
            "--no-progress", *[x for k, v in TINY.items() for x in ("-p", k, json.dumps(v))]]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if capture else subprocess.DEVNULL,
                            start_new_session=True, text=True)


def test_a_reproduce_killed_in_notebook_04_resumes_to_the_uninterrupted_results(chain, tmp_path):
    killed = tmp_path / "killed"
    loco = killed / "loco" / "fold5" / "neutral"
    _kill_when(_reproduce(killed), loco / "train_config.json")  # notebook 04, its leave-one-class-out training
    record = json.loads((killed / "run.json").read_text())
    assert "04" not in record.get("stages", {}) and not (killed / "04_results.json").exists()
    _, err = (last := _reproduce(killed, capture=True)).communicate()
    assert last.returncode == 0, err[-3000:]
    for stage in ("03", "04", "05"):  # run-relative: equal across folders, but for the epochs' wall times
        assert _untimed(results(killed, stage)) == _untimed(results(chain, stage)), stage
    a, b = (torch.load(run / "loco/fold5/neutral/best.pt", weights_only=True) for run in (chain, killed))
    sa, sb = a.get("state_dict", a.get("trainable")), b.get("state_dict", b.get("trainable"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not [p for p in killed.rglob("*.tmp")] and sorted(p.name for p in tmp_path.iterdir()) == ["killed"]


def test_a_moved_run_folder_resumes_its_training_in_the_new_place(chain, tmp_path):
    first = tmp_path / "first"
    shutil.copytree(chain, first)
    record = json.loads((first / "run.json").read_text())
    for stage in ("03", "04", "05"):  # as if killed after notebook 02: 03 resumes from the trained fold's files
        record["stages"].pop(stage)
        (first / f"{stage}_results.json").unlink()
    (first / "run.json").write_text(json.dumps(record))
    moved = first.rename(tmp_path / "moved")  # nothing of the old absolute paths exists any more
    reproduce("synthetic", moved, TINY, progress=False)
    for stage in ("03", "04", "05"):
        assert _untimed(results(moved, stage)) == _untimed(results(chain, stage)), stage
