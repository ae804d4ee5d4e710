"""Zero-shot evaluation of one model on a dataset's test splits: the paper's protocol, behind `emoclip evaluate`
and notebook 04.

Only test clips are scored: the `test` split of every fold (folded datasets: MAFW, DFEW) or the test /
validation split of a single-split dataset (FERV39k's test list, AFEW's Val); never a training clip, and
single-label clips only. Every method sees the same frames: `clip_len` kept frames of every `downsample`-th
frame (official zero-shot runs: 32 of every 4th), from the centred window (deterministic; the official
loaders take a random start, offered as `window="random"`, seeded). Methods: "emoclip" (EmoCLIP's video
embedding against class descriptions), "clip_names" and "clip_descriptions" (the CLIP frame average against
class-name prompts or descriptions).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..data import ManifestRow
from ..errors import UserError
from ..features import pool_windows
from .evaluate import eval_frame_features, score, unique_rows
from .prompts import class_embeddings

METHODS: dict[str, tuple[str, str]] = {  # method -> (video pooling, prompt mode)
    "emoclip": ("emoclip", "description"),
    "clip_names": ("clip_frame_avg", "name"),
    "clip_descriptions": ("clip_frame_avg", "description"),
}
METHOD_LABELS: dict[str, str] = {"emoclip": "EmoCLIP (descriptions)", "clip_names": "CLIP frame-avg (class names)",
                                 "clip_descriptions": "CLIP frame-avg (descriptions)"}
BASELINES: tuple[str, ...] = ("clip_names", "clip_descriptions")


@dataclass(frozen=True)
class EvalProtocol:
    """How clips are sampled for zero-shot scoring (recorded with every result)."""

    clip_len: int = 32  # kept frames per clip (official zero-shot runs: 32)
    downsample: int = 4  # keep every n-th frame (official zero-shot runs: 4)
    window: str = "centre"  # "centre" (deterministic) or "random" (the official loaders' random start, seeded)
    seed: int = 0  # seed of the random windows
    batch_size: int = 8  # clips per forward pass of the frame tower
    precision: str = "auto"  # frame encoding: "auto" (bf16/fp16 on CUDA, fp32 on CPU), "fp32", "bf16", "fp16"

    def __post_init__(self) -> None:
        if self.window not in ("centre", "random"):
            raise UserError(f"window must be 'centre' or 'random', got {self.window!r}")
        if min(self.clip_len, self.downsample, self.batch_size) < 1:
            raise UserError(f"clip_len, downsample and batch_size must be at least 1, got {self}")


def split_folds(rows: Sequence[ManifestRow], folds: Sequence[int] | None = None) -> list[int | None]:
    """The folds to score: the dataset's folds (or the chosen ones), [None] for a single-split dataset.

    Args:
        rows: the dataset's manifest rows.
        folds: folds to keep (default: all); a fold the dataset lacks is an error.
    """
    have = sorted({r.fold for r in rows if r.fold is not None})
    if not have:
        if folds:
            raise UserError(f"folds {list(folds)} given, but this dataset has a single train/test split")
        return [None]
    missing = [f for f in folds or [] if f not in have]
    if missing:
        raise UserError(f"folds {missing} are not in the dataset (it has {have})")
    return list(folds) if folds else have


def scored_clips(rows: Sequence[ManifestRow], fold: int | None, single_label: bool = True) -> list[ManifestRow]:
    """The test clips of one fold (all test clips of a single-split dataset), one row per clip.

    Args:
        rows: manifest rows.
        fold: the fold, or None for a dataset without folds.
        single_label: leave compound clips out.
    """
    chosen = [r for r in rows if r.split == "test" and r.fold == fold]
    if not chosen:
        where = f"fold {fold}" if fold is not None else "the dataset"
        raise UserError(f"{where} has no test clip: is the split column of the manifest filled in?")
    return unique_rows(chosen, single_label)


class PromptEmbeddings:
    """Class text embeddings of one model, computed once per (classes, prompt mode)."""

    def __init__(self, encode_text_fn: Callable[[torch.Tensor], torch.Tensor], descriptions: str | Path | None,
                 device: str | torch.device = "cpu") -> None:
        """Args:
            encode_text_fn: (N, 77) tokens -> (N, D), e.g. `model.encode_text`.
            descriptions: class-description YAML (None: the shipped one).
            device: where the text tower runs."""
        self.encode, self.descriptions, self.device = encode_text_fn, descriptions, device
        self._done: dict[tuple[tuple[str, ...], str], torch.Tensor] = {}

    def __call__(self, labels: Sequence[str], mode: str) -> torch.Tensor:
        """(L, D) embeddings of the labels (compounds allowed) in a prompt mode.

        Args:
            labels: the labels, in order.
            mode: "name", "description" or "ensemble".
        """
        key = (tuple(labels), mode)
        if key not in self._done:
            self._done[key] = class_embeddings(self.encode, list(labels), mode, self.descriptions, device=self.device)
        return self._done[key]


def score_clips(model: Any, clips: list[ManifestRow], root: Path, classes: Sequence[str], methods: Sequence[str],
                protocol: EvalProtocol, cache_dir: Path, device: torch.device, prompts: PromptEmbeddings,
                progress: bool = False) -> dict[str, dict[str, Any]]:
    """`scoring.evaluate` results of every method on the same clips.

    Args:
        model: an EmoCLIP model (frozen visual tower).
        clips: single-label rows, one per clip.
        root: dataset root.
        classes: the label space.
        methods: keys of `METHODS`.
        protocol: frame sampling.
        cache_dir: frame-embedding cache.
        device: where the model runs.
        prompts: the model's class embeddings.
        progress: show progress bars.
    """
    feats, kept = eval_frame_features(model, clips, root, classes, protocol.clip_len, protocol.downsample, cache_dir,
                                      device, progress, protocol.window == "random", protocol.seed, protocol.precision)
    if not kept:
        raise UserError(f"none of the {len(clips)} clips could be read under {root}: run `emoclip validate`")
    out = {}
    for method in methods:
        pooling, mode = METHODS[method]
        video = pool_windows(model, feats.to(device), pooling).cpu()  # (N, D)
        out[method] = {**score(video, kept, classes, prompts(classes, mode)), "skipped": len(clips) - len(kept)}
    return out


def _summary(folds: list[dict[str, Any]]) -> dict[str, Any]:
    uar, war = np.array([f["uar"] for f in folds]), np.array([f["war"] for f in folds])
    return {"folds": folds, "uar": float(uar.mean()), "war": float(war.mean()),
            "uar_std": float(uar.std()), "war_std": float(war.std())}


def evaluate_dataset(model: Any, rows: Sequence[ManifestRow], root: str | Path, classes: Sequence[str],
                     protocol: EvalProtocol, cache_dir: str | Path, device: torch.device,
                     methods: Sequence[str] = tuple(METHODS), folds: Sequence[int] | None = None,
                     descriptions: str | Path | None = None, prompts: PromptEmbeddings | None = None,
                     progress: bool = False) -> dict[str, Any]:
    """Score a model on the test split of every fold of a dataset (the single test split when it has none).

    Args:
        model: an EmoCLIP model.
        rows: the dataset's manifest rows (training rows are never scored).
        root: dataset root.
        classes: the label space (single classes).
        protocol: frame sampling.
        cache_dir: frame-embedding cache (content-keyed: a re-run decodes nothing).
        device: where the model runs.
        methods: keys of `METHODS`.
        folds: folds to score (default: all).
        descriptions: class-description YAML (None: the shipped one).
        prompts: reuse the class embeddings of an earlier call (default: computed here).
        progress: show progress bars.
    Returns:
        {"protocol": {...}, "methods": {method: {"folds": [{"fold", "n", "uar", "war", "uar_official",
        "per_class_recall", "confusion"}], "uar", "war", "uar_std", "war_std"}}}; metrics are fractions.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UserError(f"unknown method(s) {unknown}: choose among {', '.join(METHODS)}")
    prompts = prompts or PromptEmbeddings(model.encode_text, descriptions, device)
    per_method: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for fold in split_folds(rows, folds):
        scored = score_clips(model, scored_clips(rows, fold), Path(root), classes, methods, protocol, Path(cache_dir),
                             device, prompts, progress)
        for method, res in scored.items():
            per_method[method].append({"fold": fold, **res, "confusion": np.asarray(res["confusion"]).tolist()})
    return {"protocol": {**dataclasses.asdict(protocol), "classes": list(classes), "split": "test",
                         "single_label_only": True, "descriptions": None if descriptions is None else str(descriptions)},
            "methods": {m: _summary(f) for m, f in per_method.items()}}


def results_markdown(results: dict[str, Any]) -> str:
    """A markdown table of `evaluate_dataset` results (percent, mean ± std over folds, clips scored).

    Args:
        results: as returned by `evaluate_dataset` (with a "dataset" key when known).
    """
    lines = [f"# Zero-shot results: {results.get('dataset', 'dataset')}", "",
             "| method | UAR % | WAR % | folds | clips scored |", "|---|---|---|---|---|"]
    for method, res in results["methods"].items():
        n = sum(f["n"] for f in res["folds"])
        lines.append(f"| {METHOD_LABELS.get(method, method)} | {100 * res['uar']:.2f} ± {100 * res['uar_std']:.2f} | "
                     f"{100 * res['war']:.2f} ± {100 * res['war_std']:.2f} | {len(res['folds'])} | {n} |")
    proto = results["protocol"]
    lines += ["", f"Protocol: test split only, {proto['clip_len']} frames of every {proto['downsample']}th, "
                  f"{proto['window']} window, single-label clips."]
    return "\n".join(lines) + "\n"
