"""Notebook 02's pipeline: curate the training captions of a run and record the result."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..captions import CurationReport, curate, summary_json
from ..data import read_manifest, write_manifest
from .prepare import dataset_paths, load_results, train_dataset
from .run_dir import CURATED_MANIFEST, write_stage
from .settings import RunSettings


def curate_run(run_dir: str | Path, settings: RunSettings | None = None, progress: bool = False,
               **params: Any) -> tuple[CurationReport, dict[str, Any]]:
    """Clean and audit the `train` role's captions; write the curated manifest and `02_results.json`.

    Args:
        run_dir: run directory prepared by notebook 01.
        settings: the run's settings (`settings.curation` and `seed`, the MinHash seed; default `RunSettings()`).
        progress: show progress bars.
        params: flat-named parameters over `settings` (`shorten`, `max_tokens`, `near_duplicate_threshold`,
            `seed`; see `settings.CurationSettings`).
    """
    settings = (settings or RunSettings()).replace(params, where="curate_run")
    cur, run = settings.curation, Path(run_dir)
    prepared = load_results(run)
    train = train_dataset(prepared)
    manifest, root = dataset_paths(run, train["name"], prepared)
    curated, report = curate(read_manifest(manifest), shorten=cur.shorten, max_tokens=cur.max_tokens,
                             threshold=cur.near_duplicate_threshold, seed=settings.seed, progress=progress)
    write_manifest(curated, run / CURATED_MANIFEST)
    results = {
        "dataset": train["name"],
        "curated_manifest": CURATED_MANIFEST,
        "root": train["root"],
        "seed": settings.seed,
        **summary_json(report),
    }
    write_stage(run, "02", results)
    return report, results
