"""Zero-shot metrics: one run's UAR, WAR, per-class recall and confusion; fold aggregation; LOCO recall."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .. import metrics
from ..errors import UserError
from .classify import zero_shot_predict

def evaluate(y_true: Any, y_pred: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """UAR, WAR, per-class recall and confusion matrix of one run.

    Args:
        y_true: (N,) true class indices into `class_names`.
        y_pred: (N,) predicted class indices into `class_names`.
        class_names: the C labels of the label space.
    Returns:
        dict with `uar`, `war` (fractions), `uar_official` (the official eval.py's variant, see
        `metrics.uar_official`), `per_class_recall` {class: recall, NaN if absent from
        y_true}, `confusion` (C, C) int64 (rows true, columns predicted) and `n` (samples).
    """
    names = list(class_names)
    cm = metrics.confusion(y_true, y_pred, len(names))
    recall = metrics.per_class_recall(y_true, y_pred, len(names))
    return {
        "uar": metrics.uar(y_true, y_pred),
        "uar_official": metrics.uar_official(y_true, y_pred),
        "war": metrics.war(y_true, y_pred),
        "per_class_recall": {name: float(r) for name, r in zip(names, recall)},
        "confusion": cm,
        "n": int(cm.sum()),
    }


def _mean_std(values: Sequence[float], ddof: int) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    present = arr[~np.isnan(arr)]
    if present.size == 0:
        return {"mean": float("nan"), "std": float("nan")}
    std = float(np.std(present, ddof=ddof)) if present.size > ddof else float("nan")
    return {"mean": float(np.mean(present)), "std": std}


def aggregate_folds(folds: Sequence[dict[str, Any]], ddof: int = 0) -> dict[str, Any]:
    """Mean and standard deviation over folds of the dicts returned by `evaluate`.

    Args:
        folds: one `evaluate` result per fold, all over the same classes.
        ddof: 0 for the population std (numpy's default), 1 for the sample std.
    Returns:
        dict with `uar` and `war` ({"mean", "std"}), `per_class_recall` {class: {"mean", "std"}}
        (folds where a class is absent are skipped), `confusion` summed over folds and `folds` (count).
    """
    if not folds:
        raise UserError("aggregate_folds needs at least one fold result")
    classes = list(folds[0]["per_class_recall"])
    for i, fold in enumerate(folds):
        if list(fold["per_class_recall"]) != classes:
            raise UserError(f"fold {i} has classes {list(fold['per_class_recall'])}, fold 0 has {classes}: "
                            "evaluate every fold with the same class_names")
    out: dict[str, Any] = {key: _mean_std([f[key] for f in folds], ddof) for key in ("uar", "war")}
    out["per_class_recall"] = {c: _mean_std([f["per_class_recall"][c] for f in folds], ddof) for c in classes}
    if all("confusion" in f for f in folds):
        out["confusion"] = np.sum([np.asarray(f["confusion"]) for f in folds], axis=0)
    out["folds"] = len(folds)
    return out


def loco_recall(video_emb: torch.Tensor, labels: Sequence[str], text_emb: torch.Tensor,
                class_names: Sequence[str], held_out: str) -> float:
    """Leave-one-class-out recall: the share of the held-out class's single-label clips predicted as it.

    This is the suite's one definition: only clips labelled exactly `held_out` are scored (compound clips
    containing it are not), each classified among all of `class_names`.

    Args:
        video_emb: (N, D) embeddings of the evaluated clips (from the model trained without `held_out`).
        labels: the N clips' label fields.
        text_emb: (C, D) class embeddings of every class, rows in `class_names` order.
        class_names: the C classes, `held_out` among them.
        held_out: the class left out of training.
    Returns:
        the recall, NaN when no clip is labelled `held_out`.
    """
    names = list(class_names)
    if held_out not in names:
        raise UserError(f"held-out class {held_out!r} is not among the classes {', '.join(names)}")
    if video_emb.shape[0] != len(labels):
        raise UserError(f"{video_emb.shape[0]} embeddings but {len(labels)} labels: pass one label per clip")
    rows = [i for i, label in enumerate(labels) if label == held_out]
    if not rows:
        return float("nan")
    _, pred = zero_shot_predict(video_emb[torch.as_tensor(rows)], text_emb)  # (n,)
    return float((pred.cpu() == names.index(held_out)).float().mean())
