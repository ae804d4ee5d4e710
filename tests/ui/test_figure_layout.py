"""Figure layout that a reader sees: notebook 05's metric panels keep their legend off the bars."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from emoclip_lib.pipeline import plot_metrics
from emoclip_lib.pipeline.regression import BASELINE

matplotlib.use("Agg")
ITEMS = ("blunted_affect", "reduced_speech_movement", "poor_eye_contact", "anxiety_signs", "average")


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    methods = {"emoclip": ("ridge", "svr", "mlp"), "clip_frame_avg": ("ridge", "mlp"), BASELINE: ("mean",)}
    return pd.DataFrame([{"encoder": enc, "method": m, "item": item, "pcc": rng.uniform(-0.4, 0.9),
                          "ccc": rng.uniform(-0.2, 0.7)}
                         for enc, names in methods.items() for m in names for item in ITEMS])


def test_plot_metrics_legend_lies_outside_every_panel() -> None:
    fig = plot_metrics(_table())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert all(ax.get_legend() is None for ax in fig.axes)  # no legend inside a panel
    assert len(fig.legends) == 1
    legend = fig.legends[0]
    box = legend.get_window_extent(renderer)
    assert [t.get_text() for t in legend.get_texts()] == ["ridge", "svr", "mlp", "mean"]  # every method once
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), f"the legend covers the panel {ax.get_title()}"
    assert box.x1 <= fig.bbox.x1 + 1  # and it stays on the figure


def test_plot_metrics_colours_a_method_alike_in_every_panel() -> None:
    fig = plot_metrics(_table())
    legend = fig.legends[0]
    colour = {t.get_text(): tuple(h.get_facecolor()) for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert len(set(colour.values())) == 4
    for ax in fig.axes:
        drawn = {tuple(p.get_facecolor()) for c in ax.containers for p in c}
        methods = ("ridge", "svr", "mlp", "mean") if ax.get_title().startswith("emoclip") else ("ridge", "mlp", "mean")
        assert drawn == {colour[m] for m in methods}, ax.get_title()  # the one legend reads for every panel
