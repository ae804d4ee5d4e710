"""`emoclip train`: settings per stage, unknown parameters, the run-folder contract, torchrun guards
(stage functions replaced by recorders)."""
from __future__ import annotations

import json

import pytest

from emoclip_lib import cli
from emoclip_lib.pipeline import run_dir as rd
from emoclip_lib.pipeline import stages
from emoclip_lib.train import distributed as D


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A profile file and recording stand-ins for the three stage functions."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    profile = tmp_path / "demo.yaml"
    profile.write_text("description: test\nparameters:\n  seed: 3\n  synth_size: tiny\n")
    calls: list[tuple[str, object]] = []
    for stage, number in stages.TRAIN_STAGES.items():
        monkeypatch.setitem(stages.STAGE_FUNCTIONS, stage, _recorder(stage, number, calls))
    return {"profile": str(profile), "out": tmp_path / "run", "calls": calls}


def _recorder(stage: str, number: str, calls: list):
    def run(out, settings, progress):
        calls.append((stage, settings))
        result = {"stage": stage, "flat": settings.flat(), "pid": len(calls)}
        rd.write_stage(out, number, result)
        return result
    return run


def train(env, *extra: str) -> int:
    return cli.main(["train", "--profile", env["profile"], "--out", str(env["out"]), "--no-progress", *extra])


def prepare_and_curate(env, *extra: str) -> None:
    """The single-process part of a torchrun workflow."""
    assert train(env, "--stage", "prepare", *extra) == 0 and train(env, "--stage", "curate", *extra) == 0
    assert ran(env) == ["prepare", "curate"]


def ran(env) -> list[str]:
    done = [stage for stage, _ in env["calls"]]
    env["calls"].clear()
    return done


