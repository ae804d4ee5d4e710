"""`emoclip train` and `emoclip reproduce` with the same profile train the same model (one source of settings)."""
from __future__ import annotations

import torch

from conftest import tiny_chain_profile
from emoclip_lib import cli
from emoclip_lib.pipeline import reproduce

PROFILE = tiny_chain_profile("tiny chain for the tests", ["01", "02", "03"])


def test_train_and_reproduce_give_identical_best_checkpoints(tmp_path, capsys):
    profile = tmp_path / "tiny.yaml"
    profile.write_text(PROFILE)
    assert cli.main(["train", "--profile", str(profile), "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    reproduce(str(profile), tmp_path / "b", progress=False)
    a = torch.load(tmp_path / "a/train/seed0/fold1/best.pt", weights_only=True)
    b = torch.load(tmp_path / "b/train/seed0/fold1/best.pt", weights_only=True)
    assert a["model_config"] == b["model_config"] and a["model_config"]["backbone"] == "backbone/clip_pretrained.pt"
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    same = {k: v for k, v in a["meta"]["config"].items() if k != "cache_dir"}  # the cache is each run's own
    assert same == {k: v for k, v in b["meta"]["config"].items() if k != "cache_dir"} and same["optimizer"] == "adamw"
