"""Tests of emoclip_lib.metrics against hand-computed values, scikit-learn and scipy."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, mean_absolute_error,
                             mean_squared_error)

from emoclip_lib import metrics
from emoclip_lib.errors import UserError

Y_TRUE = [0, 0, 1, 1, 2]
Y_PRED = [0, 1, 1, 1, 0]


def test_classification_hand_computed():
    assert metrics.war(Y_TRUE, Y_PRED) == pytest.approx(3 / 5)
    # recalls: class 0 -> 1/2, class 1 -> 2/2, class 2 -> 0/1
    assert metrics.uar(Y_TRUE, Y_PRED) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    recall = metrics.per_class_recall(Y_TRUE, Y_PRED, n_classes=4)
    np.testing.assert_allclose(recall[:3], [0.5, 1.0, 0.0])
    assert math.isnan(recall[3])  # class 3 absent from the ground truth
    cm = metrics.confusion(Y_TRUE, Y_PRED, n_classes=3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert cm.dtype == np.int64


def test_uar_ignores_classes_only_predicted():
    # class 3 is predicted but never true: it must not pull UAR down
    assert metrics.uar([0, 0, 1], [0, 3, 1]) == pytest.approx((0.5 + 1.0) / 2)


def test_accepts_lists_numpy_and_torch():
    t, p = torch.tensor(Y_TRUE), torch.tensor(Y_PRED)
    assert metrics.war(t, p) == metrics.war(np.array(Y_TRUE), Y_PRED)
    assert metrics.uar(t, p) == metrics.uar(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(metrics.confusion(t, p, 3), metrics.confusion(Y_TRUE, Y_PRED, 3))
    x = torch.tensor([1.0, 2.0, 3.0])
    assert metrics.pcc(x, x * 2) == pytest.approx(1.0)
    assert isinstance(metrics.war(t, p), float)
    assert metrics.war(np.array(Y_TRUE)[:, None], np.array(Y_PRED)[:, None]) == pytest.approx(0.6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_classes = 7
    y_true = rng.integers(0, n_classes - 1, size=200)  # class 6 never true
    y_pred = np.where(rng.random(200) < 0.4, y_true, rng.integers(0, n_classes, size=200))
    assert metrics.war(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    with warnings.catch_warnings():  # sklearn may warn about the predicted-only class
        warnings.simplefilter("ignore")
        expected_uar = balanced_accuracy_score(y_true, y_pred)
    assert metrics.uar(y_true, y_pred) == pytest.approx(expected_uar)
    cm = metrics.confusion(y_true, y_pred, n_classes)
    np.testing.assert_array_equal(cm, confusion_matrix(y_true, y_pred, labels=list(range(n_classes))))
    recall = metrics.per_class_recall(y_true, y_pred, n_classes)
    assert np.nanmean(recall) == pytest.approx(metrics.uar(y_true, y_pred))
    assert np.isnan(recall[6]) and np.isfinite(recall[:6]).all()


def test_regression_hand_computed():
    x, y = [1.0, 2.0, 3.0], [1.0, 2.0, 4.0]
    # dx = (-1, 0, 1), dy = (-4/3, -1/3, 5/3): sum dx*dy = 3, sum dx^2 = 2, sum dy^2 = 14/3
    assert metrics.pcc(x, y) == pytest.approx(3 / math.sqrt(2 * 14 / 3))
    # population: cov = 1, var_x = 2/3, var_y = 14/9, (mean_x - mean_y)^2 = 1/9
    assert metrics.ccc(x, y) == pytest.approx(2 * 1 / (2 / 3 + 14 / 9 + 1 / 9))
    assert metrics.ccc(x, y) == pytest.approx(6 / 7)
    assert metrics.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert metrics.rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))


def test_ccc_penalises_bias_and_scale_but_pcc_does_not():
    x = np.array([0.0, 1.0, 2.0])
    assert metrics.pcc(x, x + 1) == pytest.approx(1.0)
    # var 2/3 each, cov 2/3, squared mean difference 1 -> (4/3) / (4/3 + 1)
    assert metrics.ccc(x, x + 1) == pytest.approx(4 / 7)
    assert metrics.ccc(x, x) == pytest.approx(1.0)
    assert metrics.ccc(x, 2 * x) < 1.0
    assert metrics.pcc(x, -x) == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_matches_sklearn_and_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=50)
    y = 0.7 * x + rng.normal(scale=0.5, size=50) + 0.3
    assert metrics.pcc(x, y) == pytest.approx(pearsonr(x, y)[0])
    assert metrics.mae(x, y) == pytest.approx(mean_absolute_error(x, y))
    assert metrics.rmse(x, y) == pytest.approx(math.sqrt(mean_squared_error(x, y)))
    cov = np.cov(x, y, bias=True)
    expected = 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2)
    assert metrics.ccc(x, y) == pytest.approx(expected)


def test_degenerate_regression_inputs_give_nan_or_zero():
    assert math.isnan(metrics.pcc([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    assert math.isnan(metrics.pcc([0.1, 0.1, 0.1], [1.0, 2.0, 3.0]))
    assert math.isnan(metrics.ccc([2.0, 2.0], [2.0, 2.0]))
    assert metrics.ccc([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) == 0.0


@pytest.mark.parametrize("fn", [metrics.war, metrics.uar, metrics.pcc, metrics.ccc, metrics.mae, metrics.rmse])
def test_empty_and_mismatched_inputs_raise(fn):
    with pytest.raises(UserError, match="must not be empty"):
        fn([], [])
    with pytest.raises(UserError, match="has 3 values but"):
        fn([1, 2, 3], [1, 2])
    with pytest.raises(UserError, match="1-D"):
        fn(np.zeros((2, 3)), np.zeros((2, 3)))


def test_nan_in_regression_input_raises_with_position():
    with pytest.raises(UserError, match=r"y_pred\[1\] is nan"):
        metrics.mae([1.0, 2.0, 3.0], [1.0, float("nan"), 3.0])
    with pytest.raises(UserError, match=r"x\[0\]"):
        metrics.pcc([float("inf"), 1.0], [1.0, 2.0])


def test_bad_class_indices_raise():
    with pytest.raises(UserError, match=r"y_pred\[1\] = 5 is outside 0..2"):
        metrics.confusion([0, 1], [0, 5], n_classes=3)
    with pytest.raises(UserError, match=r"y_true\[0\] = -1"):
        metrics.per_class_recall([-1, 1], [0, 1], n_classes=3)
    with pytest.raises(UserError, match="integer class indices"):
        metrics.confusion([0.5, 1.0], [0, 1], n_classes=3)
    with pytest.raises(UserError, match="n_classes"):
        metrics.confusion([0], [0], n_classes=0)
