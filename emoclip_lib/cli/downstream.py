"""`emoclip features` (interview videos -> feature file) and `emoclip regress` (features -> severity results)."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ..data import FaceCrop
from ..downstream import MODELS, load_features, save_features
from ..downstream import extract_features, feature_matrix, subject_features
from ..errors import UserError
from ..features import ENCODERS
from ..io_utils import atomic_write, atomic_write_json, check_output_path, json_cell
from ..runtime import resolve_device


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `features` and `regress` sub-commands.

    Args:
        sub: the `emoclip` sub-parsers.
    """
    f = sub.add_parser("features", help="embed interview videos (sliding windows) into a feature file")
    f.add_argument("manifest", help="interview manifest CSV: path,subject,session,<item scores...>")
    f.add_argument("--root", required=True, help="folder the manifest paths are relative to")
    f.add_argument("--checkpoint", required=True, help="EmoCLIP checkpoint (this project's or official)")
    f.add_argument("--encoder", choices=ENCODERS, default="emoclip", help="video encoder or CLIP frame average")
    f.add_argument("--clip-len", type=int, default=32, help="kept frames per window (default 32)")
    f.add_argument("--downsample", type=int, default=4, help="keep every N-th frame (default 4)")
    f.add_argument("--stride", type=int, default=None, help="window step in kept frames (default: clip length)")
    f.add_argument("--stats", default="mean,std", help="per-video statistics, e.g. mean,std,q10,q90")
    f.add_argument("--crop-faces", action="store_true", help="crop the face (Haar cascade) before encoding")
    f.add_argument("--face-margin", type=float, default=0.25, help="context around the face box (fraction)")
    f.add_argument("--min-face", type=int, default=40, help="smallest face side in pixels")
    f.add_argument("--face-every", type=int, default=5, help="detect faces on every N-th frame")
    f.add_argument("--full-frame-fallback", action="store_true",
                   help="use the full frame for videos where no face is found (default: error)")
    f.add_argument("--cache", required=True, help="window-embedding cache folder")
    f.add_argument("--out", required=True, help="feature file to write (.npz)")
    f.add_argument("--device", default="auto", help="cpu, cuda, cuda:1... (default: cuda when available)")
    f.add_argument("--batch", type=int, default=16, help="windows encoded at once")
    f.add_argument("--no-progress", action="store_true", help="hide progress bars")
    f.set_defaults(func=run_features)

    r = sub.add_parser("regress", help="cross-validated symptom-severity regression from a feature file")
    r.add_argument("features", help="feature file from `emoclip features`")
    r.add_argument("--models", default="ridge,svr,mlp", help="comma-separated: ridge, svr, mlp")
    r.add_argument("--level", choices=("video", "subject"), default="subject",
                   help="one sample per video (subject-grouped folds) or per subject (features averaged)")
    r.add_argument("--aggregate", action="store_true", help="video level: score per-subject mean predictions")
    r.add_argument("--out", required=True, help="results JSON to write")
    r.add_argument("--predictions", default=None, help="also write out-of-fold predictions to this CSV")
    r.add_argument("--seed", type=int, default=0, help="seed of folds, MLP and bootstrap")
    r.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for CIs (0: none)")
    r.add_argument("--outer-folds", type=int, default=5, help="outer cross-validation folds")
    r.add_argument("--inner-folds", type=int, default=3, help="inner (hyperparameter) folds")
    r.add_argument("--no-progress", action="store_true", help="hide progress bars")
    r.set_defaults(func=run_regress)


def run_features(args: argparse.Namespace) -> int:
    """Handler of `emoclip features`.

    Args:
        args: parsed arguments.
    """
    from ..model import load_checkpoint

    for name in ("clip_len", "downsample", "batch", "stride"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    check_output_path(args.out, "--out")
    device = resolve_device(args.device)
    crop = None
    if args.crop_faces:
        crop = FaceCrop(margin=args.face_margin, min_size=args.min_face, every=args.face_every,
                        full_frame=args.full_frame_fallback)
    stats = [s.strip() for s in args.stats.split(",") if s.strip()]
    try:
        model = load_checkpoint(args.checkpoint, device)
    except UserError as err:  # torch's unpickling messages span lines: keep the error to one line
        raise UserError(" ".join(str(err).split())) from None
    table = extract_features(args.manifest, args.root, model, args.encoder, args.cache, args.clip_len,
                             args.downsample, args.stride, crop, stats, device, args.batch,
                             progress=not args.no_progress)
    save_features(table, args.out, {"checkpoint": str(args.checkpoint), "manifest": str(args.manifest)})
    print(f"wrote features of {len(table)} videos ({len(table['features'].iloc[0])} values each) to {args.out}")
    return 0


def regress_models(text: str) -> list[str]:
    """The `--models` list of `emoclip regress`, checked.

    Args:
        text: comma-separated model names, e.g. "ridge,svr".
    """
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise UserError(f"--models {text!r} names no model: give one or more of {','.join(MODELS)}, "
                        f"comma-separated")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise UserError(f"--models: unknown model {unknown[0]!r}; choose among {', '.join(MODELS)}")
    twice = [m for i, m in enumerate(models) if m in models[:i]]
    if twice:
        raise UserError(f"--models lists {twice[0]!r} twice; list each model once")
    return models


def _check_regress_options(args: argparse.Namespace) -> list[str]:
    """The checked model list; every number and output path is checked too, before any work."""
    models = regress_models(args.models)
    if args.n_boot < 0:
        raise UserError(f"--n-boot must be 0 (no intervals) or more, got {args.n_boot}")
    for name in ("outer_folds", "inner_folds"):
        if getattr(args, name) < 2:
            raise UserError(f"--{name.replace('_', '-')} must be at least 2 (cross-validation needs two "
                            f"folds), got {getattr(args, name)}")
    check_output_path(args.out, "--out")
    if args.predictions:
        check_output_path(args.predictions, "--predictions")
    return models


def run_regress(args: argparse.Namespace) -> int:
    """Handler of `emoclip regress`: prints the result table and writes it as JSON.

    Args:
        args: parsed arguments.
    """
    from ..downstream import regress_items

    models = _check_regress_options(args)
    table = load_features(args.features)
    if args.level == "subject":
        table = subject_features(table)
    items = table.attrs["items"]
    result = regress_items(feature_matrix(table), {i: table[i].to_numpy(np.float64) for i in items},
                           table["subject"].to_numpy(), models=models, seed=args.seed, n_boot=args.n_boot,
                           outer_folds=args.outer_folds, inner_folds=args.inner_folds,
                           aggregate=args.aggregate and args.level == "video", progress=not args.no_progress)
    for item, reason in result.skipped.items():
        print(f"note: item {item!r} skipped: {reason}", file=sys.stderr)
    print(result.table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    records = [{k: json_cell(v) for k, v in row.items()} for row in result.table.to_dict("records")]
    atomic_write_json({"features": str(args.features), "level": args.level, "aggregate": args.aggregate,
                       "models": models, "seed": args.seed, "n_boot": args.n_boot,
                       "outer_folds": args.outer_folds, "inner_folds": args.inner_folds,
                       "feature_settings": table.attrs.get("settings", {}), "table": records,
                       "skipped_items": dict(result.skipped)}, args.out)
    if args.predictions:
        frame = result.predictions_frame()
        atomic_write(args.predictions, lambda tmp: frame.to_csv(tmp, index=False))
    print(f"results written to {args.out}", file=sys.stderr)
    return 0
