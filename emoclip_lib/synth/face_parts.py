"""Facial features of synthetic faces (brows, eyes, nose, mouth) driven by action-unit intensities.

All functions draw in face units through a `Pen`; `st` maps channel names to intensities (missing = 0).
"""
from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from .draw import Pen, ellipse, shade
from .people import Person

_ARC = np.linspace(0.0, np.pi, 9)
_MOUTH_U = np.linspace(-1.0, 1.0, 13)
_SCLERA = (240, 238, 232)
_LASH = (35, 25, 25)


def draw_brows(pen: Pen, person: Person, brow: tuple[int, int, int], st: Mapping[str, float]) -> None:
    """Eyebrows, brow furrows and forehead lines.

    Args:
        pen: draws in face units (already shifted for gaze and head turn).
        person: the identity (skin, eye colour, lips, glasses).
        brow: eyebrow colour.
        st: channel name -> intensity; missing channels are 0.
    """
    raise_, inner = st.get("brow_raise", 0.0), st.get("inner_brow_raise", 0.0)
    lower, knit = st.get("brow_lower", 0.0), st.get("brow_knit", 0.0)
    skin = person.skin
    if raise_ > 0.15 or inner > 0.3:
        dark = shade(skin, 1.0 - 0.3 * max(raise_, 0.6 * inner))
        for y in (-0.82, -0.94):
            pen.line(np.array([[-0.4, y + 0.03], [0.0, y], [0.4, y + 0.03]]), dark, 0.045)
    furrow = max(knit, 0.7 * lower)
    if furrow > 0.1:
        dark = shade(skin, 1.0 - 0.4 * furrow)
        for x in (-0.05, 0.05):
            pen.line(np.array([[x, -0.52], [x * 0.7, -0.34]]), dark, 0.05)
    up = 0.26 * raise_
    inner_y = -0.52 - up - 0.24 * inner + 0.2 * lower + 0.05 * knit
    mid_y = -0.62 - up - 0.07 * inner + 0.1 * lower
    outer_y = -0.55 - 0.9 * up + 0.06 * inner + 0.06 * lower
    inner_x = 0.14 - 0.08 * knit
    for sign in (-1.0, 1.0):
        pts = np.array([[sign * inner_x, inner_y], [sign * 0.36, mid_y], [sign * 0.6, outer_y]])
        pen.line(pts, brow, 0.14)


def _eye_polygon(cx: float, cy: float, up: float, low: float) -> np.ndarray:
    upper = np.stack([cx + 0.25 * np.cos(_ARC), cy - up * np.sin(_ARC)], axis=1)
    lower = np.stack([cx - 0.25 * np.cos(_ARC[1:-1]), cy + low * np.sin(_ARC[1:-1])], axis=1)
    return np.concatenate([upper, lower])  # (16, 2)


def draw_eyes(pen: Pen, person: Person, side: int, st: Mapping[str, float]) -> None:
    """Eyes (opening, gaze, blinks), cheek raise lines and glasses.

    Args:
        pen: draws in face units (already shifted for gaze and head turn).
        person: the identity (skin, eye colour, lips, glasses).
        side: -1 / +1, the direction of averted gaze.
        st: channel name -> intensity; missing channels are 0.
    """
    g = st.get
    closed = max(g("eyes_closed", 0.0), g("blink", 0.0))
    opening = 1.0 + 0.75 * g("eyes_wide", 0.0) - 0.5 * g("eyes_narrow", 0.0) - 0.35 * g("gaze_down", 0.0)
    opening = float(np.clip(opening, 0.0, 1.9)) * (1.0 - closed)
    gaze = (side * 0.13 * g("gaze_away", 0.0), 0.06 * g("gaze_down", 0.0))
    narrow = g("eyes_narrow", 0.0)
    for cx in (-0.36, 0.36):
        cy = -0.22
        if narrow > 0.2:
            cheek = np.array([[cx - 0.16, cy + 0.17], [cx, cy + 0.2], [cx + 0.16, cy + 0.17]])
            pen.line(cheek, shade(person.skin, 1.0 - 0.3 * narrow), 0.04)
        if opening < 0.15:
            lid = np.stack([cx + 0.25 * np.cos(_ARC), cy + 0.04 * np.sin(_ARC)], axis=1)
            pen.line(lid, _LASH, 0.07)
            continue
        eye = _eye_polygon(cx, cy, 0.14 * opening, 0.1 * opening)
        pen.fill(eye, _SCLERA)
        iris = ellipse(cx + gaze[0], cy + gaze[1], 0.105, 0.105)
        area, clipped = cv2.intersectConvexConvex(pen.px(eye).astype(np.float32), pen.px(iris).astype(np.float32))
        if area > 0 and clipped is not None:
            cv2.fillPoly(pen.img, [np.rint(clipped).astype(np.int32)], person.eye_rgb, cv2.LINE_AA, 4)
        pen.line(eye[:9], _LASH, 0.06)
    if person.glasses:
        for cx in (-0.36, 0.36):
            pen.line(np.concatenate([ellipse(cx, -0.22, 0.27, 0.2), ellipse(cx, -0.22, 0.27, 0.2)[:1]]),
                     (40, 40, 45), 0.045)
        pen.line(np.array([[-0.09, -0.24], [0.09, -0.24]]), (40, 40, 45), 0.045)


