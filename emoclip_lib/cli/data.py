"""`emoclip manifest` (official release -> manifest CSV) and `emoclip validate` (check a manifest)."""
from __future__ import annotations

import argparse
import sys

from ..data import DATASETS, convert
from ..data import MAFW_SUBSETS
from ..data import read_manifest, write_manifest
from ..data import validate_manifest
from ..io_utils import check_output_path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `manifest` and `validate` sub-commands.

    Args:
        subparsers: the object returned by `ArgumentParser.add_subparsers`.
    """
    p = subparsers.add_parser("manifest", help="build a manifest CSV from an official dataset release",
                              description="Build a manifest CSV from an official dataset release "
                                          "(layouts: data_manifests/README.md).")
    p.add_argument("dataset", choices=DATASETS, help="which dataset the release is")
    p.add_argument("--root", required=True, help="the dataset's root folder")
    p.add_argument("--out", required=True, help="manifest CSV to write")
    p.add_argument("--subset", choices=MAFW_SUBSETS, default="all",
                   help="MAFW only: single and compound sets (all), or one of them (default: all)")
    p.set_defaults(func=run_manifest)

    v = subparsers.add_parser("validate", help="check a manifest against its dataset",
                              description="Check that every file exists and decodes, labels are known, folds "
                                          "are consistent and captions are clean; exit status 1 on any problem.")
    v.add_argument("file", help="manifest CSV")
    v.add_argument("--root", required=True, help="dataset root the manifest paths are relative to")
    v.add_argument("--no-decode", action="store_true", help="only check that files exist (faster)")
    v.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    v.set_defaults(func=run_validate)


def run_manifest(args: argparse.Namespace) -> int:
    """Handler of `emoclip manifest`.

    Args:
        args: parsed arguments (dataset, root, out, subset).
    """
    check_output_path(args.out, "--out")
    options = {"subset": args.subset} if args.dataset == "mafw" else {}
    rows = convert(args.dataset, args.root, **options)
    write_manifest(rows, args.out)
    report = validate_manifest(rows, args.root, check_decode=False)
    print(f"wrote {len(rows)} rows to {args.out}")
    print(report.summary())
    if not report.ok:
        print(f"{len(report.problems)} problem(s) found without decoding, e.g. {report.problems[0]}; "
              f"run `emoclip validate {args.out} --root {args.root}` for the full list")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    """Handler of `emoclip validate`: summary, then one line per problem; 1 if any problem.

    Args:
        args: parsed arguments (file, root, no_decode, no_progress).
    """
    rows = read_manifest(args.file, known=None)
    report = validate_manifest(rows, args.root, check_decode=not args.no_decode,
                               progress=not args.no_progress and sys.stderr.isatty())
    print(report.summary())
    for problem in report.problems:
        print(f"{args.file}: {problem}")
    if report.ok:
        print("manifest OK")
        return 0
    return 1
