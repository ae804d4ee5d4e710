"""Static backgrounds, lighting and sensor noise of synthetic clips (drawn once per clip)."""
from __future__ import annotations

import cv2
import numpy as np

from .people import Scene

FRAME_SIZE = 112
_NOISE_BANKS = 3
_NOISE_PAD = 8


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return (int(min(255, rgb[0] * factor)), int(min(255, rgb[1] * factor)), int(min(255, rgb[2] * factor)))


def _rect(img: np.ndarray, rng: np.random.Generator, colour: tuple[int, int, int], w: tuple[int, int],
          h: tuple[int, int], y: tuple[int, int]) -> None:
    width, height = int(rng.integers(*w)), int(rng.integers(*h))
    x0 = int(rng.integers(0, FRAME_SIZE - width // 2))
    y0 = int(rng.integers(*y))
    cv2.rectangle(img, (x0, y0), (x0 + width, y0 + height), colour, -1)


def _vertical_gradient(img: np.ndarray, top: float, bottom: float) -> None:
    ramp = np.linspace(top, bottom, FRAME_SIZE, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    img[:] = np.clip(img.astype(np.float32) * ramp, 0, 255).astype(np.uint8)


def _draw_details(img: np.ndarray, scene: Scene, rng: np.random.Generator) -> None:
    wall = scene.wall
    if scene.setting == "office":
        _rect(img, rng, (232, 240, 248), (25, 45), (30, 45), (5, 25))
        cv2.rectangle(img, (0, 92), (FRAME_SIZE, FRAME_SIZE), _shade(wall, 0.6), -1)
    elif scene.setting == "dim room":
        centre = (int(rng.integers(10, 100)), int(rng.integers(10, 40)))
        cv2.circle(img, centre, 9, (230, 190, 120), -1, cv2.LINE_AA)
    elif scene.setting == "outdoors":
        horizon = int(rng.integers(55, 80))
        cv2.rectangle(img, (0, horizon), (FRAME_SIZE, FRAME_SIZE), (80, 130, 70), -1)
        cv2.circle(img, (int(rng.integers(0, 112)), horizon - 12), 16, (40, 95, 45), -1, cv2.LINE_AA)
    elif scene.setting == "kitchen":
        for k in range(0, FRAME_SIZE, 11):
            cv2.line(img, (k, 0), (k, 60), _shade(wall, 0.85), 1)
            cv2.line(img, (0, k // 2 + 2), (FRAME_SIZE, k // 2 + 2), _shade(wall, 0.85), 1)
        cv2.rectangle(img, (0, 60), (FRAME_SIZE, 72), (120, 80, 50), -1)
    elif scene.setting == "car":
        _rect(img, rng, (170, 200, 225), (40, 70), (25, 35), (2, 12))
        cv2.ellipse(img, (56, 40), (34, 30), 0, 0, 360, (40, 40, 44), -1, cv2.LINE_AA)
    elif scene.setting == "living room":
        _rect(img, rng, (90, 70, 120), (20, 30), (16, 24), (8, 20))
        cv2.rectangle(img, (0, 78), (FRAME_SIZE, FRAME_SIZE), (120, 60, 50), -1)
    elif scene.setting == "clinic":
        _rect(img, rng, _shade(wall, 0.8), (22, 30), (70, 90), (10, 20))
    _vertical_gradient(img, 1.05, 0.88)


def draw_background(scene: Scene) -> np.ndarray:
    """Draw the static background of a scene.

    Args:
        scene: filming conditions; `scene.detail_seed` places the background objects.
    Returns:
        (112, 112, 3) uint8 RGB image.
    """
    img = np.empty((FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    img[:] = scene.wall
    _draw_details(img, scene, np.random.default_rng(scene.detail_seed))
    return img


def light_gain(scene: Scene) -> np.ndarray:
    """Multiplicative lighting map: brightness times a linear gradient towards the light.

    Args:
        scene: filming conditions.
    Returns:
        (112, 112, 1) float32 gain.
    """
    axis = (np.arange(FRAME_SIZE, dtype=np.float32) - FRAME_SIZE / 2) / (FRAME_SIZE / 2)
    angle = np.deg2rad(scene.light_angle)
    proj = axis[None, :] * np.cos(angle) + axis[:, None] * np.sin(angle)  # (H, W)
    gain = scene.brightness * (1.0 + scene.light_strength * proj)
    return gain.astype(np.float32)[:, :, None]


def noise_bank(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """A few padded frames of Gaussian sensor noise; frames take shifted crops of them.

    Args:
        scene: gives the noise level.
        rng: random source of the clip.
    Returns:
        (3, 120, 120, 3) float32 noise.
    """
    side = FRAME_SIZE + _NOISE_PAD
    bank = rng.standard_normal((_NOISE_BANKS, side, side, 3), dtype=np.float32)
    return bank * np.float32(scene.noise_sigma)


def finish_frame(img: np.ndarray, gain: np.ndarray, bank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply lighting and sensor noise to a drawn frame.

    Args:
        img: (112, 112, 3) uint8 drawn frame.
        gain: (112, 112, 1) float32 from `light_gain`, or the same repeated to (112, 112, 3) (faster).
        bank: noise from `noise_bank`.
        rng: random source of the clip (picks the noise crop).
    Returns:
        (112, 112, 3) uint8 RGB frame.
    """
    k, oy, ox = (int(v) for v in rng.integers(0, (_NOISE_BANKS, _NOISE_PAD, _NOISE_PAD)))
    noisy = img.astype(np.float32)
    noisy *= gain
    noisy += bank[k, oy:oy + FRAME_SIZE, ox:ox + FRAME_SIZE]
    np.clip(noisy, 0, 255, out=noisy)
    return noisy.astype(np.uint8)
