"""Notebook 02's pipeline: curate the training captions of a run and record the result."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..captions.curate import CurationReport, curate, summary_json
from ..data.manifest import read_manifest, write_manifest
from .prepare import dataset_paths, load_results
from ..runtime import write_stage

CURATED_MANIFEST = "manifests/train_curated.csv"


def curate_run(run_dir: str | Path, shorten: bool = True, max_tokens: int = 75, threshold: float = 0.8,
               seed: int = 0, progress: bool = False) -> tuple[CurationReport, dict[str, Any]]:
    """Clean and audit the `train` role's captions; write the curated manifest and `02_results.json`.

    Args:
        run_dir: run directory prepared by notebook 01.
        shorten: shorten captions over `max_tokens` at a sentence or word boundary.
        max_tokens: CLIP content tokens (77 minus start and end).
        threshold: near-duplicate similarity threshold.
        seed: MinHash seed.
        progress: show progress bars.
    """
    run = Path(run_dir)
    prepared = load_results(run)
    manifest, root = dataset_paths(run, "train", prepared)
    curated, report = curate(read_manifest(manifest), shorten=shorten, max_tokens=max_tokens,
                             threshold=threshold, seed=seed, progress=progress)
    write_manifest(curated, run / CURATED_MANIFEST)
    results = {
        "dataset": prepared["datasets"]["train"]["name"],
        "curated_manifest": CURATED_MANIFEST,
        "root": prepared["datasets"]["train"]["root"],
        "seed": seed,
        **summary_json(report),
    }
    write_stage(run, "02", results)
    return report, results
