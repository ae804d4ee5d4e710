"""Notebook 04's harder protocols: leave-one-class-out training and compound-emotion evaluation.

Leave-one-class-out (as the official `train_loo.py`): for each held-out class c and fold, every training clip
of c is dropped, a model is trained with the notebook-03 recipe, pairing each clip with its class's
description (`loco_text="descriptions"`, official) or its caption, and c's single-label test clips of that
fold are classified among all classes; c was never seen, so its recall (`zeroshot.loco_recall`, the one
definition: single-label clips of c) measures transfer to an unseen emotion. A (fold, class) without a test
clip is skipped with a note before any training. Compound emotions: MAFW's compound test clips are scored
among the single classes and the compounds (each the mean of its components' text embeddings, the paper's
rule), by the models trained on single-label clips only.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from ..data import COMPOUND_SEPARATOR, load_descriptions, select
from ..errors import UserError
from ..features import pool_windows
from ..model import ModelConfig
from ..train import TrainConfig
from ..zeroshot import (METHODS, compound_embeddings, eval_frame_features, evaluate, label_indices, label_space,
                        loco_recall, scored_clips, zero_shot_predict)
from .training import run_trainings, train_fold, training_rows
from .zeroshot import EvalContext


def _features(ctx: EvalContext, checkpoint: str, clips: list, root: Any, classes: tuple[str, ...]) -> tuple:
    p = ctx.protocol
    return eval_frame_features(ctx.model(checkpoint), clips, root, classes, p.clip_len, p.downsample, ctx.cache,
                               ctx.device, False, p.window == "random", p.seed, p.precision)


def loco_plan(ctx: EvalContext) -> tuple[list[tuple[int | None, str, list]], list[dict[str, Any]]]:
    """The (fold, class, test clips) trainings to run and the skipped ones with why, decided before training.

    Args:
        ctx: evaluation context (notebook 03 done).
    """
    name = ctx.prepared["train"]
    rows, _, classes = ctx.rows(name)
    chosen = ctx.settings.eval.loco_classes or list(classes)
    unknown = [c for c in chosen if c not in classes]
    if unknown:
        raise UserError(f"loco_classes {unknown} are not classes of {ctx.display(name)} ({', '.join(classes)})")
    trained = [r["fold"] for r in ctx.runs()]
    folds = ctx.settings.eval.loco_folds or trained[:1]
    jobs, skipped = [], []
    for fold in folds:
        if fold not in trained:
            raise UserError(f"loco_folds: fold {fold} was not trained by notebook 03 (trained: {trained})")
        test = scored_clips(rows, fold)
        for cls in chosen:
            mine = [r for r in test if r.labels == cls]
            if mine:
                jobs.append((fold, cls, mine))
            else:
                skipped.append({"fold": fold, "class": cls, "reason": "no single-label test clip of the class"})
    return jobs, skipped


def _held_out_rows(ctx: EvalContext, fold: int | None, cls: str) -> tuple[list, Any]:
    """Training rows of the fold without class `cls`, texts as `loco_text` says."""
    rows, root, info = training_rows(ctx.run)
    keep = [r for r in select(rows, fold=fold, split="train") if r.labels != cls]
    if ctx.settings.eval.loco_text == "descriptions":
        table = load_descriptions(ctx.descriptions(info["name"]), required=sorted({r.labels for r in keep}))
        keep = [dataclasses.replace(r, caption=table[r.labels].descriptions[0]) for r in keep]
    return keep, root


def _recalls(ctx: EvalContext, checkpoint: str, clips: list, root: Any, classes: tuple[str, ...],
             cls: str) -> dict[str, float]:
    """Recall of `cls` on its clips for each method of a model."""
    feats, kept = _features(ctx, checkpoint, clips, root, classes)
    labels, prompts, model = [r.labels for r in kept], ctx.prompts(checkpoint, ctx.prepared["train"]), \
        ctx.model(checkpoint)
    return {m: loco_recall(pool_windows(model, feats.to(ctx.device), pool).cpu(), labels, prompts(classes, mode),
                           classes, cls) for m, (pool, mode) in METHODS.items()}


def leave_one_class_out(ctx: EvalContext, progress: bool = False) -> dict[str, Any]:
    """Train without each class in turn and measure its recall; the seen model and CLIP on the same clips.

    The trainings run on every CPU core (`training.run_trainings`); the records are those of one after another.

    Args:
        ctx: evaluation context (notebook 03 done).
        progress: show progress bars.
    Returns:
        {"classes": per (fold, class) recalls, "skipped": [...], "settings": {...}}.
    """
    jobs, skipped = loco_plan(ctx)
    settings = dict(ctx.trained["train_settings"])
    if ctx.settings.eval.loco_epochs:
        settings["epochs"] = ctx.settings.eval.loco_epochs
    out = run_trainings(functools.partial(_held_out_class, ctx, settings), jobs, ctx.device,
                        "leave-one-class-out", progress)
    return {"classes": out, "skipped": skipped,
            "settings": {"loco_text": ctx.settings.eval.loco_text, "epochs": settings["epochs"],
                         "recall": "single-label test clips of the held-out class, among all classes"}}


def _held_out_class(ctx: EvalContext, settings: dict[str, Any], job: tuple[int | None, str, list],
                    progress: bool) -> dict[str, Any]:
    """One (fold, class) of `leave_one_class_out`: train without the class, then its recalls, unseen and seen."""
    fold, cls, clips = job
    trained = ctx.trained
    run = {r["fold"]: r for r in reversed(trained["runs"])}[fold]  # the first seed's model of the fold
    _, root, classes = ctx.rows(ctx.prepared["train"])
    keep, train_root = _held_out_rows(ctx, fold, cls)
    record = train_fold(ctx.run, keep, train_root, classes, trained["clip_backbone"],
                        ModelConfig.from_dict(trained["model_config"]),
                        TrainConfig.from_dict({**settings, "seed": run["seed"]}),
                        f"loco/fold{fold if fold is not None else 0}/{cls}", ctx.device, True, progress,
                        ctx.descriptions(ctx.prepared["train"]))
    unseen = _recalls(ctx, record["checkpoint"], clips, root, classes, cls)
    seen = _recalls(ctx, run["checkpoint"], clips, root, classes, cls)
    return {"fold": fold, "class": cls, "n_train": len(keep), "n_test": len(clips),
            "emoclip_unseen": unseen["emoclip"], "emoclip_seen": seen["emoclip"],
            "clip_names": seen["clip_names"], "clip_descriptions": seen["clip_descriptions"]}


def compound_evaluation(ctx: EvalContext) -> dict[str, Any]:
    """Scores on MAFW's compound test clips among singles and compounds, per trained model, and their mean.

    Args:
        ctx: evaluation context (notebook 03 done).
    """
    name = ctx.prepared["train"]
    rows, root, classes = ctx.rows(name)
    per_run = []
    for run in ctx.runs():
        clips = [r for r in scored_clips(rows, run["fold"], single_label=False) if COMPOUND_SEPARATOR in r.labels]
        if not clips:
            continue
        space = label_space(classes, sorted({r.labels for r in clips}))
        feats, kept = _features(ctx, run["checkpoint"], clips, root, classes)
        truth = label_indices([r.labels for r in kept], space)
        prompts, model = ctx.prompts(run["checkpoint"], name), ctx.model(run["checkpoint"])
        scores = {}
        for method, (pool, mode) in METHODS.items():
            text = compound_embeddings(prompts(classes, mode), list(classes), space)  # (L, D)
            _, pred = zero_shot_predict(pool_windows(model, feats.to(ctx.device), pool).cpu(), text)
            res = evaluate(truth, np.asarray(pred), space)
            scores[method] = {"uar": res["uar"], "war": res["war"]}
        per_run.append({"seed": run["seed"], "fold": run["fold"], "n": len(kept), "labels": space, **scores})
    if not per_run:
        return {"n": 0, "runs": [], "note": "no compound test clip (is mafw_subset single?)"}
    mean = {m: {k: float(np.mean([r[m][k] for r in per_run])) for k in ("uar", "war")} for m in METHODS}
    return {"n": int(np.mean([r["n"] for r in per_run])), "runs": per_run, **mean}
