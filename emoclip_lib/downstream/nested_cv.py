"""Subject-grouped nested cross-validation of linear-probe style regressors on video embeddings.

Outer folds split the *groups* (subjects) at random with a seed, so no subject is ever in both
the training and the test part. Hyperparameters are picked by a grid search whose inner folds are
built the same way from the outer training part only. Features and targets are standardised
inside the fitted pipeline (statistics from training data only).
The inner grid search runs in `n_jobs` processes (default: the CPU count for the MLP, whose fits take
~0.1 s; ridge and SVR fits take ~1 ms, less than sending them to a worker) using the caller's BLAS thread
count (one under the pipeline's `threadpool_limits(limits=1)`): results equal those of `n_jobs=1`.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import joblib
import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR
from threadpoolctl import threadpool_info
from tqdm.auto import tqdm

from ..errors import UserError
from ..workers import cpu_count

MODELS: tuple[str, ...] = ("ridge", "svr", "mlp")
PARALLEL_MODELS: tuple[str, ...] = ("mlp",)  # models whose inner search uses `default_n_jobs()` processes
_PREFIX = "model__regressor__"  # where the regressor's own parameters live in the pipeline

Split = tuple[np.ndarray, np.ndarray]


@dataclass
class CVResult:
    """Out-of-fold predictions of one method for one target.

    Attributes:
        model: "ridge", "svr", "mlp" or "mean" (training-fold mean baseline).
        y_true: (N,) targets as given, NaN where missing.
        y_pred: (N,) out-of-fold predictions, NaN where the target is missing.
        groups: (N,) group (subject) id of every sample.
        fold: (N,) outer fold of every sample (assigned per group, missing targets included).
        used: (N,) True where the target is present, i.e. the sample was trained on / predicted.
        best_params: hyperparameters chosen by the inner search, one dict per outer fold.
        inner_splits: per outer fold, the inner (train, validation) index pairs, as indices
            into the full (N,) arrays.
    """

    model: str
    y_true: np.ndarray
    y_pred: np.ndarray
    groups: np.ndarray
    fold: np.ndarray
    used: np.ndarray
    best_params: list[dict[str, Any]]
    inner_splits: list[list[Split]]

    @property
    def n(self) -> int:
        """Number of samples with a target (and so a prediction)."""
        return int(self.used.sum())

    def observed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(y_true, y_pred, groups) restricted to the samples that have a target."""
        return self.y_true[self.used], self.y_pred[self.used], self.groups[self.used]


def as_groups(groups: Any, n: int | None = None) -> np.ndarray:
    """Validate group (subject) ids: 1-D, no missing values, and `n` long when `n` is given.

    Args:
        groups: one id per sample (ints or strings).
        n: the expected number of samples.
    """
    if hasattr(groups, "detach"):  # torch tensor
        groups = groups.detach().cpu().numpy()
    g = np.asarray(groups)
    if g.ndim != 1:
        raise UserError(f"groups must be one subject id per sample (1-D), got shape {g.shape}")
    if n is not None and g.size != n:
        raise UserError(f"groups has {g.size} entries but there are {n} samples: "
                        "give one subject id per sample")
    if g.dtype.kind == "f" and np.isnan(g).any():
        first = int(np.flatnonzero(np.isnan(g))[0])
        raise UserError(f"groups[{first}] is NaN: every sample needs a subject id")
    if g.dtype.kind == "O" and any(v is None for v in g):
        raise UserError("groups contains None: every sample needs a subject id")
    return g


def outer_splits(groups: Any, n_splits: int, seed: int = 0) -> list[Split]:
    """Split samples into `n_splits` folds by group: the groups are shuffled with `seed` and
    dealt into folds of (nearly) equal group counts.

    Args:
        groups: (N,) group (subject) id of every sample.
        n_splits: number of folds, at least 2 and at most the number of distinct groups.
        seed: shuffling seed; the same seed gives the same folds.
    Returns:
        one (train_indices, test_indices) pair per fold; every index is tested exactly once.
    """
    g = as_groups(groups)
    if int(n_splits) < 2:
        raise UserError(f"the number of folds must be at least 2, got {n_splits}")
    uniq, inverse = np.unique(g, return_inverse=True)
    if uniq.size < n_splits:
        raise UserError(f"only {uniq.size} distinct subjects (groups) for {n_splits} folds: "
                        "use fewer folds or more subjects")
    order = np.random.default_rng(seed).permutation(uniq.size)
    fold_of_group = np.empty(uniq.size, dtype=np.int64)
    for k, chunk in enumerate(np.array_split(order, n_splits)):
        fold_of_group[chunk] = k
    fold = fold_of_group[inverse.reshape(-1)]
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_splits)]


