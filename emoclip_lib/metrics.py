"""Classification (WAR, UAR, confusion) and regression (PCC, CCC, MAE, RMSE) metrics.

Every function takes 1-D array-likes (numpy arrays, lists, torch tensors) and returns plain
Python floats or numpy arrays. User mistakes (empty input, length mismatch, NaN in a regression
input, a class index out of range) raise `UserError` with a message saying what to fix.

Degenerate but valid inputs return NaN instead of raising:
- `pcc` when either input is constant (the correlation is undefined);
- `ccc` when both inputs are the same constant (0/0);
- `per_class_recall` for classes absent from the ground truth.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import UserError


def _as_1d(values: Any, name: str) -> np.ndarray:
    """Convert an array-like (list, numpy array, torch tensor) into a 1-D numpy array."""
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise UserError(f"{name} must be a 1-D sequence, got an array of shape {arr.shape}")
    return arr


def _pair(a: Any, b: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two non-empty 1-D arrays of equal length."""
    x, y = _as_1d(a, names[0]), _as_1d(b, names[1])
    if x.size == 0 or y.size == 0:
        raise UserError(f"{names[0]} and {names[1]} must not be empty (got {x.size} and {y.size} values)")
    if x.size != y.size:
        raise UserError(f"{names[0]} has {x.size} values but {names[1]} has {y.size}: "
                        "pass one prediction per ground-truth value")
    return x, y


def _real_pair(a: Any, b: Any, names: tuple[str, str] = ("x", "y")) -> tuple[np.ndarray, np.ndarray]:
    """Two finite float64 arrays of equal, non-zero length (inputs of the regression metrics)."""
    x, y = _pair(a, b, names)
    out = []
    for arr, name in zip((x, y), names):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise UserError(f"{name} must hold numbers ({err})") from None
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise UserError(f"{name}[{bad[0]}] is {arr[bad[0]]} ({bad.size} non-finite values): "
                            "drop samples with missing values before computing the metric")
        out.append(arr)
    return out[0], out[1]


def _class_indices(a: Any, n_classes: int, name: str) -> np.ndarray:
    """Integer class indices in 0..n_classes-1."""
    arr = _as_1d(a, name)
    if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.all(np.mod(arr, 1) == 0)):
        raise UserError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < 0) | (arr >= n_classes))
    if bad.size:
        raise UserError(f"{name}[{bad[0]}] = {arr[bad[0]]} is outside 0..{n_classes - 1}: "
                        f"labels must be class indices below n_classes={n_classes}")
    return arr


def war(y_true: Any, y_pred: Any) -> float:
    """Weighted average recall, i.e. plain accuracy: the fraction of correct predictions.

    Args:
        y_true: ground-truth labels, shape (N,).
        y_pred: predicted labels, shape (N,).
    """
    t, p = _pair(y_true, y_pred, ("y_true", "y_pred"))
    return float(np.mean(t == p))


def uar(y_true: Any, y_pred: Any) -> float:
    """Unweighted average recall: mean per-class recall over the classes present in `y_true`.

    Classes that appear only in `y_pred` do not count (as in sklearn's balanced accuracy).

    Args:
        y_true: ground-truth labels, shape (N,).
        y_pred: predicted labels, shape (N,).
    """
    t, p = _pair(y_true, y_pred, ("y_true", "y_pred"))
    recalls = [np.mean(p[t == c] == c) for c in np.unique(t)]
    return float(np.mean(recalls))


def uar_official(y_true: Any, y_pred: Any) -> float:
    """UAR as the official EmoCLIP eval.py computes it: the mean of the diagonal of the row-normalised
    confusion matrix over the classes present in `y_true` OR `y_pred` (a class only predicted counts 0).

    Args:
        y_true: ground-truth labels, shape (N,).
        y_pred: predicted labels, shape (N,).
    """
    t, p = _pair(y_true, y_pred, ("y_true", "y_pred"))
    recalls = [np.mean(p[t == c] == c) if np.any(t == c) else 0.0 for c in np.union1d(t, p)]
    return float(np.mean(recalls))


def confusion(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Confusion matrix: entry [i, j] counts samples of true class i predicted as class j.

    Args:
        y_true: ground-truth class indices in 0..n_classes-1, shape (N,).
        y_pred: predicted class indices in 0..n_classes-1, shape (N,).
        n_classes: number of classes C.
    Returns:
        (C, C) int64 array, rows = true class, columns = predicted class.
    """
    if int(n_classes) < 1:
        raise UserError(f"n_classes must be at least 1, got {n_classes}")
    _pair(y_true, y_pred, ("y_true", "y_pred"))
    t = _class_indices(y_true, n_classes, "y_true")
    p = _class_indices(y_pred, n_classes, "y_pred")
    flat = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def per_class_recall(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Recall of every class; NaN for classes with no ground-truth sample.

    Args:
        y_true: ground-truth class indices in 0..n_classes-1, shape (N,).
        y_pred: predicted class indices in 0..n_classes-1, shape (N,).
        n_classes: number of classes C.
    Returns:
        (C,) float64 array.
    """
    cm = confusion(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    recall = np.full(n_classes, np.nan)
    present = support > 0
    recall[present] = np.diag(cm)[present] / support[present]
    return recall


def pcc(x: Any, y: Any) -> float:
    """Pearson correlation coefficient; NaN when either input is constant.

    Args:
        x: first variable (e.g. ground truth), shape (N,).
        y: second variable (e.g. prediction), shape (N,).
    """
    a, b = _real_pair(x, y)
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    r = np.sum(da * db) / np.sqrt(np.sum(da * da) * np.sum(db * db))
    return float(np.clip(r, -1.0, 1.0))


def ccc(x: Any, y: Any) -> float:
    """Lin's concordance correlation coefficient with population (1/N) moments.

    ccc = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2); NaN when both inputs are
    the same constant (the ratio is 0/0).

    Args:
        x: first variable (e.g. ground truth), shape (N,).
        y: second variable (e.g. prediction), shape (N,).
    """
    a, b = _real_pair(x, y)
    ma, mb = a.mean(), b.mean()
    cov = np.mean((a - ma) * (b - mb))
    denom = np.mean((a - ma) ** 2) + np.mean((b - mb) ** 2) + (ma - mb) ** 2
    if denom == 0:
        return float("nan")
    return float(2.0 * cov / denom)


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error.

    Args:
        y_true: ground truth, shape (N,).
        y_pred: prediction, shape (N,).
    """
    a, b = _real_pair(y_true, y_pred, ("y_true", "y_pred"))
    return float(np.mean(np.abs(a - b)))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error.

    Args:
        y_true: ground truth, shape (N,).
        y_pred: prediction, shape (N,).
    """
    a, b = _real_pair(y_true, y_pred, ("y_true", "y_pred"))
    return float(np.sqrt(np.mean((a - b) ** 2)))
