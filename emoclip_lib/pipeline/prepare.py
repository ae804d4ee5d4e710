"""Data preparation (notebook 01): get a run's datasets, check them, and record where they are.

`prepare_data(run_dir, ...)` writes `<run_dir>/01_results.json`; notebooks 02-05 read it with
`load_results(run_dir)` and find a role's files with `dataset_paths(run_dir, role)`. Layout:

    {"format": "emoclip-prepare-1", "dataset": "synthetic", "seed": 0,
     "synth_size": "small",            # null for real data
     "mafw_subset": null,              # "single" | "compound" | "all" for mafw, else null
     "check_decode": true,             # whether validation decoded every video
     "datasets": {                     # role -> where its data is
       "train": {"name": "mafw_like", "manifest": "data/mafw_like/manifest.csv", "root": "data/mafw_like",
                 "classes": ["anger", ...], "folds": [1, 2, 3, 4, 5],
                 "descriptions": "data/class_descriptions.yaml"},  # null for real data
       "eval": {"name": "dfew_like", ..., "descriptions": "data/class_descriptions.yaml"},
       "interviews": {"name": "interviews", "manifest": "data/interviews/manifest.csv",
                      "root": "data/interviews", "items": [...], "latent_scores": "data/interviews/latent_scores.csv"}},
     "stats": {"mafw_like": {"rows": 1950, "samples": 390, "compound": 47,
                             "class_counts": {"anger": 40, ..., "anger+disgust": 6, ...},
                             "frames": {"min": 24, "median": 32.0, "mean": 32.19, "max": 40},
                             "problems": 0, "dropped_samples": 0},
               "interviews": {"rows": 120, "samples": 120, "subjects": 40, "frames": {...}, ...}, ...},
     "clip_lengths": "01_clip_lengths.csv",   # frames per sample: columns dataset, path, labels, frames
     "problems_file": null}                   # "01_problems.txt" when validation found problems

Paths are relative to run_dir, except the root of a real dataset outside run_dir, which is absolute:
`run_dir / path` works for both. Roles: `train` (synthetic: mafw_like, 11 classes + compound, captions;
real: the dataset, converted into `manifests/<dataset>.csv`), `eval` (synthetic: dfew_like, 7 classes,
new identities; real: the same dataset) and `interviews` (synthetic only). `descriptions` (train, eval)
is the synthetic world's class-descriptions YAML, written in its captions' vocabulary (see
`synth_descriptions`); null for real data (use data_manifests/class_descriptions.yaml). `stats` is keyed
by dataset name; `class_counts` counts distinct samples per manifest label (compounds under their own label).
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

from ..data import BASIC_CLASSES, CANONICAL_CLASSES
from ..data import convert
from ..errors import UserError
from ..io_utils import atomic_write
from .run_dir import run_relative, stage_path, write_stage
from .settings import RunSettings
from ..data import folds, read_interview_manifest, read_manifest, write_manifest
from ..data import file_problems, validate_manifest
from ..synth import SYNTH_VERSION, generate_world, resolve_size
from ..data import count_frames

LENGTHS_FILE = "01_clip_lengths.csv"
PROBLEMS_FILE = "01_problems.txt"
FORMAT = "emoclip-prepare-1"
WORLD_PARTS: tuple[str, ...] = ("mafw_like", "dfew_like", "interviews", "world.json")


def _world_info(data: Path, size: str, seed: int) -> dict | None:
    """The world.json of a generated world with this size, seed and generator version, else None."""
    try:
        info = json.loads((data / "world.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = (info.get("version"), info.get("size"), info.get("seed")) == (SYNTH_VERSION, size, seed)
    files = [*info.get("manifests", {}).values(), info.get("descriptions", "missing")]
    present = all((data / rel).is_file() for rel in files)
    return info if same and present else None


def _synthetic_entries(run: Path, size: str, seed: int, progress: bool) -> dict[str, dict]:
    """Generate the synthetic world into run/data (or reuse a matching one) and describe its roles."""
    resolve_size(size)
    data = run / "data"
    info = _world_info(data, size, seed)
    if info is None:
        for part in WORLD_PARTS:  # a world of another size/seed: remove it so no stale clip survives
            target = data / part
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        generate_world(data, size=size, seed=seed, progress=progress)
        info = json.loads((data / "world.json").read_text(encoding="utf-8"))
    entries = {}
    for role, corpus in (("train", "mafw_like"), ("eval", "dfew_like"), ("interviews", "interviews")):
        manifest = data / info["manifests"][corpus]
        entries[role] = {"name": corpus, "manifest": run_relative(manifest, run), "root": run_relative(manifest.parent, run)}
        if corpus in info.get("classes", {}):
            entries[role]["classes"] = list(info["classes"][corpus])
            entries[role]["descriptions"] = run_relative(data / info["descriptions"], run)
    latent = data / "interviews" / "latent_scores.csv"
    if latent.is_file():
        entries["interviews"]["latent_scores"] = run_relative(latent, run)
    return entries


def _real_entries(run: Path, name: str, data_root: str | Path | None, mafw_subset: str) -> dict[str, dict]:
    """Convert an official release into run/manifests/<name>.csv; train and eval are that dataset."""
    if data_root is None or str(data_root).strip() == "":
        raise UserError(f"dataset={name!r} needs data_root, the folder of the {name.upper()} release: "
                        f"emoclip reproduce --profile {name} --out runs/{name} -p data_root /path/to/{name.upper()}")
    rows = convert(name, data_root, **({"subset": mafw_subset} if name == "mafw" else {}))
    if not rows:
        raise UserError(f"no samples found under {data_root} for {name.upper()}; check the layout in "
                        f"data_manifests/README.md")
    manifest = run / "manifests" / f"{name}.csv"
    write_manifest(rows, manifest)
    classes = CANONICAL_CLASSES if name == "mafw" else BASIC_CLASSES
    entry = {"name": name, "manifest": run_relative(manifest, run), "root": run_relative(Path(data_root).expanduser(), run),
             "classes": list(classes), "descriptions": None}
    return {"train": entry, "eval": dict(entry)}


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
        params: flat-named parameters over `settings` (`dataset`, `data_root`, `synth_size`, `seed`,
            `mafw_subset`, `check_decode`, `strict`; see `settings.DataSettings`). A matching synthetic
            world in run_dir/data is reused; with `strict=False` samples with problems are dropped.
    Returns:
        the results dictionary (layout in the module docstring).
    """
    settings = (settings or RunSettings()).replace(params, where="prepare_data")
    data, seed = settings.data, settings.seed
    dataset, data_root, synth_size, mafw_subset = data.dataset, data.data_root, data.synth_size, data.mafw_subset
    check_decode, strict = data.check_decode, data.strict
    run = Path(run_dir).expanduser().resolve()
    run.mkdir(parents=True, exist_ok=True)
    stage_path(run, "01").unlink(missing_ok=True)  # a failed preparation leaves no results for later notebooks
    name = dataset
    if name == "synthetic":
        if data_root is not None:
            raise UserError("data_root is only for real datasets; for MAFW run e.g. emoclip reproduce "
                            "--profile mafw --out runs/mafw -p data_root /path/to/MAFW")
        entries = _synthetic_entries(run, synth_size, seed, progress)
    else:
        entries = _real_entries(run, name, data_root, mafw_subset)
    stats: dict[str, dict] = {}
    lengths: list[dict] = []
    problems: list[str] = []
    for role, entry in entries.items():
        if entry["name"] in stats:  # real data: eval is the train dataset
            entry.update(entries["train"])
            continue
        check = _check_interviews(run, entry, check_decode, progress) if role == "interviews" else \
            _check_samples(run, entry, check_decode, strict, progress)
        stats[entry["name"]], more_lengths, more_problems = check
        lengths += more_lengths
        problems += more_problems
    _record_problems(run, problems, strict)
    atomic_write(run / LENGTHS_FILE, lambda tmp: pd.DataFrame(lengths).to_csv(tmp, index=False))
    results = {"format": FORMAT, "dataset": name, "seed": seed,
               "synth_size": synth_size if name == "synthetic" else None,
               "mafw_subset": mafw_subset if name == "mafw" else None, "check_decode": check_decode,
               "datasets": entries, "stats": stats, "clip_lengths": LENGTHS_FILE,
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
    return json.loads(path.read_text(encoding="utf-8"))


def dataset_paths(run_dir: str | Path, role: str, results: dict | None = None) -> tuple[Path, Path]:
    """(manifest file, dataset root) of a role ("train", "eval", "interviews").

    Args:
        run_dir: the run directory.
        role: a key of `results["datasets"]`.
        results: from `load_results` (read when None).
    """
    results = results or load_results(run_dir)
    if role not in results["datasets"]:
        raise UserError(f"no {role!r} data in this run; roles: {', '.join(results['datasets'])}")
    entry = results["datasets"][role]
    return Path(run_dir) / entry["manifest"], Path(run_dir) / entry["root"]
