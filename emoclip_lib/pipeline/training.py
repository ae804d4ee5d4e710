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

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from ..model.checkpoint import build_model
from ..train.pretrain import pretrain_clip
from ..errors import UserError
from ..features.windows import pool_windows
from ..zeroshot.evaluate import eval_frame_features, score, unique_rows
from ..zeroshot.prompts import class_embeddings
from ..data.manifest import ManifestRow, read_manifest, select
from ..model.emoclip import ModelConfig, TemporalConfig
from .prepare import dataset_paths, load_results
from ..runtime import loader_settings, read_stage, resolve_device, stage_path, write_stage
from ..train.config import TrainConfig
from ..train.data import split_train_val
from ..train.loop import train

PRETRAINED_BACKBONE = "backbone/clip_pretrained.pt"
CACHE_DIR = "cache"


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


def resolve_train_settings(settings: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Fill the device-dependent settings left unset: mixed precision and DataLoader workers on CUDA.

    Args:
        settings: `TrainConfig` fields given by the user (`amp` may be None for automatic).
        device: where training runs.
    """
    out = dict(settings)
    if out.get("amp") is None:
        out["amp"] = device.type == "cuda"
    if "num_workers" not in out:
        out["num_workers"] = loader_settings(device)["num_workers"]
    return out


def training_rows(run_dir: Path) -> tuple[list[ManifestRow], Path, dict[str, Any]]:
    """The curated training manifest of notebook 02 (or notebook 01's, if 02 did not run).

    Args:
        run_dir: the run directory.
    """
    prepared = load_results(run_dir)
    manifest, root = dataset_paths(run_dir, "train", prepared)
    if stage_path(run_dir, "02").is_file():
        manifest = run_dir / read_stage(run_dir, "02")["curated_manifest"]
    return read_manifest(manifest), root, prepared["datasets"]["train"]


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
                  web_pictures=web_pictures, backbone=backbone, device=device, progress=progress)
    return PRETRAINED_BACKBONE


def make_evaluator(model: Any, rows: list[ManifestRow], root: Path, classes: Sequence[str], settings: TrainConfig,
                   cache_dir: Path, device: torch.device, descriptions: Path | None = None) -> Any:
    """Zero-shot UAR/WAR on validation clips against class descriptions, for model selection.

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
    """
    single = unique_rows(rows)
    present = [c for c in classes if any(r.labels == c for r in single)]
    if not single or len(present) < 2:
        return None
    feats, kept = eval_frame_features(model, single, root, classes, settings.clip_len, settings.downsample,
                                      cache_dir, device)
    text = class_embeddings(model.encode_text, classes, "description", descriptions)

    def evaluate_fn(current: Any) -> dict[str, float]:
        metrics = score(pool_windows(current, feats.to(device)).cpu(), kept, classes, text)
        return {"val_uar": metrics["uar"], "val_war": metrics["war"]}

    return evaluate_fn


def train_fold(run_dir: Path, rows: list[ManifestRow], root: Path, classes: Sequence[str], backbone: str,
               model_config: ModelConfig, settings: TrainConfig, out: str, device: torch.device,
               resume: bool = True, progress: bool = False, descriptions: Path | None = None) -> dict[str, Any]:
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
    """
    path = run_dir / backbone
    config = ModelConfig(backbone=str(path) if path.is_file() else backbone, temporal=model_config.temporal,
                         freeze_visual=model_config.freeze_visual, freeze_text=model_config.freeze_text)
    model = build_model(config, device=device, seed=settings.seed)
    train_rows, val_rows = split_train_val(rows, settings.val_fraction, settings.val_group, settings.seed)
    cache = run_dir / CACHE_DIR
    settings.cache_dir = str(cache)
    evaluate_fn = make_evaluator(model, val_rows, root, classes, settings, cache, device, descriptions)
    if evaluate_fn is not None:
        settings.select_metric = "val_uar"
    result = train(model, train_rows, val_rows, root, tuple(classes), settings, run_dir / out, device=device,
                   resume=resume, evaluate_fn=evaluate_fn, progress=progress)
    return {"seed": settings.seed, "checkpoint": f"{out}/best.pt", "best_epoch": result.best_epoch,
            "select_metric": result.select_metric, "best_value": result.best_value, "history": result.history,
            "n_train": len(train_rows), "n_val": len(val_rows)}


def train_run(run_dir: str | Path, seed: int = 0, n_seeds: int = 1, folds: Sequence[int] | None = None,
              backbone: str = "tiny", pretrain_epochs: int = 14,
              pretrain_web_pictures: int = 6000, layout: str = "standard", layers: int = 2,
              heads: int = 8, freeze_visual: bool = True, freeze_text: bool = True, device: str = "auto",
              resume: bool = True, progress: bool = False, descriptions: str | None = None,
              **train_settings: Any) -> dict[str, Any]:
    """Train EmoCLIP for each seed (seed, seed+1, ...) and fold; write `03_results.json`.

    Args:
        run_dir: run directory prepared by notebooks 01 (and 02).
        seed: the run's seed; seeds seed..seed+n_seeds-1 are trained.
        n_seeds: how many seeds (for the spread of the results).
        folds: folds to train (default: the first one); empty-fold datasets train on their train split.
        backbone: "tiny" (pretrained here), a CLIP name such as "ViT-B/32", or a CLIP checkpoint path.
        pretrain_epochs: epochs of the tiny CLIP's pretraining.
        pretrain_web_pictures: synthetic web pictures (faces with expression captions) in that pretraining.
        layout: "standard" (64-d heads) or "official" (2048-d heads, the released weights' layout).
        layers: temporal transformer depth.
        heads: attention heads.
        freeze_visual: keep CLIP's visual tower frozen (the paper's default).
        freeze_text: keep CLIP's text tower frozen (the paper's default).
        device: "auto", "cpu" or "cuda".
        resume: continue interrupted trainings.
        progress: show progress bars.
        descriptions: class-description YAML for validation (default: the dataset's, else the shipped one).
        train_settings: `TrainConfig` fields (epochs, batch_size, lr, optimizer, schedule, ...); unknown ones
            are an error.
    """
    run = Path(run_dir)
    dev = resolve_device(device)
    train_settings = resolve_train_settings(train_settings, dev)
    rows, root, info = training_rows(run)
    classes = tuple(info["classes"])
    desc = descriptions_for(run, info, descriptions)
    all_folds = sorted({r.fold for r in rows if r.fold is not None})
    folds = list(folds) if folds else all_folds[:1] or [None]
    unknown = [f for f in folds if f is not None and f not in all_folds]
    if unknown:
        raise UserError(f"folds {unknown} are not in the training manifest (it has {all_folds})")
    first = select(rows, fold=folds[0], split="train")
    clip_name = prepare_backbone(run, backbone, first, root, seed, pretrain_epochs, dev, progress,
                                 pretrain_web_pictures)
    temporal = TemporalConfig(layers=layers, heads=heads, layout=layout)
    model_config = ModelConfig(temporal=temporal, freeze_visual=freeze_visual, freeze_text=freeze_text)
    runs = []
    for s in range(seed, seed + n_seeds):
        for fold in folds:
            settings = TrainConfig.from_dict({**train_settings, "seed": s})
            fold_rows = select(rows, fold=fold, split="train")
            out = f"train/seed{s}/fold{fold if fold is not None else 0}"
            record = train_fold(run, fold_rows, root, classes, clip_name, model_config, settings, out, dev,
                                resume, progress, desc)
            runs.append({"fold": fold, **record})
    results = {"dataset": info["name"], "classes": list(classes), "clip_backbone": clip_name,
               "checkpoint": runs[0]["checkpoint"], "runs": runs, "cache_dir": CACHE_DIR,
               "model_config": model_config.to_dict(), "train_settings": dict(train_settings),
               "descriptions": str(desc.relative_to(run)) if desc and desc.is_relative_to(run) else
               (str(desc) if desc else None),
               "settings": {"seed": seed, "n_seeds": n_seeds, "folds": folds, "backbone": backbone,
                            "layout": layout, "layers": layers, "heads": heads, "freeze_visual": freeze_visual,
                            "freeze_text": freeze_text, "pretrain_epochs": pretrain_epochs,
                            "pretrain_web_pictures": pretrain_web_pictures, **train_settings}}
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes (see cli_train)
        write_stage(run, "03", results)
    return results
