"""Zero-shot evaluation: per-run metrics, fold aggregation, leave-one-class-out, the paper's results table."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .. import metrics
from ..data.classes import parse_labels
from ..errors import UserError
from .prompts import CLIP_SCALE, zero_shot_predict

# Zero-shot UAR / WAR (%) reported in the EmoCLIP paper and by Exp-CLIP's authors (see PAPER_NOTES).
REPORTED_RESULTS: dict[tuple[str, str], tuple[float, float]] = {
    ("CLIP ViT-B/32", "DFEW"): (22.08, 21.30), ("CLIP ViT-B/32", "FERV39k"): (18.12, 17.38),
    ("CLIP ViT-B/32", "MAFW"): (13.39, 15.48), ("CLIP ViT-B/32", "AFEW"): (28.59, 28.87),
    ("FaRL ViT-B/16", "DFEW"): (23.99, 25.73), ("FaRL ViT-B/16", "FERV39k"): (20.71, 22.87),
    ("FaRL ViT-B/16", "MAFW"): (14.98, 17.08), ("FaRL ViT-B/16", "AFEW"): (28.17, 30.45),
    ("EmoCLIP", "DFEW"): (36.76, 46.27), ("EmoCLIP", "FERV39k"): (26.73, 35.30),
    ("EmoCLIP", "MAFW"): (25.86, 33.49), ("EmoCLIP", "AFEW"): (36.13, 39.90),
    ("Exp-CLIP ViT-L/14", "DFEW"): (40.16, 47.09), ("Exp-CLIP ViT-L/14", "FERV39k"): (27.45, 31.07),
    ("Exp-CLIP ViT-L/14", "MAFW"): (23.95, 26.98), ("Exp-CLIP ViT-L/14", "AFEW"): (38.72, 40.42),
}
PAPER_DATASETS: tuple[str, ...] = ("DFEW", "FERV39k", "MAFW", "AFEW")


def evaluate(y_true: Any, y_pred: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """UAR, WAR, per-class recall and confusion matrix of one run.

    Args:
        y_true: (N,) true class indices into `class_names`.
        y_pred: (N,) predicted class indices into `class_names`.
        class_names: the C labels of the label space.
    Returns:
        dict with `uar`, `war` (fractions), `per_class_recall` {class: recall, NaN if absent from
        y_true}, `confusion` (C, C) int64 (rows true, columns predicted) and `n` (samples).
    """
    names = list(class_names)
    cm = metrics.confusion(y_true, y_pred, len(names))
    recall = metrics.per_class_recall(y_true, y_pred, len(names))
    return {
        "uar": metrics.uar(y_true, y_pred),
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


def _parsed_rows(rows_labels: Sequence[str], classes: Sequence[str]) -> list[set[str]]:
    out = []
    for i, text in enumerate(rows_labels):
        try:
            out.append(set(parse_labels(text, known=tuple(classes))))
        except UserError as err:
            raise UserError(f"row {i}: {err}") from None
    return out


def loco_splits(rows_labels: Sequence[str], classes: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Leave-one-class-out splits: for each class c, train without any sample containing c, test on them.

    Args:
        rows_labels: the label field of every sample ("anger" or "anger+disgust").
        classes: the classes to hold out in turn (every label component must be one of them).
    Returns:
        {class: (train_idx, test_idx)} int64 index arrays. train_idx drops every sample whose labels
        contain the class, compound samples included; test_idx holds exactly those samples.
    """
    parsed = _parsed_rows(rows_labels, classes)
    splits = {}
    for c in classes:
        has = np.array([c in labels for labels in parsed], dtype=bool)  # (N,)
        splits[c] = (np.flatnonzero(~has).astype(np.int64), np.flatnonzero(has).astype(np.int64))
    return splits


def loco_recall(video_emb: torch.Tensor, rows_labels: Sequence[str], text_emb: torch.Tensor,
                class_names: Sequence[str], held_out: str, scale: float | torch.Tensor = CLIP_SCALE) -> float:
    """Recall of the held-out class: the share of its samples predicted as it among all classes.

    Args:
        video_emb: (N, D) embeddings of the evaluated samples, from the model trained without `held_out`.
        rows_labels: the N samples' label fields; only samples containing `held_out` are scored
            (a compound sample counts as correct when predicted as `held_out`).
        text_emb: (C, D) class-description embeddings of every class, rows in `class_names` order.
        class_names: the C classes, `held_out` among them.
        held_out: the class left out of training.
        scale: softmax scale (does not change the argmax).
    """
    names = list(class_names)
    if held_out not in names:
        raise UserError(f"held-out class {held_out!r} is not among the classes {', '.join(names)}")
    if video_emb.shape[0] != len(rows_labels):
        raise UserError(f"{video_emb.shape[0]} embeddings but {len(rows_labels)} label rows: pass one label per video")
    test = loco_splits(rows_labels, names)[held_out][1]
    if test.size == 0:
        raise UserError(f"no sample contains the held-out class {held_out!r}: nothing to evaluate")
    _, pred = zero_shot_predict(video_emb[torch.as_tensor(test)], text_emb, scale)  # (n,)
    return float((pred.cpu() == names.index(held_out)).float().mean())


def paper_table(results: dict[tuple[str, str], tuple[float, float]], datasets: Sequence[str] | None = None,
                methods: Sequence[str] | None = None, fractions: bool = True, decimals: int = 2) -> pd.DataFrame:
    """Results in the paper's layout: one row per method, columns dataset x (UAR, WAR) in percent.

    Args:
        results: {(method, dataset): (uar, war)}.
        datasets: column order (default: the paper's order for known datasets, then first appearance).
        methods: row order (default: first appearance).
        fractions: the values are fractions in [0, 1] (multiplied by 100); False when already percent.
        decimals: rounding of the percentages.
    Returns:
        float DataFrame, NaN where a (method, dataset) pair has no result.
    """
    seen_methods = list(dict.fromkeys(m for m, _ in results))
    seen_data = list(dict.fromkeys(d for _, d in results))
    if datasets is None:
        datasets = [d for d in PAPER_DATASETS if d in seen_data] + [d for d in seen_data if d not in PAPER_DATASETS]
    methods = seen_methods if methods is None else list(methods)
    factor = 100.0 if fractions else 1.0
    for key, pair in results.items():
        if len(pair) != 2:
            raise UserError(f"results[{key}] must be a (uar, war) pair, got {pair!r}")
        if fractions and any(v > 1.0 for v in pair if not np.isnan(v)):
            raise UserError(f"results[{key}] = {pair} exceeds 1: pass fractions, or fractions=False for percent")
    columns = pd.MultiIndex.from_product([list(datasets), ["UAR", "WAR"]], names=["dataset", "metric"])
    table = pd.DataFrame(np.nan, index=pd.Index(methods, name="method"), columns=columns)
    for (method, dataset), (u, w) in results.items():
        if method in table.index and dataset in datasets:
            table.loc[method, (dataset, "UAR")] = u * factor
            table.loc[method, (dataset, "WAR")] = w * factor
    return table.round(decimals)
