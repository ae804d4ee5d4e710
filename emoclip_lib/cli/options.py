"""Command-line options shared by the commands that write a run folder (`reproduce`, `train`)."""
from __future__ import annotations

import argparse
from typing import Any

from ..errors import UserError
from ..pipeline import parse_override


def add_run_options(p: argparse.ArgumentParser, out_help: str) -> None:
    """Add --profile, --out, -p, --force and --no-progress.

    Args:
        p: the sub-command's parser.
        out_help: what --out is, for the help text.
    """
    p.add_argument("--profile", default="synthetic", help="profiles/NAME.yaml or a YAML path")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="override a profile parameter (repeatable)")
    p.add_argument("--force", action="store_true", help="delete an existing run (a folder with run.json) first")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The `-p KEY VALUE` pairs, values parsed as YAML.

    Args:
        args: the parsed command line.
    """
    return {key: parse_override(value) for key, value in args.param}


def parse_folds(text: str | None) -> list[int] | None:
    """`--folds 1,2,3` as a list of fold numbers (None when not given).

    Args:
        text: the option's value.
    """
    if text is None:
        return None
    try:
        folds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--folds {text!r}: give fold numbers separated by commas, e.g. 1,2,3") from None
    if not folds or min(folds) < 1:
        raise UserError(f"--folds {text!r}: give fold numbers from 1, separated by commas")
    return folds
