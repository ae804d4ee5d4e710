"""Procedural face drawing: one person, one scene, one frame of facial-action intensities.

Geometry is defined in "face units" (face centre at 0, y down, the face is about 2 wide and 2.5
tall) and mapped to pixels by a similarity transform (scale, in-plane rotation, translation).
Shapes are bold on purpose so that expressions survive resizing to 32-64 px.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .backdrop import draw_background, finish_frame, light_gain, noise_bank
from .draw import Pen, ellipse, shade
from .face_parts import draw_brows, draw_eyes, draw_mouth, draw_nose
from .people import HAIR_COLOURS, SHIRT_COLOURS, Person, Scene

# Facial action components; each has an intensity in [0, 1].
COMPONENTS: tuple[str, ...] = (
    "brow_raise", "inner_brow_raise", "brow_lower", "brow_knit",
    "eyes_wide", "eyes_narrow", "eyes_closed",
    "lip_corner_up", "lip_corner_down", "lip_corner_one_side", "lips_press", "mouth_open",
    "nose_wrinkle", "gaze_down", "gaze_away", "head_tilt",
)
# Extra per-frame channels: blink and talking (0..1), head jitter (pixels, degrees, face units).
EXTRA_CHANNELS: tuple[str, ...] = ("blink", "talk", "shift_x", "shift_y", "roll", "turn")
CHANNELS: tuple[str, ...] = COMPONENTS + EXTRA_CHANNELS


def _face_outline(person: Person) -> np.ndarray:
    theta = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    e = 2.0 / person.squareness
    x = person.face_w * np.sign(np.cos(theta)) * np.abs(np.cos(theta)) ** e
    y = person.face_h * np.sign(np.sin(theta)) * np.abs(np.sin(theta)) ** e
    x = x * (1.0 - person.jaw * np.clip(y / person.face_h, 0, 1) ** 2)
    return np.stack([x, y], axis=1)  # (40, 2)


def _hair_cap(person: Person) -> np.ndarray:
    theta = np.linspace(np.pi - 0.25, 2 * np.pi + 0.25, 17)
    e = 2.0 / person.squareness
    w, h = person.face_w * 1.08, person.face_h * 1.08
    outer = np.stack([w * np.sign(np.cos(theta)) * np.abs(np.cos(theta)) ** e,
                      h * np.sign(np.sin(theta)) * np.abs(np.sin(theta)) ** e], axis=1)
    fw, fh = person.face_w, person.face_h
    inner = np.array([[fw * 0.93, -0.3], [fw * 0.6, -0.8 * fh], [0.0, -0.85 * fh],
                      [-fw * 0.6, -0.8 * fh], [-fw * 0.93, -0.3]])
    return np.concatenate([outer, inner])  # (22, 2)


class ClipCanvas:
    """Everything about a clip that stays fixed over its frames; `draw` renders one frame.

    Args:
        person: the identity.
        scene: the filming conditions.
        rng: random source of the clip (sensor noise).
    """

    def __init__(self, person: Person, scene: Scene, rng: np.random.Generator) -> None:
        self.person, self.scene, self.rng = person, scene, rng
        self.background = draw_background(scene)
        self.gain = np.repeat(light_gain(scene), 3, axis=2)  # (H, W, 3): multiplied 2x faster than (H, W, 1)
        self.noise = noise_bank(scene, rng)
        self.outline = _face_outline(person)
        self.cap = _hair_cap(person)
        self.hair = HAIR_COLOURS[person.hair_colour]
        self.brow = shade(self.hair, 0.55 if person.hair_colour in ("blond", "gray") else 0.8)
        self.shirt = SHIRT_COLOURS[person.shirt_colour]

    def _pens(self, st: Mapping[str, float]) -> tuple[Pen, Pen, Pen, np.ndarray]:
        """Body pen (no rotation), head pen, features pen (head pen shifted by gaze/turn) and a fresh image."""
        p, sc = self.person, self.scene
        img = self.background.copy()
        cx = p.cx + sc.dx + st.get("shift_x", 0.0)
        cy = p.cy + sc.dy + st.get("shift_y", 0.0)
        scale = p.scale * sc.zoom
        roll = p.roll + st.get("roll", 0.0) + sc.side * 15.0 * st.get("head_tilt", 0.0)
        head = Pen(img, cx, cy, scale, roll)
        yaw = sc.side * 0.09 * st.get("gaze_away", 0.0) + st.get("turn", 0.0)
        feats = head.moved((yaw, 0.07 * st.get("gaze_down", 0.0)))
        return Pen(img, cx, cy, scale, 0.0), head, feats, img

    def draw(self, st: Mapping[str, float]) -> np.ndarray:
        """Render one frame.

        Args:
            st: channel name (see CHANNELS) -> value; missing channels are 0.
        Returns:
            (112, 112, 3) uint8 RGB frame.
        """
        body, head, feats, img = self._pens(st)
        _draw_body(self, body, head)
        _draw_head(self, head, st)
        draw_eyes(feats, self.person, self.scene.side, st)
        draw_brows(feats, self.person, self.brow, st)
        draw_nose(feats, self.person, self.scene.side, st)
        draw_mouth(feats, self.person, self.scene.side, st)
        if self.scene.occluder is not None:
            _draw_occluder(self, head, body)
        return finish_frame(img, self.gain, self.noise, self.rng)


def _draw_body(cv: ClipCanvas, body: Pen, head: Pen) -> None:
    p = cv.person
    body.fill(np.array([[-2.3, 3.0], [-1.9, 1.75], [-0.6, 1.45], [0.6, 1.45], [1.9, 1.75], [2.3, 3.0]]), cv.shirt)
    if p.hair_style == "long":
        back = np.concatenate([[[-p.face_w * 1.2, 1.35]], ellipse(0, -0.1, p.face_w * 1.2, p.face_h * 1.1)[12:],
                               [[p.face_w * 1.2, 1.35]]])
        head.fill(back, cv.hair)
    body.fill(np.array([[-0.36, 0.7], [0.36, 0.7], [0.4, 1.6], [-0.4, 1.6]]), shade(p.skin, 0.85))
    if p.hair_style == "bun":
        head.fill(ellipse(0.0, -p.face_h - 0.18, 0.34, 0.3), cv.hair)


def _draw_head(cv: ClipCanvas, head: Pen, st: Mapping[str, float]) -> None:
    p = cv.person
    ear = shade(p.skin, 0.9)
    head.fill(ellipse(p.face_w * 0.97, -0.1, 0.15, 0.27), ear)
    head.fill(ellipse(-p.face_w * 0.97, -0.1, 0.15, 0.27), ear)
    drop = 1.0 + 0.12 * min(1.0, st.get("mouth_open", 0.0) + st.get("talk", 0.0))
    outline = cv.outline.copy()
    low = outline[:, 1] > 0.2
    outline[low, 1] = 0.2 + (outline[low, 1] - 0.2) * drop
    head.fill(outline, p.skin)
    if p.beard:
        beard = outline[(outline[:, 1] > 0.35)]
        head.fill(np.concatenate([beard, [[-0.5, 0.4], [0.5, 0.4]]]), cv.hair)
    if p.hair_style != "bald":
        head.fill(cv.cap, cv.hair)
    if p.hair_style == "curly":
        for pt in cv.cap[1:16:2]:
            head.fill(ellipse(pt[0], pt[1], 0.2, 0.2), cv.hair)
    if p.age == "older":
        for y in (-0.8, -0.9):
            head.line(np.array([[-0.35, y], [0.0, y - 0.03], [0.35, y]]), shade(p.skin, 0.85), 0.03)


def _draw_occluder(cv: ClipCanvas, head: Pen, body: Pen) -> None:
    side, skin = cv.scene.side, shade(cv.person.skin, 0.97)
    kind = cv.scene.occluder
    if kind == "bar":
        body.fill(np.array([[side * 0.62, -3.0], [side * 3.0, -3.0], [side * 3.0, 3.0], [side * 0.62, 3.0]]),
                  (40, 40, 46))
        return
    centre = (side * 0.2, 0.7) if kind == "hand_mouth" else (0.0, 1.3)
    head.line(np.array([centre, (side * 0.7, 3.0)]), skin, 0.45)
    head.fill(ellipse(centre[0], centre[1], 0.42, 0.32), skin)
    for k in range(4):
        x = centre[0] - 0.3 + 0.2 * k
        head.line(np.array([[x, centre[1]], [x - side * 0.05, centre[1] - 0.42]]), skin, 0.13)


def render_frame(person: Person, scene: Scene, state: Mapping[str, float], seed: int = 0) -> np.ndarray:
    """Render a single frame (convenience for notebooks; clips should reuse one ClipCanvas).

    Args:
        person: the identity.
        scene: the filming conditions.
        state: channel name -> intensity (see CHANNELS); missing channels are 0.
        seed: seed of the sensor noise.
    Returns:
        (112, 112, 3) uint8 RGB frame.
    """
    return ClipCanvas(person, scene, np.random.default_rng(seed)).draw(state)


def mouth_box(person: Person, scene: Scene) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) around the resting mouth, for measuring mouth motion.

    Args:
        person: the identity.
        scene: the filming conditions.
    """
    scale = person.scale * scene.zoom
    cx, cy = person.cx + scene.dx, person.cy + scene.dy + 0.65 * scale
    half_w, half_h = 0.5 * scale, 0.3 * scale
    return (int(max(0, cx - half_w)), int(max(0, cy - half_h)), int(min(112, cx + half_w)), int(min(112, cy + half_h)))

