"""Data preparation (notebook 01): get a run's datasets, check them, and record where they are.

Every dataset takes the real-data road: an official release (MAFW, DFEW, FERV39k, AFEW; its folder in
`mafw_root`, `dfew_root`, ...) is converted into `manifests/<name>.csv` by `data.converters` and validated
row by row. The embedded default (`synth_size`) first writes the synthetic world as four releases in the
official layouts (`synth.write_releases`) into `<run_dir>/data/` and points every root left unset at them.
`prepare_data(run_dir, ...)` writes `<run_dir>/01_results.json`; notebooks 02-05 read it with
`load_results(run_dir)` and find a dataset's files with `dataset_paths(run_dir, name)`. Layout:

    {"format": "emoclip-prepare-2", "seed": 0, "synth_size": "small" | null, "mafw_subset": "all",
     "check_decode": true,
     "train": "mafw" | null,                 # the captioned dataset notebooks 02-03 train on
     "datasets": {"mafw": {"name": "mafw", "display": "MAFW", "manifest": "manifests/mafw.csv",
                           "root": "data/MAFW", "classes": [...], "folds": [1, 2, 3, 4, 5],
                           "descriptions": "data/class_descriptions.yaml" | null}, "dfew": {...}, ...},
     "interviews": {"name": "interviews", "manifest", "root", "items": [...], "latent_scores"} | null,
     "stats": {"mafw": {"rows", "samples", "compound", "class_counts", "frames", "problems",
                        "dropped_samples"}, ..., "interviews": {...}},
     "clip_lengths": "01_clip_lengths.csv", "problems_file": null | "01_problems.txt"}

Paths are relative to run_dir, except a release outside run_dir, which is absolute: `run_dir / path`
works for both. `descriptions` is the class-descriptions YAML that comes with the data (the synthetic
world's, written in its captions' vocabulary); null for real data (the shipped file is used).
With `strict=False`, samples with problems are dropped into `manifests/<name>.clean.csv` (interview
problems are only counted); every problem is listed in `01_problems.txt` either way.
Tables and figures of the prepared data (notebook 01): `emoclip_lib.pipeline.prepare_views`.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data import (BASIC_CLASSES, CANONICAL_CLASSES, DATASETS, DISPLAY_NAMES, convert, count_frames, file_problems, folds,
                    read_interview_manifest, read_manifest, validate_manifest, write_manifest)
from ..errors import UserError
from ..io_utils import atomic_write
from ..synth import RELEASE_DIRS, SYNTH_VERSION, releases_info, resolve_size, write_releases
from .run_dir import run_relative, stage_path, write_stage
from .settings import RunSettings

LENGTHS_FILE = "01_clip_lengths.csv"
PROBLEMS_FILE = "01_problems.txt"
FORMAT = "emoclip-prepare-2"
WORLD_PARTS: tuple[str, ...] = (*RELEASE_DIRS.values(), "interviews", "class_descriptions.yaml", "world.json")


def _synthetic_world(run: Path, size: str, seed: int, progress: bool) -> dict:
    """The synthetic releases in run/data: reused when they match size, seed and version, else written anew."""
    resolve_size(size)
    data = run / "data"
    info = releases_info(data)
    if info is None or (info.get("version"), info.get("size"), info.get("seed")) != (SYNTH_VERSION, size, seed):
        for part in WORLD_PARTS:  # a world of another size/seed: remove what the generator wrote, nothing else
            target = data / part
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        info = write_releases(data, size=size, seed=seed, progress=progress)
    return info


def _release_entry(run: Path, name: str, root: Path, mafw_subset: str, descriptions: str | None) -> dict:
    """Convert an official release into run/manifests/<name>.csv and describe it."""
    rows = convert(name, root, **({"subset": mafw_subset} if name == "mafw" else {}))
    if not rows:
        raise UserError(f"no samples found under {root} for {DISPLAY_NAMES[name]}; check the layout in "
                        f"data_manifests/README.md")
    manifest = run / "manifests" / f"{name}.csv"
    write_manifest(rows, manifest)
    classes = CANONICAL_CLASSES if name == "mafw" else BASIC_CLASSES
    return {"name": name, "display": DISPLAY_NAMES[name], "manifest": run_relative(manifest, run),
            "root": run_relative(root, run), "classes": list(classes), "descriptions": descriptions}


def _entries(run: Path, settings: RunSettings, progress: bool) -> tuple[dict[str, dict], dict | None]:
    """Every dataset the run has (converted) and its interview cohort (synthetic world only)."""
    d = settings.data
    roots = {name: getattr(d, f"{name}_root") for name in DATASETS}
    interviews, descriptions, from_world = None, None, set()
    if d.synth_size is not None:
        from_world = {name for name, root in roots.items() if root in (None, "")}
        info = _synthetic_world(run, d.synth_size, settings.seed, progress)
        data = run / "data"
        roots = {name: root or str(data / info["releases"][name]) for name, root in roots.items()}
        descriptions = run_relative(data / info["descriptions"], run)
        manifest = data / info["interviews"]
        interviews = {"name": "interviews", "manifest": run_relative(manifest, run),
                      "root": run_relative(manifest.parent, run),
                      "latent_scores": run_relative(data / info["latent_scores"], run)}
    given = {name: Path(root).expanduser() for name, root in roots.items() if root not in (None, "")}
    if not given:
        raise UserError("no dataset: give the folder of an official release (-p mafw_root /path/to/MAFW, "
                        "dfew_root, ferv39k_root, afew_root) or generate the synthetic world (-p synth_size small)")
    return {name: _release_entry(run, name, root, d.mafw_subset, descriptions if name in from_world else None)
            for name, root in given.items()}, interviews


def _frame_stats(frames: list[int | None]) -> dict[str, float | int | None]:
    """min/median/mean/max of the readable clip lengths (rounded)."""
    ok = np.array([f for f in frames if f is not None])
    if ok.size == 0:
        return {"min": None, "median": None, "mean": None, "max": None}
    return {"min": int(ok.min()), "median": float(np.median(ok)), "mean": round(float(ok.mean()), 2),
            "max": int(ok.max())}


def _lengths(name: str, rows: list, root: Path) -> list[dict[str, Any]]:
    """Frames per distinct sample (None when unreadable: validation reports why)."""
    out = []
    for row in {r.path: r for r in rows}.values():
        try:
            frames: int | None = count_frames(root / row.path)
        except UserError:
            frames = None
        out.append({"dataset": name, "path": row.path, "labels": getattr(row, "labels", ""), "frames": frames})
    return out


def _problem_lines(entry: dict, problems: list, root: Path) -> list[str]:
    """Problems as 'manifest: row N: path: message', without the absolute dataset root."""
    prefix = str(root) + "/"
    return [f"{entry['manifest']}: {str(p).replace(prefix, '')}" for p in problems]


def _check_samples(run: Path, entry: dict, check_decode: bool, strict: bool,
                   progress: bool) -> tuple[dict, list[dict], list[str]]:
    """Validate a sample manifest; returns (stats, per-sample lengths, problem lines); may drop bad samples."""
    root = run / entry["root"]
    rows = read_manifest(run / entry["manifest"], known=None)
    report = validate_manifest(rows, root, check_decode=check_decode, progress=progress,
                               known=tuple(entry.get("classes", CANONICAL_CLASSES)))
    lines = _problem_lines(entry, report.problems, root)
    bad = {p.path for p in report.problems}
    if bad and not strict:
        rows = [r for r in rows if r.path not in bad]
        clean = run / "manifests" / f"{entry['name']}.clean.csv"
        write_manifest(rows, clean)
        entry["manifest"] = run_relative(clean, run)
    entry["folds"] = folds(rows)
    lengths = _lengths(entry["name"], rows, root)
    samples = {r.path: r.labels for r in rows}
    counts = Counter(samples.values())
    order = [c for c in CANONICAL_CLASSES if c in counts] + sorted(c for c in counts if c not in CANONICAL_CLASSES)
    stats = {"rows": len(rows), "samples": len(samples), "compound": sum("+" in lab for lab in samples.values()),
             "class_counts": {c: counts[c] for c in order},
             "frames": _frame_stats([x["frames"] for x in lengths]),
             "problems": len(report.problems), "dropped_samples": len(bad) if not strict else 0}
    return stats, lengths, lines


def _check_interviews(run: Path, entry: dict, check_decode: bool,
                      progress: bool) -> tuple[dict, list[dict], list[str]]:
    """Read the interview manifest and check its videos; returns (stats, lengths, problem lines)."""
    root = run / entry["root"]
    rows, items = read_interview_manifest(run / entry["manifest"])
    entry["items"] = items
    problems = file_problems(rows, root, check_decode=check_decode, progress=progress)
    lengths = _lengths(entry["name"], rows, root)
    stats = {"rows": len(rows), "samples": len(rows), "subjects": len({r.subject for r in rows}),
             "frames": _frame_stats([x["frames"] for x in lengths]), "problems": len(problems),
             "dropped_samples": 0}
    return stats, lengths, _problem_lines(entry, problems, root)


def _record_problems(run: Path, problems: list[str], strict: bool) -> None:
    """Write every problem to 01_problems.txt (removed when none); strict: raise a UserError showing the first."""
    path = run / PROBLEMS_FILE
    if not problems:
        path.unlink(missing_ok=True)
        return
    atomic_write(path, lambda tmp: tmp.write_text("\n".join(problems) + "\n", encoding="utf-8"))
    if not strict:
        return
    shown = "\n  ".join(problems[:10])
    raise UserError(f"{len(problems)} data problem(s) (all listed in {path}):\n  {shown}\nfix the files or the "
                    f"manifest, or pass strict=False (-p strict false) to drop the samples with problems")


def prepare_data(run_dir: str | Path, settings: RunSettings | None = None, progress: bool = True,
                 **params: Any) -> dict:
    """Make a run's data ready: generate or convert, validate, count; write `<run_dir>/01_results.json`.

    Args:
        run_dir: the run directory (created).
        settings: the run's settings (`settings.data` and `seed` are used; default `RunSettings()`).
        progress: show progress bars.
        params: flat-named parameters over `settings` (`synth_size`, `mafw_root`, `dfew_root`, `ferv39k_root`,
            `afew_root`, `mafw_subset`, `check_decode`, `strict`, `seed`; see `settings.DataSettings`).
    Returns:
        the results dictionary (layout in the module docstring).
    """
    settings = (settings or RunSettings()).replace(params, where="prepare_data")
    d, run = settings.data, Path(run_dir).expanduser().resolve()
    run.mkdir(parents=True, exist_ok=True)
    stage_path(run, "01").unlink(missing_ok=True)  # a failed preparation leaves no results for later notebooks
    entries, interviews = _entries(run, settings, progress)
    stats: dict[str, dict] = {}
    lengths: list[dict] = []
    problems: list[str] = []
    for entry in [*entries.values(), *([interviews] if interviews else [])]:
        check = _check_interviews(run, entry, d.check_decode, progress) if entry is interviews else \
            _check_samples(run, entry, d.check_decode, d.strict, progress)
        stats[entry["name"]], more_lengths, more_problems = check
        lengths += more_lengths
        problems += more_problems
    _record_problems(run, problems, d.strict)
    atomic_write(run / LENGTHS_FILE, lambda tmp: pd.DataFrame(lengths).to_csv(tmp, index=False))
    results = {"format": FORMAT, "seed": settings.seed, "synth_size": d.synth_size, "mafw_subset": d.mafw_subset,
               "check_decode": d.check_decode, "train": "mafw" if "mafw" in entries else None,
               "datasets": entries, "interviews": interviews, "stats": stats, "clip_lengths": LENGTHS_FILE,
               "problems_file": PROBLEMS_FILE if problems else None}
    write_stage(run, "01", results)
    return results


def load_results(run_dir: str | Path) -> dict:
    """Read `<run_dir>/01_results.json` (written by `prepare_data`).

    Args:
        run_dir: the run directory.
    """
    path = stage_path(run_dir, "01")
    if not path.is_file():
        raise UserError(f"{path} not found: run notebooks/01_data_preparation.ipynb (or `emoclip reproduce`) "
                        f"with this run_dir first")
    results = json.loads(path.read_text(encoding="utf-8"))
    if results.get("format") != FORMAT:
        raise UserError(f"{path} was written by an older version of the suite: run notebook 01 again "
                        f"(or `emoclip reproduce --force` on a run folder of its own)")
    return results


def dataset_paths(run_dir: str | Path, name: str, results: dict | None = None) -> tuple[Path, Path]:
    """(manifest file, dataset root) of a dataset ("mafw", "dfew", ...) or of the "interviews".

    Args:
        run_dir: the run directory.
        name: a key of `results["datasets"]`, or "interviews".
        results: from `load_results` (read when None).
    """
    results = results or load_results(run_dir)
    entry = results["interviews"] if name == "interviews" else results["datasets"].get(name)
    if entry is None:
        known = [*results["datasets"], *(["interviews"] if results["interviews"] else [])]
        raise UserError(f"no {name!r} data in this run; it has: {', '.join(known)}")
    return Path(run_dir) / entry["manifest"], Path(run_dir) / entry["root"]


def train_dataset(results: dict) -> dict:
    """The entry of the dataset the run trains on (MAFW), or a UserError saying how to give it.

    Args:
        results: from `load_results`.
    """
    if results.get("train") is None:
        raise UserError("this run has no training data: training needs MAFW's captions (-p mafw_root "
                        "/path/to/MAFW, or the synthetic world with -p synth_size small)")
    return results["datasets"][results["train"]]
