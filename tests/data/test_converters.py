"""Converters from the official release layouts (built in tmp_path) to manifest rows."""
from __future__ import annotations

import json
import argparse
from pathlib import Path

import pytest

from emoclip_lib.cli import data as cli_data
from emoclip_lib.data.converters.registry import convert
from emoclip_lib.errors import DataError, UserError
from emoclip_lib.data.manifest import ManifestRow, read_manifest, select
from emoclip_lib.data.manifest_checks import validate_manifest
from conftest import english, make_mafw

def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli_data.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# --- MAFW ------------------------------------------------------------------------------------------------

def test_mafw_rows(tmp_path: Path) -> None:
    make_mafw(tmp_path)
    rows = convert("mafw", tmp_path)
    assert len(rows) == 5 * (10 + 5)
    by_key = {(r.path, r.fold, r.split): r for r in rows}
    first = by_key[("data/faces/00001", 1, "test")]
    assert first.labels == "anger" and first.subject == ""
    assert first.caption == english("00001")  # filled in from a captioned train listing of the same clip
    assert by_key[("data/faces/00002", 2, "train")].labels == "happiness"
    assert by_key[("data/faces/00003", 2, "test")].labels == "sadness"
    assert by_key[("data/faces/00004", 1, "train")].labels == "surprise"
    assert by_key[("data/faces/00011", 1, "test")].labels == "anger+disgust"
    assert by_key[("data/faces/00015", 1, "train")].labels == "disappointment+sadness"
    assert ("data/clips/00010.mp4", 5, "test") in by_key  # no frame folder -> the video
    assert all(r.caption == english(Path(r.path).stem) for r in rows)
    assert len(select(rows, fold=3, split="test")) == 3
    (tmp_path / "data" / "clips" / "00010.mp4").write_bytes(b"")
    assert validate_manifest(rows, tmp_path, check_decode=False).problems == []  # folds are consistent


def test_mafw_subsets_and_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_mafw(tmp_path)
    single = convert("mafw", tmp_path, subset="single")
    assert len(single) == 50 and all("+" not in r.labels for r in single)
    assert len(convert("mafw", tmp_path, subset="compound")) == 25
    out = tmp_path / "manifests" / "mafw.csv"
    assert run_cli(["manifest", "mafw", "--root", str(tmp_path), "--out", str(out)]) == 0
    assert "wrote 75 rows" in capsys.readouterr().out
    assert read_manifest(out) == convert("mafw", tmp_path)


def test_mafw_utf8_copy_and_errors(tmp_path: Path) -> None:
    make_mafw(tmp_path)
    train = tmp_path / "Train_Test_Set" / "single" / "with_caption_new" / "set_2" / "train.txt"
    train.write_text(train.read_bytes().decode("gbk"), encoding="utf-8")  # a re-saved UTF-8 copy still works
    assert len(convert("mafw", tmp_path)) == 75
    lines = train.read_text(encoding="utf-8").splitlines()
    train.write_text("\n".join(lines[:2] + ["00001.mp4\tbored\tx\ty"] + lines[2:]), encoding="utf-8")
    with pytest.raises(DataError, match=r"set_2[/\\]train.txt:3: unknown MAFW label 'bored'"):
        convert("mafw", tmp_path)
    train.write_text("00001.mp4 anger no tabs here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train.txt:1: expected `clip.mp4<TAB>label"):
        convert("mafw", tmp_path)
    train.unlink()
    (train.parent.parent.parent / "no_caption_new" / "set_2").mkdir(parents=True, exist_ok=True)
    with pytest.raises(DataError, match="no split file for set_2/train.txt"):
        convert("mafw", tmp_path)


def test_mafw_layout_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"does not look like the MAFW release.*Train_Test_Set/single"):
        convert("mafw", tmp_path)


# --- DFEW ------------------------------------------------------------------------------------------------

def make_dfew(root: Path) -> None:
    labels = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 0}
    for fold in range(1, 6):
        test = {1: [1, 6], 2: [2, 7], 3: [3, 8], 4: [4], 5: [5]}[fold]
        for split, ids in (("train", [i for i in labels if i not in test]), ("test", test)):
            folder = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)"
            folder.mkdir(parents=True, exist_ok=True)
            body = "".join(f"{i},{labels[i]}\n" for i in ids)
            (folder / f"set_{fold}.csv").write_text("video_name,label\n" + body + "9,\n", encoding="utf-8")
    for i in range(1, 7):
        (root / "Clip" / "clip_224x224" / f"{i:05d}").mkdir(parents=True)
    (root / "Clip" / "original").mkdir(parents=True)
    (root / "Clip" / "original" / "00007.mp4").write_bytes(b"")


