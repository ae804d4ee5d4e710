"""Tests of the grouped nested-CV symptom-severity regression (emoclip_lib.downstream.regression)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from emoclip_lib import metrics

from emoclip_lib.downstream import regression

from emoclip_lib.downstream import nested_cv as regression_cv
from emoclip_lib.errors import UserError

RIDGE_GRID = {"alpha": [0.01, 1.0, 100.0]}


def planted(n_subjects: int = 60, n_videos: int = 3, dim: int = 32, seed: int = 0):
    """Per-video features with a linear target: y = w.x + small noise, groups = subject ids."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_subjects * n_videos, dim))
    y = X @ rng.normal(size=dim) + 0.1 * rng.normal(size=len(X))
    groups = np.repeat(np.arange(n_subjects), n_videos)
    return X, y, groups


def test_outer_splits_are_group_disjoint_cover_all_and_are_seeded():
    groups = np.repeat([f"s{i}" for i in range(11)], 2)
    splits = regression.outer_splits(groups, n_splits=4, seed=3)
    tested = np.concatenate([test for _, test in splits])
    np.testing.assert_array_equal(np.sort(tested), np.arange(len(groups)))  # each sample tested once
    for train, test in splits:
        assert set(groups[train]).isdisjoint(groups[test])
        assert len(train) + len(test) == len(groups)
        assert len(set(groups[test])) in (2, 3)  # 11 subjects dealt into 4 folds
    again = regression.outer_splits(groups, n_splits=4, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))
    other = regression.outer_splits(groups, n_splits=4, seed=4)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(splits, other))


def test_outer_splits_rejects_too_few_subjects():
    with pytest.raises(UserError, match="only 3 distinct subjects"):
        regression.outer_splits([0, 0, 1, 2], n_splits=5, seed=0)
    with pytest.raises(UserError, match="at least 2"):
        regression.outer_splits([0, 1, 2], n_splits=1, seed=0)


def test_nested_cv_never_leaks_a_subject():
    X, y, groups = planted(n_subjects=20, n_videos=2, dim=4)
    res = regression.grouped_nested_cv(X, y, groups, model="ridge", outer_folds=4, inner_folds=3,
                                       seed=1, param_grid=RIDGE_GRID)
    for k, inner in enumerate(res.inner_splits):
        test = np.flatnonzero(res.fold == k)
        train = np.flatnonzero(res.fold != k)
        assert set(groups[train]).isdisjoint(groups[test])
        assert len(inner) == 3
        for in_train, in_val in inner:
            assert set(in_train) | set(in_val) == set(train)  # inner search sees the outer train only
            assert set(groups[in_train]).isdisjoint(groups[in_val])


def test_inner_search_only_sees_training_rows(monkeypatch):
    """Spy on the grid search: every row it is fitted on belongs to the outer training part."""
    seen: list[tuple[np.ndarray, list]] = []

    class SpySearch(regression_cv.GridSearchCV):
        def fit(self, X, y=None, **kwargs):
            seen.append((np.asarray(X).copy(), list(self.cv)))
            return super().fit(X, y, **kwargs)

    monkeypatch.setattr(regression_cv, "GridSearchCV", SpySearch)
    X, y, groups = planted(n_subjects=15, n_videos=2, dim=4)
    res = regression.grouped_nested_cv(X, y, groups, model="ridge", outer_folds=3, inner_folds=2,
                                       seed=0, param_grid=RIDGE_GRID)
    row_of = {x0: i for i, x0 in enumerate(X[:, 0])}  # the first feature identifies a row
    assert len(seen) == 3
    for k, (X_fit, cv) in enumerate(seen):
        rows = np.array([row_of[v] for v in X_fit[:, 0]])
        assert set(rows) == set(np.flatnonzero(res.fold != k))
        for in_train, in_val in cv:
            assert set(groups[rows[in_train]]).isdisjoint(groups[rows[in_val]])


def test_planted_signal_recovered_by_ridge_not_by_mean():
    X, y, groups = planted()
    ridge = regression.grouped_nested_cv(X, y, groups, model="ridge", seed=0)
    mean = regression.mean_baseline_cv(y, groups, seed=0)
    np.testing.assert_array_equal(ridge.fold, mean.fold)  # same subject folds
    assert ridge.n == mean.n == len(y)
    r_ridge = regression.evaluate_predictions(y, ridge.y_pred)
    r_mean = regression.evaluate_predictions(y, mean.y_pred)
    assert r_ridge["pcc"] > 0.9 and r_ridge["ccc"] > 0.9
    assert r_mean["pcc"] < 0.1
    assert r_ridge["rmse"] < 0.5 * r_mean["rmse"]
    assert len(ridge.best_params) == 5 and all("alpha" in p for p in ridge.best_params)
    for k in range(5):  # the baseline predicts the training-fold mean
        assert np.allclose(mean.y_pred[mean.fold == k], y[mean.fold != k].mean())


@pytest.mark.parametrize("model,grid", [("svr", {"kernel": ["linear"], "C": [0.1], "epsilon": [0.1]}),
                                        ("mlp", {"alpha": [1.0]})])
