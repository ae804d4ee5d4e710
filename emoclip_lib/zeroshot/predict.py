"""Zero-shot prediction on any video: sliding windows, per-window and per-video class probabilities.

Windows of `clip_len` kept frames, face-cropped with a face track (or kept whole with `full_frame`),
are embedded by the window encoder (`features.windows`: each frame decoded and encoded once). A
window's probabilities are the softmax of the scaled cosines with the class text embeddings; a
video's probabilities are the mean over its windows.

The result is a long table (`PREDICTION_COLUMNS`): one row per (video, window, class) plus one row
per (video, class) with `window == "video"`. `emoclip_lib.cli.predict` writes it as CSV or nested
JSON and draws the probabilities over time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import Detector, FaceCrop
from ..errors import DataError, UserError
from ..features import window_embeddings
from .classify import model_scale, zero_shot_predict

PREDICTION_COLUMNS: tuple[str, ...] = ("video", "window", "start_frame", "start_s", "class", "prob")
VIDEO_ROW = "video"  # the `window` value of the per-video rows


def video_fps(path: str | Path) -> float | None:
    """Frames per second of a video file (None for a frame folder or when the file does not say).

    Args:
        path: video file or frame folder.
    """
    path = Path(path)
    if path.is_dir():
        return None
    import decord

    try:
        fps = float(decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1).get_avg_fps())
    except Exception as err:  # decord's C++ errors: the file is unreadable
        raise DataError(f"cannot read video {path}: {str(err).splitlines()[0]}") from None
    return fps if np.isfinite(fps) and fps > 0 else None


def _check_paths(paths: Sequence[str | Path]) -> list[Path]:
    out = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not out:
        raise UserError("no video given: pass at least one video file or frame folder")
    for i, path in enumerate(out):
        if not path.exists():
            raise DataError(f"video {path} does not exist: check the path")
        if str(path) in map(str, out[:i]):
            raise UserError(f"video {path} is given twice: list each video once")
    return out


def _video_rows(path: Path, starts: np.ndarray, fps: float | None, probs: np.ndarray,
                labels: list[str]) -> pd.DataFrame:
    """Long rows of one video: W x L window rows, then L per-video rows (mean over windows)."""
    w, n_labels = probs.shape
    mean = probs.mean(axis=0)  # (L,)
    start_s = starts / fps if fps else np.full(w, np.nan)
    return pd.DataFrame({
        "video": str(path),
        "window": [*np.repeat(np.arange(w), n_labels).tolist(), *[VIDEO_ROW] * n_labels],
        "start_frame": pd.array([*np.repeat(starts, n_labels).tolist(), *[None] * n_labels], dtype="Int64"),
        "start_s": np.concatenate([np.repeat(start_s, n_labels), np.full(n_labels, np.nan)]),
        "class": labels * (w + 1),
        "prob": np.concatenate([probs.reshape(-1), mean]).astype(np.float64),
    })


def predict_videos(paths: Sequence[str | Path], model: nn.Module, text_emb: torch.Tensor, labels: Sequence[str],
                   clip_len: int = 16, downsample: int = 2, stride: int | None = 8, full_frame: bool = False,
                   device: str | torch.device = "cpu", scale: float | None = None, crop: FaceCrop | None = None,
                   detector: Detector | None = None, frame_batch: int = 64, progress: bool = True) -> pd.DataFrame:
    """Zero-shot class probabilities of sliding windows over videos, and per video.

    Args:
        paths: video files (any format decord reads) or frame folders.
        model: an EmoCLIP model in eval mode on `device`.
        text_emb: (L, D) embeddings of the labels (`prompts.class_embeddings`).
        labels: the L labels, singles or compounds "a+b", in the order of `text_emb`.
        clip_len: kept frames per window.
        downsample: keep every `downsample`-th frame.
        stride: step between windows in kept frames (None: `clip_len`, no overlap).
        full_frame: skip face detection and use the whole frame (centre square).
        device: where the model lives.
        scale: softmax scale of the cosines (None: the model's learned `exp(logit_scale)`).
        crop: face-cropping settings (default `FaceCrop()`); ignored with `full_frame`.
        detector: face detector (default: OpenCV's Haar cascade).
        frame_batch: frames decoded and encoded at once (and windows per temporal pass).
        progress: show progress bars.
    Returns:
        DataFrame with `PREDICTION_COLUMNS`; `window` is the window number or "video" for the
        per-video mean; `start_s` is NaN when the frame rate is unknown. `attrs` holds `classes`,
        `videos` (path -> num_frames, fps, windows) and `settings`.
    Raises:
        DataError: for a missing or unreadable video, naming it.
        FaceNotFound: when no face is found in a video (unless `full_frame`).
    """
    videos = _check_paths(paths)
    out_labels = [str(label) for label in labels]
    if text_emb.dim() != 2 or text_emb.shape[0] != len(out_labels):
        raise UserError(f"text_emb must hold one row per label: {len(out_labels)} labels, shape {tuple(text_emb.shape)}")
    scale = model_scale(model) if scale is None else float(scale)
    tables, meta = [], {}
    for path in tqdm(videos, desc="videos", disable=not progress or len(videos) < 2):
        fps = video_fps(path)
        windows = window_embeddings(model, path, clip_len, downsample, stride, device, ("emoclip",),
                                    None if full_frame else crop or FaceCrop(), detector, frame_batch, progress)
        probs, _ = zero_shot_predict(windows.embeddings["emoclip"], text_emb, scale)  # (W, L)
        tables.append(_video_rows(path, windows.starts, fps, probs.cpu().numpy(), out_labels))
        meta[str(path)] = {"num_frames": windows.num_frames, "fps": fps, "windows": int(len(windows.starts))}
    table = pd.concat(tables, ignore_index=True)
    table.attrs.update(classes=out_labels, videos=meta, settings={
        "clip_len": int(clip_len), "downsample": int(downsample), "stride": None if stride is None else int(stride),
        "full_frame": bool(full_frame), "scale": scale})
    return table


def video_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per-video probabilities as a wide table (one row per video, one column per class) plus `prediction`.

    Args:
        table: the output of `predict_videos` (or the same columns read back from CSV).
    """
    rows = table[table["window"].astype(str) == VIDEO_ROW]
    order = list(dict.fromkeys(rows["class"]))
    wide = rows.pivot(index="video", columns="class", values="prob")[order]
    wide = wide.loc[list(dict.fromkeys(rows["video"]))]
    wide["prediction"] = wide[order].idxmax(axis=1)
    return wide.rename_axis(columns=None)