def test_dfew_rows(tmp_path: Path) -> None:
    make_dfew(tmp_path)
    rows = convert("dfew", tmp_path)
    assert {r.fold for r in rows} == {1, 2, 3, 4, 5}
    assert len(rows) == 5 * 7  # clip 8 (label 0) and clip 9 (empty label) are skipped everywhere
    by_key = {(r.path, r.fold, r.split): r.labels for r in rows}
    expected = {1: "happiness", 2: "sadness", 3: "neutral", 4: "anger", 5: "surprise", 6: "disgust"}
    for i, label in expected.items():
        assert by_key[(f"Clip/clip_224x224/{i:05d}", 1, "train" if i not in (1, 6) else "test")] == label
    assert by_key[("Clip/original/00007.mp4", 1, "train")] == "fear"
    assert all(r.caption == "" and r.subject == "" for r in rows)
    assert [p for p in validate_manifest(rows, tmp_path, check_decode=False).problems] == []


def test_dfew_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"EmoLabel_DataSplit/train\(single-labeled\)/set_\{1..5\}.csv"):
        convert("dfew", tmp_path)
    make_dfew(tmp_path)
    bad = tmp_path / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_3.csv"
    bad.write_text("video_name,label\n3,3\n12,happy\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"set_3.csv:3: label 'happy' is not a DFEW label number 1..7"):
        convert("dfew", tmp_path)


# --- FERV39k ---------------------------------------------------------------------------------------------

def test_ferv39k_rows_and_errors(tmp_path: Path) -> None:
    setups = tmp_path / "Data" / "4_setups" / "All_scenes"
    setups.mkdir(parents=True)
    (tmp_path / "Data" / "2_ClipsforFaceCrop").mkdir(parents=True)
    (setups / "train_All.csv").write_text("Action/Happy/0001 3\nDaily Life/Angry/0002 0\r\nAction/Sad/0003 5\n",
                                          encoding="utf-8")
    (setups / "test_All.csv").write_text("path,label\nCrime/Surprise/0004,6\n/data/x/Crime/Fear/0005,2\n",
                                         encoding="utf-8")
    rows = convert("ferv39k", tmp_path)
    assert rows == [
        ManifestRow("Data/2_ClipsforFaceCrop/Action/Happy/0001", "happiness", "", "train", None),
        ManifestRow("Data/2_ClipsforFaceCrop/Daily Life/Angry/0002", "anger", "", "train", None),
        ManifestRow("Data/2_ClipsforFaceCrop/Action/Sad/0003", "sadness", "", "train", None),
        ManifestRow("Data/2_ClipsforFaceCrop/Crime/Surprise/0004", "surprise", "", "test", None),
        ManifestRow("Data/2_ClipsforFaceCrop/Crime/Fear/0005", "fear", "", "test", None),
    ]
    (setups / "test_All.csv").write_text("Crime/Surprise/0004,6\nCrime/Bored/0009,6\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test_All.csv:2: expected `scene/emotion/clip`.*'Crime/Bored/0009'"):
        convert("ferv39k", tmp_path)
    with pytest.raises(UserError, match=r"FERV39K release.*4_setups/All_scenes/train_All.csv"):
        convert("ferv39k", tmp_path / "Data" / "4_setups")


# --- AFEW ------------------------------------------------------------------------------------------------

def test_afew_rows_and_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"AFEW release.*Train/ or Train_AFEW/"):
        convert("afew", tmp_path)
    for rel in ("Train_AFEW/Angry/002.avi", "Train_AFEW/Angry/010.avi", "Train_AFEW/Happy/003.mp4",
                "Val_AFEW/Sad/004.avi", "Val_AFEW/Surprise/005.avi"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "Train_AFEW" / "Happy" / "006").mkdir()  # a frame folder
    (tmp_path / "Train_AFEW" / "Angry" / "readme.txt").write_text("not a video")
    (tmp_path / "Train_AFEW" / "AlignedFaces_LBPTOP_Points").mkdir()  # not an emotion: ignored
    rows = convert("afew", tmp_path)
    assert [(r.path, r.labels, r.split, r.fold) for r in rows] == [
        ("Train_AFEW/Angry/002.avi", "anger", "train", None),
        ("Train_AFEW/Angry/010.avi", "anger", "train", None),
        ("Train_AFEW/Happy/003.mp4", "happiness", "train", None),
        ("Train_AFEW/Happy/006", "happiness", "train", None),
        ("Val_AFEW/Sad/004.avi", "sadness", "test", None),
        ("Val_AFEW/Surprise/005.avi", "surprise", "test", None),
    ]