def test_other_models_run_and_are_deterministic(model, grid):
    X, y, groups = planted(n_subjects=20, n_videos=1, dim=4)
    runs = [regression.grouped_nested_cv(X, y, groups, model=model, outer_folds=3, inner_folds=2,
                                         seed=5, param_grid=grid) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].y_pred, runs[1].y_pred)
    assert np.isfinite(runs[0].y_pred).all()
    assert metrics.pcc(y, runs[0].y_pred) > 0.7
    assert runs[0].best_params[0] == {k: v[0] for k, v in grid.items()}


def test_evaluate_predictions_hand_values():
    out = regression.evaluate_predictions([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert out["pcc"] == pytest.approx(3 / math.sqrt(2 * 14 / 3))
    assert out["ccc"] == pytest.approx(6 / 7)
    assert out["mae"] == pytest.approx(1 / 3)
    assert out["rmse"] == pytest.approx(math.sqrt(1 / 3))


def test_bootstrap_ci_resamples_whole_subjects_and_is_seeded():
    X, y, groups = planted()
    pred = y + np.random.default_rng(1).normal(scale=2.0, size=len(y))
    point = metrics.pcc(y, pred)
    lo, hi = regression.bootstrap_ci(y, pred, groups, metrics.pcc, n_boot=300, seed=7)
    assert lo < point < hi and -1 <= lo and hi <= 1
    assert (lo, hi) == regression.bootstrap_ci(y, pred, groups, metrics.pcc, n_boot=300, seed=7)
    assert (lo, hi) != regression.bootstrap_ci(y, pred, groups, metrics.pcc, n_boot=300, seed=8)

    def spy(t, p):  # t holds subject ids: each drawn subject must bring all 3 of its videos
        counts = np.unique(t, return_counts=True)[1]
        assert len(t) == len(groups) and np.all(counts % 3 == 0)
        return float(len(np.unique(t)))

    lo_s, hi_s = regression.bootstrap_ci(groups.astype(float), pred, groups, spy, n_boot=50, seed=0)
    assert 20 < lo_s <= hi_s < 60  # about 63% of the 60 subjects are drawn at least once


def test_bootstrap_ci_bad_input():
    with pytest.raises(UserError, match="NaN"):
        regression.bootstrap_ci([1.0, np.nan], [1.0, 2.0], [0, 1], metrics.pcc)
    with pytest.raises(UserError, match="at least 2 subjects"):
        regression.bootstrap_ci([1.0, 2.0], [1.0, 2.0], [0, 0], metrics.pcc)
    with pytest.raises(UserError, match="n_boot"):
        regression.bootstrap_ci([1.0, 2.0], [1.0, 2.0], [0, 1], metrics.pcc, n_boot=0)


def test_aggregate_by_group_means():
    t, p, g = regression.aggregate_by_group([1.0, 3.0, 5.0], [2.0, 4.0, 9.0], ["b", "b", "a"])
    np.testing.assert_array_equal(g, ["a", "b"])
    np.testing.assert_allclose(t, [5.0, 2.0])
    np.testing.assert_allclose(p, [9.0, 3.0])


def test_regress_items_missing_scores_per_item_and_table():
    X, y, groups = planted(n_subjects=30, n_videos=2, dim=8)
    y_b = -y.copy()
    missing = np.array([0, 1, 7, 20])  # subject 0 entirely, plus single videos
    y_b[missing] = np.nan
    kwargs = dict(models=("ridge",), seed=0, n_boot=50, param_grids={"ridge": RIDGE_GRID}, progress=False)
    out = regression.regress_items(X, {"a": y, "b": y_b}, groups, **kwargs)
    table = out.table
    assert list(table.columns) == list(regression.TABLE_COLUMNS)
    assert len(table) == 6  # 2 items x (mean, ridge) + 2 average rows
    row = table.set_index(["item", "method"])
    assert row.loc[("a", "ridge"), "n"] == 60 and row.loc[("b", "ridge"), "n"] == 56
    assert row.loc[("a", "mean"), "n"] == 60 and row.loc[("b", "mean"), "n"] == 56
    pred_a, pred_b = out.predictions[("a", "ridge")], out.predictions[("b", "ridge")]
    assert np.isfinite(pred_a.y_pred).all()
    assert np.isnan(pred_b.y_pred[missing]).all() and not pred_b.used[missing].any()
    np.testing.assert_array_equal(pred_a.fold, pred_b.fold)  # same subject folds for every item
    alone = regression.grouped_nested_cv(X, y, groups, model="ridge", seed=0, param_grid=RIDGE_GRID)
    np.testing.assert_array_equal(alone.y_pred, pred_a.y_pred)  # item a unaffected by item b's gaps
    assert row.loc[("a", "ridge"), "pcc"] == pytest.approx(metrics.pcc(y, pred_a.y_pred))
    for item in ("a", "b"):
        r = row.loc[(item, "ridge")]
        assert r["pcc_lo"] <= r["pcc"] <= r["pcc_hi"] and r["ccc_lo"] <= r["ccc"] <= r["ccc_hi"]
        assert r["pcc"] > 0.9 > row.loc[(item, "mean"), "pcc"]
    avg = row.loc[("average", "ridge")]
    assert avg["pcc"] == pytest.approx((row.loc[("a", "ridge"), "pcc"] + row.loc[("b", "ridge"), "pcc"]) / 2)
    assert pd.isna(avg["n"]) and pd.isna(avg["pcc_lo"]) and pd.isna(avg["ccc_hi"])
    frame = out.predictions_frame()
    assert len(frame) == 2 * (60 + 56)
    again = regression.regress_items(X, {"a": y, "b": y_b}, groups, **kwargs)
    pd.testing.assert_frame_equal(table, again.table)  # deterministic for a seed


def test_regress_items_per_subject_features_and_aggregation():
    X, y, groups = planted(n_subjects=24, n_videos=1, dim=4)
    kwargs = dict(models=("ridge",), n_boot=20, param_grids={"ridge": RIDGE_GRID}, progress=False)
    per_subject = regression.regress_items(X, {"s": y}, [f"p{i}" for i in range(24)], **kwargs)
    assert per_subject.table.set_index(["item", "method"]).loc[("s", "ridge"), "n"] == 24
    Xv, yv, gv = planted(n_subjects=12, n_videos=2, dim=4)
    agg = regression.regress_items(Xv, {"s": yv}, gv, aggregate=True, **kwargs)
    assert agg.table.set_index(["item", "method"]).loc[("s", "ridge"), "n"] == 12


def test_user_errors():
    X, y, groups = planted(n_subjects=10, n_videos=1, dim=3)
    with pytest.raises(UserError, match="unknown model 'lasso'"):
        regression.grouped_nested_cv(X, y, groups, model="lasso")
    with pytest.raises(UserError, match="unknown hyperparameter 'alhpa'.*alpha"):
        regression.grouped_nested_cv(X, y, groups, model="ridge", param_grid={"alhpa": [1.0]})
    with pytest.raises(UserError, match="inner cross-validation: only"):
        regression.grouped_nested_cv(X, y, groups, outer_folds=5, inner_folds=9)
    bad = X.copy()
    bad[4, 1] = np.nan
    with pytest.raises(UserError, match="features row 4"):
        regression.grouped_nested_cv(bad, y, groups)
    with pytest.raises(UserError, match="groups has 9 entries"):
        regression.grouped_nested_cv(X, y, groups[:9])
    with pytest.raises(UserError, match="cannot regress item 'x': mean: only 0 samples"):
        regression.regress_items(X, {"x": np.full(10, np.nan)}, groups, models=(), progress=False)
    with pytest.raises(UserError, match="reserved"):
        regression.regress_items(X, {"average": y}, groups, progress=False)
    with pytest.raises(UserError, match="have 9 values"):
        regression.regress_items(X, {"x": y[:9]}, groups, progress=False)


def test_an_item_whose_scores_are_all_equal_is_skipped_with_a_note():
    X, y, groups = planted(n_subjects=20, n_videos=1, dim=4)
    flat = np.full(y.size, 3.0)
    flat[[2, 5]] = np.nan  # missing scores do not make it vary
    kwargs = dict(models=("ridge",), n_boot=0, param_grids={"ridge": RIDGE_GRID}, progress=False)
    out = regression.regress_items(X, {"a": y, "flat": flat}, groups, **kwargs)
    assert set(out.skipped) == {"flat"} and "every score is 3" in out.skipped["flat"]
    assert set(out.table["item"]) == {"a", "average"}
    assert not any(item == "flat" for item, _ in out.predictions)
    alone = regression.regress_items(X, {"a": y}, groups, **kwargs).table
    rows = out.table.set_index(["item", "method"])
    for method in ("mean", "ridge"):  # every metric averaged over the same items: here item a alone
        for metric in ("pcc", "ccc", "mae", "rmse"):
            assert rows.loc[("average", method), metric] == pytest.approx(rows.loc[("a", method), metric])
    pd.testing.assert_frame_equal(out.table, alone)


def test_items_that_cannot_be_scored_are_skipped_and_all_skipped_is_an_error():
    X, y, groups = planted(n_subjects=12, n_videos=1, dim=3)
    one_score = np.full(y.size, np.nan)
    one_score[0] = 1.0
    kwargs = dict(models=("ridge",), n_boot=0, param_grids={"ridge": RIDGE_GRID}, progress=False)
    out = regression.regress_items(X, {"a": y, "sparse": one_score}, groups, **kwargs)
    assert "mean: only 1 samples have a score" in out.skipped["sparse"]
    assert set(out.table["item"]) == {"a", "average"}
    with pytest.raises(UserError, match=r"no item can be regressed: item 'c': every score is 1.*; item 'd': mean"):
        regression.regress_items(X, {"c": np.ones(y.size), "d": one_score}, groups, **kwargs)
