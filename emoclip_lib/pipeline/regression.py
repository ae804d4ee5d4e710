"""Notebook 05's pipeline: symptom-severity regression from EmoCLIP and CLIP video embeddings.

`run_regression(run_dir)` embeds every interview video with each encoder (window embeddings cached
under `<run_dir>/cache/features`), regresses every symptom item with subject-grouped nested
cross-validation (`regression.regress_items`), compares the out-of-fold predictions with the planted
latent scores when the cohort has them, and writes `<run_dir>/05_results.json` and
`<run_dir>/05_predictions.csv` (figures: `regression_plots`). The interviews are the run's `interviews` role (notebook 01) or a
user's interview manifest (`data_manifests/README.md`). `05_results.json`:

    {"format": "emoclip-regression-1", "status": "done" | "skipped", "seed": 0, "checkpoint": "train/.../best.pt",
     "data": {"source", "manifest", "items", "n_videos", "n_subjects", "skipped_items": {item: reason}},
     "settings": {...}, "averages": {encoder: {method: {"pcc", "ccc"}}}, "best": {"encoder", "method", "pcc", "ccc"},
     "table": [rows of COLUMNS], "latent": [rows encoder, method, item, pcc, ccc, n] | null,
     "predictions_file": "05_predictions.csv"}
The mean-predictor baseline has encoder "none"; "average" rows are means over items.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from torch import nn

from ..model import load_checkpoint
from ..model import load_clip
from ..errors import DataError, UserError
from ..data import FaceCrop
from ..downstream import extract_features, feature_matrix, subject_features
from ..io_utils import atomic_write, json_cell
from ..model import EmoCLIP
from .prepare import load_results
from ..downstream import AVERAGE_ITEM, reference_agreement, regress_items
from ..runtime import resolve_device, seed_everything
from .run_dir import WINDOW_CACHE, read_stage, run_relative, write_stage
from .settings import RunSettings
from ..workers import cpu_count, parallel_map

FORMAT = "emoclip-regression-1"
PREDICTIONS_FILE = "05_predictions.csv"
BASELINE = "none"  # the `encoder` of the mean-predictor rows (they use no features)
COLUMNS: tuple[str, ...] = ("encoder", "method", "item", "pcc", "ccc", "mae", "rmse",
                            "pcc_lo", "pcc_hi", "ccc_lo", "ccc_hi", "n")


def interview_source(run_dir: str | Path, manifest: str | Path | None = None, root: str | Path | None = None,
                     latent_scores: str | Path | None = None) -> dict[str, Any] | None:
    """Where the interviews are: a user manifest, else the run's `interviews` role; None if there is none.

    Args:
        run_dir: the run directory (prepared by notebook 01).
        manifest: optional interview manifest (`path,subject,session,<items>`).
        root: folder the manifest paths are relative to (default: the manifest's folder).
        latent_scores: optional CSV `subject,<items>` of true (latent) scores; with `manifest=None`
            the synthetic cohort's own file is used.
    """
    run = Path(run_dir)
    if manifest is not None:
        manifest = Path(manifest)
        if not manifest.is_file():
            raise UserError(f"interview manifest {manifest} does not exist; its format is in "
                            f"data_manifests/README.md (path,subject,session,<item columns>)")
        return {"source": "manifest", "manifest": manifest, "root": Path(root) if root else manifest.parent,
                "latent": Path(latent_scores) if latent_scores else None}
    entry = load_results(run)["interviews"]
    if entry is None:
        return None
    latent = latent_scores or (run / entry["latent_scores"] if entry.get("latent_scores") else None)
    return {"source": entry["name"], "manifest": run / entry["manifest"], "root": run / entry["root"],
            "latent": Path(latent) if latent else None}


def load_encoders(run_dir: str | Path, checkpoint: str | Path | None, device: str) -> tuple[dict[str, nn.Module], str]:
    """The models behind each encoder: the EmoCLIP checkpoint, and the CLIP backbone for the baseline.

    The baseline uses the checkpoint's own image tower when it was frozen in training (the same
    weights as the CLIP backbone); otherwise notebook 03's `clip_backbone` (a file or a CLIP name).

    Args:
        run_dir: the run directory.
        checkpoint: EmoCLIP checkpoint path (None: notebook 03's `checkpoint`, relative to run_dir).
        device: torch device name.
    Returns:
        ({"emoclip": model, "clip_frame_avg": model}, checkpoint as recorded).
    """
    run = Path(run_dir)
    stage03 = read_stage(run, "03") if checkpoint is None or (run / "03_results.json").is_file() else {}
    if checkpoint is None:
        if not stage03.get("checkpoint"):
            raise UserError("03_results.json names no checkpoint: re-run notebook 03 or pass checkpoint=...")
        path = run / stage03["checkpoint"]
    else:
        path = Path(checkpoint)
    model = load_checkpoint(path, device)
    baseline = model
    if not model.config.freeze_visual and stage03.get("clip_backbone"):
        name = stage03["clip_backbone"]  # a file in the run directory or a CLIP model name ("ViT-B/32")
        backbone = load_clip(str(run / name) if (run / name).is_file() else name, device=device)
        baseline = EmoCLIP(backbone, model.config, embed_dim=int(backbone.visual.output_dim)).eval().to(device)
    return {"emoclip": model, "clip_frame_avg": baseline}, run_relative(path, run)


def read_latent(path: str | Path) -> pd.DataFrame:
    """Latent (true) scores: CSV `subject,<items>`, indexed by subject.

    Args:
        path: the CSV file.
    """
    try:
        table = pd.read_csv(path, dtype={"subject": str})
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read the latent-score CSV ({err})") from None
    if "subject" not in table.columns:
        raise DataError(f"{path}:1: no `subject` column; the header must be subject,<item names>")
    return table.set_index("subject")


def _regress_item(X: np.ndarray, y: np.ndarray, groups: np.ndarray, item: str, models: list[str],
                  opts: dict[str, Any]) -> Any:
    """One item's `RegressionResult`, or why it cannot be regressed (a worker process's task)."""
    try:
        return regress_items(X, {item: y}, groups, models=models, progress=False, n_jobs=1, **opts)
    except UserError as err:
        return str(err)


def _result_parts(res: Any, encoder: str, table: pd.DataFrame) -> tuple[list[dict], pd.DataFrame]:
    """Rows (no averages) and out-of-fold predictions of one item's result, labelled with the encoder."""
    part = res.table[res.table["item"] != AVERAGE_ITEM]
    rows = [{"encoder": BASELINE if r["method"] == "mean" else encoder, **r} for r in part.to_dict("records")]
    frame = res.predictions_frame().rename(columns={"group": "subject"})
    frame.insert(0, "encoder", np.where(frame["method"] == "mean", BASELINE, encoder))
    if "path" in table.columns:  # video level
        frame.insert(5, "path", table["path"].to_numpy()[frame["sample"].to_numpy()])
    return rows, frame


