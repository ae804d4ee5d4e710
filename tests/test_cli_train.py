"""`emoclip train`: parameter routing, unknown parameters, resume, torchrun guards (stage functions replaced)."""
from __future__ import annotations

import functools
import json

import nbformat
import pytest

from emoclip_lib import cli

from emoclip_lib.cli import train as cli_train

from emoclip_lib.pipeline import prepare

from emoclip_lib.pipeline import curation as stage_curation

from emoclip_lib.pipeline import training as stage_training
from emoclip_lib.train import distributed as D
from emoclip_lib.runtime import write_stage

STAGE_MODULES = {"prepare": (prepare, "prepare_data"), "curate": (stage_curation, "curate_run"),
                 "train": (stage_training, "train_run")}


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A profile file, an empty notebook folder and recording stand-ins for the three stage functions."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.setattr(cli_train, "NOTEBOOK_DIR", notebooks)
    profile = tmp_path / "demo.yaml"
    profile.write_text("description: test\nparameters:\n  seed: 3\n  dataset: synthetic\n  synth_size: tiny\n")
    calls: list[tuple[str, dict]] = []
    for stage, (module, name) in STAGE_MODULES.items():
        monkeypatch.setattr(module, name, _recorder(stage, getattr(module, name), calls))
    return {"profile": str(profile), "out": tmp_path / "run", "calls": calls, "notebooks": notebooks}


def _recorder(stage: str, real, calls: list):
    @functools.wraps(real)  # keeps the real signature for the routing
    def run(run_dir, **kwargs):
        calls.append((stage, kwargs))
        result = {"stage": stage, "kwargs": kwargs, "pid": len(calls)}
        write_stage(run_dir, cli_train.STAGE_NUMBERS[stage], result)
        return result
    return run


def train(env, *extra: str) -> int:
    return cli.main(["train", "--profile", env["profile"], "--out", str(env["out"]), "--no-progress", *extra])


def prepare_and_curate(env, *extra: str) -> None:
    """The single-process part of a torchrun workflow."""
    assert train(env, "--stage", "prepare", *extra) == 0 and train(env, "--stage", "curate", *extra) == 0
    assert ran(env) == ["prepare", "curate"]


def ran(env) -> list[str]:
    stages = [stage for stage, _ in env["calls"]]
    env["calls"].clear()
    return stages


def test_unknown_parameter_is_a_one_line_error_listing_the_accepted_ones(env, capsys):
    assert train(env, "-p", "bogus", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("emoclip train: error: unknown parameter(s) ['bogus']")
    for name in ("synth_size", "max_tokens", "near_duplicate_threshold", "layers", "epochs", "lr"):
        assert name in err
    assert env["calls"] == [] and not env["out"].exists()


def test_parameters_set_by_the_command_are_refused(env, capsys):
    assert train(env, "-p", "run_dir", "/elsewhere") == 2
    assert "use --out" in capsys.readouterr().err


def test_parameters_of_later_notebooks_are_ignored(env, capsys):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("run_dir = '.'\neval_only = 1")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, env["notebooks"] / "04_eval.ipynb")
    assert train(env, "-p", "eval_only", "2", "--stage", "prepare") == 0
    assert "ignoring ['eval_only']" in capsys.readouterr().err
    assert "eval_only" not in env["calls"][0][1]


def test_each_stage_gets_only_the_parameters_it_accepts(env):
    assert train(env, "-p", "epochs", "2", "-p", "near_duplicate_threshold", "0.7", "-p", "layers", "1",
                 "-p", "milestones", "[1, 2]", "-p", "device", "cpu", "-p", "strict", "false") == 0
    calls = dict(env["calls"])
    assert list(calls) == ["prepare", "curate", "train"]
    assert calls["prepare"] == {"seed": 3, "dataset": "synthetic", "synth_size": "tiny", "strict": False,
                                "progress": False}
    assert calls["curate"] == {"seed": 3, "threshold": 0.7, "progress": False}
    assert calls["train"] == {"seed": 3, "epochs": 2, "layers": 1, "milestones": [1, 2], "device": "cpu",
                              "progress": False}
    record = json.loads((env["out"] / "run.json").read_text())
    assert record["profile"] == "demo" and record["seed"] == 3 and record["command"] == "emoclip train"
    assert record["parameters"]["near_duplicate_threshold"] == 0.7 and record["packages"]["torch"]
    assert record["stages"]["curate"] == {"seed": 3, "threshold": 0.7}


def test_a_bad_training_value_fails_before_any_stage_runs(env, capsys):
    assert train(env, "-p", "optimizer", "adam") == 2
    assert "optimizer must be one of sgd, adamw" in capsys.readouterr().err
    assert env["calls"] == []


def test_resume_skips_stages_done_with_the_same_parameters(env, capsys):
    assert train(env, "-p", "epochs", "2") == 0 and ran(env) == ["prepare", "curate", "train"]
    assert train(env, "-p", "epochs", "2") == 0 and ran(env) == []
    assert "train skipped" in capsys.readouterr().out
    assert train(env, "-p", "epochs", "3") == 0 and ran(env) == ["train"]
    assert train(env, "-p", "epochs", "3", "-p", "max_tokens", "60") == 0 and ran(env) == ["curate", "train"]
    (env["out"] / "03_results.json").unlink()  # results gone: the stage runs again
    assert train(env, "-p", "epochs", "3", "-p", "max_tokens", "60") == 0 and ran(env) == ["train"]
    assert train(env, "-p", "synth_size", "small", "--stage", "prepare") == 0 and ran(env) == ["prepare"]
    stages = json.loads((env["out"] / "run.json").read_text())["stages"]
    assert list(stages) == ["prepare"]  # later stages are stale after prepare ran again
    assert train(env, "-p", "synth_size", "small", "--stage", "train") == 0 and ran(env) == ["train"]


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
    prepare_and_curate(env)
    monkeypatch.setenv("WORLD_SIZE", "2")
    ctx = D.DistContext(rank=rank, world_size=2)
    events: list[str] = []
    monkeypatch.setattr(D, "init_from_env", lambda device: ctx)
    monkeypatch.setattr(D, "barrier", lambda c: events.append("barrier"))
    monkeypatch.setattr(D, "shutdown", lambda c: None)
    monkeypatch.setattr(stage_training, "training_rows", lambda run: ([], run, {}))
    monkeypatch.setattr(stage_training, "prepare_backbone",
                        lambda run, backbone, *args: events.append(f"pretrain {backbone} epochs={args[3]}"))
    before = (env["out"] / "run.json").read_text()
    assert train(env, "-p", "pretrain_epochs", "5") == 0 and ran(env) == ["train"]
    after = json.loads((env["out"] / "run.json").read_text())
    results = json.loads((env["out"] / "03_results.json").read_text())
    if rank == 0:
        assert events == ["pretrain tiny epochs=5", "barrier", "barrier"]
        assert after["stages"]["train"] == {"seed": 3, "pretrain_epochs": 5}
    else:
        assert events == ["barrier", "barrier"]
        assert (env["out"] / "run.json").read_text() == before
    assert results["stage"] == "train" and results["kwargs"]["pretrain_epochs"] == 5
