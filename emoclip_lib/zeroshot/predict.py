"""Zero-shot prediction on any video: sliding windows, per-window and per-video class probabilities.

Every `downsample`-th frame is decoded (in chunks, never the whole video at once), face-cropped
with a face track from `emoclip_lib.data.faces` (or kept whole with `full_frame`), and encoded once by
the CLIP image tower; overlapping windows of `clip_len` kept frames share those frame embeddings
and go through the temporal transformer. A window's probabilities are the softmax of the scaled
cosines with the class text embeddings; a video's probabilities are the mean over its windows.

The result is a long table (`PREDICTION_COLUMNS`): one row per (video, window, class) plus one row
per (video, class) with `window == "video"`. `emoclip_lib.cli.predict` writes it as CSV or nested
JSON and draws the probabilities over time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.classes import COMPOUND_SEPARATOR
from ..data.descriptions import DEFAULT_TEMPLATE, load_descriptions, prompts as description_prompts
from ..errors import DataError, UserError
from ..data.faces import Detector, FaceCrop, crop_squares, video_face_squares
from ..data.preprocess import preprocess_frames
from ..data.video import count_frames, read_frames, window_indices, window_starts
from .prompts import class_text_embeddings, compound_embeddings, model_scale, zero_shot_predict

PREDICTION_COLUMNS: tuple[str, ...] = ("video", "window", "start_frame", "start_s", "class", "prob")
VIDEO_ROW = "video"  # the `window` value of the per-video rows
EncodeTextFn = Callable[[torch.Tensor], torch.Tensor]  # (N, 77) tokens -> (N, D)


def label_embeddings(encode_text_fn: EncodeTextFn, prompts: dict[str, list[str]], labels: Sequence[str] | None = None,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """Text embeddings of the labels to predict: classes with prompts, and compounds of them.

    Args:
        encode_text_fn: (N, 77) tokens -> (N, D), e.g. `model.encode_text`.
        prompts: class name -> prompt texts (averaged into one embedding per class).
        labels: the output labels, in order (default: the keys of `prompts`). A label that is a key
            of `prompts` uses its own prompts; "a+b" not in `prompts` is the normalised mean of the
            embeddings of classes a and b (which need prompts).
        device: where the text encoder lives.
    Returns:
        (L, D) float32 unit-norm rows on the CPU.
    """
    names = list(prompts)
    labels = names if labels is None else [str(label) for label in labels]
    if not labels:
        raise UserError("no class to predict: give at least one class")
    for label in labels:
        parts = label.split(COMPOUND_SEPARATOR) if label not in prompts else [label]
        missing = [p for p in parts if p not in prompts]
        if missing:
            raise UserError(f"unknown class {missing[0]!r}: known classes are {', '.join(names)}")
    class_emb = class_text_embeddings(encode_text_fn, prompts, device=device)  # (C, D)
    rows = [class_emb[names.index(label)] if label in prompts
            else compound_embeddings(class_emb, names, [label])[0] for label in labels]
    return torch.stack(rows)  # (L, D)


def parse_class_list(text: str) -> list[str]:
    """Split "happiness, sadness,anger+disgust" into normalised labels (lower case, no spaces around '+').

    Args:
        text: comma-separated class names; compounds join classes with '+'.
    """
    labels = [COMPOUND_SEPARATOR.join(p.strip().lower() for p in item.split(COMPOUND_SEPARATOR))
              for item in str(text).split(",") if item.strip()]
    if not labels or any(not p for label in labels for p in label.split(COMPOUND_SEPARATOR)):
        raise UserError(f"bad class list {text!r}: write class names separated by commas, e.g. 'happiness,sadness'")
    twice = [label for i, label in enumerate(labels) if label in labels[:i]]
    if twice:
        raise UserError(f"class {twice[0]!r} is listed twice in {text!r}; list it once")
    return labels


def resolve_prompts(classes: Sequence[str] | None, mode: str = "description",
                    descriptions_path: str | Path | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """Prompts of the classes to predict, from a class-descriptions YAML (`emoclip_lib.data.descriptions`).

    Args:
        classes: output labels (normalised, see `parse_class_list`), compounds "a+b" allowed; None
            takes every class of the descriptions file.
        mode: "name" (class-name prompt; any free class name works), "description" (primary
            description) or "ensemble" (all descriptions).
        descriptions_path: a YAML in the format of `data_manifests/class_descriptions.yaml`; None uses
            the shipped file (the 11 canonical classes).
    Returns:
        (prompts: single class -> prompt texts, labels: the output labels), for `predict_videos`.
    """
    table = load_descriptions(descriptions_path)
    labels = list(table) if classes is None else list(classes)
    singles = list(dict.fromkeys(p for label in labels for p in label.split(COMPOUND_SEPARATOR)))
    unknown = [c for c in singles if c not in table]
    if unknown and mode != "name":
        source = descriptions_path or "data_manifests/class_descriptions.yaml"
        raise UserError(f"unknown class {unknown[0]!r}; known classes (in {source}): {', '.join(table)}; for a "
                        f"new emotion write its description in a descriptions YAML, or use the 'name' prompt mode")
    known = [c for c in singles if c in table]
    found = dict(zip(known, description_prompts(known, mode, table)))
    return {c: found.get(c, [DEFAULT_TEMPLATE.format(name=c)]) for c in singles}, labels


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


@torch.no_grad()
def kept_frame_features(model: nn.Module, path: str | Path, num_frames: int, downsample: int,
                        squares: np.ndarray | None, device: str | torch.device, chunk: int = 64,
                        progress: bool = False) -> torch.Tensor:
    """CLIP embeddings of every `downsample`-th frame, decoded and encoded `chunk` frames at a time.

    Args:
        model: an EmoCLIP model (`encode_frames`, `input_resolution`).
        path: video file or frame folder.
        num_frames: frames in the video.
        downsample: keep frames 0, d, 2d, ...
        squares: (num_frames, 3) face squares x0, y0, side (`faces.video_face_squares`), or None to
            keep the whole frame (resized and centre-cropped).
        device: where the model lives.
        chunk: frames decoded and encoded at once.
        progress: show a progress bar.
    Returns:
        (K, D) float32 frame embeddings on `device`, K = ceil(num_frames / downsample).
    """
    size = model.input_resolution
    kept = np.arange(0, num_frames, downsample)  # (K,)
    parts = []
    for lo in tqdm(range(0, len(kept), chunk), desc=Path(path).name, disable=not progress, leave=False):
        idx = kept[lo: lo + chunk]
        frames = read_frames(path, idx)  # (c, 3, H, W) uint8
        if squares is not None:
            frames = crop_squares(frames, squares[idx], size)  # (c, 3, S, S)
        x = preprocess_frames(frames.to(device), size)  # (c, 3, S, S)
        parts.append(model.encode_frames(x.unsqueeze(0))[0])  # (c, D)
    return torch.cat(parts)


@torch.no_grad()
def window_embeddings(model: nn.Module, feats: torch.Tensor, clip_len: int, stride: int | None,
                      batch: int = 64) -> tuple[np.ndarray, torch.Tensor]:
    """Video embeddings of sliding windows over kept-frame embeddings.

    Args:
        model: an EmoCLIP model (`encode_video_features`).
        feats: (K, D) embeddings of the kept frames.
        clip_len: kept frames per window (short videos are looped).
        stride: step between windows in kept frames (None: `clip_len`).
        batch: windows per forward pass.
    Returns:
        firsts (W,) int64 first kept frame of each window, emb (W, D).
    """
    firsts = window_starts(len(feats), clip_len, 1, stride)  # (W,)
    idx = np.stack([window_indices(len(feats), clip_len, 1, int(s)) for s in firsts])  # (W, L)
    windows = feats[torch.as_tensor(idx, device=feats.device)]  # (W, L, D)
    emb = torch.cat([model.encode_video_features(windows[lo: lo + batch]) for lo in range(0, len(idx), batch)])
    return firsts, emb  # (W,), (W, D)


def _check_settings(clip_len: int, downsample: int, stride: int | None) -> None:
    for name, value in (("clip_len", clip_len), ("downsample", downsample), ("stride", stride)):
        if value is not None and int(value) < 1:
            raise UserError(f"{name} must be at least 1, got {value}")


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


def predict_videos(paths: Sequence[str | Path], model: nn.Module, prompts: dict[str, list[str]],
                   labels: Sequence[str] | None = None, clip_len: int = 16, downsample: int = 2,
                   stride: int | None = 8, full_frame: bool = False, device: str | torch.device = "cpu",
                   scale: float | None = None, crop: FaceCrop | None = None, detector: Detector | None = None,
                   frame_batch: int = 64, progress: bool = True) -> pd.DataFrame:
    """Zero-shot class probabilities of sliding windows over videos, and per video.

    Args:
        paths: video files (any format decord reads) or frame folders.
        model: an EmoCLIP model in eval mode on `device`.
        prompts: class name -> prompt texts (see `label_embeddings`).
        labels: output labels, singles or compounds "a+b" (default: the keys of `prompts`).
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
    _check_settings(clip_len, downsample, stride)
    videos = _check_paths(paths)
    text_emb = label_embeddings(model.encode_text, prompts, labels, device)  # (L, D)
    out_labels = list(prompts) if labels is None else [str(label) for label in labels]
    scale = model_scale(model) if scale is None else float(scale)
    tables, meta = [], {}
    for path in tqdm(videos, desc="videos", disable=not progress or len(videos) < 2):
        num_frames = count_frames(path)
        fps = video_fps(path)
        squares = None if full_frame else video_face_squares(path, num_frames, crop or FaceCrop(), detector)
        feats = kept_frame_features(model, path, num_frames, downsample, squares, device, frame_batch, progress)
        firsts, emb = window_embeddings(model, feats, clip_len, stride, frame_batch)  # (W,), (W, D)
        probs, _ = zero_shot_predict(emb, text_emb, scale)  # (W, L)
        tables.append(_video_rows(path, firsts * downsample, fps, probs.cpu().numpy(), out_labels))
        meta[str(path)] = {"num_frames": int(num_frames), "fps": fps, "windows": int(len(firsts))}
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
