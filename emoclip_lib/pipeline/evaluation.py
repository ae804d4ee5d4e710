"""Notebook 04's entry point: every zero-shot protocol of a run, written to `04_results.json`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .run_dir import write_stage
from .settings import RunSettings
from .loco import compound_evaluation, leave_one_class_out
from .zeroshot import METHODS, EvalContext, evaluate_dataset, finding
from ..zeroshot import paper_table


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    """Drop confusion matrices from per-fold records (kept summed in the summary)."""
    records = [{k: v for k, v in r.items() if k != "confusion"} for r in result["records"]]
    return {**result, "records": records}


def results_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Mean UAR/WAR (percent) in the paper's layout: method x dataset.

    Args:
        results: {key: evaluate_dataset output}.
    """
    pairs = {}
    for res in results.values():
        for method in METHODS:
            s = res["summary"][method]
            pairs[(method, res["dataset"])] = (s["uar"]["mean"], s["war"]["mean"])
    return paper_table(pairs)


def spread_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Mean ± std of UAR and WAR over seeds and folds, as text, one row per (dataset, method).

    Args:
        results: {key: evaluate_dataset output}.
    """
    rows = []
    for res in results.values():
        for method in METHODS:
            s = res["summary"][method]
            rows.append({"dataset": res["dataset"], "method": method,
                         "UAR %": f"{100 * s['uar']['mean']:.1f} ± {100 * s['uar']['std']:.1f}",
                         "WAR %": f"{100 * s['war']['mean']:.1f} ± {100 * s['war']['std']:.1f}",
                         "runs x folds": s["folds"]})
    return pd.DataFrame(rows)


def _flat(table: pd.DataFrame) -> list[dict[str, Any]]:
    flat = table.copy()
    flat.columns = [f"{d} {m}" for d, m in flat.columns]
    return flat.reset_index().to_dict(orient="records")


def run_zeroshot(run_dir: str | Path, settings: RunSettings | None = None, progress: bool = False,
                 **params: Any) -> tuple[EvalContext, dict[str, Any]]:
    """Within- and cross-dataset zero-shot scores, compound emotions and leave-one-class-out.

    Args:
        run_dir: run directory after notebook 03.
        settings: the run's settings (`settings.eval`, `device`, `descriptions`; default `RunSettings()`).
        progress: show progress bars.
        params: flat-named parameters over `settings` (`loco`, `loco_epochs`, `descriptions`, `device`).
    """
    settings = (settings or RunSettings()).replace(params, where="run_zeroshot")
    ctx = EvalContext(run_dir, settings.device, settings.descriptions)
    datasets = {"within": evaluate_dataset(ctx, "train", within=True)}
    if ctx.prepared["datasets"]["eval"]["name"] != ctx.prepared["datasets"]["train"]["name"]:
        datasets["cross"] = evaluate_dataset(ctx, "eval", within=False)
    loco = settings.eval.loco
    results = {
        "datasets": {k: _plain(v) for k, v in datasets.items()},
        "finding": finding(datasets),
        "compound": compound_evaluation(ctx),
        "loco": leave_one_class_out(ctx, epochs=settings.eval.loco_epochs, progress=progress) if loco else [],
        "table": _flat(results_table(datasets)),
        "seeds": sorted({r["seed"] for r in ctx.trained["runs"]}),
    }
    write_stage(ctx.run, "04", results)
    return ctx, {**results, "full": datasets}
