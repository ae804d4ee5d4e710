"""`emoclip reproduce`: the notebook chain, headless."""
from __future__ import annotations

import argparse

from ..pipeline import read_stage, reproduce, stage_path, summary_text
from .options import add_run_options, overrides


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `reproduce` sub-command.

    Args:
        sub: the `emoclip` sub-parsers.
    """
    p = sub.add_parser("reproduce", help="run the numbered notebooks in order with papermill")
    add_run_options(p, "run directory (resumed if it holds the same run)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    out = reproduce(args.profile, args.out, overrides(args), force=args.force, progress=not args.no_progress)
    if stage_path(out, "04").is_file():  # the profile ran notebook 04
        print(summary_text(read_stage(out, "04")))
    print(f"run finished: {out}")
    return 0
