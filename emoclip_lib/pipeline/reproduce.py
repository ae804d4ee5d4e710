"""`emoclip reproduce`: run the numbered notebooks in order with papermill into a run folder.

Each notebook gets `run_dir`, `profile` (the profile file) and the `-p` overrides it reads; it resolves
the same settings from them (`profiles.notebook_settings`). The run folder follows `run_dir`'s contract.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from .profiles import PROFILE_DIR, load_profile, resolve_settings, with_absolute_paths
from .run_dir import REPO_ROOT, RunLock, mark_done, open_run, stage_done
from .settings import RunSettings, stage_parameters

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


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


def parse_override(value: str) -> Any:
    """Turn a command-line value into a number, bool, null or list where YAML would.

    Args:
        value: the text after `-p key`.
    """
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def per_stage(settings: RunSettings, stages: list[str]) -> dict[str, dict[str, Any]]:
    """The parameters each stage reads, with their resolved values.

    Args:
        settings: the run's settings.
        stages: two-digit stage numbers.
    """
    flat = settings.flat()
    return {stage: {name: flat[name] for name in stage_parameters(stage)} for stage in stages}


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return "emoclip" if "emoclip" in KernelSpecManager().find_kernel_specs() else "python3"


def execute_notebook(path: Path, out: Path, params: dict[str, Any], kernel: str | None = None,
                     progress: bool = False) -> None:
    """Run one notebook headless with papermill into the file `out` (in the notebook's own folder).

    The kernel is stopped at once after the last cell (papermill's `shutdown_kernel="immediate"`): every
    output is saved by then, and a graceful stop spent about 1.7 s per notebook in the interpreter's final
    garbage collection over torch's objects.

    Args:
        path: the notebook.
        out: the executed notebook to write.
        params: values for its `parameters` cell.
        kernel: Jupyter kernel name (None: "emoclip" when installed, else "python3").
        progress: show papermill's per-cell progress bar.
    Raises:
        UserError: a cell failed (its name, exception and where the executed notebook is).
    """
    import papermill

    try:
        papermill.execute_notebook(str(path), str(out), parameters=params, kernel_name=kernel or _kernel_name(),
                                   cwd=str(path.parent), progress_bar=progress, shutdown_kernel="immediate")
    except papermill.PapermillExecutionError as err:
        raise UserError(f"{path.name} failed at cell {err.exec_count}: {err.ename}: {err.evalue} "
                        f"(executed notebook: {out}); fix it and run the same command again to resume") from None


def reproduce(profile_name: str, out: str | Path, overrides: dict[str, Any] | None = None, force: bool = False,
              progress: bool = True, notebook_dir: Path = NOTEBOOK_DIR, profile_dir: Path = PROFILE_DIR) -> Path:
    """Run the profile's notebooks in order into `out`, resuming a matching unfinished run.

    Every parameter is checked before the first notebook starts.

    Args:
        profile_name: name under `profiles/` or a YAML path.
        out: run directory (created).
        overrides: flat-named parameters over the profile's.
        force: delete an existing run (a folder with run.json) first.
        progress: show papermill's per-cell progress bar.
        notebook_dir: where the numbered notebooks live.
        profile_dir: where named profiles live.
    """
    profile = load_profile(profile_name, profile_dir)
    overrides = dict(overrides or {})
    settings = with_absolute_paths(resolve_settings(profile, overrides))
    paths = {p.stem[:2]: p for p in notebook_paths(notebook_dir) if p.stem[:2] in profile.stages}
    if not paths:
        raise UserError(f"no notebook of profile {profile.name} ({', '.join(profile.stages)}) in {notebook_dir}")
    stages = per_stage(settings, list(paths))
    unread = sorted(k for k in overrides if not any(k in params for params in stages.values()))
    if unread:
        raise UserError(f"-p {', '.join(unread)}: no notebook of profile {profile.name} "
                        f"({', '.join(paths)}) reads it")
    out = Path(out).expanduser().resolve()
    with RunLock(out):
        record = open_run(out, profile.name, settings.flat(), stages, "emoclip reproduce", force)
        kernel = _kernel_name()
        for stage, path in paths.items():
            if stage_done(out, record, stage, stages[stage]):
                continue
            flat = settings.flat()  # the overrides, with relative paths made absolute
            given = {k: flat[k] for k, v in overrides.items() if k in stages[stage] and v is not None}
            execute_notebook(path, out / path.name, {"run_dir": str(out), "profile": str(profile.path), **given},
                             kernel, progress)
            mark_done(out, record, stage, stages[stage])
    return out
