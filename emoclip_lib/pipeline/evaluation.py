"""Notebook 04's entry point: every zero-shot protocol of a run, written to `04_results.json`, and its tables.

`04_results.json`: {"protocol": {...}, "models": {checkpoint: what it is}, "datasets": {display name:
{"kind": "within" | "cross" | "given checkpoint", "classes", "records": [per (method, seed, model_fold,
fold): n, uar, war, uar_official, per_class_recall], "summary": {method: mean and std}}}, "finding",
"compound", "loco", "table" (the paper's layout), "comparison" (beside the reported numbers), "seeds"}.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..zeroshot import METHOD_LABELS, PAPER_DATASETS, REPORTED_RESULTS, paper_table
from .loco import compound_evaluation, leave_one_class_out
from .run_dir import write_stage
from .settings import RunSettings
from .zeroshot import EvalContext, evaluate_datasets, finding

# our method -> the paper's row it stands beside (names aligned with REPORTED_RESULTS)
PAPER_ROWS: dict[str, str] = {"emoclip": "EmoCLIP", "clip_names": "CLIP ViT-B/32"}


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    """Drop confusion matrices from per-fold records (kept summed in the summary)."""
    records = [{k: v for k, v in r.items() if k != "confusion"} for r in result["records"]]
    return {**result, "records": records}


def results_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Mean UAR/WAR (percent) in the paper's layout: method x dataset.

    Args:
        results: {dataset: as from `zeroshot.evaluate_datasets`}.
    """
    pairs = {(METHOD_LABELS[m], name): (s["uar"]["mean"], s["war"]["mean"])
             for name, res in results.items() for m, s in res["summary"].items()}
    return paper_table(pairs)


def comparison_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """This run's EmoCLIP and CLIP class-name baseline beside the numbers the paper reports (percent).

    Args:
        results: {dataset: as from `zeroshot.evaluate_datasets`}.
    """
    pairs: dict[tuple[str, str], tuple[float, float]] = {}
    for ours, paper in PAPER_ROWS.items():
        pairs.update({(f"{paper} (reported)", d): tuple(v / 100 for v in uw)
                      for (m, d), uw in REPORTED_RESULTS.items() if m == paper})
        pairs.update({(f"{METHOD_LABELS[ours]} (this run)", name): (s["uar"]["mean"], s["war"]["mean"])
                      for name, res in results.items() for m, s in res["summary"].items() if m == ours})
    return paper_table(pairs)


def _spread(stat: dict[str, float]) -> str:
    """A summary's {"mean", "std"} fraction as "mean ± std" in percent, one decimal."""
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def spread_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Mean ± std of UAR and WAR over seeds and folds, as text, one row per (dataset, method).

    Args:
        results: {dataset: as from `zeroshot.evaluate_datasets`}.
    """
    rows = []
    for name, res in results.items():
        for method, s in res["summary"].items():
            n = [r["n"] for r in res["records"] if r["method"] == method]
            rows.append({"dataset": name, "scored as": res["kind"], "method": METHOD_LABELS[method],
                         "UAR %": _spread(s["uar"]), "WAR %": _spread(s["war"]),
                         "models x folds": s["folds"], "clips per fold": f"{min(n)}-{max(n)}"})
    return pd.DataFrame(rows)


def summary_text(results: dict[str, Any]) -> str:
    """The paper-layout table of a finished notebook 04 as plain text: UAR / WAR %, mean ± std over the
    trained models and folds, one row per method, one column per dataset (what `emoclip reproduce` prints).

    Args:
        results: the content of `04_results.json`.
    """
    datasets = results.get("datasets") or {}
    if not datasets:
        return "zero-shot: no dataset was scored"
    order = [d for d in PAPER_DATASETS if d in datasets] + [d for d in datasets if d not in PAPER_DATASETS]
    methods = list(dict.fromkeys(m for d in order for m in datasets[d]["summary"]))
    cell = {(m, d): f"{_spread(s['uar'])} / {_spread(s['war'])}" for d in order
            for m, s in datasets[d]["summary"].items()}
    table = pd.DataFrame([[cell.get((m, d), "-") for d in order] for m in methods],
                         index=[METHOD_LABELS.get(m, m) for m in methods],
                         columns=[f"{d} ({datasets[d]['kind']})" for d in order])
    proto = results.get("protocol", {})
    head = (f"Zero-shot UAR / WAR %, mean ± std over models and folds (test clips, {proto.get('clip_len')} frames, "
            f"one in {proto.get('downsample')}, {proto.get('window')} window; seeds {results.get('seeds')}):")
    return head + "\n" + table.to_string()


def _flat(table: pd.DataFrame) -> list[dict[str, Any]]:
    flat = table.copy()
    flat.columns = [f"{d} {m}" for d, m in flat.columns]
    return flat.reset_index().to_dict(orient="records")


def run_zeroshot(run_dir: str | Path, settings: RunSettings | None = None, progress: bool = False,
                 **params: Any) -> tuple[EvalContext, dict[str, Any]]:
    """Within- and cross-dataset zero-shot scores, compound emotions and leave-one-class-out.

    Args:
        run_dir: run directory after notebook 03 (or after notebook 01 with `checkpoint` given).
        settings: the run's settings (`settings.eval`, `checkpoint`, `device`, `descriptions`; default
            `RunSettings()`).
        progress: show progress bars.
        params: flat-named parameters over `settings`.
    """
    settings = (settings or RunSettings()).replace(params, where="run_zeroshot")
    ctx = EvalContext(run_dir, settings)
    datasets = evaluate_datasets(ctx)
    trains = ctx.trained is not None and ctx.prepared["train"] is not None
    results = {
        "protocol": {**vars(ctx.protocol), "split": "test", "single_label_only": True},
        "models": {r["checkpoint"]: ctx.record(r["checkpoint"]) for r in ctx.runs()},
        "datasets": {k: _plain(v) for k, v in datasets.items()},
        "finding": finding(datasets),
        "compound": compound_evaluation(ctx) if trains and settings.eval.compound else {"n": 0, "runs": []},
        "loco": leave_one_class_out(ctx, progress) if trains and settings.eval.loco else
        {"classes": [], "skipped": [], "settings": None},
        "table": _flat(results_table(datasets)),
        "comparison": _flat(comparison_table(datasets)),
        "seeds": sorted({r["seed"] for r in ctx.runs() if r["seed"] is not None}),
    }
    write_stage(ctx.run, "04", results)
    return ctx, {**results, "full": datasets}
