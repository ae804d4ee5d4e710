"""Face cropping with OpenCV's bundled Haar cascade: detect, track (median-smoothed), square crop.

Faces are detected on every `every`-th frame only; the largest face of each such frame is kept,
the boxes are median-filtered over time (removing one-off misdetections), interpolated to every
frame, grown by `margin` on each side into a square, and cropped (zero-padded at the borders).
The detector is injectable (`detector=`) so the tracking and cropping logic can be tested alone.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import UserError

CASCADE_FILE = "haarcascade_frontalface_default.xml"
# A detector maps a grey image (H, W) uint8 and a minimum face side in pixels to (K, 4) boxes x, y, w, h.
Detector = Callable[[np.ndarray, int], np.ndarray]


class FaceNotFound(UserError):
    """No face was detected on any of the checked frames of a video."""


@dataclass(frozen=True)
class FaceCrop:
    """Face-cropping settings (part of the feature cache key).

    Attributes:
        margin: extra context on each side, as a fraction of the face box side.
        min_size: smallest face side, in pixels of the original frame.
        every: run the detector on every `every`-th frame.
        smooth: median-filter window, in detections (1 = no smoothing).
        full_frame: when no face is found anywhere, use the centre square of the frame
            instead of raising `FaceNotFound`.
        max_side: frames are shrunk to at most this side for detection (speed).
        scale_factor: Haar image-pyramid step (smaller finds more faces, slower).
        min_neighbors: Haar overlapping hits needed to accept a face (higher = fewer false faces).
    """

    margin: float = 0.25
    min_size: int = 40
    every: int = 5
    smooth: int = 5
    full_frame: bool = False
    max_side: int = 640
    scale_factor: float = 1.05
    min_neighbors: int = 5

    def __post_init__(self) -> None:
        if (self.margin < 0 or self.min_size < 1 or self.every < 1 or self.smooth < 1 or self.max_side < 24
                or self.scale_factor <= 1.0 or self.min_neighbors < 0):
            raise UserError(f"bad face-crop settings {self}: need margin >= 0, min_size >= 1, every >= 1, "
                            f"smooth >= 1, max_side >= 24, scale_factor > 1 and min_neighbors >= 0")

    def key(self) -> str:
        """A stable text form of the settings (for cache keys)."""
        return json.dumps(asdict(self), sort_keys=True)


def haar_detector(scale_factor: float = 1.05, min_neighbors: int = 5) -> Detector:
    """OpenCV's frontal-face Haar cascade as a `Detector`.

    Args:
        scale_factor: image-pyramid step of `detectMultiScale`.
        min_neighbors: overlapping hits needed to accept a face (higher = fewer false faces).
    """
    import cv2

    path = Path(cv2.data.haarcascades) / CASCADE_FILE
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise UserError(f"cannot load the face detector {path}: opencv-python-headless must be 4.10.0.84 "
                        f"(later releases do not ship the Haar cascades); reinstall that version")

    def detect(gray: np.ndarray, min_size: int) -> np.ndarray:
        found = cascade.detectMultiScale(gray, scaleFactor=scale_factor, minNeighbors=min_neighbors,
                                         minSize=(min_size, min_size))
        return np.asarray(found, dtype=np.float64).reshape(-1, 4)

    return detect


def largest_faces(frames: torch.Tensor, detector: Detector, min_size: int, max_side: int = 640) -> np.ndarray:
    """The largest detected face of every frame.

    Args:
        frames: (K, 3, H, W) uint8 RGB frames.
        detector: see `Detector`.
        min_size: smallest face side in original pixels.
        max_side: frames larger than this are shrunk before detection (boxes are scaled back).
    Returns:
        (K, 4) float boxes x, y, w, h in original pixels; NaN rows where no face was found.
    """
    import cv2

    h, w = frames.shape[-2:]
    scale = min(1.0, max_side / max(h, w))
    out = np.full((frames.shape[0], 4), np.nan)
    for k, frame in enumerate(frames.permute(0, 2, 3, 1).cpu().numpy()):  # (H, W, 3)
        gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        boxes = np.asarray(detector(cv2.equalizeHist(gray), max(1, round(min_size * scale))), dtype=np.float64)
        if boxes.size:
            boxes = boxes.reshape(-1, 4)
            out[k] = boxes[np.argmax(boxes[:, 2] * boxes[:, 3])] / scale
    return out


def smooth_track(frame_idx: np.ndarray, boxes: np.ndarray, num_frames: int, window: int) -> np.ndarray | None:
    """Median-filter the detected boxes over time and interpolate them to every frame.

    Args:
        frame_idx: (K,) increasing frame index of each detection attempt.
        boxes: (K, 4) boxes x, y, w, h, NaN rows for misses (they are skipped).
        num_frames: frames in the video.
        window: median window in detections (centred, truncated at the ends).
    Returns:
        (num_frames, 4) boxes (held constant before the first and after the last detection), or
        None when there is no detection at all.
    """
    hit = ~np.isnan(boxes).any(axis=1)
    if not hit.any():
        return None
    idx, found = np.asarray(frame_idx)[hit], boxes[hit]  # (M,), (M, 4)
    half = window // 2
    smoothed = np.stack([np.median(found[max(0, i - half): i + half + 1], axis=0) for i in range(len(found))])
    frames = np.arange(num_frames)
    return np.stack([np.interp(frames, idx, smoothed[:, c]) for c in range(4)], axis=1)  # (num_frames, 4)


def square_boxes(boxes: np.ndarray, margin: float) -> np.ndarray:
    """Grow boxes by `margin` of their side on each side into squares on the same centre.

    Args:
        boxes: (T, 4) boxes x, y, w, h.
        margin: fraction of max(w, h) added on each side.
    Returns:
        (T, 3) int squares x0, y0, side.
    """
    side = np.maximum(boxes[:, 2], boxes[:, 3]) * (1.0 + 2.0 * margin)  # (T,)
    cx, cy = boxes[:, 0] + boxes[:, 2] / 2.0, boxes[:, 1] + boxes[:, 3] / 2.0
    side_i = np.maximum(2, np.round(side)).astype(np.int64)
    return np.stack([np.round(cx - side_i / 2.0), np.round(cy - side_i / 2.0), side_i], axis=1).astype(np.int64)


def center_squares(num_frames: int, height: int, width: int) -> np.ndarray:
    """(num_frames, 3) squares x0, y0, side covering the centre square of the frame.

    Args:
        num_frames: how many rows.
        height: frame height.
        width: frame width.
    """
    side = min(height, width)
    return np.tile(np.array([(width - side) // 2, (height - side) // 2, side], dtype=np.int64), (num_frames, 1))


def crop_squares(frames: torch.Tensor, squares: np.ndarray, size: int) -> torch.Tensor:
    """Crop one square per frame (zero padding outside the frame) and resize it to `size`.

    Args:
        frames: (T, 3, H, W) uint8 RGB.
        squares: (T, 3) int x0, y0, side.
        size: output side in pixels.
    Returns:
        (T, 3, size, size) uint8.
    """
    import cv2

    h, w = frames.shape[-2:]
    out = np.empty((frames.shape[0], size, size, 3), dtype=np.uint8)
    for t, frame in enumerate(frames.permute(0, 2, 3, 1).cpu().numpy()):  # (H, W, 3)
        x0, y0, side = (int(v) for v in squares[t])
        sub = frame[max(0, y0): max(0, min(h, y0 + side)), max(0, x0): max(0, min(w, x0 + side))]
        pads = (max(0, -y0), side - sub.shape[0] - max(0, -y0), max(0, -x0), side - sub.shape[1] - max(0, -x0))
        if sub.size == 0:
            sub = np.zeros((side, side, 3), dtype=np.uint8)
        elif any(pads):
            sub = cv2.copyMakeBorder(np.ascontiguousarray(sub), *pads, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        out[t] = sub if side == size else cv2.resize(sub, (size, size), interpolation=interp)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def no_face_error(name: str, checked: int, total: int, crop: FaceCrop) -> FaceNotFound:
    """The `FaceNotFound` error for a video (message says how to fix it).

    Args:
        name: the video, as shown to the user.
        checked: frames the detector ran on.
        total: frames in the video.
        crop: the settings used.
    """
    return FaceNotFound(f"no face found in {name} (checked {checked} of {total} frames, faces of at least "
                        f"{crop.min_size} px): check that it shows a frontal face, lower the minimum face size "
                        f"(--min-face), or use the whole frame (--full-frame, or the full-frame fallback)")


def crop_faces(frames: torch.Tensor, margin: float = 0.25, min_size: int = 40, every: int = 5, size: int = 224,
               smooth: int = 5, full_frame: bool = False, detector: Detector | None = None,
               name: str = "video") -> torch.Tensor:
    """Crop the (largest) face of an in-memory clip, tracked and median-smoothed over time.

    Args:
        frames: (T, 3, H, W) uint8 RGB frames.
        margin: context added on each side, as a fraction of the face side.
        min_size: smallest face side in pixels.
        every: detect on frames 0, every, 2*every, ...
        size: output side in pixels.
        smooth: median window in detections.
        full_frame: fall back to the centre square when no face is found (else `FaceNotFound`).
        detector: face detector (default: `haar_detector()`).
        name: the video's name for error messages.
    Returns:
        (T, 3, size, size) uint8.
    """
    crop = FaceCrop(margin=margin, min_size=min_size, every=every, smooth=smooth, full_frame=full_frame)
    if frames.dim() != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
        raise UserError(f"crop_faces needs uint8 frames shaped (T, 3, H, W), got {frames.dtype} "
                        f"{tuple(frames.shape)}")
    idx = np.arange(0, frames.shape[0], every)
    boxes = largest_faces(frames[torch.from_numpy(idx)], detector or haar_detector(), min_size, crop.max_side)
    track = smooth_track(idx, boxes, frames.shape[0], smooth)
    if track is None:
        if not full_frame:
            raise no_face_error(name, len(idx), frames.shape[0], crop)
        squares = center_squares(frames.shape[0], *frames.shape[-2:])
    else:
        squares = square_boxes(track, margin)
    return crop_squares(frames, squares, size)


def video_face_squares(path: str | Path, num_frames: int, crop: FaceCrop, detector: Detector | None = None,
                       chunk: int = 64) -> np.ndarray:
    """Track the face of a video file or frame folder, decoding only the frames the detector needs.

    Args:
        path: video file or frame folder.
        num_frames: frames in the video (`video.count_frames`).
        crop: face-cropping settings.
        detector: face detector (default: the Haar cascade with `crop`'s settings).
        chunk: frames decoded at a time.
    Returns:
        (num_frames, 3) int squares x0, y0, side for `crop_squares`.
    Raises:
        FaceNotFound: naming the video, when no face is found and `crop.full_frame` is False.
    """
    from .video import read_frames

    detector = detector or haar_detector(crop.scale_factor, crop.min_neighbors)
    idx = np.arange(0, num_frames, crop.every)
    parts, shape = [], (0, 0)
    for lo in range(0, len(idx), chunk):
        frames = read_frames(path, idx[lo: lo + chunk])  # (c, 3, H, W)
        shape = tuple(frames.shape[-2:])
        parts.append(largest_faces(frames, detector, crop.min_size, crop.max_side))
    track = smooth_track(idx, np.concatenate(parts), num_frames, crop.smooth)
    if track is not None:
        return square_boxes(track, crop.margin)
    if not crop.full_frame:
        raise no_face_error(str(path), len(idx), num_frames, crop)
    return center_squares(num_frames, *shape)