def test_convert_rejects_unknown_dataset_and_root(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown dataset 'kinetics'"):
        convert("kinetics", tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        convert("afew", tmp_path / "missing")
    with pytest.raises(UserError, match="subset 'both'"):
        convert("mafw", tmp_path, subset="both")


# --- the layouts the official EmoCLIP loaders read ------------------------------------------------------

def test_dfew_official_loader_lists(tmp_path: Path) -> None:
    for fold in range(1, 6):
        for split, clips in (("train", [1, 2, 3]), ("test", [4])):
            lines = [f"/home/someone/DFEW_Frame_Face/{c:05d} {10 + c} {c}" for c in clips]
            (tmp_path / f"DFEW_set_{fold}_{split}.txt").write_text("\n".join(lines) + "\n")
    for c in range(1, 5):
        (tmp_path / "DFEW_Frame_Face" / f"{c:05d}").mkdir(parents=True)
    rows = convert("dfew", tmp_path)
    assert len(rows) == 20 and {r.fold for r in rows} == {1, 2, 3, 4, 5}
    test = [r for r in rows if r.fold == 2 and r.split == "test"]
    assert [(r.path, r.labels) for r in test] == [("DFEW_Frame_Face/00004", "anger")]  # label 4 = anger
    (tmp_path / "DFEW_set_3_test.txt").write_text("00004 12\n")
    with pytest.raises(DataError, match=r"DFEW_set_3_test\.txt:1: expected `path num_frames label`"):
        convert("dfew", tmp_path)


def test_ferv39k_official_loader_lists(tmp_path: Path) -> None:
    frames = tmp_path / "2_ClipsforFaceCrop"
    for split, clips in (("train", ["Daily/Happy/0001", "Daily/Sad/0002"]), ("test", ["Drama/Angry/0003"])):
        (tmp_path / f"{split}_image.txt").write_text("\n".join(f"{c} 16 0" for c in clips) + "\n")
        for c in clips:
            (frames / c).mkdir(parents=True)
    rows = convert("ferv39k", tmp_path)
    assert [(r.path, r.labels, r.split) for r in rows] == [
        ("2_ClipsforFaceCrop/Daily/Happy/0001", "happiness", "train"),
        ("2_ClipsforFaceCrop/Daily/Sad/0002", "sadness", "train"),
        ("2_ClipsforFaceCrop/Drama/Angry/0003", "anger", "test")]


@pytest.mark.parametrize("name", ["mafw", "dfew", "ferv39k", "afew"])
def test_synthetic_releases_convert_like_real_ones(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    from emoclip_lib.synth import write_releases

    out = tmp_path_factory.getbasetemp() / "releases"
    info = write_releases(out, "tiny", 0, progress=False) if not (out / "world.json").is_file() else \
        json.loads((out / "world.json").read_text())
    rows = convert(name, out / info["releases"][name])
    samples = {r.path for r in rows}
    assert len(samples) == info["counts"][name]
    assert all((out / info["releases"][name] / p).exists() for p in samples)
    if name in ("mafw", "dfew"):
        assert {r.fold for r in rows} == {1, 2, 3, 4, 5} and len(rows) == 5 * len(samples)
    else:
        assert {r.split for r in rows} == {"train", "test"} and len(rows) == len(samples)
    assert all(r.caption for r in rows) == (name == "mafw")


def test_a_subjects_file_beside_a_release_fills_the_subjects(tmp_path: Path) -> None:
    make_mafw(tmp_path)
    (tmp_path / "subjects.csv").write_text("path,subject\ndata/faces/00001,alice\ndata/faces/00002,bob\n")
    rows = {r.path: r.subject for r in convert("mafw", tmp_path)}
    assert rows["data/faces/00001"] == "alice" and rows["data/faces/00002"] == "bob"
    assert rows["data/faces/00003"] == ""  # not listed: no subject
    (tmp_path / "subjects.csv").write_text("path,subject\ndata/faces/00001\n")
    with pytest.raises(DataError, match=r"subjects\.csv:2: expected `path,subject`"):
        convert("mafw", tmp_path)
