"""Profiles and notebooks' parameters cells map onto the one source of defaults, `pipeline.settings`."""
from __future__ import annotations

import dataclasses
from contextlib import nullcontext

import nbformat
import pytest

from emoclip_lib.errors import UserError
from emoclip_lib.pipeline import PARAMETERS, PROFILE_DIR, RunSettings, load_profile, notebook_paths, \
    notebook_settings, resolve_settings, stage_parameters
from emoclip_lib.pipeline.nbtools import parameters_cell
from emoclip_lib.train import TrainConfig

PROFILES = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_resolves_with_valid_names_types_and_ranges(name):
    profile = load_profile(name)
    given = {key: "/data/x" for key in profile.required}
    with pytest.raises(UserError, match=f"profile {name} needs") if profile.required else nullcontext():
        resolve_settings(profile)
    flat = resolve_settings(profile, given).flat()
    for key, value in profile.parameters.items():
        assert flat[key] == (list(value) if isinstance(value, tuple) else value), key
    assert {p.stem[:2] for p in notebook_paths()} >= set(profile.stages)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_parameters_cells_are_generated_from_the_settings(path):
    """`python -m emoclip_lib.pipeline.nbtools cells` writes them: the notebooks hold no second default."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert cell.source == parameters_cell(path.stem[:2])


def test_every_parameter_names_one_field_and_one_notebook():
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"seed", "cache_dir", "cache_precision"}
    assert train_fields <= set(PARAMETERS)
    assert {p.stage for p in PARAMETERS.values()} == {"01", "02", "03", "04", "05"}
    assert set(stage_parameters("03")) >= train_fields | {"backbone", "layers", "heads", "n_seeds"}
    assert RunSettings().train.epochs == TrainConfig().epochs == PARAMETERS["epochs"].default  # paper: 30


def test_notebook_settings_take_the_profile_under_the_notebook_values():
    ns = {"epochs": 5, "lr": None, "seed": 2, "loco": False}  # loco is notebook 04's: not read by 03
    settings = notebook_settings("03", "synthetic", ns)
    synthetic = resolve_settings("synthetic")
    assert settings.train.epochs == 5 and settings.seed == 2 and settings.train.lr == synthetic.train.lr
    assert settings.eval.loco == synthetic.eval.loco and settings.model.backbone == "tiny"
    with pytest.raises(UserError, match="must be an integer"):
        notebook_settings("03", "synthetic", {"epochs": "many"})


def test_profile_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters:\n  epochs: [1\n")
    with pytest.raises(UserError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_profile(str(bad))
    bad.write_text("parameters: [1, 2]\n")
    with pytest.raises(UserError, match="must be a mapping"):
        load_profile(str(bad))
    bad.write_text("parameters:\n  epochs: 1.5\n")
    with pytest.raises(UserError, match=r"bad\.yaml: parameter epochs must be an integer"):
        resolve_settings(str(bad))
