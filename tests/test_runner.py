"""`emoclip reproduce`: papermill chain, parameter checks, run records, resume and refusal."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from emoclip_lib import cli
from emoclip_lib.errors import UserError
from emoclip_lib.pipeline.reproduce import parse_override, reproduce

NB_CODE = """
import json, pathlib
run = pathlib.Path(run_dir)
log = pathlib.Path(log_file)
log.write_text(log.read_text() + "{name}\\n" if log.exists() else "{name}\\n")
if pathlib.Path(str(log) + ".fail-{name}").exists():
    raise RuntimeError("simulated crash in {name}")
(run / "{name}_results.json").write_text(json.dumps({{"seed": seed, "scale": scale}}))
"""


def _notebook(path: Path, name: str, params: str) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(NB_CODE.format(name=name))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def project(tmp_path):
    nbs, profiles = tmp_path / "notebooks", tmp_path / "profiles"
    nbs.mkdir(), profiles.mkdir()
    log = tmp_path / "log.txt"
    _notebook(nbs / "01_first.ipynb", "01", f'run_dir = "."\nlog_file = "{log}"\nseed = 0\nscale = 1.0')
    _notebook(nbs / "02_second.ipynb", "02", f'run_dir = "."\nlog_file = "{log}"\nseed = 0\nscale = 1.0\nextra = 3')
    (profiles / "demo.yaml").write_text("description: test\nparameters:\n  seed: 7\n")
    return {"notebooks": nbs, "profiles": profiles, "log": log, "tmp": tmp_path}


def _run(project, out, **kw):
    return reproduce("demo", out, notebook_dir=project["notebooks"], profile_dir=project["profiles"],
                     progress=False, **kw)


def test_runs_notebooks_in_order_and_records_the_run(project):
    out = _run(project, project["tmp"] / "run", overrides={"scale": 2.5})
    assert project["log"].read_text().split() == ["01", "02"]
    assert json.loads((out / "02_results.json").read_text()) == {"seed": 7, "scale": 2.5}
    record = json.loads((out / "run.json").read_text())
    assert record["parameters"] == {"seed": 7, "scale": 2.5}
    assert record["seed"] == 7 and record["completed"] == ["01_first", "02_second"]
    assert record["packages"]["torch"].startswith("2.13.0") and record["git_revision"]
    assert (out / "01_first.ipynb").is_file()


def test_unknown_parameter_is_an_error(project):
    with pytest.raises(UserError, match=r"unknown parameter.*colour.*accept"):
        _run(project, project["tmp"] / "run", overrides={"colour": "blue"})
    assert not (project["tmp"] / "run").exists()


def test_resume_after_a_crash_skips_finished_notebooks(project):
    fail = Path(str(project["log"]) + ".fail-02")
    fail.touch()
    with pytest.raises(UserError, match="02_second.ipynb failed.*simulated crash.*resume"):
        _run(project, project["tmp"] / "run")
    assert json.loads((project["tmp"] / "run" / "run.json").read_text())["completed"] == ["01_first"]
    fail.unlink()
    _run(project, project["tmp"] / "run")
    assert project["log"].read_text().split() == ["01", "02", "02"]  # 01 was not run again


def test_existing_run_with_other_parameters_is_refused_unless_forced(project):
    out = project["tmp"] / "run"
    _run(project, out)
    with pytest.raises(UserError, match="--force"):
        _run(project, out, overrides={"scale": 9})
    _run(project, out, overrides={"scale": 9}, force=True)
    assert json.loads((out / "01_results.json").read_text())["scale"] == 9


def test_non_run_directory_is_never_overwritten(project):
    out = project["tmp"] / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(UserError, match="not a run directory"):
        _run(project, out)
    assert (out / "thesis.tex").read_text() == "do not delete"


def test_cli_reports_unknown_profile_without_traceback(capsys):
    assert cli.main(["reproduce", "--profile", "no-such-profile", "--out", "x"]) == 2
    assert "profile 'no-such-profile' not found" in capsys.readouterr().err


@pytest.mark.parametrize("text,value", [("3", 3), ("0.5", 0.5), ("true", True), ("null", None), ("abc", "abc")])
def test_overrides_are_parsed_like_yaml(text, value):
    assert parse_override(text) == value
