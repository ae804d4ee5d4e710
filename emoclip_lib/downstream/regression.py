"""Symptom-severity regression from video embeddings: metrics, cluster-bootstrap CIs, result tables.

The EmoCLIP paper reuses the video embeddings with a linear probe to estimate schizophrenia
symptom severity (Pearson's r up to 0.85). `regress_items` runs every method (plus a
training-mean baseline) on every symptom item with subject-grouped nested cross-validation and
returns a long table and the out-of-fold predictions. Cross-validation lives in `regression_cv`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import metrics
from ..errors import UserError
from .nested_cv import (MODELS, CVResult, as_features, as_groups, as_target, build_estimator,
                            default_param_grid, grouped_nested_cv, mean_baseline_cv, outer_splits)

__all__ = ["MODELS", "CVResult", "RegressionResult", "aggregate_by_group", "bootstrap_ci",
           "build_estimator", "default_param_grid", "evaluate_predictions", "grouped_nested_cv",
           "mean_baseline_cv", "outer_splits", "reference_agreement", "regress_items"]

TABLE_COLUMNS: tuple[str, ...] = ("item", "method", "pcc", "ccc", "mae", "rmse",
                                  "pcc_lo", "pcc_hi", "ccc_lo", "ccc_hi", "n")
AVERAGE_ITEM = "average"


@dataclass
class RegressionResult:
    """Output of `regress_items`.

    Attributes:
        table: long table, one row per (item, method), columns `TABLE_COLUMNS`. Rows with item
            "average" hold the mean over items of pcc/ccc/mae/rmse; their CI columns are NaN and
            their `n` is <NA> (a mean of per-item CIs is not a CI).
        predictions: (item, method) -> out-of-fold `CVResult`, for scatter plots.
        skipped: item -> why it was left out (every score equal, too few scored samples...); a
            skipped item has no rows, so that every average is over the same items.
    """

    table: pd.DataFrame
    predictions: dict[tuple[str, str], CVResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def predictions_frame(self) -> pd.DataFrame:
        """Long frame of every out-of-fold prediction: item, method, sample, group, fold, y_true, y_pred."""
        parts = []
        for (item, method), res in self.predictions.items():
            idx = np.flatnonzero(res.used)
            parts.append(pd.DataFrame({"item": item, "method": method, "sample": idx,
                                       "group": res.groups[idx], "fold": res.fold[idx],
                                       "y_true": res.y_true[idx], "y_pred": res.y_pred[idx]}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def evaluate_predictions(y_true: Any, y_pred: Any) -> dict[str, float]:
    """PCC, CCC, MAE and RMSE of predictions (PCC is NaN for constant predictions).

    Args:
        y_true: (N,) ground-truth scores, no NaN.
        y_pred: (N,) predictions, no NaN.
    """
    return {"pcc": metrics.pcc(y_true, y_pred), "ccc": metrics.ccc(y_true, y_pred),
            "mae": metrics.mae(y_true, y_pred), "rmse": metrics.rmse(y_true, y_pred)}


def aggregate_by_group(y_true: Any, y_pred: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average targets and predictions per group (e.g. per-video predictions -> one per subject).

    Args:
        y_true: (N,) ground truth.
        y_pred: (N,) predictions.
        groups: (N,) group id of every sample.
    Returns:
        (y_true, y_pred, group_ids), each (G,), groups in sorted order.
    """
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    g = as_groups(groups, t.size)
    if p.size != t.size:
        raise UserError(f"y_true has {t.size} values but y_pred has {p.size}")
    uniq, inverse = np.unique(g, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, minlength=uniq.size)
    mean_t = np.bincount(inverse, weights=t, minlength=uniq.size) / counts
    mean_p = np.bincount(inverse, weights=p, minlength=uniq.size) / counts
    return mean_t, mean_p, uniq


