"""Notebook 04's pipeline: within- and cross-dataset zero-shot scores of the run's models beside CLIP baselines.

Within MAFW, each model trained by notebook 03 (seed, fold) is scored on its own fold's test split; every
other dataset of the run is scored, on the test split of each of its folds (or its single test split), by
the model of each seed trained on one MAFW fold (`cross_fold`, default the first trained), as the official
zero-shot scripts score one MAFW-trained checkpoint per dataset. With a given `checkpoint` (no training),
that one model scores every dataset on all its folds. The scoring itself is `zeroshot.evaluate_dataset`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import ManifestRow, read_frames, read_manifest
from ..errors import UserError
from ..features import pool_windows
from ..model import EmoCLIP
from ..runtime import resolve_device
from ..zeroshot import (BASELINES, METHODS, EvalProtocol, PromptEmbeddings, aggregate_folds, eval_frame_features,
                        evaluate_dataset, load_eval_model, model_scale, resolve_prompts, show_explorer,
                        unique_rows)
from .prepare import dataset_paths, load_results
from .run_dir import FRAME_CACHE, read_stage, stage_path
from .settings import RunSettings


class EvalContext:
    """What every evaluation of a run shares: its datasets, the models to score, protocol, caches."""

    def __init__(self, run_dir: str | Path, settings: RunSettings) -> None:
        """Args:
            run_dir: run directory after notebook 01 (and 03, unless `settings.checkpoint` is given).
            settings: the run's settings."""
        self.run, self.settings = Path(run_dir), settings
        self.device = resolve_device(settings.device)
        self.prepared = load_results(self.run)
        if settings.checkpoint is None and not stage_path(self.run, "03").is_file():
            raise UserError("notebook 04 scores the models notebook 03 trained, or a given one: run notebook 03, "
                            "or pass -p checkpoint PATH (ours, the official weights, or clip:ViT-B/32)")
        self.trained = read_stage(self.run, "03") if settings.checkpoint is None else None
        e = settings.eval
        self.protocol = EvalProtocol(e.eval_clip_len, e.eval_downsample, e.eval_window, settings.seed,
                                     precision=settings.frame_precision)
        self.cache = self.run / FRAME_CACHE
        self._models: dict[str, tuple[EmoCLIP, dict[str, Any]]] = {}
        self._prompts: dict[tuple[str, str | None], PromptEmbeddings] = {}

    def runs(self) -> list[dict[str, Any]]:
        """The models to score: notebook 03's (seed, fold, checkpoint), or the one given checkpoint."""
        if self.trained is None:
            return [{"seed": None, "fold": None, "checkpoint": self.settings.checkpoint}]
        return self.trained["runs"]

    def model(self, checkpoint: str) -> EmoCLIP:
        """A model to score, loaded once (run-relative paths for notebook 03's checkpoints).

        Args:
            checkpoint: a checkpoint path, or `clip:NAME`.
        """
        if checkpoint not in self._models:
            local = self.run / checkpoint
            source = str(local) if self.trained is not None and local.is_file() else checkpoint
            model, record = load_eval_model(source, self.device, self.settings.text_tower, self.settings.seed)
            if source == str(local):  # recorded as the run has it: a run folder can move
                record = {**record, "checkpoint": checkpoint}
            self._models[checkpoint] = (model, record)
        return self._models[checkpoint][0]

    def record(self, checkpoint: str) -> dict[str, Any]:
        """What a scored model is (format, layout, text tower).

        Args:
            checkpoint: as given to `model`.
        """
        self.model(checkpoint)
        return self._models[checkpoint][1]

    def methods(self, checkpoint: str) -> tuple[str, ...]:
        """The methods a model can be scored with (CLIP alone: the baselines only).

        Args:
            checkpoint: as given to `model`.
        """
        return BASELINES if self.record(checkpoint)["clip_only"] else tuple(METHODS)

    def descriptions(self, name: str) -> Path | None:
        """The class descriptions of a dataset: the run's setting, else the data's own, else None (shipped).

        Args:
            name: a dataset of the run.
        """
        if self.settings.descriptions:
            return Path(self.settings.descriptions)
        own = self.prepared["datasets"][name].get("descriptions")
        return self.run / own if own else None

    def prompts(self, checkpoint: str, name: str) -> PromptEmbeddings:
        """The class embeddings of a model under a dataset's descriptions (computed once).

        Args:
            checkpoint: as given to `model`.
            name: a dataset of the run.
        """
        desc = self.descriptions(name)
        key = (checkpoint, None if desc is None else str(desc))
        if key not in self._prompts:
            self._prompts[key] = PromptEmbeddings(self.model(checkpoint).encode_text, desc, self.device)
        return self._prompts[key]

    def rows(self, name: str) -> tuple[list[ManifestRow], Path, tuple[str, ...]]:
        """Rows, root and classes of a dataset of the run.

        Args:
            name: "mafw", "dfew", ...
        """
        manifest, root = dataset_paths(self.run, name, self.prepared)
        return read_manifest(manifest), root, tuple(self.prepared["datasets"][name]["classes"])

    def display(self, name: str) -> str:
        """How tables name a dataset ("DFEW").

        Args:
            name: a dataset of the run.
        """
        return self.prepared["datasets"][name]["display"]


