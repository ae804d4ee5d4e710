"""Profiles (`profiles/NAME.yaml`): named sets of parameters over the defaults of `settings.RunSettings`.

A profile holds `description`, `parameters` (flat names, see `settings.PARAMETERS`) and optionally
`notebooks` (the numbers of the notebooks it runs, default all), `extends` (another profile whose
parameters it starts from) and `required` (parameters that must be given, checked before any work). Notebooks resolve their `profile`
parameter here too, so a notebook, `emoclip train` and `emoclip reproduce` with the same profile and
overrides use the same settings.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import UserError
from .run_dir import REPO_ROOT, STAGES
from .settings import RunSettings, stage_parameters

PROFILE_DIR = REPO_ROOT / "profiles"
PROFILE_KEYS = frozenset({"description", "notebooks", "parameters", "extends", "required"})


@dataclass
class Profile:
    """A loaded profile."""

    name: str
    path: Path
    description: str
    stages: list[str]  # the notebooks it runs ("01".."05")
    parameters: dict[str, Any]  # its own over those of the profile it extends
    required: list[str]  # parameters that must be set (by the profile or -p)


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', err)}); fix the file") from None


def load_profile(name: str | Path, profile_dir: Path = PROFILE_DIR) -> Profile:
    """Read `profiles/NAME.yaml` (or a YAML path); unknown keys and malformed entries are an error.

    Args:
        name: profile name or path to a YAML file.
        profile_dir: where named profiles live.
    """
    text = str(name)
    path = Path(text).expanduser() if text.endswith((".yaml", ".yml")) else profile_dir / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in profile_dir.glob("*.yaml"))
        raise UserError(f"profile {text!r} not found ({path}); known profiles: {', '.join(known)}")
    data = _yaml(path) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a profile is a mapping with keys {', '.join(sorted(PROFILE_KEYS))}")
    extra = sorted(set(data) - PROFILE_KEYS)
    if extra:
        raise UserError(f"{path}: unknown keys {extra}; allowed: {sorted(PROFILE_KEYS)}")
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise UserError(f"{path}: `parameters` must be a mapping of parameter names to values")
    base = load_profile(str(data["extends"]), profile_dir) if data.get("extends") else None
    stages = [f"{int(s):02d}" if str(s).isdigit() else str(s) for s in data.get("notebooks") or
              (base.stages if base else STAGES)]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise UserError(f"{path}: `notebooks` lists {unknown}; notebooks are numbered {', '.join(STAGES)}")
    required = list(data["required"] or []) if "required" in data else list(base.required if base else [])
    merged = {**(base.parameters if base else {}), **params}
    return Profile(path.stem, path.resolve(), str(data.get("description", "")), stages, merged, required)


def resolve_settings(profile: str | Path | Profile, overrides: Mapping[str, Any] | None = None,
                     profile_dir: Path = PROFILE_DIR) -> RunSettings:
    """The settings of a profile with overrides, every value checked.

    Args:
        profile: a profile name, YAML path or loaded `Profile`.
        overrides: flat-named parameters over the profile's (None values are ignored).
        profile_dir: where named profiles live.
    """
    prof = profile if isinstance(profile, Profile) else load_profile(profile, profile_dir)
    settings = RunSettings().replace(prof.parameters, where=str(prof.path))
    settings = settings.replace(dict(overrides or {}), where="-p")
    flat = settings.flat()
    missing = [name for name in prof.required if flat.get(name) in (None, "")]
    if missing:
        raise UserError(f"profile {prof.name} needs {', '.join(missing)}: e.g. emoclip reproduce --profile "
                        f"{prof.name} --out runs/{prof.name} " + " ".join(f"-p {m} {_example(m)}" for m in missing))
    return settings


PATH_PARAMETERS: tuple[str, ...] = ("mafw_root", "dfew_root", "ferv39k_root", "afew_root", "checkpoint", "text_tower",
                                     "descriptions", "backbone", "interview_manifest", "interview_root", "latent_scores")


def with_absolute_paths(settings: RunSettings) -> RunSettings:
    """The settings with every relative path that exists made absolute (notebooks run in notebooks/).

    Args:
        settings: resolved settings.
    """
    flat = settings.flat()
    fixed = {name: str(Path(flat[name]).expanduser().resolve()) for name in PATH_PARAMETERS
             if isinstance(flat[name], str) and not Path(flat[name]).is_absolute() and Path(flat[name]).exists()}
    return settings.replace(fixed, where="paths") if fixed else settings


def _example(name: str) -> str:
    return "/path/to/best.pt" if name == "checkpoint" else f"/path/to/{name.removesuffix('_root').upper()}"


def notebook_settings(stage: str, profile: str | Path, namespace: Mapping[str, Any]) -> RunSettings:
    """The settings a notebook runs with: its profile, overridden by its non-None parameters.

    Args:
        stage: the notebook's number ("01".."05").
        profile: the notebook's `profile` parameter.
        namespace: the notebook's variables (`globals()`); the stage's parameters are read from it.
    """
    given = {name: namespace[name] for name in stage_parameters(stage) if namespace.get(name) is not None}
    return resolve_settings(profile, given)