def test_unknown_parameter_is_a_one_line_error_listing_the_valid_ones(env, capsys):
    assert train(env, "-p", "bogus", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("emoclip train: error: unknown parameter(s) bogus (from -p)")
    for name in ("synth_size", "max_tokens", "near_duplicate_threshold", "layers", "epochs", "lr"):
        assert name in err
    assert env["calls"] == [] and not env["out"].exists()


def test_parameters_set_by_the_command_are_refused(env, capsys):
    assert train(env, "-p", "run_dir", "/elsewhere") == 2
    assert "use --out" in capsys.readouterr().err


@pytest.mark.parametrize("key,value,message", [("epochs", "1.5", "epochs must be an integer, got 1.5"),
                                               ("epochs", "abc", "epochs must be an integer"),
                                               ("optimizer", "adam", "optimizer must be one of sgd, adamw"),
                                               ("n_boot", "-5", "n_boot must be at least 0"),
                                               ("models", ",", "models must name one or more of")])
def test_a_bad_value_fails_before_any_stage_runs(env, capsys, key, value, message):
    assert train(env, "-p", key, value) == 2
    assert message in capsys.readouterr().err
    assert env["calls"] == [] and not env["out"].exists()


def test_each_stage_gets_the_resolved_settings_and_run_json_records_them(env):
    assert train(env, "-p", "epochs", "2", "-p", "near_duplicate_threshold", "0.7", "-p", "layers", "1",
                 "-p", "milestones", "[1, 2]", "-p", "device", "cpu", "-p", "strict", "false",
                 "-p", "loco", "false") == 0
    calls = dict(env["calls"])
    assert list(calls) == ["prepare", "curate", "train"]
    settings = calls["train"]
    assert settings is calls["prepare"] and settings.seed == 3 and settings.data.synth_size == "tiny"
    assert settings.data.strict is False and settings.curation.near_duplicate_threshold == 0.7
    assert (settings.train.epochs, settings.train.milestones, settings.model.temporal.layers) == (2, (1, 2), 1)
    assert settings.eval.loco is False  # a later notebook's parameter is recorded, not used here
    record = json.loads((env["out"] / "run.json").read_text())
    assert record["profile"] == "demo" and record["seed"] == 3 and record["command"] == "emoclip train"
    assert record["parameters"]["near_duplicate_threshold"] == 0.7 and record["packages"]["torch"]
    assert record["stages"]["02"] == {"seed": 3, "shorten": True, "max_tokens": 75, "near_duplicate_threshold": 0.7}
    assert record["parameters"]["loco"] is False and "loco" not in record["stages"]["03"]


def test_resume_skips_done_stages_and_refuses_changed_training(env, capsys):
    assert train(env, "-p", "epochs", "2") == 0 and ran(env) == ["prepare", "curate", "train"]
    assert train(env, "-p", "epochs", "2") == 0 and ran(env) == []
    assert "train skipped" in capsys.readouterr().out
    assert train(env, "-p", "epochs", "3") == 2 and ran(env) == []
    assert "other values of epochs (notebook 03" in capsys.readouterr().err
    (env["out"] / "03_results.json").unlink()  # results gone: the stage runs again
    assert train(env, "-p", "epochs", "2") == 0 and ran(env) == ["train"]
    assert train(env, "-p", "epochs", "3", "--force") == 0 and ran(env) == ["prepare", "curate", "train"]
    assert json.loads((env["out"] / "run.json").read_text())["parameters"]["epochs"] == 3


def test_a_folder_that_is_not_a_run_is_never_touched(env, capsys):
    env["out"].mkdir()
    (env["out"] / "thesis.tex").write_text("mine")
    assert train(env, "--force") == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert (env["out"] / "thesis.tex").read_text() == "mine" and env["calls"] == []


def test_torchrun_needs_prepare_and_curate_done_first(env, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert train(env, "--stage", "prepare") == 2
    assert "cannot run under torchrun" in capsys.readouterr().err
    assert train(env, "--stage", "train") == 2
    assert "prepare and curate must already exist" in capsys.readouterr().err
    monkeypatch.delenv("WORLD_SIZE")
    prepare_and_curate(env)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert train(env, "--stage", "train", "-p", "seed", "4") == 2  # other parameters than the prepared run
    assert env["calls"] == []


@pytest.mark.parametrize("rank", [0, 1])
def test_under_torchrun_rank0_pretrains_first_and_alone_writes_results(env, monkeypatch, rank):
    prepare_and_curate(env, "-p", "backbone", "tiny")
    monkeypatch.setenv("WORLD_SIZE", "2")
    ctx = D.DistContext(rank=rank, world_size=2)
    events: list[str] = []
    monkeypatch.setattr(D, "init_from_env", lambda device: ctx)
    monkeypatch.setattr(D, "barrier", lambda c: events.append("barrier"))
    monkeypatch.setattr(D, "shutdown", lambda c: None)
    monkeypatch.setattr(stages, "training_rows", lambda run: ([], run, {}))
    monkeypatch.setattr(stages, "prepare_backbone",
                        lambda run, backbone, *args: events.append(f"pretrain {backbone} epochs={args[3]}"))
    before = (env["out"] / "run.json").read_text()
    assert train(env, "-p", "backbone", "tiny", "--stage", "train") == 0 and ran(env) == ["train"]
    after = json.loads((env["out"] / "run.json").read_text())
    results = json.loads((env["out"] / "03_results.json").read_text())
    if rank == 0:
        assert events == ["pretrain tiny epochs=14", "barrier", "barrier"]
        assert after["stages"]["03"]["backbone"] == "tiny"
    else:
        assert events == ["barrier", "barrier"]
        assert (env["out"] / "run.json").read_text() == before
    assert results["stage"] == "train" and results["flat"]["backbone"] == "tiny"


def test_force_removes_only_what_the_tool_wrote(env, capsys):
    assert train(env) == 0 and ran(env) == ["prepare", "curate", "train"]
    (env["out"] / "my_notes.txt").write_text("mine")
    (env["out"] / "analysis").mkdir()
    assert train(env, "-p", "epochs", "3", "--force") == 0
    assert "--force kept what the tool did not write" in capsys.readouterr().out
    assert (env["out"] / "my_notes.txt").read_text() == "mine" and (env["out"] / "analysis").is_dir()
    assert json.loads((env["out"] / "run.json").read_text())["parameters"]["epochs"] == 3
