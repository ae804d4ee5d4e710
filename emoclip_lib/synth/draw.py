"""Drawing primitives for synthetic faces: a pen working in face units, colour shading, ellipses."""
from __future__ import annotations

import cv2
import numpy as np

CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 24, endpoint=False)),
                   np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))], axis=1)  # (24, 2)


def shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    """Scale a colour by `factor` (clipped to 255).

    Args:
        rgb: colour.
        factor: brightness multiplier.
    """
    return (int(min(255, rgb[0] * factor)), int(min(255, rgb[1] * factor)), int(min(255, rgb[2] * factor)))


def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Polygon (24, 2) approximating an axis-aligned ellipse.

    Args:
        cx, cy: centre.
        rx, ry: radii.
    """
    return CIRCLE * (rx, ry) + (cx, cy)  # (24, 2)


class Pen:
    """Draws shapes given in face units onto an image, anti-aliased with sub-pixel precision.

    Args:
        img: (H, W, 3) uint8 image drawn in place.
        cx, cy: pixel position of the face-unit origin.
        scale: pixels per face unit.
        roll_deg: in-plane rotation, degrees.
    """

    def __init__(self, img: np.ndarray, cx: float, cy: float, scale: float, roll_deg: float) -> None:
        rad = np.deg2rad(roll_deg)
        c, s = np.cos(rad) * scale, np.sin(rad) * scale
        self.m = np.array([[c, s], [-s, c]]) * 16.0  # transposed, in 1/16 pixels
        self.t = np.array([cx, cy]) * 16.0 + 0.5
        self.img, self.scale = img, scale

    def moved(self, offset: tuple[float, float]) -> Pen:
        """A pen on the same image whose origin is shifted by `offset` face units."""
        pen = Pen(self.img, 0.0, 0.0, self.scale, 0.0)
        pen.m, pen.t = self.m, self.t + np.asarray(offset) @ self.m
        return pen

    def px(self, pts: np.ndarray) -> np.ndarray:
        """Face units (N, 2) -> fixed-point pixels (N, 2) int32 with 4 fractional bits."""
        return np.floor(pts @ self.m + self.t).astype(np.int32)

    def fill(self, pts: np.ndarray, colour: tuple[int, int, int]) -> None:
        """Fill the polygon `pts` (N, 2), given in face units."""
        cv2.fillPoly(self.img, [self.px(pts)], colour, cv2.LINE_AA, 4)

    def line(self, pts: np.ndarray, colour: tuple[int, int, int], width: float) -> None:
        """Draw the open polyline `pts` (N, 2) with a width in face units."""
        thick = max(1, int(round(width * self.scale)))
        cv2.polylines(self.img, [self.px(pts)], False, colour, thick, cv2.LINE_AA, 4)

