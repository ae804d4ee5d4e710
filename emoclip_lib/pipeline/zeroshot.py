"""Notebook 04's pipeline: zero-shot evaluation of the trained models beside CLIP frame-average baselines.

Every method is scored on the same frames (the centred window of each clip, cached frame embeddings):
EmoCLIP (temporal transformer, class descriptions), and CLIP's frame-averaged image embeddings with
class-name prompts or with class descriptions. Datasets: the training corpus's test fold (within-dataset)
and the evaluation corpus's test folds (cross-dataset). Writes `<run_dir>/04_results.json`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..model import load_checkpoint
from ..features import pool_windows
from ..zeroshot import eval_frame_features, score, unique_rows
from ..zeroshot import class_embeddings
from ..data import ManifestRow, read_manifest, select
from ..model import EmoCLIP
from .prepare import dataset_paths, load_results
from ..runtime import resolve_device
from ..data import read_frames
from ..zeroshot import show_explorer
from ..zeroshot import resolve_prompts
from .run_dir import read_stage
from .training import descriptions_for
from ..zeroshot import aggregate_folds

# method name -> (video embedding, prompt mode)
METHODS: dict[str, tuple[str, str]] = {
    "EmoCLIP (descriptions)": ("emoclip", "description"),
    "CLIP frame-avg (class names)": ("clip_frame_avg", "name"),
    "CLIP frame-avg (descriptions)": ("clip_frame_avg", "description"),
}


class EvalContext:
    """What every evaluation of a run shares: models per run, datasets, descriptions, settings."""

    def __init__(self, run_dir: str | Path, device: str = "auto", descriptions: str | None = None) -> None:
        """Args:
            run_dir: run directory after notebook 03.
            device: "auto", "cpu" or "cuda".
            descriptions: class-description YAML override."""
        self.run = Path(run_dir)
        self.device = resolve_device(device)
        self.prepared = load_results(self.run)
        self.trained = read_stage(self.run, "03")
        settings = self.trained["settings"]
        self.clip_len, self.downsample = int(settings.get("clip_len", 32)), int(settings.get("downsample", 2))
        self.cache = self.run / self.trained["cache_dir"]
        info = self.prepared["datasets"]["train"]
        self.descriptions = descriptions_for(self.run, info, descriptions)
        self._models: dict[str, EmoCLIP] = {}

    def model(self, checkpoint: str) -> EmoCLIP:
        """A trained model (loaded once).

        Args:
            checkpoint: path relative to the run directory.
        """
        if checkpoint not in self._models:
            self._models[checkpoint] = load_checkpoint(self.run / checkpoint, device=self.device)
        return self._models[checkpoint]

    def rows(self, role: str) -> tuple[list[ManifestRow], Path, tuple[str, ...], str]:
        """Rows, root, classes and name of a dataset role ("train" or "eval").

        Args:
            role: role in `01_results.json`.
        """
        manifest, root = dataset_paths(self.run, role, self.prepared)
        info = self.prepared["datasets"][role]
        return read_manifest(manifest), root, tuple(info["classes"]), info["name"]

    def features(self, model: EmoCLIP, rows: Sequence[ManifestRow], root: Path,
                 classes: Sequence[str]) -> tuple[torch.Tensor, list[ManifestRow]]:
        """Cached centred-window frame features of `rows` (shared by every method and seed).

        Args:
            model: any model of the run (they share the frozen visual tower).
            rows: rows to encode.
            root: dataset root.
            classes: label space of the rows.
        """
        return eval_frame_features(model, rows, root, classes, self.clip_len, self.downsample, self.cache,
                                   self.device)


def method_scores(ctx: EvalContext, model: EmoCLIP, feats: torch.Tensor, rows: list[ManifestRow],
                  classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Zero-shot results of every method on one set of rows.

    Args:
        ctx: evaluation context.
        model: the trained EmoCLIP model (its backbone is the CLIP of the baselines).
        feats: (N, T, D) frame features of `rows`.
        rows: single-label rows.
        classes: label space.
    """
    out = {}
    for method, (embedding, mode) in METHODS.items():
        text = class_embeddings(model.encode_text, classes, mode, ctx.descriptions)  # (C, D)
        video = pool_windows(model, feats.to(ctx.device), embedding).cpu()  # (N, D)
        out[method] = score(video, rows, classes, text)
    return out


