"""Manifest schema: reading, writing, selecting, interview manifests and validation."""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoclip_lib.cli import data as cli_data
from emoclip_lib.errors import DataError, UserError
from emoclip_lib.data.manifest import (
    MANIFEST_COLUMNS,
    ManifestRow,
    folds,
    read_interview_manifest,
    read_manifest,
    select,
    write_manifest,
)
from emoclip_lib.data.manifest_checks import caption_problems, validate_manifest

HEADER = ",".join(MANIFEST_COLUMNS)


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_mp4(path: Path, frames: int = 6, size: tuple[int, int] = (32, 24)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    writer.release()
    return path


def write_png_folder(folder: Path, frames: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((16, 16, 3), 40 * i, np.uint8))
    return folder


# --- reading and writing -------------------------------------------------------------------------------

def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    rows = [
        ManifestRow("data/faces/00001", "anger+disgust", 'He frowns, "angrily"\nand turns away.', "train", 1, "s1"),
        ManifestRow("clips/b.mp4", "happiness", "笑容 – a smile", "test", None, ""),
    ]
    out = tmp_path / "sub" / "m.csv"
    write_manifest(rows, out)
    back = read_manifest(out)
    assert back == rows
    # a caption spanning two lines: the next record starts on line 4
    assert [r.row_number for r in back] == [2, 4]
    assert back[0].label_list == ["anger", "disgust"]
    assert out.read_text(encoding="utf-8").splitlines()[0] == HEADER
    assert [p.name for p in out.parent.iterdir()] == ["m.csv"]  # no temporary file left


def test_columns_in_any_order_and_labels_canonicalised(tmp_path: Path) -> None:
    path = write_text(tmp_path / "m.csv", "split,fold,path,labels,caption,subject\nTEST,3,a.mp4,Anger + Fear,,\n")
    (row,) = read_manifest(path)
    assert (row.split, row.fold, row.path, row.labels) == ("test", 3, "a.mp4", "anger+fear")


def test_write_is_atomic_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    write_manifest([ManifestRow("a.mp4", "fear")], out)
    before = out.read_bytes()
    with pytest.raises(AttributeError):
        write_manifest([ManifestRow("b.mp4", "fear"), object()], out)  # type: ignore[list-item]
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("path,labels,caption,split,fold\n", [":1:", "missing column", "subject"]),
        (HEADER + ",extra\n", [":1:", "unknown column 'extra'"]),
        ("path,path,labels,caption,split,fold,subject\n", [":1:", "appears twice"]),
        (f"{HEADER}\na.mp4,anger,,train,1,\nb.mp4,anger,,valid,1,\n", [":3:", "split 'valid'", "train/test"]),
        (f"{HEADER}\na.mp4,anger,,train,one,\n", [":2:", "fold 'one' is not an integer"]),
        (f"{HEADER}\na.mp4,angre,,train,1,\n", [":2:", "unknown class 'angre'", "known classes"]),
        (f"{HEADER}\na.mp4,anger,a, b,train,1,\n", [":2:", "7 fields", "quote"]),
        (f"{HEADER}\n,anger,,train,1,\n", [":2:", "empty path"]),
        ("", ["empty file"]),
    ],
)
def test_read_errors_name_file_and_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write_text(tmp_path / "bad.csv", text)
    with pytest.raises(DataError) as info:
        read_manifest(path)
    message = str(info.value)
    assert "bad.csv" in message
    for fragment in fragments:
        assert fragment in message


