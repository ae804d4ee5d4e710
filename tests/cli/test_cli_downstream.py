"""Tests of `emoclip features` and `emoclip regress` through `emoclip_lib.cli.main`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from emoclip_lib import cli

from emoclip_lib.cli import downstream as cli_downstream

from emoclip_lib.downstream import features
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