def default_param_grid(model: str) -> dict[str, list[Any]] | list[dict[str, list[Any]]]:
    """The hyperparameter grid searched for `model` (names of the bare sklearn regressor).

    Targets are standardised before fitting, so SVR's epsilon is in target standard deviations.

    Args:
        model: "ridge", "svr" or "mlp".
    """
    if model == "ridge":
        return {"alpha": np.logspace(-3, 3, 7).tolist()}
    if model == "svr":
        return [{"kernel": ["linear"], "C": [0.01, 0.1, 1.0], "epsilon": [0.1, 0.3]},
                {"kernel": ["rbf"], "C": [0.1, 1.0, 10.0], "epsilon": [0.1, 0.3]}]
    if model == "mlp":
        return {"alpha": [0.01, 0.1, 1.0, 10.0]}
    raise UserError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")


def build_estimator(model: str, seed: int = 0) -> Pipeline:
    """Pipeline: feature standardisation -> regressor fitted on standardised targets.

    Args:
        model: "ridge", "svr" or "mlp" (MLP: one hidden layer of 64 units, L-BFGS, 200 iterations).
        seed: random state of the MLP.
    """
    if model == "ridge":
        reg: Any = Ridge()
    elif model == "svr":
        reg = SVR()
    elif model == "mlp":
        reg = MLPRegressor(hidden_layer_sizes=(64,), solver="lbfgs", max_iter=200,
                           early_stopping=False, random_state=seed)
    else:
        raise UserError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    target = TransformedTargetRegressor(regressor=reg, transformer=StandardScaler())
    return Pipeline([("scale", StandardScaler()), ("model", target)])


def _prefixed_grid(grid: Any, estimator: Pipeline, model: str) -> list[dict[str, list[Any]]]:
    """Grid with regressor parameter names mapped into the pipeline; unknown names are user errors."""
    grids = [grid] if isinstance(grid, dict) else list(grid)
    valid = estimator.get_params()
    out = []
    for sub in grids:
        fixed = {}
        for key, values in dict(sub).items():
            name = key if "__" in key else _PREFIX + key
            if name not in valid:
                own = sorted(k[len(_PREFIX):] for k in valid if k.startswith(_PREFIX))
                raise UserError(f"{model}: unknown hyperparameter {key!r} in param_grid; "
                                f"valid names: {', '.join(k for k in own if '__' not in k)}")
            if not isinstance(values, (list, tuple)):
                values = np.atleast_1d(values).tolist()
            if not values:
                raise UserError(f"{model}: param_grid entry {key!r} has no values")
            fixed[name] = values
        out.append(fixed)
    return out


def as_features(X: Any) -> np.ndarray:
    """Validate features: a non-empty, finite (N, D) matrix, returned as float64.

    Args:
        X: (N, D) array-like or torch tensor.
    """
    if hasattr(X, "detach"):  # torch tensor
        X = X.detach().cpu().numpy()
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise UserError(f"features must be a non-empty (N, D) matrix, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise UserError(f"features row {bad[0]} has a NaN/inf value ({bad.size} bad rows): "
                        "re-extract those embeddings or drop the rows")
    return arr


def as_target(y: Any, n: int, name: str = "y") -> np.ndarray:
    """(N,) float64 targets; NaN marks a missing score, inf is an error.

    Args:
        y: one score per sample.
        n: the expected number of samples.
        name: how to call the target in error messages (e.g. the item name).
    """
    if hasattr(y, "detach"):  # torch tensor
        y = y.detach().cpu().numpy()
    try:
        arr = np.asarray(y, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise UserError(f"scores of {name!r} must be numbers (NaN for missing): {err}") from None
    if arr.size != n:
        raise UserError(f"scores of {name!r} have {arr.size} values but there are {n} samples")
    if np.isinf(arr).any():
        raise UserError(f"scores of {name!r} contain inf at index {int(np.flatnonzero(np.isinf(arr))[0])}")
    return arr


def _fold_vector(splits: list[Split], n: int) -> np.ndarray:
    fold = np.full(n, -1, dtype=np.int64)
    for k, (_, test) in enumerate(splits):
        fold[test] = k
    return fold


def default_n_jobs() -> int:
    """Worker processes of the inner grid search: the CPUs this process may run on."""
    return cpu_count()


@contextlib.contextmanager
def worker_processes(jobs: int) -> Iterator[None]:
    """Context in which joblib's `jobs` worker processes use the caller's BLAS thread count (so that their
    fits equal the caller's); nothing changes for `jobs == 1`.

    Args:
        jobs: worker processes of the joblib calls made inside the context.
    """
    if jobs == 1:
        yield
        return
    blas = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]  # inside threadpool_limits too
    with warnings.catch_warnings(), joblib.parallel_config(backend="loky",
                                                           inner_max_num_threads=max(1, min(blas)) if blas else 1):
        # loky replaces its idle workers of an earlier setting and says so: nothing is lost
        warnings.filterwarnings("ignore", message="A worker stopped while some jobs", category=UserWarning)
        yield


