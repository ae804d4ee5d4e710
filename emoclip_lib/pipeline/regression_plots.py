"""Notebook 05's figures: per-item metrics with their bootstrap intervals, predicted against rated severity."""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..downstream import AVERAGE_ITEM
from .regression import BASELINE


def plot_metrics(table: pd.DataFrame, metric_names: Sequence[str] = ("pcc", "ccc")) -> plt.Figure:
    """Bars of each metric per item and method, one column of panels per encoder (mean baseline in each).

    Args:
        table: from `run_regression(...)["table"]`.
        metric_names: metrics to draw, one row of panels each.
    """
    encoders = [e for e in dict.fromkeys(table["encoder"]) if e != BASELINE] or [BASELINE]
    fig, axes = plt.subplots(len(metric_names), len(encoders), squeeze=False, sharey="row", layout="constrained",
                             figsize=(4.8 * len(encoders) + 1.6, 3.0 * len(metric_names)))
    methods = list(dict.fromkeys(table["method"]))
    palette = dict(zip(methods, sns.color_palette(n_colors=len(methods))))  # one colour per method, every panel
    handles: dict[str, Any] = {}
    for (i, name), (j, enc) in itertools.product(enumerate(metric_names), enumerate(encoders)):
        ax = axes[i, j]
        sns.barplot(data=table[table["encoder"].isin([enc, BASELINE])], x="item", y=name, hue="method", ax=ax,
                    errorbar=None, palette=palette)
        handles.update(zip(*ax.get_legend_handles_labels()[::-1]))  # label -> handle, every method once
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set(title=f"{enc}: {name.upper()}", xlabel="")
        ax.tick_params(axis="x", rotation=30)
    fig.legend(list(handles.values()), list(handles), title="method", loc="outside right upper")  # beside the panels
    return fig


def plot_predictions(predictions: pd.DataFrame, table: pd.DataFrame) -> plt.Figure:
    """Out-of-fold predicted vs rated scores per item, one row per encoder with its best method (by PCC).

    Args:
        predictions: from `run_regression(...)["predictions"]`.
        table: from `run_regression(...)["table"]`.
    """
    avg = table[(table["item"] == AVERAGE_ITEM) & (table["encoder"] != BASELINE)].fillna({"pcc": -np.inf})
    best = avg.loc[avg.groupby("encoder", sort=False)["pcc"].idxmax()]
    items = [i for i in dict.fromkeys(table["item"]) if i != AVERAGE_ITEM]
    fig, axes = plt.subplots(len(best), len(items), squeeze=False, figsize=(2.8 * len(items), 2.8 * len(best)))
    for (r, (enc, method)), (c, item) in itertools.product(enumerate(zip(best["encoder"], best["method"])),
                                                           enumerate(items)):
        sel = lambda f: (f["encoder"] == enc) & (f["method"] == method) & (f["item"] == item)  # noqa: E731
        part, row = predictions[sel(predictions)], table[sel(table)]
        sns.scatterplot(data=part, x="y_true", y="y_pred", ax=axes[r, c], s=18)
        lo, hi = np.nanmin(part[["y_true", "y_pred"]].to_numpy()), np.nanmax(part[["y_true", "y_pred"]].to_numpy())
        axes[r, c].plot([lo, hi], [lo, hi], "k--", lw=0.8)
        axes[r, c].set(xlabel="rated", ylabel="predicted",
                       title=f"{item}\n{enc}/{method}: r={float(row['pcc'].iloc[0]):.2f}")
        axes[r, c].title.set_fontsize(9)
    fig.tight_layout()
    return fig
