"""`emoclip train`: notebooks 01-03 (prepare, curate, train) without Jupyter.

    emoclip train --profile synthetic --out runs/demo [-p KEY VALUE ...] [--stage all|prepare|curate|train]

Each stage calls its library function (`prepare.prepare_data`, `stage_curation.curate_run`,
`stage_training.train_run`) with the profile's parameters and the `-p` overrides that the function accepts
(`TrainConfig` fields go to `train_run`); a parameter no stage accepts is an error. Notebook 02's
`near_duplicate_threshold` is `curate_run`'s `threshold`; parameters declared only by notebooks 04+ are
ignored (with a note).

Resume: a stage whose results JSON (`01/02/03_results.json`) exists and whose parameters are those recorded
in `RUN_DIR/run.json` (`"stages"`) is skipped; a stage that runs makes the later stages run again.
`run.json` also holds the run's metadata (profile, parameters, git revision, package versions), written
when absent.

`--stage X` runs stage X only (`all`: the three in order). Several processes (DDP): prepare and curate
in one process, then train under torchrun, all with the same profile and `-p` options:

    emoclip train --profile P --out R --stage prepare
    emoclip train --profile P --out R --stage curate
    torchrun --nproc_per_node 2 -m emoclip_lib.cli train --profile P --out R --stage train

Under torchrun (WORLD_SIZE > 1) prepare and curate must already be done with the same parameters; rank 0
pretrains the `tiny` backbone before the other ranks load it, and only rank 0 writes results and run.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..train import distributed as D
from ..errors import UserError
from ..io_utils import atomic_write_json
from ..pipeline.reproduce import NOTEBOOK_DIR, PROFILE_DIR, RUN_RECORD, load_profile, notebook_parameters, notebook_paths, \
    parse_override, run_metadata
from ..runtime import resolve_device, stage_path, write_stage
from ..train.config import TrainConfig

STAGES: tuple[str, ...] = ("prepare", "curate", "train")
STAGE_NUMBERS: dict[str, str] = {"prepare": "01", "curate": "02", "train": "03"}
STAGE_FUNCTIONS: dict[str, tuple[str, str]] = {  # looked up at call time (tests replace them)
    "prepare": ("emoclip_lib.pipeline.prepare", "prepare_data"),
    "curate": ("emoclip_lib.pipeline.curation", "curate_run"),
    "train": ("emoclip_lib.pipeline.training", "train_run"),
}
ALIASES: dict[str, tuple[str, str]] = {"near_duplicate_threshold": ("curate", "threshold")}  # notebook 02's name
SET_BY_COMMAND: dict[str, str] = {"run_dir": "--out", "progress": "--no-progress"}
RESUME_FREE: frozenset[str] = frozenset({"resume"})  # arguments that do not change a stage's results
EPILOG = ("DDP: run --stage prepare and --stage curate in one process first, then `torchrun --nproc_per_node N "
          "-m emoclip_lib.cli train ... --stage train` with the same profile and -p options.")


def stage_function(stage: str) -> Callable[..., Any]:
    """The library function behind a stage ("prepare", "curate", "train").

    Args:
        stage: stage name.
    """
    module, name = STAGE_FUNCTIONS[stage]
    return getattr(importlib.import_module(module), name)


def accepted_parameters(stage: str) -> set[str]:
    """Parameter names a stage's function takes (plus `TrainConfig` fields for `train_run`'s **settings).

    Args:
        stage: stage name.
    """
    names: set[str] = set()
    for param in inspect.signature(stage_function(stage)).parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD and stage == "train":
            names |= {f.name for f in dataclasses.fields(TrainConfig)}
        elif param.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            names.add(param.name)
    return names - set(SET_BY_COMMAND)


def later_notebook_parameters(notebook_dir: Path | None = None) -> set[str]:
    """Parameters declared by notebooks 04 and later (not run by this command).

    Args:
        notebook_dir: where the numbered notebooks live (default: the repository's notebooks/).
    """
    names: set[str] = set()
    for path in notebook_paths(notebook_dir or NOTEBOOK_DIR):
        if path.stem[:2].isdigit() and int(path.stem[:2]) >= 4:
            names |= set(notebook_parameters(path))
    return names


def route_parameters(params: dict[str, Any], notebook_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Split parameters into each stage's keyword arguments; a name accepted by several stages goes to each.

    Args:
        params: profile parameters merged with the overrides.
        notebook_dir: where the numbered notebooks live (parameters of notebooks 04+ are ignored; default
            the repository's notebooks/).
    Raises:
        UserError: a parameter no stage accepts (the accepted ones are listed), or one the command sets.
    """
    accepted = {stage: accepted_parameters(stage) for stage in STAGES}
    routed: dict[str, dict[str, Any]] = {stage: {} for stage in STAGES}
    unknown = []
    for key, value in params.items():
        if key in SET_BY_COMMAND:
            raise UserError(f"parameter {key!r} is set by the command: use {SET_BY_COMMAND[key]} instead of -p")
        stage_name, target = ALIASES.get(key, (None, key))
        stages = [stage_name] if stage_name else [s for s in STAGES if key in accepted[s]]
        if key in ALIASES and target in params:
            raise UserError(f"parameters {key!r} and {target!r} are the same setting: give only one")
        for stage in stages:
            routed[stage][target] = value
        if not stages:
            unknown.append(key)
    ignored = later_notebook_parameters(notebook_dir) & set(unknown) if unknown else set()
    unknown = [key for key in unknown if key not in ignored]
    if unknown:
        known = sorted(set().union(*accepted.values()) | set(ALIASES))
        raise UserError(f"unknown parameter(s) {sorted(unknown)}; emoclip train accepts: {', '.join(known)}")
    if ignored:
        print(f"emoclip train: ignoring {sorted(ignored)} (parameters of notebooks 04+)", file=sys.stderr)
    return routed


def _plain(value: Any) -> Any:
    """JSON form of a parameter set, for comparing with the one recorded in run.json."""
    return json.loads(json.dumps(value, default=str))


def stage_record(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What run.json records of a stage's arguments (those that change its results).

    Args:
        kwargs: the arguments the stage function receives (without run_dir and progress).
    """
    return _plain({k: v for k, v in sorted(kwargs.items()) if k not in RESUME_FREE})


def stage_done(out: Path, record: dict[str, Any], stage: str, kwargs: dict[str, Any]) -> bool:
    """Whether a stage's results exist and were made with these arguments.

    Args:
        out: run directory.
        record: contents of run.json.
        stage: stage name.
        kwargs: the arguments the stage would receive.
    """
    if stage == "train" and kwargs.get("resume") is False:
        return False
    done = record.get("stages", {})
    return stage_path(out, STAGE_NUMBERS[stage]).is_file() and done.get(stage) == stage_record(kwargs)


def read_record(out: Path) -> dict[str, Any]:
    """run.json of a run directory ({} when absent).

    Args:
        out: run directory.
    """
    path = out / RUN_RECORD
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON (line {err.lineno}): fix or delete it") from None


def mark_done(out: Path, record: dict[str, Any], stage: str, kwargs: dict[str, Any]) -> None:
    """Record a finished stage in run.json and forget the later ones (they must run again).

    Args:
        out: run directory.
        record: contents of run.json (updated in place).
        stage: stage name.
        kwargs: the arguments the stage received.
    """
    stages = record.setdefault("stages", {})
    for later in STAGES[STAGES.index(stage) + 1:]:
        stages.pop(later, None)
    stages[stage] = stage_record(kwargs)
    atomic_write_json(record, out / RUN_RECORD)


def _check_distributed(out: Path, record: dict, stages: list[str], routed: dict[str, dict]) -> None:
    """Under torchrun only training runs: prepare and curate must be done with the same parameters."""
    if stages != ["train"] and stages != list(STAGES):
        raise UserError(f"--stage {stages[0]} cannot run under torchrun (WORLD_SIZE > 1): run it in one process")
    for stage in ("prepare", "curate"):
        if not stage_done(out, record, stage, routed[stage]):
            raise UserError(
                f"{out}: stage {stage} is not done with these parameters; under torchrun (WORLD_SIZE > 1) "
                f"prepare and curate must already exist: first run `emoclip train --profile ... --out {out} "
                "--stage prepare` and then `--stage curate` (same -p options) in a single process")


def _pretrain_on_rank0(out: Path, kwargs: dict[str, Any], ctx: D.DistContext, progress: bool) -> None:
    """Pretrain a `tiny` backbone on rank 0 while the others wait, so that every rank loads the same file."""
    from ..pipeline import training as st
    from ..data.manifest import select

    defaults = {k: p.default for k, p in inspect.signature(stage_function("train")).parameters.items()}
    settings = {**defaults, **kwargs}
    if ctx.is_main:  # prepare_backbone decides which backbones need pretraining (others return at once)
        rows, root, _ = st.training_rows(out)
        folds = list(settings["folds"] or sorted({r.fold for r in rows if r.fold is not None})[:1] or [None])
        first = select(rows, fold=folds[0], split="train")
        st.prepare_backbone(out, settings["backbone"], first, root, settings["seed"], settings["pretrain_epochs"],
                            ctx.device, progress, settings["pretrain_web_pictures"])
    D.barrier(ctx)


def _run_stage(out: Path, stage: str, kwargs: dict[str, Any], progress: bool, ctx: D.DistContext) -> None:
    if stage == "train" and ctx.distributed:
        _pretrain_on_rank0(out, kwargs, ctx, progress)
    result = stage_function(stage)(out, progress=progress, **kwargs)
    if stage == "train" and ctx.distributed:
        D.barrier(ctx)  # every rank has written 03_results.json; rank 0's (with best epochs) is the one kept
        if ctx.is_main:
            write_stage(out, STAGE_NUMBERS[stage], result)


def run_train(profile_name: str, out: str | Path, overrides: dict[str, Any] | None = None, stage: str = "all",
              progress: bool = True, profile_dir: Path = PROFILE_DIR,
              notebook_dir: Path | None = None) -> dict[str, str]:
    """Run the chosen stages into `out`, skipping those already done with the same parameters.

    Args:
        profile_name: name under `profiles/` or a YAML path.
        out: run directory (created).
        overrides: parameters overriding the profile's.
        stage: "all", "prepare", "curate" or "train".
        progress: show progress bars.
        profile_dir: where named profiles live.
        notebook_dir: where the numbered notebooks live (default: the repository's notebooks/).
    Returns:
        stage -> "ran" or "skipped".
    """
    profile = load_profile(profile_name, profile_dir)
    params = {**profile["parameters"], **(overrides or {})}
    routed = route_parameters(params, notebook_dir)
    stages = list(STAGES) if stage == "all" else [stage]
    if "train" in stages:
        TrainConfig.from_dict({k: v for k, v in routed["train"].items()
                               if k in {f.name for f in dataclasses.fields(TrainConfig)}})
    out = Path(out).expanduser().resolve()
    record = read_record(out)
    distributed = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    if distributed:
        _check_distributed(out, record, stages, routed)
    ctx = D.init_from_env(resolve_device(routed["train"].get("device", "auto"))) if distributed else D.DistContext()
    try:
        return _run_stages(out, profile, params, record, stages, routed, progress, ctx)
    finally:
        D.shutdown(ctx)


def _run_stages(out: Path, profile: dict, params: dict[str, Any], record: dict[str, Any], stages: list[str],
                routed: dict[str, dict], progress: bool, ctx: D.DistContext) -> dict[str, str]:
    if not record and ctx.is_main:
        record = {**run_metadata(profile, params), "command": "emoclip train", "stages": {}}
        del record["completed"]
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(record, out / RUN_RECORD)
    status: dict[str, str] = {}
    rerun = False
    for stage in stages:
        if not rerun and stage_done(out, record, stage, routed[stage]):
            status[stage] = "skipped"
        else:
            _run_stage(out, stage, routed[stage], progress, ctx)
            if ctx.is_main:
                mark_done(out, record, stage, routed[stage])
            status[stage], rerun = "ran", True
        if ctx.is_main:
            print(f"emoclip train: {stage} {status[stage]}"
                  f"{' (done earlier with the same parameters)' if status[stage] == 'skipped' else ''}")
    return status


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` sub-command.

    Args:
        sub: the `emoclip` sub-parsers.
    """
    p = sub.add_parser("train", help="prepare data, curate captions and train EmoCLIP (notebooks 01-03)",
                       description=__doc__.split("\n\n")[0], epilog=EPILOG)
    p.add_argument("--profile", default="synthetic", help="profiles/NAME.yaml or a YAML path")
    p.add_argument("--out", required=True, help="run directory (stages done with the same parameters are skipped)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="override a profile parameter (repeatable)")
    p.add_argument("--stage", choices=("all",) + STAGES, default="all",
                   help="run only this stage (default: all three in order)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    overrides = {key: parse_override(value) for key, value in args.param}
    run_train(args.profile, args.out, overrides, stage=args.stage, progress=not args.no_progress)
    return 0
