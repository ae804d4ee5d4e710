"""`emoclip reproduce`: papermill chain, settings passed to the notebooks, run records, resume, refusal."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from emoclip_lib import cli
from emoclip_lib.errors import UserError
from emoclip_lib.pipeline import parse_override, reproduce

NB_CODE = """
import json, pathlib
from emoclip_lib.pipeline import notebook_settings
settings = notebook_settings("{stage}", profile, globals())
log = pathlib.Path("{log}")
log.write_text(log.read_text() + "{stage}\\n" if log.exists() else "{stage}\\n")
if pathlib.Path(str(log) + ".fail-{stage}").exists():
    raise RuntimeError("simulated crash in {stage}")
flat = settings.flat()
(pathlib.Path(run_dir) / "{stage}_results.json").write_text(json.dumps({{k: flat[k] for k in {keys}}}))
"""
KEYS = {"01": ["seed", "synth_size"], "04": ["seed", "loco"]}


def _notebook(path: Path, stage: str, log: Path) -> None:
    nb = nbformat.v4.new_notebook()
    names = KEYS[stage]
    cell = nbformat.v4.new_code_cell('run_dir = "."\nprofile = "synthetic"\n' + "".join(f"{k} = None\n" for k in names))
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(NB_CODE.format(stage=stage, log=log, keys=names))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def project(tmp_path):
    nbs, profiles = tmp_path / "notebooks", tmp_path / "profiles"
    nbs.mkdir(), profiles.mkdir()
    log = tmp_path / "log.txt"
    _notebook(nbs / "01_first.ipynb", "01", log)
    _notebook(nbs / "04_fourth.ipynb", "04", log)
    (profiles / "demo.yaml").write_text("description: test\nparameters:\n  seed: 7\n  synth_size: tiny\n")
    return {"notebooks": nbs, "profiles": profiles, "log": log, "tmp": tmp_path}


def _run(project, out, **kw):
    return reproduce("demo", out, notebook_dir=project["notebooks"], profile_dir=project["profiles"],
                     progress=False, **kw)


def _log(project) -> list[str]:
    return project["log"].read_text().split()


def test_runs_notebooks_in_order_with_the_profile_and_overrides(project):
    out = _run(project, project["tmp"] / "run", overrides={"loco": False})
    assert _log(project) == ["01", "04"]
    assert json.loads((out / "01_results.json").read_text()) == {"seed": 7, "synth_size": "tiny"}
    assert json.loads((out / "04_results.json").read_text()) == {"seed": 7, "loco": False}
    record = json.loads((out / "run.json").read_text())
    assert record["parameters"]["seed"] == 7 and record["parameters"]["loco"] is False
    assert record["seed"] == 7 and list(record["stages"]) == ["01", "04"]
    assert record["stages"]["04"]["loco"] is False and record["command"] == "emoclip reproduce"
    assert record["packages"]["torch"].startswith("2.13.0") and record["git_revision"]
    assert (out / "01_first.ipynb").is_file()


@pytest.mark.parametrize("overrides,message", [({"colour": "blue"}, "unknown parameter.*colour"),
                                               ({"epochs": 1.5}, "epochs must be an integer"),
                                               ({"epochs": 3}, "no notebook of profile demo .* reads it")])
def test_bad_parameters_fail_before_any_notebook(project, overrides, message):
    with pytest.raises(UserError, match=message):
        _run(project, project["tmp"] / "run", overrides=overrides)
    assert not (project["tmp"] / "run").exists() and not project["log"].exists()


def test_resume_after_a_crash_skips_finished_notebooks(project):
    fail = Path(str(project["log"]) + ".fail-04")
    fail.touch()
    with pytest.raises(UserError, match="04_fourth.ipynb failed.*simulated crash.*resume"):
        _run(project, project["tmp"] / "run")
    assert list(json.loads((project["tmp"] / "run" / "run.json").read_text())["stages"]) == ["01"]
    fail.unlink()
    _run(project, project["tmp"] / "run")
    assert _log(project) == ["01", "04", "04"]  # 01 was not run again


def test_an_evaluation_change_reruns_from_its_notebook_a_data_change_is_refused(project):
    out = project["tmp"] / "run"
    _run(project, out)
    _run(project, out, overrides={"loco": False})
    assert _log(project) == ["01", "04", "04"]  # only notebook 04 reads loco
    assert json.loads((out / "04_results.json").read_text())["loco"] is False
    with pytest.raises(UserError, match="other values of synth_size.*--force"):
        _run(project, out, overrides={"synth_size": "small"})
    _run(project, out, overrides={"synth_size": "small"}, force=True)
    assert json.loads((out / "01_results.json").read_text())["synth_size"] == "small"


def test_non_run_directory_is_never_overwritten(project):
    out = project["tmp"] / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    for force in (False, True):
        with pytest.raises(UserError, match="not a run folder"):
            _run(project, out, force=force)
    assert (out / "thesis.tex").read_text() == "do not delete"


def test_cli_reports_unknown_profile_without_traceback(capsys):
    assert cli.main(["reproduce", "--profile", "no-such-profile", "--out", "x"]) == 2
    assert "profile 'no-such-profile' not found" in capsys.readouterr().err


@pytest.mark.parametrize("text,value", [("3", 3), ("0.5", 0.5), ("true", True), ("null", None), ("abc", "abc")])
def test_overrides_are_parsed_like_yaml(text, value):
    assert parse_override(text) == value