def _inner_search(X: np.ndarray, y: np.ndarray, g: np.ndarray, train: np.ndarray, model: str,
                  grid: list[dict[str, list[Any]]], inner_folds: int,
                  seed: int, jobs: int = 1) -> tuple[GridSearchCV, list[Split]]:
    """Grid search on the outer training part only, with group-disjoint inner folds, in `jobs` processes."""
    try:
        rel = outer_splits(g[train], inner_folds, seed)  # indices relative to `train`
    except UserError as err:
        raise UserError(f"inner cross-validation: {err}") from None
    search = GridSearchCV(build_estimator(model, seed), grid, scoring="neg_mean_squared_error",
                          cv=rel, refit=True, error_score="raise", n_jobs=None if jobs == 1 else jobs)
    with warnings.catch_warnings(), worker_processes(jobs):
        warnings.simplefilter("ignore", ConvergenceWarning)  # MLP's capped L-BFGS iterations
        search.fit(X[train], y[train])
    return search, [(train[a], train[b]) for a, b in rel]


def grouped_nested_cv(X: Any, y: Any, groups: Any, model: str = "ridge", outer_folds: int = 5,
                      inner_folds: int = 3, seed: int = 0, param_grid: Any = None,
                      progress: bool = False, n_jobs: int | None = None) -> CVResult:
    """Out-of-fold predictions with subject-grouped outer folds and a grouped inner grid search.

    Samples whose target is NaN are left out of training and prediction; folds are still assigned
    over all samples so that every target of the same data set uses the same subject folds.

    Args:
        X: (N, D) features, one row per subject or per video.
        y: (N,) target scores, NaN where missing.
        groups: (N,) subject id of every row (per-subject features: one distinct id per row).
        model: "ridge", "svr" or "mlp".
        outer_folds: number of outer (test) folds.
        inner_folds: number of inner folds for the hyperparameter search.
        seed: seed of the fold shuffles and of the MLP.
        param_grid: grid (dict or list of dicts) over the regressor's own parameter names,
            e.g. {"alpha": [0.1, 1.0]}; None uses `default_param_grid(model)`.
        progress: show a progress bar over the outer folds.
        n_jobs: processes of the inner grid search (None: `default_n_jobs()`, the CPU count, for the
            `PARALLEL_MODELS`, else 1; 1: none); the predictions do not depend on it.
    """
    jobs = (default_n_jobs() if model in PARALLEL_MODELS else 1) if n_jobs is None else int(n_jobs)
    if jobs < 1:
        raise UserError(f"n_jobs must be at least 1 (or None for the CPU count), got {n_jobs}")
    feats = as_features(X)
    n = feats.shape[0]
    target, g = as_target(y, n), as_groups(groups, n)
    grid = _prefixed_grid(default_param_grid(model) if param_grid is None else param_grid,
                          build_estimator(model, seed), model)
    used = ~np.isnan(target)
    if used.sum() < 2:
        raise UserError(f"only {int(used.sum())} samples have a score: cannot cross-validate")
    splits = outer_splits(g, outer_folds, seed)
    y_pred = np.full(n, np.nan)
    best: list[dict[str, Any]] = []
    inner: list[list[Split]] = []
    for train, test in tqdm(splits, desc=f"{model} folds", disable=not progress):
        train, test = train[used[train]], test[used[test]]
        if test.size == 0:  # every subject of this fold lacks the score
            best.append({})
            inner.append([])
            continue
        search, splits_k = _inner_search(feats, target, g, train, model, grid, inner_folds, seed, jobs)
        y_pred[test] = search.predict(feats[test])
        best.append({k.replace(_PREFIX, ""): v for k, v in search.best_params_.items()})
        inner.append(splits_k)
    return CVResult(model, target, y_pred, g, _fold_vector(splits, n), used, best, inner)


def mean_baseline_cv(y: Any, groups: Any, outer_folds: int = 5, seed: int = 0) -> CVResult:
    """Baseline predicting the mean training-fold target, on the same folds as `grouped_nested_cv`.

    Args:
        y: (N,) target scores, NaN where missing.
        groups: (N,) subject id of every sample.
        outer_folds: number of outer folds.
        seed: fold shuffling seed (use the one given to `grouped_nested_cv`).
    """
    g = as_groups(groups)
    target = as_target(y, g.size)
    used = ~np.isnan(target)
    if used.sum() < 2:
        raise UserError(f"only {int(used.sum())} samples have a score: cannot cross-validate")
    splits = outer_splits(g, outer_folds, seed)
    y_pred = np.full(g.size, np.nan)
    for k, (train, test) in enumerate(splits):
        train, test = train[used[train]], test[used[test]]
        if test.size and not train.size:
            raise UserError(f"outer fold {k}: no training subject has a score; use fewer folds")
        if test.size:
            y_pred[test] = target[train].mean()
    return CVResult("mean", target, y_pred, g, _fold_vector(splits, g.size), used,
                    [{} for _ in splits], [[] for _ in splits])
