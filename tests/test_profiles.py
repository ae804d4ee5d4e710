"""Every shipped profile names only parameters that its notebooks declare."""
from __future__ import annotations

import pytest

from emoclip_lib.runner import PROFILE_DIR, load_profile, notebook_parameters, notebook_paths, resolve_parameters

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
