"""The `emoclip` command: one sub-command per pipeline step.

Each module of `emoclip_lib.cli` defines `register(subparsers)`, adding its sub-commands with
`set_defaults(func=handler)`, where `handler(args) -> int` returns the exit code.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import UserError
from . import data, downstream, predict, reproduce, synth, train

COMMANDS = (reproduce, data, synth, downstream, predict, train)  # each adds its sub-commands


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="emoclip", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user mistakes print a one-line error and exit with status 2.

    Args:
        argv: arguments without the program name (defaults to `sys.argv[1:]`).
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"emoclip {args.command}: error: {err}", file=sys.stderr)
        return 2

