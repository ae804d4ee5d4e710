"""`emoclip evaluate`: any checkpoint on any release, test clips only, the paper's protocol, official weights."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emoclip_lib import cli
from emoclip_lib.data import BASIC_CLASSES, convert, count_frames, preprocess_frames, read_frames
from emoclip_lib.data.video import sample_indices
from emoclip_lib.metrics import uar, war
from emoclip_lib.model import load_checkpoint, load_clip
from emoclip_lib.model.official import OfficialTemporalReference
from emoclip_lib.synth import write_releases
from emoclip_lib.zeroshot import class_embeddings, scored_clips
from conftest import official_state


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("world")
    write_releases(out, "tiny", 0, progress=False)
    clip = load_clip("tiny", seed=5).half().float()  # what an fp16 official checkpoint round-trips to
    torch.manual_seed(0)
    ref = OfficialTemporalReference(64, layers=1, heads=8, head_dim=16, mlp_dim=64).eval()
    torch.save(official_state(clip, ref, visual_only=False), out / "official.pth")
    torch.save(official_state(clip, ref, visual_only=True), out / "downstream.pth")
    torch.save(clip.state_dict(), out / "clip.pt")
    return {"out": out, "dfew": out / "DFEW", "afew": out / "AFEW"}


def evaluate(world: dict, out: Path, *extra: str, dataset: str = "dfew", checkpoint: str = "official.pth") -> dict:
    ckpt = checkpoint if checkpoint.startswith("clip:") else str(world["out"] / checkpoint)
    assert cli.main(["evaluate", "--checkpoint", ckpt, "--dataset", dataset, "--root", str(world[dataset]),
                     "--out", str(out), "--no-progress", "--device", "cpu", *extra]) == 0
    return json.loads(out.read_text())


def test_every_test_fold_is_scored_with_the_recorded_protocol(world, tmp_path):
    res = evaluate(world, tmp_path / "r.json")
    rows = convert("dfew", world["dfew"])
    assert res["dataset"] == "DFEW" and res["checkpoint"]["format"] == "official"
    assert res["checkpoint"]["layout"] == "official"
    assert res["protocol"]["clip_len"] == 32 and res["protocol"]["downsample"] == 4
    assert res["protocol"]["window"] == "centre" and res["protocol"]["split"] == "test"
    assert list(res["methods"]) == ["emoclip", "clip_names", "clip_descriptions"]
    for method in res["methods"].values():
        assert [f["fold"] for f in method["folds"]] == [1, 2, 3, 4, 5]
        assert [f["n"] for f in method["folds"]] == [len(scored_clips(rows, k)) for k in range(1, 6)]
        assert 0.0 <= method["uar"] <= 1.0 and method["uar"] == pytest.approx(np.mean([f["uar"] for f in method["folds"]]))
    assert (tmp_path / "r.md").read_text().startswith("# Zero-shot results: DFEW")


def test_scores_equal_an_independent_computation(world, tmp_path):
    res = evaluate(world, tmp_path / "r.json", dataset="afew")
    model = load_checkpoint(world["out"] / "official.pth")
    clips = scored_clips(convert("afew", world["afew"]), None)
    with torch.no_grad():
        videos = []
        for row in clips:
            path = world["afew"] / row.path
            idx = sample_indices(count_frames(path), 32, 4, train=False)
            videos.append(model.encode_video(preprocess_frames(read_frames(path, idx), 32)[None])[0])
        text = class_embeddings(model.encode_text, list(BASIC_CLASSES), "description")
        pred = (F.normalize(torch.stack(videos), dim=-1) @ text.t()).argmax(1).numpy()
    truth = np.array([BASIC_CLASSES.index(r.labels) for r in clips])
    fold = res["methods"]["emoclip"]["folds"][0]
    assert fold["fold"] is None and fold["n"] == len(clips)
    assert fold["uar"] == pytest.approx(uar(truth, pred)) and fold["war"] == pytest.approx(war(truth, pred))


def test_a_training_clip_changed_to_garbage_changes_nothing(world, tmp_path):
    copy = tmp_path / "DFEW"
    shutil.copytree(world["dfew"], copy)
    rows = convert("dfew", copy)
    train_only = {r.path for r in rows if r.split == "train"} - {r.path for r in rows if r.split == "test"}
    assert not train_only  # DFEW's folds: every clip is a test clip of one fold; AFEW has train-only clips
    afew = tmp_path / "AFEW"
    shutil.copytree(world["afew"], afew)
    train = [r.path for r in convert("afew", afew) if r.split == "train"]
    (afew / train[0]).write_bytes(b"this is not a video")
    before = evaluate(world, tmp_path / "a.json", dataset="afew")
    after = evaluate({**world, "afew": afew}, tmp_path / "b.json", "--cache", str(tmp_path / "fresh"), dataset="afew")
    assert after["methods"] == before["methods"]


def test_downstream_weights_with_a_text_tower_equal_the_full_model(world, tmp_path, capsys):
    full = evaluate(world, tmp_path / "full.json", dataset="afew")
    part = evaluate(world, tmp_path / "part.json", "--text-tower", str(world["out"] / "clip.pt"), dataset="afew",
                    checkpoint="downstream.pth")
    assert part["methods"] == full["methods"] and part["checkpoint"]["visual_only"] is True
    assert part["checkpoint"]["text_tower"].endswith("clip.pt")
    assert cli.main(["evaluate", "--checkpoint", str(world["out"] / "downstream.pth"), "--dataset", "afew",
                     "--root", str(world["afew"]), "--out", str(tmp_path / "x.json"), "--no-progress"]) == 2
    assert "--text-tower ViT-B/32" in capsys.readouterr().err


def test_clip_alone_is_scored_with_the_baselines_only(world, tmp_path):
    res = evaluate(world, tmp_path / "clip.json", "--folds", "1,2", checkpoint="clip:tiny")
    assert list(res["methods"]) == ["clip_names", "clip_descriptions"] and res["checkpoint"]["clip_only"]
    assert [f["fold"] for f in res["methods"]["clip_names"]["folds"]] == [1, 2]


def test_user_mistakes_are_one_line_errors(world, tmp_path, capsys):
    args = ["evaluate", "--checkpoint", str(world["out"] / "official.pth"), "--dataset", "dfew", "--out"]
    assert cli.main(args + [str(tmp_path / "r.json")]) == 2
    assert "--root" in capsys.readouterr().err
    assert cli.main(args + [str(tmp_path / "r.json"), "--root", str(world["dfew"]), "--folds", "7"]) == 2
    assert "folds [7] are not in the dataset" in capsys.readouterr().err
    assert cli.main(args + [str(tmp_path / "r.txt"), "--root", str(world["dfew"])]) == 2
    assert ".json" in capsys.readouterr().err
