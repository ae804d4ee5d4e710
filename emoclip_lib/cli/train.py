"""`emoclip train`: notebooks 01-03 (prepare, curate, train) without Jupyter (`pipeline.stages.run_train`).

    emoclip train --profile synthetic --out runs/demo [-p KEY VALUE ...] [--stage all|prepare|curate|train]

Several processes (DDP): prepare and curate in one process, then train under torchrun:

    emoclip train --profile P --out R --stage prepare
    emoclip train --profile P --out R --stage curate
    torchrun --nproc_per_node 2 -m emoclip_lib.cli train --profile P --out R --stage train
"""
from __future__ import annotations

import argparse

from ..pipeline import TRAIN_STAGES, run_train
from .options import add_run_options, overrides

EPILOG = ("DDP: run --stage prepare and --stage curate in one process first, then `torchrun --nproc_per_node N "
          "-m emoclip_lib.cli train ... --stage train` with the same profile and -p options.")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` sub-command.

    Args:
        sub: the `emoclip` sub-parsers.
    """
    p = sub.add_parser("train", help="prepare data, curate captions and train EmoCLIP (notebooks 01-03)",
                       description=__doc__.split("\n\n")[0], epilog=EPILOG)
    add_run_options(p, "run directory (stages done with the same parameters are skipped)")
    p.add_argument("--stage", choices=("all", *TRAIN_STAGES), default="all",
                   help="run only this stage (default: all three in order)")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    run_train(args.profile, args.out, overrides(args), stage=args.stage, progress=not args.no_progress,
              force=args.force)
    return 0
