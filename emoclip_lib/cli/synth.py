"""`emoclip synth`: write the synthetic face-video world (runs anywhere, no licensed data).

`--layout official` (default) writes it as MAFW-, DFEW-, FERV39k- and AFEW-like releases laid out as the
real ones (`emoclip manifest mafw --root OUT/MAFW` converts them); `--layout manifest` writes the corpora
with ready manifests instead.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..synth import SIZES, generate_world, write_releases


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `synth` sub-command.

    Args:
        subparsers: the object returned by `ArgumentParser.add_subparsers`.
    """
    parser = subparsers.add_parser(
        "synth", help="generate the synthetic releases (MAFW-, DFEW-, FERV39k-, AFEW-like) and interview cohort",
        description="Render procedural face videos with captions, folds and symptom scores into --out.")
    parser.add_argument("--layout", choices=("official", "manifest"), default="official",
                        help="official: four releases laid out as the real ones (default); manifest: corpora "
                             "with ready manifests")
    parser.add_argument("--out", required=True, type=Path, help="output folder (must be empty unless --force)")
    parser.add_argument("--size", default="small", choices=list(SIZES), help="how much to generate (default: small)")
    parser.add_argument("--seed", type=int, default=0, help="world seed; the same seed gives identical files")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty folder, overwriting files with the same names")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    """Handle `emoclip synth`.

    Args:
        args: parsed arguments (out, size, seed, force, no_progress).
    """
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UserError(f"--out {out} is not empty: choose a new folder or pass --force to overwrite")
    if args.layout == "official":
        info = write_releases(out, size=args.size, seed=args.seed, progress=not args.no_progress)
        for name, folder in info["releases"].items():
            print(f"  {folder}: {info['counts'][name]} clips (emoclip manifest {name} --root {out / folder})")
        print(f"  interviews: {info['counts']['interviews']} videos ({out / info['interviews']})")
        print(f"  class descriptions: {out / info['descriptions']}")
        return 0
    summary = generate_world(out, size=args.size, seed=args.seed, progress=not args.no_progress)
    counts = summary["counts"]
    print(f"wrote {counts['mafw_like']} mafw_like clips, {counts['dfew_like']} dfew_like clips and "
          f"{counts['interviews']} interview videos ({counts['interview_subjects']} subjects) to {out}")
    for name, path in summary["paths"].items():
        print(f"  {name}: {path}")
    print(f"  class descriptions: {summary['descriptions_path']}")
    return 0
