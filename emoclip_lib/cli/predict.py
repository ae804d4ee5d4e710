"""`emoclip predict`: zero-shot class probabilities of any video, per sliding window and per video.

Outputs: a long CSV (video, window, start_frame, start_s, class, prob; per-video rows have
window "video"), a nested JSON, and a timeline PNG (one subplot per video, one line per class).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..model import load_checkpoint
from ..data import PROMPT_MODES
from ..errors import UserError
from ..data import FaceCrop, FaceNotFound
from ..io_utils import atomic_write, atomic_write_json, check_output_path
from ..zeroshot import VIDEO_ROW, predict_videos, video_summary
from ..zeroshot import class_embeddings, parse_class_list, resolve_prompts
from ..runtime import resolve_device
from ..data import count_frames, quiet_native_stderr

OUTPUT_SUFFIXES: tuple[str, ...] = (".csv", ".json")


def predictions_to_json(table: pd.DataFrame) -> dict[str, Any]:
    """Nested form of a prediction table: settings, classes, then per video its mean and its windows.

    Args:
        table: the output of `predict_videos`.
    """
    classes = list(table.attrs.get("classes") or dict.fromkeys(table["class"]))
    meta = table.attrs.get("videos", {})
    videos = []
    for video, rows in table.groupby("video", sort=False):
        is_video = rows["window"].astype(str) == VIDEO_ROW
        probs = dict(zip(rows.loc[is_video, "class"], rows.loc[is_video, "prob"].astype(float)))
        windows = []
        for window, win in rows[~is_video].groupby("window", sort=False):
            first = win.iloc[0]
            windows.append({"window": int(window), "start_frame": int(first["start_frame"]),
                            "start_s": None if pd.isna(first["start_s"]) else float(first["start_s"]),
                            "probs": dict(zip(win["class"], win["prob"].astype(float)))})
        videos.append({"video": video, **meta.get(video, {}), "prediction": max(probs, key=probs.get),
                       "probs": probs, "windows": windows})
    return {"settings": table.attrs.get("settings", {}), "classes": classes, "videos": videos}


def write_predictions(table: pd.DataFrame, path: str | Path) -> Path:
    """Save a prediction table as long CSV (`.csv`) or nested JSON (`.json`), atomically.

    Args:
        table: the output of `predict_videos`.
        path: destination; the suffix picks the format.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6g"))
    if suffix == ".json":
        return atomic_write_json(predictions_to_json(table), path)
    raise UserError(f"cannot write predictions to {path}: use a .csv or .json file name")