def test_read_rejects_non_utf8_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(f"{HEADER}\na.mp4,anger,".encode() + "愤怒".encode("gbk") + b",train,1,\n")
    with pytest.raises(DataError, match=r"gbk\.csv:2: not valid UTF-8"):
        read_manifest(path)
    with pytest.raises(DataError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")


def test_unknown_labels_kept_when_not_checked(tmp_path: Path) -> None:
    path = write_text(tmp_path / "m.csv", f"{HEADER}\na.mp4,boredom,,train,,\n")
    assert read_manifest(path, known=None)[0].labels == "boredom"
    assert read_manifest(path, known=("boredom",))[0].labels == "boredom"


def test_select_and_folds() -> None:
    rows = [ManifestRow(f"{i}.mp4", "fear", split=s, fold=f) for i, (s, f) in
            enumerate([("train", 1), ("test", 1), ("train", 2), ("test", 2), ("test", 2)])]
    assert folds(rows) == [1, 2]
    assert [r.path for r in select(rows, fold=2, split="test")] == ["3.mp4", "4.mp4"]
    assert len(select(rows, split="train")) == 2 and len(select(rows)) == 5
    with pytest.raises(UserError, match="fold 3 is not in the manifest; folds available: 1, 2"):
        select(rows, fold=3)
    with pytest.raises(UserError, match="split 'val'"):
        select(rows, split="val")
    with pytest.raises(UserError, match="single-split"):
        select([ManifestRow("a.mp4", "fear")], fold=1)


# --- interview manifests -------------------------------------------------------------------------------

def test_interview_manifest(tmp_path: Path) -> None:
    path = write_text(tmp_path / "i.csv", "path,subject,session,blunted_affect,alogia\n"
                                          "v/1.mp4,p01,s1,3,\nv/2.mp4,p02,,1.5,-2\n")
    rows, items = read_interview_manifest(path)
    assert items == ["blunted_affect", "alogia"]
    assert rows[0].scores == {"blunted_affect": 3.0, "alogia": None}
    assert (rows[1].subject, rows[1].session, rows[1].scores["alogia"], rows[1].row_number) == ("p02", "", -2.0, 3)


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("path,subject,session,a\nv.mp4,p1,s,high\n", [":2:", "'high'", "item 'a'"]),
        ("path,subject,session,a\nv.mp4,p1,s,nan\n", [":2:", "'nan'"]),
        ("path,subject,session\nv.mp4,p1,s\n", [":1:", "no symptom-item columns"]),
        ("path,session,a\nv.mp4,s,1\n", [":1:", "missing column", "subject"]),
        ("path,subject,session,a\nv.mp4,,s,1\n", [":2:", "empty subject"]),
    ],
)
def test_interview_manifest_errors(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write_text(tmp_path / "i.csv", text)
    with pytest.raises(DataError) as info:
        read_interview_manifest(path)
    assert "i.csv" in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


# --- validation ----------------------------------------------------------------------------------------

def test_caption_checks() -> None:
    assert caption_problems("A woman smiles; café, naïve.") == []
    assert caption_problems("她在笑") == []
    assert "U+FFFD" in caption_problems("bad \ufffd text")[0]
    assert "control character U+0007" in caption_problems("bell\x07")[0]
    assert "mojibake" in caption_problems("Ã©tÃ© smile")[0]  # UTF-8 read as Latin-1
    assert "mojibake" in caption_problems("她在笑".encode("gbk").decode("latin-1"))[0]  # GBK read as Latin-1


def make_dataset_root(root: Path) -> None:
    (root / "clips").mkdir(parents=True)
    write_mp4(root / "clips" / "good.mp4")
    (root / "clips" / "corrupt.mp4").write_bytes(b"not a video" * 50)
    write_png_folder(root / "faces" / "f1")
    (root / "faces" / "empty").mkdir()


def test_validate_reports_every_problem_with_row(tmp_path: Path) -> None:
    make_dataset_root(tmp_path)
    rows = [
        ManifestRow("clips/good.mp4", "anger", "fine", "train", 1, row_number=2),
        ManifestRow("faces/f1", "anger+fear", "", "test", 1, row_number=3),
        ManifestRow("clips/good.mp4", "anger", "fine", "train", 1, row_number=4),  # duplicate of 2
        ManifestRow("faces/f1", "anger+fear", "", "train", 1, row_number=5),  # train and test in fold 1
        ManifestRow("faces/f1", "anger+fear", "", "test", 2, row_number=6),  # test in two folds
        ManifestRow("clips/missing.mp4", "fear", "", "train", 2, row_number=7),
        ManifestRow("clips/corrupt.mp4", "boredom", "x\ufffd", "train", 2, row_number=8),
        ManifestRow("faces/empty", "fear", "", "train", None, row_number=9),  # fold missing
    ]
    report = validate_manifest(rows, tmp_path)
    found = {(p.row_number, key) for p in report.problems
             for key in ("duplicate", "same fold", "one fold", "does not exist", "decode", "boredom", "U+FFFD",
                         "fold is empty", "no frames") if key in p.message}
    assert found == {(4, "duplicate"), (5, "same fold"), (6, "one fold"), (7, "does not exist"), (8, "decode"),
                     (8, "boredom"), (8, "U+FFFD"), (9, "fold is empty"), (9, "no frames")}
    assert [p.row_number for p in report.problems] == sorted(p.row_number for p in report.problems)
    assert not report.ok
    assert report.split_counts == {"train": 6, "test": 2}
    assert report.fold_counts == {1: {"train": 3, "test": 1}, 2: {"test": 1, "train": 2}, None: {"train": 1}}
    assert report.num_paths == 5 and report.compound == 1
    assert report.class_counts == {"anger": 2, "fear": 3, "boredom": 1}
    # without decoding, only existence is checked
    quick = validate_manifest(rows, tmp_path, check_decode=False)
    assert not any("cannot decode" in p.message or "no frames" in p.message for p in quick.problems)
    assert any("does not exist" in p.message for p in quick.problems)


def test_validate_clean_manifest(tmp_path: Path) -> None:
    make_dataset_root(tmp_path)
    rows = [ManifestRow("clips/good.mp4", "anger", "fine", "train", None, row_number=2),
            ManifestRow("faces/f1", "sadness", "", "test", None, row_number=3)]
    report = validate_manifest(rows, tmp_path)
    assert report.ok and report.problems == []
    assert "problems: 0" in report.summary() and "sadness 1" in report.summary()


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli_data.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_validate_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_dataset_root(tmp_path)
    good = tmp_path / "good.csv"
    write_manifest([ManifestRow("clips/good.mp4", "anger", "ok", "train")], good)
    assert run_cli(["validate", str(good), "--root", str(tmp_path), "--no-progress"]) == 0
    assert "manifest OK" in capsys.readouterr().out
    bad = write_text(tmp_path / "bad.csv", f"{HEADER}\nclips/good.mp4,anger,,train,,\nclips/gone.mp4,angre,,test,,\n")
    assert run_cli(["validate", str(bad), "--root", str(tmp_path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "row 3: clips/gone.mp4:" in out and "does not exist" in out and "unknown class 'angre'" in out


def test_paths_outside_the_root_are_flagged_and_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emoclip_lib import workers
    from emoclip_lib.data import manifest_checks

    root, outside = tmp_path / "root", tmp_path / "outside"
    make_dataset_root(root)
    outside.mkdir()
    secret = write_mp4(outside / "clip.mp4")
    (root / "clips" / "link.mp4").symlink_to(secret)
    (root / "ext").symlink_to(outside, target_is_directory=True)
    (root / "clips" / "inside.mp4").symlink_to(root / "clips" / "good.mp4")  # a link that stays inside is fine
    opened: list[str] = []

    def recording(real):
        return lambda path, *args: opened.append(str(path)) or real(path, *args)

    for name in ("count_frames", "read_frames"):
        monkeypatch.setattr(manifest_checks, name, recording(getattr(manifest_checks, name)))
    monkeypatch.setattr(workers, "cpu_count", lambda: 1)  # the videos are checked in this process, recorded here
    paths = [str(secret), "../outside/clip.mp4", "clips/link.mp4", "ext/clip.mp4", "clips/good.mp4",
             "clips/inside.mp4"]
    rows = [ManifestRow(p, "anger", "", "train", None, row_number=n) for n, p in enumerate(paths, start=2)]
    report = validate_manifest(rows, root)
    messages = {p.row_number: p.message for p in report.problems}
    assert set(messages) == {2, 3, 4, 5}
    assert "absolute" in messages[2] and "'..'" in messages[3]
    assert all("outside the dataset root" in messages[n] and str(secret) in messages[n] for n in (4, 5))
    assert all("not opened" in m for m in messages.values())
    assert sorted(set(opened)) == [str(root / "clips" / "good.mp4"), str(root / "clips" / "inside.mp4")]


def test_a_header_only_manifest_is_reported_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = write_text(tmp_path / "empty.csv", f"{HEADER}\n")
    assert run_cli(["validate", str(empty), "--root", str(tmp_path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "manifest OK" not in out and f"{empty}: the manifest has no rows" in out
    assert not validate_manifest([], tmp_path).ok


def test_class_summary_uses_canonical_names_and_only_classes_that_occur(tmp_path: Path) -> None:
    make_dataset_root(tmp_path)
    rows = [ManifestRow("clips/good.mp4", "Happiness", "", "train", row_number=2),
            ManifestRow("faces/f1", "happiness + Sadness", "", "test", row_number=3),
            ManifestRow("clips/corrupt.mp4", "ANGER+", "", "test", row_number=4)]
    report = validate_manifest(rows, tmp_path, check_decode=False)
    assert report.class_counts == {"anger": 1, "happiness": 2, "sadness": 1}
    assert report.compound == 1
    line = next(x for x in report.summary().splitlines() if x.startswith("samples per class"))
    assert line == "samples per class: anger 1, happiness 2, sadness 1"
    assert [p.row_number for p in report.problems] == [4] and "empty label" in report.problems[0].message


def test_problems_of_rows_built_in_memory_name_the_path_only(tmp_path: Path) -> None:
    make_dataset_root(tmp_path)
    rows = [ManifestRow("clips/good.mp4", "anger"), ManifestRow("clips/good.mp4", "anger"),
            ManifestRow("clips/gone.mp4", "fear")]
    lines = [str(p) for p in validate_manifest(rows, tmp_path).problems]
    assert sorted(lines) == ["clips/gone.mp4: " + str(tmp_path / "clips" / "gone.mp4") + " does not exist",
                             "clips/good.mp4: duplicate of another row (same path, fold and split); delete one"]
    from_file = [ManifestRow("clips/gone.mp4", "fear", row_number=5)]
    assert str(validate_manifest(from_file, tmp_path).problems[0]).startswith("row 5: clips/gone.mp4: ")


def test_validation_keeps_native_decoder_messages_out_of_the_report(tmp_path: Path,
                                                                   capfd: pytest.CaptureFixture[str]) -> None:
    make_dataset_root(tmp_path)
    report = validate_manifest([ManifestRow("clips/corrupt.mp4", "anger", row_number=2)], tmp_path)
    assert "cannot decode" in report.problems[0].message
    assert capfd.readouterr().err == ""
