"""Tables and figures of the data prepared by `prepare.prepare_data` (notebook 01)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..data import CANONICAL_CLASSES
from ..errors import UserError
from ..data import read_manifest
from .prepare import dataset_paths, load_results
from ..data import count_frames, read_frames

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _pick_fold(entry: dict, fold: int | None) -> int | None:
    """The fold whose train/test split is counted: `fold`, else the first; None for single-split data."""
    if not entry.get("folds"):
        return None
    if fold is None:
        return entry["folds"][0]
    if fold not in entry["folds"]:
        raise UserError(f"fold {fold} is not in {entry['name']}; folds: {', '.join(map(str, entry['folds']))}")
    return fold


def class_distribution(run_dir: str | Path, results: dict | None = None, fold: int | None = None) -> pd.DataFrame:
    """Samples per class, dataset and split: columns dataset, split ("all", "train", "test"), class, samples.

    Compound samples are counted under the class "compound"; train/test are those of `fold`.

    Args:
        run_dir: the run directory.
        results: from `load_results` (read when None).
        fold: fold for the train/test counts (default: each dataset's first fold; ignored without folds).
    """
    results = results or load_results(run_dir)
    records = []
    for entry in results["datasets"].values():
        rows = read_manifest(Path(run_dir) / entry["manifest"], known=None)
        f = _pick_fold(entry, fold)
        groups = {"all": list({r.path: r for r in rows}.values())}
        groups |= {s: [r for r in rows if r.fold == f and r.split == s] for s in ("train", "test")}
        names = list(entry.get("classes", CANONICAL_CLASSES)) + ["compound"]
        for split, members in groups.items():
            counts = Counter("compound" if "+" in r.labels else r.labels for r in members)
            records += [{"dataset": entry["display"], "split": split, "class": c, "samples": counts[c]}
                        for c in names + sorted(set(counts) - set(names)) if c != "compound" or counts[c]]
    return pd.DataFrame(records)


def clip_lengths(run_dir: str | Path, results: dict | None = None) -> pd.DataFrame:
    """Frames per sample (columns dataset, path, labels, frames), as counted by `prepare_data`.

    Args:
        run_dir: the run directory.
        results: from `load_results` (read when None).
    """
    results = results or load_results(run_dir)
    return pd.read_csv(Path(run_dir) / results["clip_lengths"], keep_default_na=False, na_values=[""])


def validation_table(results: dict) -> pd.DataFrame:
    """One line per dataset: samples, manifest rows, compound samples, folds, frames, problems.

    Args:
        results: from `prepare_data` or `load_results`.
    """
    folds_of = {e["name"]: e.get("folds", []) for e in results["datasets"].values()}
    shown = {name: e["display"] for name, e in results["datasets"].items()}
    lines = [{"dataset": shown.get(name, name), "samples": s["samples"], "rows": s["rows"], "compound": s.get("compound", 0),
              "folds": len(folds_of.get(name, [])), "min frames": s["frames"]["min"],
              "median frames": s["frames"]["median"], "max frames": s["frames"]["max"],
              "problems": s["problems"], "dropped": s["dropped_samples"]} for name, s in results["stats"].items()]
    return pd.DataFrame(lines).set_index("dataset")


def facts(results: dict) -> str:
    """Deterministic text summary (counts per class, clips, problems) for the notebook's checked cell.

    Args:
        results: from `prepare_data` or `load_results`.
    """
    world = f"synthetic releases ({results['synth_size']})" if results["synth_size"] else "official releases"
    out = [f"datasets: {', '.join(e['display'] for e in results['datasets'].values())} from {world}, "
           f"seed: {results['seed']}"]
    for name, s in results["stats"].items():
        f = s["frames"]
        out.append(f"{name}: {s['samples']} clips, {s['rows']} manifest rows, {s['problems']} problems, "
                   f"frames min/median/max {f['min']}/{f['median']}/{f['max']}")
        if "class_counts" in s:
            out.append("  " + ", ".join(f"{c} {n}" for c, n in s["class_counts"].items()))
    return "\n".join(out)


def sample_frame_grid(run_dir: str | Path, name: str | None = None, frames_per_clip: int = 4, seed: int = 0,
                      results: dict | None = None) -> Figure:
    """A figure with one row per class: frames from the middle of one clip of that class.

    Args:
        run_dir: the run directory.
        name: a dataset of the run ("mafw", "dfew", ...); default: the training one, else the first.
        frames_per_clip: frames shown per class, evenly spaced over the middle 40% of the clip.
        seed: picks the clip of each class (among its single-label samples).
        results: from `load_results` (read when None).
    """
    import matplotlib.pyplot as plt

    results = results or load_results(run_dir)
    name = name or results["train"] or next(iter(results["datasets"]))
    manifest, root = dataset_paths(run_dir, name, results)
    by_class: dict[str, list[str]] = {}
    for row in read_manifest(manifest, known=None):
        paths = by_class.setdefault(row.labels, [])
        if row.path not in paths:
            paths.append(row.path)
    classes = [c for c in results["datasets"][name]["classes"] if c in by_class]
    if not classes:
        raise UserError(f"{manifest.name} has no single-label sample to show")
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(classes), frames_per_clip, squeeze=False,
                             figsize=(1.4 * frames_per_clip + 0.6, 1.45 * len(classes) + 0.4))
    for ax_row, cls in zip(axes, classes):
        path = root / by_class[cls][int(rng.integers(len(by_class[cls])))]
        n = count_frames(path)
        picks = np.linspace(0.3 * (n - 1), 0.7 * (n - 1), frames_per_clip).round().astype(int)
        clip = read_frames(path, picks).permute(0, 2, 3, 1).numpy()  # (K, H, W, 3)
        for k, ax in enumerate(ax_row):
            ax.imshow(clip[k])
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlabel(f"frame {picks[k] + 1}/{n}", fontsize=7)
        ax_row[0].set_ylabel(cls, fontsize=9)
    fig.suptitle(f"{results['datasets'][name]['display']}: one clip per class, middle frames", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    return fig


def plot_clip_lengths(lengths: pd.DataFrame, max_bins: int = 20) -> Figure:
    """Histograms of frames per clip, one panel per dataset, with bins aligned on whole frames.

    Args:
        lengths: from `clip_lengths` (unreadable clips, with empty `frames`, are left out).
        max_bins: at most this many bins per panel.
    """
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(lengths.dataset))
    fig, axes = plt.subplots(1, len(names), squeeze=False, figsize=(3.2 * len(names), 2.6))
    for ax, name in zip(axes[0], names):
        frames = lengths.loc[lengths.dataset == name, "frames"].dropna().astype(int).to_numpy()
        if frames.size:
            width = max(1, -(-(frames.max() - frames.min() + 1) // max_bins))
            ax.hist(frames, bins=np.arange(frames.min(), frames.max() + width + 1, width) - 0.5,
                    color="tab:blue", edgecolor="white")
        ax.set(title=name, xlabel="frames per clip", ylabel="clips" if ax is axes[0][0] else "")
    fig.tight_layout()
    return fig