def plot_timeline(table: pd.DataFrame, path: str | Path, dpi: int = 100) -> Path:
    """PNG of the window probabilities over time: one subplot per video, one line per class.

    Args:
        table: the output of `predict_videos`.
        path: destination `.png` file.
        dpi: resolution.
    """
    from matplotlib.figure import Figure

    windows = table[table["window"].astype(str) != VIDEO_ROW]
    videos = list(dict.fromkeys(windows["video"]))
    fig = Figure(figsize=(9, 2.6 * len(videos)), layout="constrained")
    axes = fig.subplots(len(videos), 1, squeeze=False)[:, 0]
    for ax, video in zip(axes, videos):
        rows = windows[windows["video"] == video]
        seconds = rows["start_s"].notna().all()
        for name, line in rows.groupby("class", sort=False):
            x = line["start_s"] if seconds else line["start_frame"].astype(float)
            ax.plot(x.to_numpy(), line["prob"].to_numpy(), marker="o", markersize=3, label=name)
        ax.set(title=Path(video).name, ylim=(0, 1), ylabel="probability",
               xlabel="window start (s)" if seconds else "window start (frame)")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def probe_videos(paths: Sequence[str]) -> None:
    """Check that every video exists and decodes, before the model is loaded (one clean error line).

    Args:
        paths: video files or frame folders.
    """
    for path in paths:
        if not Path(path).exists():
            raise UserError(f"video {path} does not exist: check the path")
        with quiet_native_stderr():
            count_frames(path)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `predict` sub-command.

    Args:
        sub: the sub-parsers of the `emoclip` parser.
    """
    p = sub.add_parser("predict", help="zero-shot emotion probabilities of videos over sliding windows",
                       description=__doc__.splitlines()[0])
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (any format decord reads) or frame folders")
    p.add_argument("--checkpoint", required=True, help="EmoCLIP checkpoint (this project's or an official one)")
    p.add_argument("--classes", help="comma-separated classes, e.g. 'happiness,sadness,anger+disgust'")
    p.add_argument("--descriptions", help="class-descriptions YAML (format of data_manifests/class_descriptions"
                                          ".yaml); without --classes every class in it is used")
    p.add_argument("--prompts", choices=PROMPT_MODES, default="description",
                   help="class-name prompt (any free class name), primary description, or all descriptions")
    p.add_argument("--clip-len", type=int, default=16, help="kept frames per window")
    p.add_argument("--downsample", type=int, default=2, help="keep every N-th frame")
    p.add_argument("--stride", type=int, default=8, help="step between windows, in kept frames")
    p.add_argument("--full-frame", action="store_true", help="skip face detection: use the whole frame")
    p.add_argument("--min-face", type=int, default=FaceCrop().min_size, metavar="PIXELS",
                   help=f"smallest face side detected, in pixels (default {FaceCrop().min_size}); lower it for "
                        f"small faces")
    p.add_argument("--out", help="write predictions to a .csv (long) or .json (nested) file")
    p.add_argument("--plot", help="write a timeline .png of the window probabilities")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=handler)


def _check_outputs(args: argparse.Namespace) -> None:
    """Output names and folders are usable (checked before any video is opened)."""
    if args.out and Path(args.out).suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(f"--out {args.out}: use a file name ending in .csv or .json")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise UserError(f"--plot {args.plot}: use a file name ending in .png")
    for option, path in (("--out", args.out), ("--plot", args.plot)):
        if path:
            check_output_path(path, option)


ONE_CLASS_WARNING = ("emoclip predict: warning: only one class ({label}) was given, so every probability is 1.0; "
                     "give two or more classes to compare them")


def handler(args: argparse.Namespace) -> int:
    """Run `emoclip predict`.

    Args:
        args: the parsed command line.
    """
    if not args.classes and not args.descriptions:
        raise UserError("say which classes to predict: --classes 'happiness,sadness,...' or --descriptions FILE.yaml")
    _check_outputs(args)
    if args.min_face < 1:
        raise UserError(f"--min-face must be at least 1 pixel, got {args.min_face}")
    classes = parse_class_list(args.classes) if args.classes else None
    prompts, labels = resolve_prompts(classes, args.prompts, args.descriptions)
    if len(labels) == 1:
        print(ONE_CLASS_WARNING.format(label=labels[0]), file=sys.stderr)
    probe_videos(args.videos)
    model = load_checkpoint(args.checkpoint, device=resolve_device(args.device))
    device = next(model.parameters()).device
    try:
        text_emb = class_embeddings(model.encode_text, labels, prompts=prompts, device=device)  # (L, D)
        table = predict_videos(args.videos, model, text_emb, labels, clip_len=args.clip_len, downsample=args.downsample,
                               stride=args.stride, full_frame=args.full_frame, device=device,
                               crop=FaceCrop(min_size=args.min_face), progress=not args.no_progress)
    except FaceNotFound as err:
        raise UserError(f"{err} (--min-face sets the minimum face size; --full-frame classifies the whole "
                        f"frame)") from None
    if args.out:
        write_predictions(table, args.out)
    if args.plot:
        plot_timeline(table, args.plot)
    summary = video_summary(table)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(summary.to_string())
    for path in (args.out, args.plot):
        if path:
            print(f"wrote {path}", file=sys.stderr)
    return 0
