"""The inner grid search of the nested cross-validation in worker processes: the same predictions and
hyperparameters as one process (as the pipeline runs it, under `threadpool_limits(limits=1)`, and without)."""
from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from emoclip_lib.downstream import nested_cv
from emoclip_lib.downstream.nested_cv import grouped_nested_cv
from emoclip_lib.errors import UserError

GRIDS = {"ridge": None, "svr": None, "mlp": {"alpha": [0.1, 10.0]}}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(36, 24))  # (N, D)
    y = X[:, :3].sum(axis=1) + 0.5 * rng.normal(size=36)
    y[[4, 17]] = np.nan  # missing scores are left out, as in the interviews
    return X, y, np.repeat(np.arange(18), 2)  # two videos per subject


def _same(a: nested_cv.CVResult, b: nested_cv.CVResult) -> bool:
    return (np.array_equal(a.y_pred, b.y_pred, equal_nan=True) and a.best_params == b.best_params
            and np.array_equal(a.fold, b.fold))


@pytest.mark.parametrize("model", ["ridge", "svr", "mlp"])
def test_two_processes_predict_what_one_does(data, model, capfd):
    X, y, g = data
    with threadpool_limits(limits=1):  # as pipeline.regression runs it
        one = grouped_nested_cv(X, y, g, model=model, param_grid=GRIDS[model], n_jobs=1)
        two = grouped_nested_cv(X, y, g, model=model, param_grid=GRIDS[model], n_jobs=2)
    assert _same(one, two) and np.isfinite(one.y_pred[one.used]).all()
    if model == "mlp":  # MLP's capped L-BFGS iterations warn in the workers too: still silenced
        assert "ConvergenceWarning" not in capfd.readouterr().err


def test_default_uses_the_cpu_count_for_the_mlp(data, monkeypatch):
    X, y, g = data
    assert nested_cv.default_n_jobs() >= 1
    used: list[int] = []
    real = nested_cv.worker_processes
    monkeypatch.setattr(nested_cv, "default_n_jobs", lambda: 2)
    monkeypatch.setattr(nested_cv, "worker_processes", lambda jobs: used.append(jobs) or real(jobs))
    grid = {"alpha": [1.0]}
    default = grouped_nested_cv(X, y, g, model="mlp", param_grid=grid)  # the caller's BLAS threads
    assert set(used) == {2} and _same(default, grouped_nested_cv(X, y, g, model="mlp", param_grid=grid, n_jobs=1))
    used.clear()
    grouped_nested_cv(X, y, g, model="ridge")
    assert set(used) == {1}  # ~1 ms fits: in this process
    with pytest.raises(UserError, match="n_jobs must be at least 1"):
        grouped_nested_cv(X, y, g, model="ridge", n_jobs=0)


def _tables() -> dict:
    import pandas as pd

    rng = np.random.default_rng(1)
    tables = {}
    for name in ("emoclip", "clip_frame_avg"):
        X = rng.normal(size=(20, 6))  # (subjects, D)
        table = pd.DataFrame({"subject": [f"s{i:02d}" for i in range(20)], "features": list(X)})
        table["a"] = X[:, 0] + 0.3 * rng.normal(size=20)
        table["b"] = X[:, 1] - X[:, 2] + 0.3 * rng.normal(size=20)
        table["flat"] = 2.0  # every score equal: skipped for every encoder
        table.attrs["items"] = ["a", "b", "flat"]
        tables[name] = table
    return tables


def test_the_pipeline_fits_encoders_and_items_in_processes_as_in_one():
    from emoclip_lib.pipeline.regression import _regress_encoders

    opts = {"seed": 0, "n_boot": 20, "outer_folds": 4, "inner_folds": 2}
    with threadpool_limits(limits=1):
        one = _regress_encoders(_tables(), ["ridge", "mlp"], "video", opts, jobs=1)
        two = _regress_encoders(_tables(), ["ridge", "mlp"], "video", opts, jobs=2)
    (t1, p1, s1), (t2, p2, s2) = one, two
    assert t1.equals(t2) and p1.equals(p2) and s1 == s2
    assert set(s1) == {"flat"} and set(t1["item"]) == {"a", "b", "average"}
    assert list(dict.fromkeys(t1["encoder"])) == ["none", "emoclip", "clip_frame_avg"]  # baseline once
