"""What the clip explorer draws: frame strips, PNG encoding, the class-score chart, small HTML pieces."""
from __future__ import annotations

import html
import io
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import UserError
from .classify import CLIP_SCALE


def frame_strip(frames: Any, max_frames: int = 8, height: int = 96) -> np.ndarray:
    """A horizontal strip of evenly spaced frames (or an image passed through), height `height`.

    Args:
        frames: uint8 (T, 3, H, W) frames, or an (H, W, 3) image such as a ready-made strip.
        max_frames: frames shown at most.
        height: strip height in pixels.
    Returns:
        (height, W', 3) uint8 RGB array.
    """
    from PIL import Image

    arr = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.ndim == 4 and arr.shape[1] == 3:
        pick = np.unique(np.linspace(0, len(arr) - 1, min(max_frames, len(arr))).round().astype(int))
        arr = np.concatenate(list(arr[pick].transpose(0, 2, 3, 1)), axis=1)  # (H, k*W, 3)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise UserError(f"frame_fn must return uint8 frames (T, 3, H, W) or an image (H, W, 3), "
                        f"got {arr.dtype} {arr.shape}")
    width = max(1, round(arr.shape[1] * height / arr.shape[0]))
    return np.asarray(Image.fromarray(np.ascontiguousarray(arr)).resize((width, height), Image.BILINEAR))


def png_bytes(image: Any) -> bytes:
    """PNG encoding of an (H, W, 3) uint8 image or of a matplotlib Figure (at 80 dpi).

    Args:
        image: RGB array or Figure.
    """
    from PIL import Image

    buffer = io.BytesIO()
    if isinstance(image, np.ndarray):
        Image.fromarray(image).save(buffer, format="PNG")
    else:
        image.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def score_figure(scores: dict[str, float], true_labels: Sequence[str] = (), scale: float = CLIP_SCALE,
                 title: str = "") -> Any:
    """A horizontal bar chart of class scores (first class on top), values on the bars, true classes marked.

    Args:
        scores: class -> probability.
        true_labels: the clip's true classes, drawn in orange and named "(true)".
        scale: the softmax scale the probabilities were computed with (shown on the axis).
        title: chart title.
    Returns:
        a matplotlib Figure.
    """
    from matplotlib.figure import Figure

    names = list(scores)[::-1]
    true = {t.lower() for t in true_labels}
    fig = Figure(figsize=(5, 0.3 * len(names) + 1.0), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh([f"{n} (true)" if n.lower() in true else n for n in names], [scores[n] for n in names],
                   color=["tab:orange" if n.lower() in true else "tab:blue" for n in names])
    ax.bar_label(bars, labels=[f"{scores[n]:.2f}" for n in names], padding=2, fontsize=8)
    ax.set(xlim=(0, 1.12), xlabel=f"probability: softmax({scale:.2f} × cosine)", title=title[:60])
    return fig


def caption_html(text: Any) -> str:
    """A clip's caption as HTML ("no caption" when there is none).

    Args:
        text: the caption (None or NaN when missing).
    """
    text = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text).strip()
    return html.escape(text) if text else "<i>no caption</i>"


def warning_html(text: str, colour: str = "#a60") -> str:
    """A coloured line of text for the widget.

    Args:
        text: the message.
        colour: CSS colour.
    """
    return f"<span style='color:{colour}'>{html.escape(text)}</span>"