def bootstrap_ci(y_true: Any, y_pred: Any, groups: Any,
                 metric_fn: Callable[[np.ndarray, np.ndarray], float], n_boot: int = 1000,
                 seed: int = 0, alpha: float = 0.05,
                 progress: bool = False) -> tuple[float, float]:
    """Percentile confidence interval of a metric by resampling groups (subjects) with replacement.

    Every sample of a drawn subject enters the resample, as many times as the subject is drawn
    (cluster bootstrap). Resamples where the metric is NaN (e.g. PCC of a constant) are dropped;
    (NaN, NaN) when all are.

    Args:
        y_true: (N,) ground truth, no NaN.
        y_pred: (N,) predictions, no NaN.
        groups: (N,) subject id of every sample.
        metric_fn: f(y_true, y_pred) -> float, e.g. `metrics.pcc`.
        n_boot: number of bootstrap resamples.
        seed: seed of the resampling; the same seed gives the same interval.
        alpha: 1 - confidence level (0.05 -> 95% interval).
        progress: show a progress bar.
    """
    t = as_target(y_true, np.asarray(y_true).size, "y_true")
    p = as_target(y_pred, t.size, "y_pred")
    if np.isnan(t).any() or np.isnan(p).any():
        raise UserError("bootstrap_ci: y_true and y_pred must not contain NaN; drop unscored samples first")
    g = as_groups(groups, t.size)
    if int(n_boot) < 1 or not 0.0 < alpha < 1.0:
        raise UserError(f"bootstrap_ci needs n_boot >= 1 and 0 < alpha < 1 "
                        f"(got n_boot={n_boot}, alpha={alpha})")
    _, inverse = np.unique(g, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(inverse))[:-1])  # sample indices of each group
    if len(members) < 2:
        raise UserError("bootstrap_ci needs at least 2 subjects (groups) to resample")
    rng = np.random.default_rng(seed)
    stats = np.empty(int(n_boot))
    for b in tqdm(range(int(n_boot)), desc="bootstrap", disable=not progress):
        picks = rng.integers(0, len(members), size=len(members))
        idx = np.concatenate([members[i] for i in picks])
        stats[b] = metric_fn(t[idx], p[idx])
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(stats, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(lo), float(hi)


def _score_row(item: str, res: CVResult, aggregate: bool, n_boot: int, seed: int,
               alpha: float) -> dict[str, Any]:
    """One table row: point metrics and cluster-bootstrap CIs of PCC and CCC."""
    t, p, g = res.observed()
    if aggregate:
        t, p, g = aggregate_by_group(t, p, g)
    row: dict[str, Any] = {"item": item, "method": res.model, **evaluate_predictions(t, p)}
    for name, fn in (("pcc", metrics.pcc), ("ccc", metrics.ccc)):
        if n_boot > 0:
            row[f"{name}_lo"], row[f"{name}_hi"] = bootstrap_ci(t, p, g, fn, n_boot=n_boot, seed=seed,
                                                                alpha=alpha)
        else:
            row[f"{name}_lo"] = row[f"{name}_hi"] = float("nan")
    row["n"] = int(t.size)
    return row


def _average_rows(rows: list[dict[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """Per method, the mean over items of the point metrics (NaN-aware)."""
    out = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        row: dict[str, Any] = {"item": AVERAGE_ITEM, "method": method}
        for name in ("pcc", "ccc", "mae", "rmse"):
            vals = np.array([r[name] for r in mine], dtype=np.float64)
            row[name] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        row.update({c: float("nan") for c in ("pcc_lo", "pcc_hi", "ccc_lo", "ccc_hi")})
        row["n"] = pd.NA
        out.append(row)
    return out


def _check_items(scores: Mapping[str, Any], models: Sequence[str]) -> list[str]:
    """Item names of `scores`, after checking them and the model names."""
    items = [str(k) for k in scores.keys()]
    if not items:
        raise UserError("scores is empty: give at least one item name -> score array")
    if AVERAGE_ITEM in items:
        raise UserError(f"item name {AVERAGE_ITEM!r} is reserved for the average row; rename that item")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise UserError(f"unknown model {unknown[0]!r}: choose among {', '.join(MODELS)}")
    return items


def _check_varies(y: np.ndarray) -> None:
    """Raise UserError when an item's (two or more) non-missing scores are all equal: nothing to correlate."""
    seen = y[~np.isnan(y)]
    if seen.size > 1 and np.unique(seen).size == 1:
        raise UserError(f"every score is {seen[0]:g}: the correlations (PCC, CCC) of a constant target are "
                        f"undefined; check the item's column in the interview manifest")


def _regress_item(item: str, feats: np.ndarray, y: np.ndarray, g: np.ndarray, methods: Sequence[str],
                  opts: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[tuple[str, str], CVResult]]:
    """Rows and out-of-fold predictions of one item over `methods`; raises UserError "method: why"."""
    rows, preds = [], {}
    for method in methods:
        try:
            if method == "mean":
                res = mean_baseline_cv(y, g, outer_folds=opts["outer_folds"], seed=opts["seed"])
            else:
                res = grouped_nested_cv(feats, y, g, model=method, outer_folds=opts["outer_folds"],
                                        inner_folds=opts["inner_folds"], seed=opts["seed"],
                                        param_grid=opts["grids"].get(method), n_jobs=opts["n_jobs"])
        except UserError as err:
            raise UserError(f"{method}: {err}") from None
        preds[(item, method)] = res
        rows.append(_score_row(item, res, opts["aggregate"], opts["n_boot"], opts["seed"], opts["alpha"]))
    return rows, preds


def regress_items(features: Any, scores: Mapping[str, Any], groups: Any,
                  models: Sequence[str] = MODELS, seed: int = 0, n_boot: int = 1000,
                  outer_folds: int = 5, inner_folds: int = 3,
                  param_grids: Mapping[str, Any] | None = None, alpha: float = 0.05,
                  aggregate: bool = False, progress: bool = True, n_jobs: int | None = None) -> RegressionResult:
    """Cross-validated regression of every symptom item from the features, with a mean baseline.

    Each item is fitted separately; samples with a NaN score for an item are left out of that
    item only. All items and methods share the same subject folds (same `seed`). An item that
    cannot be scored (every score equal, too few scored samples, a fold without scored training
    subjects) is skipped with its reason in `RegressionResult.skipped`; when every item is, the
    reasons are raised as one UserError.

    Args:
        features: (N, D) embeddings, one row per subject or per video.
        scores: item name -> (N,) scores (NaN = missing); a pandas DataFrame works too.
        groups: (N,) subject id of every row (one distinct id per row for per-subject features).
        models: regressors to run, any of "ridge", "svr", "mlp"; "mean" is always added.
        seed: seed of folds, MLP and bootstrap.
        n_boot: bootstrap resamples for the PCC/CCC intervals (0 skips them: NaN bounds).
        outer_folds: outer (test) folds.
        inner_folds: inner folds of the hyperparameter search.
        param_grids: optional model -> grid overriding `default_param_grid`.
        alpha: 1 - confidence level of the intervals.
        aggregate: average per-video predictions per subject before scoring (per-video features).
        progress: show a progress bar over (item, method) fits.
        n_jobs: processes of each inner grid search (see `grouped_nested_cv`); results do not depend on it.
    """
    items = _check_items(scores, models)
    opts = {"grids": dict(param_grids or {}), "outer_folds": outer_folds, "inner_folds": inner_folds,
            "seed": seed, "n_boot": n_boot, "alpha": alpha, "aggregate": aggregate, "n_jobs": n_jobs}
    feats = as_features(features)
    g = as_groups(groups, feats.shape[0])
    methods = ["mean", *models]
    targets = {item: as_target(values, feats.shape[0], item) for item, values in zip(items, scores.values())}
    rows, preds, skipped = _regress_targets(targets, feats, g, methods, opts, progress)
    if not rows:
        reasons = [f"item {item!r}: {why}" for item, why in skipped.items()]
        head = "cannot regress " if len(reasons) == 1 else "no item can be regressed: "
        raise UserError(head + "; ".join(reasons))
    table = pd.DataFrame(rows + _average_rows(rows, methods), columns=list(TABLE_COLUMNS))
    table["n"] = table["n"].astype("Int64")
    return RegressionResult(table=table, predictions=preds, skipped=skipped)


def _regress_targets(targets: dict[str, np.ndarray], feats: np.ndarray, g: np.ndarray, methods: Sequence[str],
                     opts: dict[str, Any], progress: bool) -> tuple[list, dict, dict[str, str]]:
    """Rows, predictions and skipped items (item -> reason) of every item; an item that fails is skipped."""
    rows, preds, skipped = [], {}, {}
    bar = tqdm(total=len(targets) * len(methods), desc="regression", disable=not progress)
    for item, y in targets.items():
        try:
            _check_varies(y)
            more, found = _regress_item(item, feats, y, g, methods, opts)
        except UserError as err:
            skipped[item] = str(err)
            continue
        finally:
            bar.update(len(methods))
        rows += more
        preds.update(found)
    bar.close()
    return rows, preds, skipped


def reference_agreement(predictions: pd.DataFrame, reference: pd.DataFrame,
                        by: Sequence[str] = ("method", "item")) -> pd.DataFrame:
    """PCC/CCC of subject-mean predictions against per-subject reference scores (e.g. true severity).

    Args:
        predictions: long frame with the `by` columns (one of them "item"), `subject` and `y_pred`,
            e.g. `RegressionResult.predictions_frame()` with `group` renamed to `subject`.
        reference: reference scores indexed by subject (as strings), one column per item; items
            without a column are left out, subjects without a reference value are not counted.
        by: the columns naming one series of predictions.
    Returns:
        rows `by`, pcc, ccc, n (subjects compared), then per `by` minus "item" an "average" row.
    """
    keys = list(by)
    per_subject = predictions.groupby([*keys, "subject"], sort=False)["y_pred"].mean().reset_index()
    rows = []
    for values, part in per_subject.groupby(keys, sort=False):
        row = dict(zip(keys, values))
        if row["item"] not in reference.columns:
            continue
        truth = reference[row["item"]].reindex(part["subject"].astype(str)).to_numpy(np.float64)
        pred = part["y_pred"].to_numpy(np.float64)
        ok = ~(np.isnan(truth) | np.isnan(pred))
        t, p = truth[ok], pred[ok]
        row.update(pcc=metrics.pcc(t, p) if ok.sum() > 1 else np.nan,
                   ccc=metrics.ccc(t, p) if ok.sum() > 1 else np.nan, n=int(ok.sum()))
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*keys, "pcc", "ccc", "n"])
    rest = [k for k in keys if k != "item"]
    avg = (table.groupby(rest, sort=False)[["pcc", "ccc"]].mean().reset_index() if rest
           else table[["pcc", "ccc"]].mean().to_frame().T).assign(item=AVERAGE_ITEM)
    return pd.concat([table, avg], ignore_index=True)[[*keys, "pcc", "ccc", "n"]]
