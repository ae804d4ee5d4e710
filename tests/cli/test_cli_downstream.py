"""Tests of `emoclip features` and `emoclip regress` through `emoclip_lib.cli.main`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from emoclip_lib import cli

from emoclip_lib.cli import downstream as cli_downstream

from emoclip_lib.downstream import features
from emoclip_lib.errors import UserError
from emoclip_lib.model.checkpoint import build_model, save_checkpoint
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig
from conftest import random_video

N_SUBJECTS = 6


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Six subjects with one short video each, a manifest and a tiny checkpoint."""
    base = tmp_path_factory.mktemp("downstream")
    root = base / "videos"
    root.mkdir()
    lines = ["path,subject,session,blunted_affect,alogia"]
    for k in range(N_SUBJECTS):
        random_video(root / f"p{k}.mp4", 12 + k, seed=10 + k)
        lines.append(f"p{k}.mp4,s{k},1,{k % 4},{(3 * k) % 5 if k != 2 else ''}")
    manifest = base / "interviews.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ckpt = base / "tiny.pt"
    model = build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0)
    save_checkpoint(model, ckpt)
    return base, root, manifest, ckpt


def features_argv(base, root, manifest, ckpt, *extra: str) -> list[str]:
    return ["features", str(manifest), "--root", str(root), "--checkpoint", str(ckpt), "--cache",
            str(base / "cache"), "--out", str(base / "feats.npz"), "--clip-len", "4", "--downsample", "2",
            "--device", "cpu", "--no-progress", *extra]


def test_features_then_regress(project, capsys):
    base, root, manifest, ckpt = project
    assert cli.main(features_argv(base, root, manifest, ckpt, "--stats", "mean,q90")) == 0
    assert "wrote features of 6 videos (128 values each)" in capsys.readouterr().out
    table = cli_downstream.load_features(base / "feats.npz")
    assert table["subject"].tolist() == [f"s{k}" for k in range(N_SUBJECTS)]
    assert table.attrs["items"] == ["blunted_affect", "alogia"] and np.isnan(table.loc[2, "alogia"])
    assert table.attrs["settings"]["stats"] == ["mean", "q90"] and table.attrs["settings"]["checkpoint"] == str(ckpt)
    assert features.feature_matrix(table).shape == (N_SUBJECTS, 128)

    out = base / "results.json"
    argv = ["regress", str(base / "feats.npz"), "--models", "ridge", "--level", "subject", "--out", str(out),
            "--seed", "3", "--n-boot", "0", "--outer-folds", "2", "--inner-folds", "2", "--no-progress"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "blunted_affect" in printed and "ridge" in printed and "average" in printed
    result = json.loads(out.read_text())
    assert result["level"] == "subject" and result["seed"] == 3
    rows = {(r["item"], r["method"]): r for r in result["table"]}
    assert set(rows) == {(i, m) for i in ("blunted_affect", "alogia", "average") for m in ("mean", "ridge")}
    assert rows[("alogia", "ridge")]["n"] == N_SUBJECTS - 1 and rows[("alogia", "ridge")]["pcc_lo"] is None
    assert cli.main(argv[:-1] + ["--no-progress"]) == 0  # same seed, same numbers
    assert json.loads(out.read_text())["table"] == result["table"]


def test_feature_file_round_trip(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"path": ["a.mp4", "b.mp4"], "subject": ["s1", "s2"], "session": ["", "2"],
                          "x": [1.0, np.nan], "n_windows": [3, 1],
                          "features": [np.array([0.5, -1.0]), np.array([2.0, 3.0])]})
    table.attrs.update(items=["x"], settings={"encoder": "emoclip"})
    cli_downstream.save_features(table, tmp_path / "f.npz", {"checkpoint": "c.pt"})
    back = cli_downstream.load_features(tmp_path / "f.npz")
    pd.testing.assert_frame_equal(back.drop(columns="features"), table.drop(columns="features"))
    np.testing.assert_array_equal(features.feature_matrix(back), features.feature_matrix(table))
    assert back.attrs["settings"] == {"encoder": "emoclip", "checkpoint": "c.pt"}


def one_line_error(capsys, argv: list[str], *needles: str) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    for needle in needles:
        assert needle in err
    return err


def test_user_mistakes_are_one_line_errors(project, tmp_path, capsys):
    base, root, manifest, ckpt = project
    bad_manifest = tmp_path / "bad.csv"
    bad_manifest.write_text("path,subject,session,alogia\np0.mp4,s0,1,high\n", encoding="utf-8")
    one_line_error(capsys, features_argv(base, root, bad_manifest, ckpt), "bad.csv:2", "high")
    no_items = tmp_path / "noitems.csv"
    no_items.write_text("video,subject\n", encoding="utf-8")
    one_line_error(capsys, features_argv(base, root, no_items, ckpt), "noitems.csv:1")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    one_line_error(capsys, features_argv(base, root, manifest, garbage), "garbage.pt")
    one_line_error(capsys, features_argv(base, root, manifest, tmp_path / "missing.pt"), "does not exist")
    one_line_error(capsys, features_argv(base, tmp_path, manifest, ckpt), "interviews.csv:2", "p0.mp4")
    one_line_error(capsys, features_argv(base, root, manifest, ckpt, "--stats", "mean,avg"), "unknown statistic")
    one_line_error(capsys, features_argv(base, root, manifest, ckpt, "--stride", "0"), "--stride must be at least 1")
    one_line_error(capsys, ["regress", str(tmp_path / "none.npz"), "--out", str(tmp_path / "r.json")],
                   "emoclip features")
    one_line_error(capsys, ["regress", str(garbage), "--out", str(tmp_path / "r.json")], "not a feature file")


