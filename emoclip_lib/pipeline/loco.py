"""Notebook 04's harder protocols: leave-one-class-out training and compound-emotion evaluation.

Leave-one-class-out (as the official scripts do): drop every training sample containing class c,
train against the same recipe, then test on c's samples against all classes' descriptions; c was never
seen in training, so its recall measures zero-shot transfer to an unseen emotion.
Compound emotions are represented by the mean of their components' text embeddings (the paper's rule).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..data import COMPOUND_SEPARATOR
from ..features import pool_windows
from ..zeroshot import unique_rows
from ..data import select
from ..model import ModelConfig
from .training import train_fold
from .zeroshot import EvalContext
from ..train import TrainConfig
from ..zeroshot import zero_shot_predict
from ..zeroshot import class_embeddings, compound_embeddings, label_indices, label_space
from ..zeroshot import evaluate


def _recall_of(video: Any, text: Any, target: int) -> float:
    _, pred = zero_shot_predict(video, text)
    return float(np.mean(np.asarray(pred) == target)) if len(pred) else float("nan")


def held_out_recall(ctx: EvalContext, model: Any, feats: Any, classes: Sequence[str], target: int) -> dict[str, float]:
    """Recall of class `target` on its test clips for EmoCLIP and the two CLIP baselines.

    Args:
        ctx: evaluation context.
        model: EmoCLIP model.
        feats: (N, T, D) frame features of the class's test clips.
        classes: label space.
        target: index of the held-out class.
    """
    emo = pool_windows(model, feats.to(ctx.device)).cpu()
    avg = pool_windows(model, feats, "clip_frame_avg")
    desc = class_embeddings(model.encode_text, classes, "description", ctx.descriptions)
    names = class_embeddings(model.encode_text, classes, "name", ctx.descriptions)
    return {"emoclip": _recall_of(emo, desc, target), "clip_names": _recall_of(avg, names, target),
            "clip_descriptions": _recall_of(avg, desc, target)}


def leave_one_class_out(ctx: EvalContext, held_out: Sequence[str] | None = None, epochs: int | None = None,
                        progress: bool = False) -> list[dict[str, Any]]:
    """Train without each class in turn and measure the held-out class's recall (first seed, first fold).

    Args:
        ctx: evaluation context.
        held_out: classes to hold out (default: every class of the training corpus).
        epochs: training epochs of each held-out model (default: notebook 03's).
        progress: show progress bars.
    """
    rows, root, classes, _ = ctx.rows("train")
    first = ctx.trained["runs"][0]
    fold, seed = first["fold"], first["seed"]
    train_all = select(rows, fold=fold, split="train") if fold is not None else rows
    test_all = unique_rows(select(rows, fold=fold, split="test") if fold is not None else rows)
    settings = dict(ctx.trained["train_settings"], seed=seed)
    if epochs:
        settings["epochs"] = epochs
    model_config = ModelConfig.from_dict(ctx.trained["model_config"])
    full_model = ctx.model(first["checkpoint"])
    out = []
    for cls in held_out or classes:
        keep = [r for r in train_all if cls not in r.labels.split(COMPOUND_SEPARATOR)]
        test = [r for r in test_all if r.labels == cls]
        record = train_fold(ctx.run, keep, root, classes, ctx.trained["clip_backbone"], model_config,
                            TrainConfig.from_dict(settings), f"loco/{cls}", ctx.device, True, progress,
                            ctx.descriptions)
        feats, _ = ctx.features(full_model, test, root, classes)
        unseen = held_out_recall(ctx, ctx.model(record["checkpoint"]), feats, classes, classes.index(cls))
        seen = held_out_recall(ctx, full_model, feats, classes, classes.index(cls))["emoclip"]
        out.append({"class": cls, "n_train": len(keep), "n_test": len(test), "emoclip_unseen": unseen["emoclip"],
                    "emoclip_seen": seen, "clip_names": unseen["clip_names"],
                    "clip_descriptions": unseen["clip_descriptions"]})
    return out


def compound_evaluation(ctx: EvalContext) -> dict[str, Any]:
    """Scores on compound test clips against single and compound labels (mean of component embeddings).

    Args:
        ctx: evaluation context.
    """
    rows, root, classes, _ = ctx.rows("train")
    first = ctx.trained["runs"][0]
    fold = first["fold"]
    test = [r for r in unique_rows(select(rows, fold=fold, split="test") if fold is not None else rows, False)
            if COMPOUND_SEPARATOR in r.labels]
    if not test:
        return {"n": 0}
    model = ctx.model(first["checkpoint"])
    space = label_space(classes, sorted({r.labels for r in test}))
    feats, kept = ctx.features(model, test, root, classes)
    truth = label_indices([r.labels for r in kept], space)
    out: dict[str, Any] = {"n": len(kept), "labels": space}
    for method, embedding, mode in (("EmoCLIP (descriptions)", "emoclip", "description"),
                                    ("CLIP frame-avg (class names)", "clip_frame_avg", "name")):
        text = compound_embeddings(class_embeddings(model.encode_text, classes, mode, ctx.descriptions),
                                   list(classes), space)
        video = pool_windows(model, feats.to(ctx.device), embedding).cpu()
        _, pred = zero_shot_predict(video, text)
        res = evaluate(truth, np.asarray(pred), space)
        out[method] = {"uar": res["uar"], "war": res["war"]}
    return out
