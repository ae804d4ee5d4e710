"""The `emoclip` command: one sub-command per pipeline step.

Each module of `emoclip_lib.cli` defines `register(subparsers)`, adding its sub-commands with
`set_defaults(func=handler)`, where `handler(args) -> int` returns the exit code.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import UserError
from . import data, downstream, evaluate, predict, reproduce, synth, train

COMMANDS = (reproduce, data, synth, evaluate, downstream, predict, train)  # each adds its sub-commands


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="emoclip", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


INTERRUPTED = 130  # the exit status of a command stopped with Ctrl-C (128 + SIGINT)


def _os_error_line(err: OSError) -> str:
    """One line for an OSError: the path it concerns, what went wrong, what to check."""
    reason = " ".join(str(err.strerror or err).split())
    if err.filename is None:
        return f"{reason}; check the paths given and their permissions"
    names = str(err.filename) + (f" -> {err.filename2}" if err.filename2 is not None else "")
    return f"{names}: {reason}; check that path, its folder and their permissions"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user mistakes and file-system errors print one line and exit with status 2.

    Ctrl-C prints one line and exits with status 130 (the run folders and caches keep what was finished).

    Args:
        argv: arguments without the program name (defaults to `sys.argv[1:]`).
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"emoclip {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"emoclip {args.command}: error: {_os_error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"emoclip {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return INTERRUPTED
