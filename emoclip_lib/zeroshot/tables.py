"""The paper's results table: the numbers it reports and the method x dataset layout to compare with."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import UserError

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
