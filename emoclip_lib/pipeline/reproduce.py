"""`emoclip reproduce`: run the numbered notebooks in order with papermill into a run directory."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import json
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..io_utils import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PROFILE_DIR = REPO_ROOT / "profiles"
RUN_RECORD = "run.json"
PROFILE_KEYS = {"description", "notebooks", "parameters"}
RECORDED_PACKAGES = ("emoclip-lib", "torch", "numpy", "openai-clip", "decord", "opencv-python-headless",
                     "scikit-learn", "pandas", "papermill", "nbval")


def notebook_paths(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (`NN_name.ipynb`) in order.

    Args:
        notebook_dir: folder holding them.
    """
    return sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb"))


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Names and default values declared in a notebook's `parameters` cell.

    Args:
        path: notebook file.
    """
    import papermill

    return {name: spec["default"] for name, spec in papermill.inspect_notebook(str(path)).items()}


def load_profile(name: str, profile_dir: Path = PROFILE_DIR) -> dict[str, Any]:
    """Read `profiles/NAME.yaml` (or a YAML path); unknown top-level keys are an error.

    Args:
        name: profile name or path to a YAML file.
        profile_dir: where named profiles live.
    """
    path = Path(name) if name.endswith((".yaml", ".yml")) else profile_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in profile_dir.glob("*.yaml"))
        raise UserError(f"profile {name!r} not found ({path}); known profiles: {', '.join(known)}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    extra = set(data) - PROFILE_KEYS
    if extra:
        raise UserError(f"{path}: unknown keys {sorted(extra)}; allowed: {sorted(PROFILE_KEYS)}")
    data.setdefault("parameters", {})
    data["name"] = path.stem
    return data


def parse_override(value: str) -> Any:
    """Turn a command-line value into a number, bool, null or list where YAML would.

    Args:
        value: the text after `-p key`.
    """
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def resolve_parameters(profile: dict, overrides: dict[str, Any], declared: dict[str, dict]) -> dict[str, Any]:
    """Merge profile parameters and overrides; reject any name that no notebook declares.

    Args:
        profile: from `load_profile`.
        overrides: `-p key value` pairs (already parsed).
        declared: notebook name -> its parameters and defaults.
    """
    known = set().union(*declared.values()) - {"run_dir"} if declared else set()
    params = {**profile["parameters"], **overrides}
    unknown = sorted(set(params) - known)
    if unknown:
        where = "profile " + profile["name"] if set(unknown) & set(profile["parameters"]) else "-p"
        raise UserError(f"unknown parameter(s) {unknown} (from {where}); the notebooks accept: {sorted(known)}")
    return params


def run_metadata(profile: dict, params: dict[str, Any]) -> dict[str, Any]:
    """What a run records about itself: parameters, git revision, package versions, seed.

    Args:
        profile: from `load_profile`.
        params: resolved parameters.
    """
    versions = {}
    for pkg in RECORDED_PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "profile": profile["name"],
        "parameters": params,
        "seed": params.get("seed"),
        "git_revision": _git_revision(),
        "python": platform.python_version(),
        "packages": versions,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "completed": [],
    }


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def prepare_run_dir(out: Path, params: dict[str, Any], notebooks: list[str], force: bool) -> dict | None:
    """Decide between a fresh run, a resume or a refusal; returns the existing record when resuming.

    Args:
        out: run directory.
        params: resolved parameters.
        notebooks: names of the notebooks to run.
        force: delete an existing run directory and start again.
    """
    if out.exists() and force:
        shutil.rmtree(out)
    if not out.exists() or not any(out.iterdir()):
        return None
    record_path = out / RUN_RECORD
    if not record_path.is_file():
        raise UserError(f"{out} exists and is not a run directory; choose another --out or pass --force")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if record.get("parameters") != params or record.get("notebooks") != notebooks:
        raise UserError(
            f"{out} holds a run with other parameters or notebooks ({record.get('parameters')}); "
            "use another --out, or --force to delete it and start again"
        )
    return record


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return "emoclip" if "emoclip" in KernelSpecManager().find_kernel_specs() else "python3"


def reproduce(
    profile_name: str,
    out: str | Path,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    progress: bool = True,
    notebook_dir: Path = NOTEBOOK_DIR,
    profile_dir: Path = PROFILE_DIR,
) -> Path:
    """Run the profile's notebooks in order into `out`, resuming a matching unfinished run.

    Args:
        profile_name: name under `profiles/` or a YAML path.
        out: run directory (created).
        overrides: parameters overriding the profile's.
        force: delete an existing run directory first.
        progress: show papermill's per-cell progress bar.
        notebook_dir: where the numbered notebooks live.
        profile_dir: where named profiles live.
    """
    import papermill

    profile = load_profile(profile_name, profile_dir)
    paths = notebook_paths(notebook_dir)
    if profile.get("notebooks"):
        paths = [p for p in paths if p.stem in profile["notebooks"] or p.stem[:2] in map(str, profile["notebooks"])]
    declared = {p.stem: notebook_parameters(p) for p in paths}
    params = resolve_parameters(profile, overrides or {}, declared)
    out = Path(out).resolve()
    record = prepare_run_dir(out, params, [p.stem for p in paths], force)
    if record is None:
        record = {**run_metadata(profile, params), "notebooks": [p.stem for p in paths]}
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(record, out / RUN_RECORD)
    kernel = _kernel_name()
    for path in paths:
        if path.stem in record["completed"]:
            continue
        nb_params = {k: v for k, v in params.items() if k in declared[path.stem]}
        nb_params["run_dir"] = str(out)
        try:
            papermill.execute_notebook(
                str(path), str(out / path.name), parameters=nb_params, kernel_name=kernel,
                cwd=str(path.parent), progress_bar=progress,
            )
        except papermill.PapermillExecutionError as err:
            raise UserError(
                f"{path.name} failed at cell {err.exec_count}: {err.ename}: {err.evalue} "
                f"(executed notebook: {out / path.name}); fix it and run the same command again to resume"
            ) from None
        record["completed"].append(path.stem)
        atomic_write_json(record, out / RUN_RECORD)
    return out