def _fit_all(tables: dict[str, pd.DataFrame], models: list[str], opts: dict[str, Any], jobs: int,
             progress: bool) -> dict[tuple[str, str], Any]:
    """(encoder, item) -> result or reason, fitted in `jobs` forked processes (`workers.parallel_map`: they start
    with the library already imported, where joblib's fresh workers spent about 4 s importing it; the fits
    are those of one process, see `nested_cv`)."""
    tasks = [(name, item) for name, table in tables.items() for item in table.attrs["items"]]

    def fit(task: tuple[str, str]) -> Any:
        table = tables[task[0]]
        return _regress_item(feature_matrix(table), table[task[1]].to_numpy(np.float64),
                             table["subject"].to_numpy(str), task[1], models, opts)

    return dict(zip(tasks, parallel_map(fit, tasks, "regression", progress, jobs, chunksize=1)))


def with_averages(rows: list[dict]) -> pd.DataFrame:
    """Long table in `COLUMNS` order, plus per (encoder, method) rows `item="average"` (mean over items).

    Args:
        rows: per-item result rows.
    """
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    avg = table.groupby(["encoder", "method"], sort=False)[["pcc", "ccc", "mae", "rmse"]].mean().reset_index()
    avg["item"] = AVERAGE_ITEM
    out = pd.concat([table, avg], ignore_index=True)[list(COLUMNS)]
    out["n"] = out["n"].astype("Int64")
    return out