def draw_nose(pen: Pen, person: Person, side: int, st: Mapping[str, float]) -> None:
    """Nose, nose wrinkles and the folds from nose to mouth corners.

    Args:
        pen: draws in face units (already shifted for gaze and head turn).
        person: the identity (skin, eye colour, lips, glasses).
        side: -1 / +1, the side of a one-sided lip-corner raise (only that fold deepens).
        st: channel name -> intensity; missing channels are 0.
    """
    wrinkle = st.get("nose_wrinkle", 0.0)
    skin = person.skin
    pen.line(np.array([[0.0, -0.25], [0.03, 0.1]]), shade(skin, 0.82), 0.045)
    flare = 1.0 + 0.3 * wrinkle
    base = np.array([[-0.14, 0.17], [-0.07, 0.23], [0.0, 0.21], [0.07, 0.23], [0.14, 0.17]])
    base = base * (flare, 1.0) - (0.0, 0.05 * wrinkle)
    pen.line(base, shade(skin, 0.7), 0.05)
    if wrinkle > 0.15:
        dark = shade(skin, 1.0 - 0.5 * wrinkle)
        for y in (-0.16, -0.08, 0.0):
            pen.line(np.array([[-0.08 - 0.07 * wrinkle, y], [0.08 + 0.07 * wrinkle, y]]), dark, 0.055)
    for sign in (-1.0, 1.0):
        one = st.get("lip_corner_one_side", 0.0) if sign == side else 0.0
        fold = max(0.9 * st.get("lip_corner_up", 0.0), wrinkle, one)
        if fold > 0.15:
            pts = np.array([[sign * 0.17, 0.15], [sign * 0.33, 0.35], [sign * 0.4, 0.6]])
            pen.line(pts, shade(skin, 1.0 - 0.4 * fold), 0.05)


def _mouth_shape(st: Mapping[str, float], side: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """x (13,), the five lip curves' y (5, 13, 1), the opening and the pressing."""
    g = st.get
    up, down, one = g("lip_corner_up", 0.0), g("lip_corner_down", 0.0), g("lip_corner_one_side", 0.0)
    press = g("lips_press", 0.0)
    gap = 0.4 * min(1.2, g("mouth_open", 0.0) + g("talk", 0.0))
    corner = -0.2 * up + 0.17 * down
    u = _MOUTH_U
    on_side = (u * side) > 0
    corner_y = np.where(on_side, corner - 0.3 * one, corner)
    width = 0.37 * (1.0 + 0.18 * up - 0.2 * press + 0.1 * gap) + np.where(on_side, 0.06 * one, 0.0)
    x = u * width
    mid = 0.6 + corner_y * u**2
    f = (1.0 - u**2) ** 0.7
    upper_in = mid - 0.25 * gap * f - 0.1 * g("nose_wrinkle", 0.0) * f
    lower_in = mid + 0.75 * gap * f
    thick = 1.0 - 0.75 * press
    upper_out = upper_in - 0.085 * thick * np.sqrt(f)
    lower_out = lower_in + 0.11 * thick * np.sqrt(f)
    return x, np.stack([upper_out, upper_in, mid, lower_in, lower_out])[:, :, None], gap, press


def draw_mouth(pen: Pen, person: Person, side: int, st: Mapping[str, float]) -> None:
    """Lips, mouth opening, teeth, lip-corner creases and the chin bulge of pressed lips.

    Args:
        pen: draws in face units (already shifted for gaze and head turn).
        person: the identity (skin, eye colour, lips, glasses).
        side: -1 / +1, the side of a one-sided lip-corner raise.
        st: channel name -> intensity; missing channels are 0.
    """
    x, rows, gap, press = _mouth_shape(st, side)
    upper_out, upper_in, mid, lower_in, lower_out = (np.concatenate([x[:, None], r], axis=1) for r in rows)
    pen.fill(np.concatenate([upper_out, lower_out[::-1]]), person.lip_rgb)
    if gap > 0.015:
        pen.fill(np.concatenate([upper_in, lower_in[::-1]]), (70, 22, 28))
        if gap > 0.06:
            teeth = upper_in.copy()
            teeth[:, 1] += min(0.3 * gap, 0.07)
            pen.fill(np.concatenate([upper_in, teeth[::-1]]), (235, 232, 225))
    else:
        pen.line(mid, (45, 18, 22), 0.045 + 0.05 * press)
    _draw_mouth_corners(pen, person, side, st, mid)
    if press > 0.3:
        chin = np.array([[-0.15, 0.84], [0.0, 0.88], [0.15, 0.84]])
        pen.line(chin, shade(person.skin, 1.0 - 0.3 * press), 0.04)


def _draw_mouth_corners(pen: Pen, person: Person, side: int, st: Mapping[str, float], mid: np.ndarray) -> None:
    """Short creases at the lip corners: upward for a smile, downward for a frown."""
    up, down, one = st.get("lip_corner_up", 0.0), st.get("lip_corner_down", 0.0), st.get("lip_corner_one_side", 0.0)
    for end, sign in ((mid[0], -1.0), (mid[-1], 1.0)):
        lift = max(up, one if sign == side else 0.0)
        if lift > 0.15:
            pen.line(np.array([end, end + (0.07 * sign, -0.1)]), shade(person.skin, 1.0 - 0.45 * lift), 0.05)
        if down > 0.15:
            pen.line(np.array([end, end + (0.04 * sign, 0.1)]), shade(person.skin, 1.0 - 0.45 * down), 0.05)