def evaluate_dataset(ctx: EvalContext, role: str, within: bool) -> dict[str, Any]:
    """Per-run, per-fold scores of every method on a dataset role's test splits, and their aggregate.

    Args:
        ctx: evaluation context.
        role: "train" (within-dataset: each run's own test fold) or "eval" (cross-dataset: every fold).
        within: evaluate only the fold each model was trained on.
    """
    rows, root, classes, name = ctx.rows(role)
    records = []
    for run in ctx.trained["runs"]:
        model = ctx.model(run["checkpoint"])
        folds = [run["fold"]] if within else sorted({r.fold for r in rows if r.fold is not None}) or [None]
        for fold in folds:
            test = unique_rows(select(rows, fold=fold, split="test") if fold is not None else rows)
            feats, kept = ctx.features(model, test, root, classes)
            for method, result in method_scores(ctx, model, feats, kept, classes).items():
                records.append({"method": method, "seed": run["seed"], "fold": fold, **result})
    summary = {m: aggregate_folds([r for r in records if r["method"] == m]) for m in METHODS}
    return {"dataset": name, "classes": list(classes), "records": records, "summary": summary}


def finding(results: dict[str, Any], method: str = "EmoCLIP (descriptions)",
            baseline: str = "CLIP frame-avg (class names)") -> dict[str, Any]:
    """Whether EmoCLIP beats the frame-average baseline, per dataset, with the spread over seeds.

    Args:
        results: {dataset key: evaluate_dataset output}.
        method: the method compared.
        baseline: the reference method.
    """
    out = {}
    for key, res in results.items():
        ours = [r["uar"] for r in res["records"] if r["method"] == method]
        base = [r["uar"] for r in res["records"] if r["method"] == baseline]
        out[key] = {"emoclip_uar": float(np.mean(ours)), "emoclip_uar_std": float(np.std(ours)),
                    "baseline_uar": float(np.mean(base)), "baseline_uar_std": float(np.std(base)),
                    "emoclip_better": bool(np.mean(ours) > np.mean(base))}
    return out


@dataclass
class EvalClips:
    """Test clips of a dataset role with both video embeddings, for plots and the clip explorer."""

    dataset: str
    classes: tuple[str, ...]
    root: Path
    rows: pd.DataFrame  # path, labels, caption: one row per clip
    embeddings: dict[str, torch.Tensor]  # "emoclip" / "clip_frame_avg" -> (N, D)

    def frames(self, index: int) -> torch.Tensor:
        """The uint8 frames (T, 3, H, W) of clip `index`.

        Args:
            index: row position.
        """
        return read_frames(self.root / self.rows["path"].iloc[index])


def eval_clips(ctx: EvalContext, role: str | None = None) -> EvalClips:
    """The test clips (single-label, every fold) of a role, embedded by the run's main model.

    Args:
        ctx: evaluation context.
        role: "train" or "eval" (default: the cross-dataset corpus when the run has one).
    """
    if role is None:
        different = ctx.prepared["datasets"]["eval"]["name"] != ctx.prepared["datasets"]["train"]["name"]
        role = "eval" if different else "train"
    rows, root, classes, name = ctx.rows(role)
    model = ctx.model(ctx.trained["checkpoint"])
    feats, kept = ctx.features(model, unique_rows([r for r in rows if r.split == "test"]), root, classes)
    emb = {p: pool_windows(model, feats.to(ctx.device), p).cpu() for p in ("emoclip", "clip_frame_avg")}
    table = pd.DataFrame({"path": [r.path for r in kept], "labels": [r.labels for r in kept],
                          "caption": [r.caption for r in kept]})
    return EvalClips(name, classes, root, table, emb)


def clip_explorer(ctx: EvalContext, clips: EvalClips, interactive: bool = False, top_k: int = 3) -> Any:
    """The clip explorer over test clips' EmoCLIP embeddings (a widget, or a static table when headless).

    Args:
        ctx: evaluation context.
        clips: from `eval_clips`.
        interactive: build the ipywidgets explorer (JupyterLab) instead of the static table.
        top_k: clips shown per query.
    """
    model = ctx.model(ctx.trained["checkpoint"])
    prompts, _ = resolve_prompts(list(clips.classes), "ensemble", ctx.descriptions)
    return show_explorer(clips.embeddings["emoclip"], clips.rows, model.encode_text, clips.frames, prompts,
                         interactive=interactive, example_queries=list(clips.classes[:3]), top_k=top_k)
