"""`emoclip evaluate`: score a checkpoint zero-shot on a dataset's test splits (the paper's protocol).

    emoclip evaluate --checkpoint best.pt --dataset dfew --root /data/DFEW --out dfew.json
    emoclip evaluate --checkpoint emoclip_downstream.pth --text-tower ViT-B/32 --dataset afew --root /data/AFEW --out afew.json
    emoclip evaluate --checkpoint clip:ViT-B/32 --dataset ferv39k --root /data/FERV39k --out clip.json

Writes the JSON results and a markdown table beside them (same name, `.md`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data import BASIC_CLASSES, CANONICAL_CLASSES, DATASETS, DISPLAY_NAMES, convert, read_manifest
from ..errors import UserError
from ..io_utils import atomic_write, atomic_write_json
from ..runtime import resolve_device
from ..zeroshot import BASELINES, METHODS, EvalProtocol, evaluate_dataset, load_eval_model, results_markdown
from .options import parse_folds


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `evaluate` sub-command.

    Args:
        sub: the `emoclip` sub-parsers.
    """
    p = sub.add_parser("evaluate", help="zero-shot UAR/WAR of a checkpoint on a dataset's test splits",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint (ours or official), or clip:NAME for CLIP alone")
    p.add_argument("--text-tower", help="CLIP whose text tower completes a visual-only (downstream) checkpoint")
    p.add_argument("--dataset", required=True, choices=DATASETS, help="which dataset (decides the class set)")
    p.add_argument("--root", help="the release folder (converted on the fly), or the root of --manifest's paths")
    p.add_argument("--manifest", help="a manifest CSV instead of the release (paths relative to --root or its folder)")
    p.add_argument("--descriptions", help="class-descriptions YAML (ours or the official flat format)")
    p.add_argument("--folds", help="comma-separated folds to score (default: every fold)")
    p.add_argument("--clip-len", type=int, default=EvalProtocol.clip_len, help="kept frames per clip (default 32)")
    p.add_argument("--downsample", type=int, default=EvalProtocol.downsample, help="keep every N-th frame (default 4)")
    p.add_argument("--window", choices=("centre", "random"), default="centre",
                   help="centred window (default) or the official random start (seeded by --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of --window random")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=EvalProtocol.batch_size, help="clips per frame-tower pass")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="frame encoding (auto: bf16/fp16 on CUDA, fp32 on CPU)")
    p.add_argument("--cache", help="frame-embedding cache folder (default: .emoclip_cache beside --out)")
    p.add_argument("--out", required=True, help="results JSON to write (a .md table is written beside it)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run_evaluate)


def _rows(args: argparse.Namespace) -> tuple[list, Path]:
    if args.manifest:
        manifest = Path(args.manifest)
        return read_manifest(manifest, known=None), Path(args.root) if args.root else manifest.parent
    if not args.root:
        raise UserError("say where the data is: --root /path/to/the/release (or --manifest FILE)")
    return convert(args.dataset, args.root), Path(args.root)


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of `emoclip evaluate`.

    Args:
        args: parsed arguments.
    """
    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise UserError(f"--out {out}: use a file name ending in .json")
    protocol = EvalProtocol(args.clip_len, args.downsample, args.window, args.seed, args.batch_size, args.precision)
    rows, root = _rows(args)
    classes = CANONICAL_CLASSES if args.dataset == "mafw" else BASIC_CLASSES
    device = resolve_device(args.device)
    model, record = load_eval_model(args.checkpoint, device, args.text_tower, args.seed)
    methods = BASELINES if record["clip_only"] else tuple(METHODS)
    results = evaluate_dataset(model, rows, root, classes, protocol, Path(args.cache or out.parent / ".emoclip_cache"),
                               device, methods, parse_folds(args.folds), args.descriptions,
                               progress=not args.no_progress)
    results = {"dataset": DISPLAY_NAMES[args.dataset], "checkpoint": record, **results}
    atomic_write_json(results, out)
    table = results_markdown(results)
    atomic_write(out.with_suffix(".md"), lambda tmp: tmp.write_text(table, encoding="utf-8"))
    print(table, end="")
    return 0
