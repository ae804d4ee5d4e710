"""Every shipped profile names only parameters that its notebooks declare."""
from __future__ import annotations

import ast
import inspect

import pytest

from emoclip_lib.pipeline.reproduce import PROFILE_DIR, load_profile, notebook_parameters, notebook_paths, resolve_parameters
from emoclip_lib.pipeline.training import train_run

PROFILES = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", PROFILES)
def test_profile_parameters_are_declared_by_its_notebooks(name):
    profile = load_profile(name)
    paths = notebook_paths()
    if profile.get("notebooks"):
        paths = [p for p in paths if p.stem[:2] in map(str, profile["notebooks"])]
    assert paths
    declared = {p.stem: notebook_parameters(p) for p in paths}
    assert resolve_parameters(profile, {}, declared) == profile["parameters"]


def test_synthetic_profile_matches_the_notebook_defaults():
    """The committed notebooks carry the synthetic profile's outputs: their defaults must agree."""
    params = load_profile("synthetic")["parameters"]
    for path in notebook_paths():
        defaults = notebook_parameters(path)
        for key, value in params.items():
            if key in defaults:
                assert str(defaults[key]).strip("'\"") == str(value), (path.name, key)


def test_training_notebook_and_stage_function_share_the_backbone_defaults():
    """`emoclip train` fills unset parameters from `train_run`'s defaults, notebook 03 from its parameters
    cell: the pretraining settings must agree, or the two paths would build different backbones."""
    path = next(p for p in notebook_paths() if p.stem.startswith("03"))
    defaults = notebook_parameters(path)
    signature = inspect.signature(train_run).parameters
    for key in ("pretrain_epochs", "pretrain_web_pictures", "backbone", "layers", "heads"):
        assert ast.literal_eval(str(defaults[key])) == signature[key].default, key
