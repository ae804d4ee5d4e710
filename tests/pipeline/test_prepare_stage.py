"""Data preparation (notebook 01): synthetic world reuse, results layout, real-data conversion, errors."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest

from emoclip_lib.pipeline import prepare
from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.data.descriptions import load_descriptions
from emoclip_lib.errors import UserError
from emoclip_lib.pipeline.prepare import dataset_paths, load_results, prepare_data
from emoclip_lib.pipeline.prepare_views import (class_distribution, clip_lengths, facts, plot_clip_lengths, sample_frame_grid,
                                       validation_table)
from conftest import COMPOUND, SINGLE, make_mafw

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("run")
    return run, prepare_data(run, synth_size="tiny", seed=0, progress=False)


def manifest_labels(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return {row["path"]: row["labels"] for row in csv.DictReader(handle)}


def test_synthetic_releases_take_the_real_data_road(tiny_run: tuple[Path, dict]) -> None:
    run, results = tiny_run
    assert json.loads((run / "01_results.json").read_text(encoding="utf-8")) == results == load_results(run)
    assert (results["seed"], results["synth_size"], results["train"]) == (0, "tiny", "mafw")
    assert list(results["datasets"]) == ["mafw", "dfew", "ferv39k", "afew"]
    for name, entry in results["datasets"].items():
        assert entry["manifest"] == f"manifests/{name}.csv"  # converted from the release, as real data is
        assert entry["root"] == f"data/{entry['display']}" and (run / entry["root"]).is_dir()
        manifest, root = dataset_paths(run, name)
        assert manifest == run / entry["manifest"] and manifest.is_file() and root.is_dir()
        assert entry["descriptions"] == "data/class_descriptions.yaml"
        labels = manifest_labels(manifest)
        stats = results["stats"][name]
        assert stats["class_counts"] == Counter(labels.values()) and stats["samples"] == len(labels)
        assert stats["problems"] == 0 and stats["dropped_samples"] == 0
        assert 12 <= stats["frames"]["min"] <= stats["frames"]["median"] <= stats["frames"]["max"] <= 16
    assert len(results["datasets"]["mafw"]["classes"]) == 11 and len(results["datasets"]["dfew"]["classes"]) == 7
    assert results["datasets"]["mafw"]["folds"] == results["datasets"]["dfew"]["folds"] == [1, 2, 3, 4, 5]
    assert results["datasets"]["ferv39k"]["folds"] == results["datasets"]["afew"]["folds"] == []
    assert set(load_descriptions(run / "data/class_descriptions.yaml")) == set(CANONICAL_CLASSES)
    assert results["stats"]["mafw"]["compound"] > 0  # mafw_subset "all": compound clips kept for scoring
    interviews = results["interviews"]
    assert (run / interviews["latent_scores"]).is_file() and interviews["items"]
    assert results["problems_file"] is None and not (run / "01_problems.txt").exists()


def test_views(tiny_run: tuple[Path, dict]) -> None:
    run, results = tiny_run
    counts = class_distribution(run, results)
    for name, entry in results["datasets"].items():
        stats = results["stats"][name]
        sub = counts[counts.dataset == entry["display"]]
        assert sub[sub.split == "all"].samples.sum() == stats["samples"]
        assert sub[sub.split == "train"].samples.sum() + sub[sub.split == "test"].samples.sum() == stats["samples"]
        compound = sub[(sub.split == "all") & (sub["class"] == "compound")].samples.sum()
        assert compound == stats["compound"]
    with pytest.raises(UserError, match="fold 9"):
        class_distribution(run, results, fold=9)
    lengths = clip_lengths(run, results)
    assert len(lengths) == sum(s["samples"] for s in results["stats"].values())
    assert lengths.groupby("dataset").frames.max().to_dict() == {n: s["frames"]["max"]
                                                                  for n, s in results["stats"].items()}
    hist = plot_clip_lengths(lengths)
    assert [ax.get_title() for ax in hist.axes] == list(results["stats"])
    assert [sum(b.get_height() for b in ax.patches) for ax in hist.axes] == [s["samples"]
                                                                             for s in results["stats"].values()]
    table = validation_table(results)
    assert table.loc["MAFW", "samples"] == results["stats"]["mafw"]["samples"]
    text = facts(results)
    assert f"mafw: {results['stats']['mafw']['samples']} clips" in text and "0 problems" in text
    single = {v for v in manifest_labels(dataset_paths(run, "dfew")[0]).values() if "+" not in v}
    fig = sample_frame_grid(run, "dfew", frames_per_clip=3, results=results)
    assert np.asarray(fig.axes).size == 3 * len(single)
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == [c for c in results["datasets"]["dfew"]["classes"]
                                                         if c in single]


def test_reuse_without_regeneration_and_regenerate_on_new_seed(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    real = prepare.write_releases

    def counting(out_dir, size="small", seed=0, progress=True):
        calls.append((size, seed))
        return real(out_dir, size=size, seed=seed, progress=progress)

    monkeypatch.setattr(prepare, "write_releases", counting)
    first = prepare_data(tmp_path, synth_size="tiny", seed=0, check_decode=False, progress=False)
    again = prepare_data(tmp_path, synth_size="tiny", seed=0, check_decode=False, progress=False)
    assert calls == [("tiny", 0)] and again == first
    stale = tmp_path / "data" / "DFEW" / "Clip" / "clip_224x224" / "99999"
    stale.mkdir()
    mine = tmp_path / "data" / "notes.txt"
    mine.write_text("mine")
    other = prepare_data(tmp_path, synth_size="tiny", seed=1, check_decode=False, progress=False)
    assert calls == [("tiny", 0), ("tiny", 1)]
    assert json.loads((tmp_path / "data" / "world.json").read_text())["seed"] == 1 and other["seed"] == 1
    assert not stale.exists() and mine.read_text() == "mine"  # only what the generator writes is replaced


def test_a_given_release_replaces_the_synthetic_one(tmp_path: Path, tiny_run: tuple[Path, dict]) -> None:
    data = tmp_path / "MAFW"
    make_mafw_with_frames(data)
    (data / "data" / "clips" / "00010.mp4").unlink(missing_ok=True)
    results = prepare_data(tmp_path / "run", synth_size="tiny", mafw_root=data, strict=False, check_decode=False,
                           progress=False)
    assert results["datasets"]["mafw"]["root"] == data.resolve().as_posix()
    assert results["datasets"]["mafw"]["descriptions"] is None  # real data: the shipped descriptions
    assert results["datasets"]["dfew"]["root"] == "data/DFEW"


def make_mafw_with_frames(root: Path) -> None:
    make_mafw(root)
    for folder in (root / "data" / "faces").iterdir():
        for i in range(3 + int(folder.name) % 3):
            cv2.imwrite(str(folder / f"{i}.png"), np.full((8, 8, 3), 30 * i, np.uint8))


def test_real_dataset_strict_and_lenient(tmp_path: Path) -> None:
    data, run = tmp_path / "MAFW", tmp_path / "run"
    make_mafw_with_frames(data)  # clip 00010 has no frame folder and no video: one problem
    with pytest.raises(UserError, match=r"(?s)1 data problem.*manifests/mafw.csv: row \d+: data/clips/00010.mp4"):
        prepare_data(run, mafw_root=data, progress=False)
    assert "00010.mp4" in (run / "01_problems.txt").read_text(encoding="utf-8")
    assert not (run / "01_results.json").exists()

    results = prepare_data(run, mafw_root=data, mafw_subset="single", strict=False, progress=False)
    train = results["datasets"]["mafw"]
    assert set(results["datasets"]) == {"mafw"} and results["train"] == "mafw" and results["interviews"] is None
    assert train["descriptions"] is None
    assert train["manifest"] == "manifests/mafw.clean.csv" and train["root"] == data.resolve().as_posix()
    assert results["mafw_subset"] == "single" and results["synth_size"] is None
    stats = results["stats"]["mafw"]
    assert (stats["problems"], stats["dropped_samples"], stats["samples"]) == (1, 1, len(SINGLE) - 1)
    assert stats["compound"] == 0 and stats["frames"] == {"min": 3, "median": 4.0, "mean": 4.0, "max": 5}
    assert "00010" not in (run / train["manifest"]).read_text(encoding="utf-8")
    assert results["problems_file"] == "01_problems.txt"

    (data / "data" / "clips" / "00010.mp4").unlink(missing_ok=True)
    every = prepare_data(tmp_path / "run2", mafw_root=data, mafw_subset="compound",
                         check_decode=False, progress=False)
    assert every["stats"]["mafw"]["samples"] == len(COMPOUND) and every["problems_file"] is None


@pytest.mark.parametrize("kwargs, message", [
    ({}, r"no dataset: .*-p mafw_root /path/to/MAFW.*-p synth_size small"),
    ({"dfew_root": ""}, r"no dataset"),
    ({"dataset": "casme"}, r"unknown parameter\(s\) dataset"),
    ({"dfew_root": "/somewhere/missing"}, r"dataset root /somewhere/missing is not a folder"),
    ({"synth_size": "huge"}, r"synth_size must be one of tiny, small, medium, got 'huge'"),
])
def test_parameter_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        prepare_data(tmp_path, progress=False, **kwargs)


def test_missing_results_and_unknown_role(tmp_path: Path, tiny_run: tuple[Path, dict]) -> None:
    with pytest.raises(UserError, match="run notebooks/01_data_preparation.ipynb"):
        load_results(tmp_path)
    with pytest.raises(UserError, match="no 'test' data in this run; it has: mafw, dfew, ferv39k, afew, interviews"):
        dataset_paths(tiny_run[0], "test")