def latent_agreement(predictions: pd.DataFrame, ratings: pd.DataFrame, latent: pd.DataFrame) -> pd.DataFrame:
    """PCC/CCC against the latent scores of the subject-mean predictions and of the subject-mean ratings.

    Args:
        predictions: out-of-fold predictions (encoder, method, item, subject, y_pred).
        ratings: per-video rated scores (subject and one column per item).
        latent: from `read_latent`.
    Returns:
        rows encoder, method, item, pcc, ccc, n; the raters' own agreement is encoder "none", method "ratings".
    """
    items = [i for i in dict.fromkeys(predictions["item"]) if i in ratings.columns]
    rated = ratings.melt(id_vars="subject", value_vars=items, var_name="item", value_name="y_pred")
    rated = rated.assign(encoder=BASELINE, method="ratings")
    out = reference_agreement(pd.concat([rated, predictions], ignore_index=True), latent,
                              by=("encoder", "method", "item"))
    return out.astype({"n": "Int64"})


def summary(table: pd.DataFrame) -> dict[str, Any]:
    """Average PCC/CCC per encoder and method, and the best (encoder, method) by average PCC.

    Args:
        table: from `with_averages`.
    """
    avg = table[table["item"] == AVERAGE_ITEM]
    averages: dict[str, dict] = {}
    for r in avg.to_dict("records"):
        averages.setdefault(r["encoder"], {})[r["method"]] = {"pcc": json_cell(r["pcc"]), "ccc": json_cell(r["ccc"])}
    learned = avg[(avg["method"] != "mean") & avg["pcc"].notna()]
    best = None if learned.empty else learned.loc[learned["pcc"].idxmax()]
    best_rec = None if best is None else {k: json_cell(best[k]) for k in ("encoder", "method", "pcc", "ccc")}
    return {"averages": averages, "best": best_rec}


