"""Notebook 03's pipeline (and `emoclip train`): backbone, then EmoCLIP training per seed and fold.

Writes `<run_dir>/03_results.json`:

    {"dataset": "mafw_like", "classes": [...], "clip_backbone": "backbone/clip_pretrained.pt" | "ViT-B/32",
     "checkpoint": "train/seed0/fold1/best.pt",          # the main model (first seed, first fold)
     "runs": [{"seed": 0, "fold": 1, "checkpoint": ..., "best_epoch": 7, "history": [...]}, ...],
     "cache_dir": "cache", "settings": {...}}

Paths are relative to the run directory. The synthetic profile's `tiny` backbone has no pretraining, so it
is first pretrained on frame-caption pairs of the first fold's training split (a stand-in for CLIP's web
pretraining that never sees that fold's test clips).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import torch

from ..model import build_model
from ..train import pretrain_clip
from ..errors import UserError
from ..features import pool_windows
from ..zeroshot import eval_frame_features, score, unique_rows
from ..zeroshot import class_embeddings
from ..data import COMPOUND_SEPARATOR, ManifestRow, read_manifest, select
from ..model import ModelConfig
from .prepare import dataset_paths, load_results, train_dataset
from ..runtime import resolve_device
from .run_dir import FRAME_CACHE, PRETRAINED_BACKBONE, read_stage, run_relative, stage_path, write_stage
from .settings import RunSettings, stage_parameters
from ..train import TrainConfig
from ..train import split_train_val
from ..train import train
from ..workers import parallel_map, torch_threads, torch_workers

T = TypeVar("T")
R = TypeVar("R")


def descriptions_for(run_dir: Path, info: dict[str, Any], override: str | None = None) -> Path | None:
    """The class-description YAML of a dataset role: an explicit file, the synthetic world's, or None (shipped).

    Args:
        run_dir: the run directory.
        info: the role's entry in `01_results.json`.
        override: a user-chosen YAML path.
    """
    if override:
        return Path(override)
    return run_dir / info["descriptions"] if info.get("descriptions") else None


def training_rows(run_dir: Path) -> tuple[list[ManifestRow], Path, dict[str, Any]]:
    """The single-label rows of the curated training manifest of notebook 02 (notebook 01's if 02 did not run).

    Training uses single-label clips only, as the official scripts do (MAFW's single lists); compound
    clips are only scored (notebook 04).

    Args:
        run_dir: the run directory.
    """
    prepared = load_results(run_dir)
    info = train_dataset(prepared)
    manifest, root = dataset_paths(run_dir, info["name"], prepared)
    if stage_path(run_dir, "02").is_file():
        manifest = run_dir / read_stage(run_dir, "02")["curated_manifest"]
    rows = [r for r in read_manifest(manifest) if COMPOUND_SEPARATOR not in r.labels]
    return rows, root, info


def prepare_backbone(run_dir: Path, backbone: str, rows: list[ManifestRow], root: Path, seed: int,
                     pretrain_epochs: int, device: torch.device, progress: bool, web_pictures: int) -> str:
    """The CLIP backbone to build EmoCLIP on: a named/filed CLIP, or `tiny` pretrained on the training split.

    Args:
        run_dir: the run directory.
        backbone: "tiny" / "tiny@RES", a CLIP name ("ViT-B/32") or a checkpoint path.
        rows: training rows used to pretrain `tiny`.
        root: their dataset root.
        seed: the run's seed.
        pretrain_epochs: epochs of the `tiny` pretraining.
        device: where to pretrain.
        progress: show progress bars.
        web_pictures: synthetic web pictures added to the `tiny` pretraining (see `synth_web`).
    Returns:
        what `load_clip` takes: the pretrained file (relative to run_dir) or `backbone` unchanged.
    """
    if not (backbone == "tiny" or backbone.startswith("tiny@")):
        return backbone
    pretrain_clip(rows, root, run_dir / PRETRAINED_BACKBONE, seed=seed, epochs=pretrain_epochs,
                  web_cache=run_dir / FRAME_CACHE / "web",
                  web_pictures=web_pictures, backbone=backbone, device=device, progress=progress)
    return PRETRAINED_BACKBONE


def make_evaluator(model: Any, rows: list[ManifestRow], root: Path, classes: Sequence[str], settings: TrainConfig,
                   cache_dir: Path, device: torch.device, descriptions: Path | None = None,
                   prefix: str = "val") -> Any:
    """Zero-shot UAR/WAR on held-out clips against class descriptions, for model selection.

    Frame features and class text embeddings are computed once (both towers are frozen).

    Args:
        model: the EmoCLIP model being trained.
        rows: validation rows.
        root: dataset root.
        classes: label space.
        settings: training settings (clip length, downsample).
        cache_dir: feature cache root.
        device: where the towers run.
        descriptions: class-description YAML (default: the shipped one).
        prefix: "val" (validation clips) or "test" (the official scripts' test-set selection).
    """
    single = unique_rows(rows)
    present = [c for c in classes if any(r.labels == c for r in single)]
    if not single or len(present) < 2:
        return None
    feats, kept = eval_frame_features(model, single, root, classes, settings.clip_len, settings.downsample,
                                      cache_dir, device, precision=settings.cache_precision)
    text = class_embeddings(model.encode_text, classes, "description", descriptions)

    def evaluate_fn(current: Any) -> dict[str, float]:
        metrics = score(pool_windows(current, feats.to(device)).cpu(), kept, classes, text)
        return {f"{prefix}_uar": metrics["uar"], f"{prefix}_war": metrics["war"]}

    return evaluate_fn


def train_fold(run_dir: Path, rows: list[ManifestRow], root: Path, classes: Sequence[str], backbone: str,
               model_config: ModelConfig, settings: TrainConfig, out: str, device: torch.device,
               resume: bool = True, progress: bool = False, descriptions: Path | None = None,
               test_rows: list[ManifestRow] | None = None) -> dict[str, Any]:
    """Train one EmoCLIP model on `rows` (a fold's training split) and return its record.

    Args:
        run_dir: the run directory.
        rows: training rows (a validation part is carved out of them).
        root: dataset root.
        classes: label space of the rows.
        backbone: what `load_clip` takes (relative paths are under run_dir).
        model_config: temporal settings and freezing (its `backbone` is replaced).
        settings: training settings (its `seed` seeds the model too).
        out: output folder relative to run_dir.
        device: where to train.
        resume: continue an interrupted run in `out`.
        progress: show progress bars.
        descriptions: class-description YAML for the validation zero-shot metric.
        test_rows: the fold's test clips: select the epoch on their zero-shot WAR, as the official scripts do
            (test-set selection: not a fair estimate); None selects on the validation split.
    """
    path = run_dir / backbone
    config = dataclasses.replace(model_config, backbone=backbone)  # recorded relative: a run folder can move
    model = build_model(dataclasses.replace(config, backbone=str(path) if path.is_file() else backbone),
                        device=device, seed=settings.seed)
    model.config = config
    train_rows, val_rows = split_train_val(rows, settings.val_fraction, settings.val_group, settings.seed)
    cache = run_dir / FRAME_CACHE
    settings.cache_dir = str(cache)
    if test_rows is not None:
        evaluate_fn = make_evaluator(model, test_rows, root, classes, settings, cache, device, descriptions, "test")
        settings.select_metric, settings.select_mode = "val_test_war", "max"
    else:
        evaluate_fn = make_evaluator(model, val_rows, root, classes, settings, cache, device, descriptions)
        if evaluate_fn is not None:
            settings.select_metric = "val_uar"
    result = train(model, train_rows, val_rows, root, tuple(classes), settings, run_dir / out, device=device,
                   resume=resume, evaluate_fn=evaluate_fn, progress=progress)
    return {"seed": settings.seed, "checkpoint": f"{out}/best.pt", "best_epoch": result.best_epoch,
            "select_metric": result.select_metric, "best_value": result.best_value, "history": result.history,
            "n_train": len(train_rows), "n_val": len(val_rows)}


def run_trainings(train_one: Callable[[T, bool], R], jobs: Sequence[T], device: torch.device, desc: str,
                  progress: bool = False) -> list[R]:
    """`[train_one(job, progress) for job in jobs]`, on the CPU in one forked worker per core (`workers`).

    The trainings are independent (each has its own seed and output folder; the caches they share are keyed
    by content and written atomically), so the records are those of one training after another on one thread.
    The jobs left over when they do not fill the workers evenly (the third of three on two cores) run in this
    process on one thread, where the frame caches they build are encoded on every core (`features.frame_cache`)
    instead of one core waiting for one worker.

    Args:
        train_one: trains one job; its second argument says whether to show progress bars (False in workers).
        jobs: the trainings (picklable, like the records they return).
        device: where they train (`workers.torch_workers`: one after another on CUDA).
        desc: label of the progress bar over the jobs (shown when they run in workers).
        progress: show progress bars.
    """
    workers = torch_workers(device, len(jobs))
    if workers == 1:
        return [train_one(job, progress) for job in jobs]
    split = len(jobs) - len(jobs) % workers
    _first_optimizer()
    records = list(parallel_map(functools.partial(_call_quietly, train_one), jobs[:split], desc, progress, workers,
                                chunksize=1))
    with torch_threads(1, device):  # the thread count of the workers' trainings: the same numbers
        return records + [train_one(job, progress) for job in jobs[split:]]


def _first_optimizer() -> None:
    """Build a throwaway optimizer: a process's first torch optimizer imports `torch._dynamo` (about 0.9 s), and
    forked workers inherit it from here instead of each importing it."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)


def _call_quietly(train_one: Callable[[T, bool], R], job: T) -> R:
    return train_one(job, False)


def _seed_fold(run: Path, rows: list[ManifestRow], root: Path, classes: tuple[str, ...], clip_name: str,
               settings: RunSettings, device: torch.device, resume: bool, desc: Path | None, job: tuple[int, Any],
               progress: bool) -> dict[str, Any]:
    """The record of one (seed, fold) training of `train_run` (in `train/seed<s>/fold<f>`)."""
    seed, fold = job
    config = dataclasses.replace(settings.train, seed=seed, cache_precision=settings.frame_precision)
    out = f"train/seed{seed}/fold{fold if fold is not None else 0}"
    test = select(rows, fold=fold, split="test") if settings.plan.selection == "test_war" else None
    record = train_fold(run, select(rows, fold=fold, split="train"), root, classes, clip_name, settings.model,
                        config, out, device, resume, progress, desc, test)
    return {"fold": fold, **record}


def train_run(run_dir: str | Path, settings: RunSettings | None = None, resume: bool = True, progress: bool = False,
              **params: Any) -> dict[str, Any]:
    """Train EmoCLIP for each seed (seed, seed+1, ...) and fold; write `03_results.json`.

    Args:
        run_dir: run directory prepared by notebooks 01 (and 02).
        settings: the run's settings: `model` (backbone, temporal layout, freezing), `train` (the recipe),
            `plan` (seeds, folds, the tiny backbone's pretraining), `seed`, `device`, `descriptions`
            (class descriptions for the validation metric); default `RunSettings()`.
        resume: continue interrupted trainings.
        progress: show progress bars.
        params: flat-named parameters over `settings` (e.g. `epochs=2`, `backbone="tiny"`).
    """
    settings = (settings or RunSettings()).replace(params, where="train_run")
    run, plan = Path(run_dir), settings.plan
    dev = resolve_device(settings.device)
    rows, root, info = training_rows(run)
    classes = tuple(info["classes"])
    desc = descriptions_for(run, info, settings.descriptions)
    all_folds = sorted({r.fold for r in rows if r.fold is not None})
    folds = list(plan.folds) if plan.folds else all_folds[:1] or [None]
    unknown = [f for f in folds if f is not None and f not in all_folds]
    if unknown:
        raise UserError(f"folds {unknown} are not in the training manifest (it has {all_folds})")
    first = select(rows, fold=folds[0], split="train")
    clip_name = prepare_backbone(run, settings.model.backbone, first, root, settings.seed, plan.pretrain_epochs, dev,
                                 progress, plan.pretrain_web_pictures)
    jobs = [(s, fold) for s in range(settings.seed, settings.seed + plan.n_seeds) for fold in folds]
    train_one = functools.partial(_seed_fold, run, rows, root, classes, clip_name, settings, dev, resume, desc)
    runs = run_trainings(train_one, jobs, dev, "trainings", progress)
    flat = settings.flat()
    results = {"dataset": info["name"], "classes": list(classes), "clip_backbone": clip_name,
               "checkpoint": runs[0]["checkpoint"], "runs": runs, "cache_dir": FRAME_CACHE,
               "model_config": settings.model.to_dict(), "train_settings": settings.train.to_dict(),
               "descriptions": run_relative(desc, run) if desc else None,
               "selection": "validation split (zero-shot UAR)" if plan.selection == "validation" else
               "test_war: the test fold's WAR, as the official scripts (test-set selection: not a fair estimate)",
               "settings": {k: flat[k] for k in stage_parameters("03")}}
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes (see cli.train)
        write_stage(run, "03", results)
    return results
