"""`emoclip reproduce`: the notebook chain, headless."""
from __future__ import annotations

import argparse

from ..pipeline.reproduce import parse_override, reproduce


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `reproduce` sub-command.

    Args:
        sub: the `emoclip` sub-parsers.
    """
    p = sub.add_parser("reproduce", help="run the numbered notebooks in order with papermill")
    p.add_argument("--profile", default="synthetic", help="profiles/NAME.yaml or a YAML path")
    p.add_argument("--out", required=True, help="run directory (resumed if it holds the same run)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="override a profile parameter (repeatable)")
    p.add_argument("--force", action="store_true", help="delete an existing run directory and start again")
    p.add_argument("--no-progress", action="store_true", help="hide papermill's progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = {key: parse_override(value) for key, value in args.param}
    out = reproduce(args.profile, args.out, overrides, force=args.force, progress=not args.no_progress)
    print(f"run finished: {out}")
    return 0