def _records(table: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    return None if table is None else [{k: json_cell(v) for k, v in r.items()} for r in table.to_dict("records")]


def _regress_encoders(feats: dict[str, pd.DataFrame], models: list[str], level: str, opts: dict[str, Any],
                      jobs: int = 1, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Metric table, predictions and skipped items over all encoders (the mean baseline kept once).

    An item that cannot be regressed with one encoder is left out for all, so that every average is
    over the same items.
    """
    tables = {name: subject_features(v) if level == "subject" else v for name, v in feats.items()}
    if any(AVERAGE_ITEM in t.attrs["items"] for t in tables.values()):
        raise UserError(f"the interview manifest has an item column {AVERAGE_ITEM!r}, a reserved name: rename it")
    results = _fit_all(tables, models, opts, jobs, progress)
    skipped: dict[str, str] = {}
    for (_, item), res in results.items():
        if isinstance(res, str):
            skipped.setdefault(item, res)
    rows, preds = [], []
    for (name, item), res in results.items():
        if item in skipped:
            continue
        more, frame = _result_parts(res, name, tables[name])
        first = name == next(iter(tables))
        rows += [r for r in more if first or r["encoder"] != BASELINE]
        preds.append(frame if first else frame[frame["encoder"] != BASELINE])
    if not rows:
        reasons = "\n  ".join(f"{item}: {why}" for item, why in skipped.items())
        raise UserError(f"no symptom item could be regressed:\n  {reasons}")
    return with_averages(rows), pd.concat(preds, ignore_index=True), skipped


def _split(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def run_regression(run_dir: str | Path, settings: RunSettings | None = None, progress: bool = False,
                   **params: Any) -> dict[str, Any]:
    """Regress every symptom item from each encoder's video features; write `05_results.json`.

    A run without interview data (real-data profiles) and no `interview_manifest` writes `status: "skipped"`.

    Args:
        run_dir: the run directory (notebook 01 done; notebook 03 too unless `checkpoint` is given).
        settings: the run's settings (`settings.regression`, `seed` of folds, MLP and bootstrap, `device`;
            default `RunSettings()`).
        progress: show progress bars.
        params: flat-named parameters over `settings` (see `settings.RegressionSettings`).
    Returns:
        {"results": what 05_results.json holds, "table": long metric table (`COLUMNS`),
         "predictions": out-of-fold predictions, "latent": agreement with latent scores or None}.
    """
    settings = (settings or RunSettings()).replace(params, where="run_regression")
    reg, seed, run = settings.regression, settings.seed, Path(run_dir)
    crop = FaceCrop(full_frame=True) if reg.crop_faces else None
    names, models, stats = _split(reg.encoders), _split(reg.models), _split(reg.stats)
    stride = reg.window_clip_len if reg.window_stride is None else reg.window_stride
    recorded = {"encoders": names, "models": models, "level": reg.level, "clip_len": reg.window_clip_len,
                "downsample": reg.window_downsample, "stride": stride, "stats": stats, "n_boot": reg.n_boot,
                "crop_faces": None if crop is None else crop.key(), "outer_folds": reg.outer_folds,
                "inner_folds": reg.inner_folds}
    seed_everything(seed)
    src = interview_source(run, reg.interview_manifest, reg.interview_root, reg.latent_scores)
    if src is None:
        results = {"format": FORMAT, "status": "skipped", "seed": seed, "settings": recorded, "reason":
                   "this run has no interview data (clinical cohorts are private): pass interview_manifest=..."}
        write_stage(run, "05", results)
        return {"results": results, "table": with_averages([]), "predictions": pd.DataFrame(), "latent": None}
    dev = resolve_device(settings.device)
    encoders, ckpt = load_encoders(run, settings.checkpoint, str(dev))
    feats = extract_features(src["manifest"], src["root"], encoders, tuple(names), run / WINDOW_CACHE,
                             reg.window_clip_len, reg.window_downsample, stride, crop, stats, dev, progress=progress,
                             precision=settings.frame_precision)  # encoders sharing a model share one pass
    with threadpool_limits(limits=1):  # small matrices: one BLAS thread is as fast, and results do not
        table, predictions, skipped = _regress_encoders(feats, models, reg.level, {  # depend on the core count
            "seed": seed, "n_boot": reg.n_boot, "outer_folds": reg.outer_folds, "inner_folds": reg.inner_folds},
            jobs=cpu_count(), progress=progress)  # (encoder, item) fits on every core
    videos = feats[names[0]]
    latent = None if src["latent"] is None else latent_agreement(
        predictions, videos[["subject", *videos.attrs["items"]]], read_latent(src["latent"]))
    atomic_write(run / PREDICTIONS_FILE, lambda tmp: predictions.to_csv(tmp, index=False))
    data = {"source": src["source"], "manifest": run_relative(src["manifest"], run), "items": videos.attrs["items"],
            "n_videos": len(videos), "n_subjects": int(videos["subject"].nunique()), "skipped_items": skipped}
    results = {"format": FORMAT, "status": "done", "seed": seed, "checkpoint": ckpt, "data": data,
               "settings": recorded, **summary(table), "table": _records(table), "latent": _records(latent),
               "predictions_file": PREDICTIONS_FILE}
    write_stage(run, "05", results)
    return {"results": results, "table": table, "predictions": predictions, "latent": latent}