def _scored(ctx: EvalContext, name: str, run: dict[str, Any], folds: list[int] | None) -> list[dict[str, Any]]:
    """Per-fold records of one model on one dataset."""
    rows, root, classes = ctx.rows(name)
    res = evaluate_dataset(ctx.model(run["checkpoint"]), rows, root, classes, ctx.protocol, ctx.cache, ctx.device,
                           ctx.methods(run["checkpoint"]), folds, prompts=ctx.prompts(run["checkpoint"], name))
    return [{"method": m, "seed": run["seed"], "model_fold": run["fold"], **f}
            for m, out in res["methods"].items() for f in out["folds"]]


def _cross_runs(ctx: EvalContext) -> list[dict[str, Any]]:
    """One model per seed for the other datasets: the one trained on `cross_fold` (default: the first fold)."""
    runs = ctx.runs()
    trained = [r["fold"] for r in runs]
    fold = ctx.settings.eval.cross_fold if ctx.settings.eval.cross_fold is not None else trained[0]
    if fold not in trained:
        raise UserError(f"cross_fold={fold}: notebook 03 trained folds {sorted(set(trained), key=str)}")
    return [r for r in runs if r["fold"] == fold]


def _summary(name: str, classes: tuple[str, ...], kind: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    methods = list(dict.fromkeys(r["method"] for r in records))
    return {"dataset": name, "kind": kind, "classes": list(classes), "records": records,
            "summary": {m: aggregate_folds([r for r in records if r["method"] == m]) for m in methods}}


def evaluate_datasets(ctx: EvalContext) -> dict[str, dict[str, Any]]:
    """Every dataset of the run scored by the models it is scored with, keyed by display name.

    Args:
        ctx: evaluation context.
    """
    train = ctx.prepared["train"] if ctx.trained is not None else None
    out = {}
    for name in ctx.prepared["datasets"]:
        if name == train:
            records = [rec for run in ctx.runs() for rec in _scored(ctx, name, run, [run["fold"]])]
            kind = "within"
        else:
            runs = _cross_runs(ctx) if ctx.trained is not None else ctx.runs()
            records = [rec for run in runs for rec in _scored(ctx, name, run, None)]
            kind = "cross" if ctx.trained is not None else "given checkpoint"
        out[ctx.display(name)] = _summary(ctx.display(name), ctx.rows(name)[2], kind, records)
    return out


def finding(results: dict[str, Any], method: str = "emoclip", baseline: str = "clip_names") -> dict[str, Any]:
    """Whether EmoCLIP beats the frame-average baseline, per dataset, with the spread over seeds and folds.

    Args:
        results: from `evaluate_datasets`.
        method: the method compared.
        baseline: the reference method.
    """
    out = {}
    for key, res in results.items():
        ours = [r["uar"] for r in res["records"] if r["method"] == method]
        base = [r["uar"] for r in res["records"] if r["method"] == baseline]
        if not ours or not base:
            continue
        out[key] = {"emoclip_uar": float(np.mean(ours)), "emoclip_uar_std": float(np.std(ours)),
                    "baseline_uar": float(np.mean(base)), "baseline_uar_std": float(np.std(base)),
                    "emoclip_better": bool(np.mean(ours) > np.mean(base))}
    return out


@dataclass
class EvalClips:
    """Test clips of a dataset with both video embeddings, for plots and the clip explorer."""

    name: str  # the dataset's key ("dfew")
    dataset: str  # its display name ("DFEW")
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


def eval_clips(ctx: EvalContext, name: str | None = None) -> EvalClips:
    """The single-label test clips (every fold) of a dataset, embedded by the run's first scored model.

    Args:
        ctx: evaluation context.
        name: a dataset of the run (default: the first one that is not the training set, else that).
    """
    train = ctx.prepared["train"]
    name = name or next((n for n in ctx.prepared["datasets"] if n != train), train)
    rows, root, classes = ctx.rows(name)
    model = ctx.model(ctx.runs()[0]["checkpoint"])
    p = ctx.protocol
    feats, kept = eval_frame_features(model, unique_rows([r for r in rows if r.split == "test"]), root, classes,
                                      p.clip_len, p.downsample, ctx.cache, ctx.device, False, p.window == "random",
                                      p.seed, p.precision)
    emb = {k: pool_windows(model, feats.to(ctx.device), k).cpu() for k in ("emoclip", "clip_frame_avg")}
    table = pd.DataFrame({"path": [r.path for r in kept], "labels": [r.labels for r in kept],
                          "caption": [r.caption for r in kept]})
    return EvalClips(name, ctx.display(name), classes, root, table, emb)


def clip_explorer(ctx: EvalContext, clips: EvalClips, interactive: bool = False, top_k: int = 3) -> Any:
    """The clip explorer over test clips' EmoCLIP embeddings (a widget, or a static table when headless).

    Class scores are the softmax of the cosines times the model's own logit scale; the widget opens on the
    first class as its query.

    Args:
        ctx: evaluation context.
        clips: from `eval_clips`.
        interactive: build the ipywidgets explorer (JupyterLab) instead of the static table.
        top_k: clips shown per query.
    """
    model = ctx.model(ctx.runs()[0]["checkpoint"])
    prompts, _ = resolve_prompts(list(clips.classes), "ensemble", ctx.descriptions(clips.name))
    return show_explorer(clips.embeddings["emoclip"], clips.rows, model.encode_text, clips.frames, prompts,
                         scale=model_scale(model), interactive=interactive,
                         example_queries=list(clips.classes[:3]), top_k=top_k, device=ctx.device)
