"""The notebooks' stages as functions, and `emoclip train`: notebooks 01-03 (prepare, curate, train) without Jupyter.

Each stage function takes the run folder and a `RunSettings`; a notebook calls the same function with the
settings its `parameters` cell resolves, so `emoclip train --profile P` and `emoclip reproduce --profile P`
train the same model. The run folder follows `run_dir`'s contract (resume, refuse, `--force`).

Several processes (DDP): prepare and curate in one process, then train under torchrun, all with the same
profile and `-p` options; rank 0 pretrains the `tiny` backbone before the other ranks load it, and only
rank 0 writes results and run.json.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..data import select
from ..errors import UserError
from ..runtime import resolve_device
from ..train import distributed as D
from .curation import curate_run
from .prepare import prepare_data
from .profiles import PROFILE_DIR, load_profile, resolve_settings, with_absolute_paths
from .reproduce import per_stage
from .run_dir import RunLock, mark_done, open_run, read_record, stage_done, write_stage
from .settings import RunSettings
from .training import prepare_backbone, train_run, training_rows

TRAIN_STAGES: dict[str, str] = {"prepare": "01", "curate": "02", "train": "03"}


STAGE_FUNCTIONS: dict[str, Callable[[Path, RunSettings, bool], Any]] = {
    "prepare": lambda out, settings, progress: prepare_data(out, settings, progress=progress),
    "curate": lambda out, settings, progress: curate_run(out, settings, progress=progress),
    "train": lambda out, settings, progress: train_run(out, settings, progress=progress),
}


def _pretrain_on_rank0(out: Path, settings: RunSettings, ctx: D.DistContext, progress: bool) -> None:
    """Pretrain a `tiny` backbone on rank 0 while the others wait, so that every rank loads the same file."""
    if ctx.is_main:  # prepare_backbone decides which backbones need pretraining (others return at once)
        rows, root, _ = training_rows(out)
        folds = settings.plan.folds or sorted({r.fold for r in rows if r.fold is not None})[:1] or [None]
        prepare_backbone(out, settings.model.backbone, select(rows, fold=folds[0], split="train"), root,
                         settings.seed, settings.plan.pretrain_epochs, ctx.device, progress,
                         settings.plan.pretrain_web_pictures)
    D.barrier(ctx)


def _run_stage(out: Path, stage: str, settings: RunSettings, progress: bool, ctx: D.DistContext) -> None:
    if stage == "train" and ctx.distributed:
        _pretrain_on_rank0(out, settings, ctx, progress)
    result = STAGE_FUNCTIONS[stage](out, settings, progress)
    if stage == "train" and ctx.distributed:
        D.barrier(ctx)  # every rank has trained; rank 0's results (with best epochs) are the ones kept
        if ctx.is_main:
            write_stage(out, TRAIN_STAGES[stage], result)


def _check_distributed(out: Path, stages: list[str], wanted: dict[str, dict[str, Any]]) -> None:
    """Under torchrun only training runs: prepare and curate must be done with the same parameters."""
    if stages != ["train"] and stages != list(TRAIN_STAGES):
        raise UserError(f"--stage {stages[0]} cannot run under torchrun (WORLD_SIZE > 1): run it in one process")
    record = read_record(out)
    for stage in ("prepare", "curate"):
        if not stage_done(out, record, TRAIN_STAGES[stage], wanted[TRAIN_STAGES[stage]]):
            raise UserError(
                f"{out}: stage {stage} is not done with these parameters; under torchrun (WORLD_SIZE > 1) "
                f"prepare and curate must already exist: first run `emoclip train --profile ... --out {out} "
                "--stage prepare` and then `--stage curate` (same -p options) in a single process")


def run_train(profile_name: str, out: str | Path, overrides: dict[str, Any] | None = None, stage: str = "all",
              progress: bool = True, force: bool = False, profile_dir: Path = PROFILE_DIR) -> dict[str, str]:
    """Run the chosen stages of notebooks 01-03 into `out`, skipping those done with the same parameters.

    Args:
        profile_name: name under `profiles/` or a YAML path.
        out: run directory (created).
        overrides: flat-named parameters over the profile's.
        stage: "all", "prepare", "curate" or "train".
        progress: show progress bars.
        force: delete an existing run (a folder with run.json) and start again.
        profile_dir: where named profiles live.
    Returns:
        stage -> "ran" or "skipped".
    """
    profile = load_profile(profile_name, profile_dir)
    settings = with_absolute_paths(resolve_settings(profile, overrides))
    stages = list(TRAIN_STAGES) if stage == "all" else [stage]
    wanted = per_stage(settings, list(TRAIN_STAGES.values()))
    out = Path(out).expanduser().resolve()
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        _check_distributed(out, stages, wanted)
        ctx = D.init_from_env(resolve_device(settings.device))
    else:
        ctx = D.DistContext()
    try:
        if not ctx.is_main:  # rank 0 holds the lock and writes run.json
            return _run_stages(out, read_record(out), settings, stages, wanted, progress, ctx)
        with RunLock(out):
            record = open_run(out, profile.name, settings.flat(), wanted, "emoclip train", force)
            return _run_stages(out, record, settings, stages, wanted, progress, ctx)
    finally:
        D.shutdown(ctx)


def _run_stages(out: Path, record: dict[str, Any], settings: RunSettings, stages: list[str],
                wanted: dict[str, dict[str, Any]], progress: bool, ctx: D.DistContext) -> dict[str, str]:
    status: dict[str, str] = {}
    rerun = False
    for stage in stages:
        number = TRAIN_STAGES[stage]
        if not rerun and stage_done(out, record, number, wanted[number]):
            status[stage] = "skipped"
        else:
            _run_stage(out, stage, settings, progress, ctx)
            if ctx.is_main:
                mark_done(out, record, number, wanted[number])
            status[stage], rerun = "ran", True
        if ctx.is_main:
            print(f"emoclip train: {stage} {status[stage]}"
                  f"{' (done earlier with the same parameters)' if status[stage] == 'skipped' else ''}")
    return status