def regress_argv(features_file, out, *extra: str) -> list[str]:
    return ["regress", str(features_file), "--out", str(out), "--models", "ridge", "--n-boot", "0",
            "--outer-folds", "2", "--inner-folds", "2", "--no-progress", *extra]


@pytest.mark.parametrize("extra, needle", [
    (["--n-boot", "-5"], "--n-boot must be 0 (no intervals) or more, got -5"),
    (["--models", ","], "--models ',' names no model"),
    (["--models", " "], "names no model"),
    (["--models", "ridge,lasso"], "unknown model 'lasso'"),
    (["--models", "ridge,ridge"], "twice"),
    (["--outer-folds", "1"], "--outer-folds must be at least 2"),
    (["--inner-folds", "0"], "--inner-folds must be at least 2"),
])
def test_regress_options_are_checked_before_any_work(tmp_path, capsys, extra, needle):
    # the feature file does not exist: the option is reported first, before anything is read
    one_line_error(capsys, regress_argv(tmp_path / "none.npz", tmp_path / "r.json", *extra), needle)
    assert not (tmp_path / "r.json").exists()


def test_output_paths_are_checked_before_any_work(project, tmp_path, capsys):
    base, root, manifest, ckpt = project
    (tmp_path / "plain").write_text("x")
    missing = tmp_path / "none.npz"
    one_line_error(capsys, regress_argv(missing, tmp_path), "--out", "is a folder")
    bad_predictions = str(tmp_path / "plain" / "p.csv")
    one_line_error(capsys, regress_argv(missing, tmp_path / "r.json", "--predictions", bad_predictions),
                   "--predictions", "plain is a file")
    argv = features_argv(base, root, manifest, tmp_path / "missing.pt")  # checked before the checkpoint is read
    argv[argv.index("--out") + 1] = str(tmp_path)
    one_line_error(capsys, argv, "--out", "is a folder")


def feature_table(scores: dict[str, list[float]]):
    import pandas as pd

    n = len(next(iter(scores.values())))
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"path": [f"v{i}.mp4" for i in range(n)], "subject": [f"s{i}" for i in range(n)],
                          "session": ["1"] * n, **scores, "n_windows": [1] * n,
                          "features": list(rng.normal(size=(n, 3)))})
    table.attrs.update(items=list(scores), settings={})
    return table


def test_regress_skips_an_item_whose_scores_are_all_equal_with_a_note(tmp_path, capsys):
    path = tmp_path / "f.npz"
    cli_downstream.save_features(feature_table({"varies": [float(i % 4) for i in range(8)], "flat": [2.0] * 8}), path)
    assert cli.main(regress_argv(path, tmp_path / "r.json")) == 0
    err = capsys.readouterr().err
    assert "note: item 'flat' skipped: every score is 2" in err
    result = json.loads((tmp_path / "r.json").read_text())
    assert {r["item"] for r in result["table"]} == {"varies", "average"}
    assert set(result["skipped_items"]) == {"flat"}


def hand_edited(file, changes: dict) -> None:
    arrays = {"features": np.zeros((3, 2)), "path": np.array(["a", "b", "c"]), "subject": np.array(["1", "2", "3"]),
              "session": np.array(["", "", ""]), "items": np.array(["x"]), "scores": np.zeros((3, 1)),
              "n_windows": np.ones(3, np.int64), "settings": np.asarray("{}")}
    arrays.update(changes)
    with open(file, "wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize("changes, needle", [
    ({"path": np.array(["a", "b"])}, "path has shape (2,) but features has 3 rows"),
    ({"scores": np.zeros((4, 1))}, "scores has shape (4, 1)"),
    ({"scores": np.zeros((3, 2))}, "scores has 2 columns but there are 1 items"),
    ({"features": np.zeros(3)}, "features must be (videos, values)"),
    ({"settings": np.asarray("{checkpoint: c.pt")}, "settings entry is not valid JSON"),
    ({"settings": np.asarray("[1, 2]")}, "not a JSON object"),
    ({"features": np.array([["a", "b"]] * 3)}, "must hold numbers"),
])
def test_a_hand_edited_feature_file_is_a_one_line_error(tmp_path, capsys, changes, needle):
    path = tmp_path / "edited.npz"
    hand_edited(path, changes)
    with pytest.raises(UserError, match="edited.npz is not a valid feature file"):
        cli_downstream.load_features(path)
    one_line_error(capsys, regress_argv(path, tmp_path / "r.json"), "edited.npz", needle, "emoclip features")
