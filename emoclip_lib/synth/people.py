"""Synthetic identities (what a person looks like) and scenes (where and how a clip is filmed).

Everything here is plain data sampled from a `numpy.random.Generator`; drawing lives in
`synth_faces`, wording in `synth_captions`. Colours are RGB tuples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (245, 214, 190), (236, 192, 160), (222, 170, 132), (196, 140, 100),
    (165, 112, 78), (128, 86, 60), (96, 64, 46),
)
HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (28, 24, 24), "dark brown": (62, 42, 30), "brown": (110, 74, 46),
    "blond": (214, 180, 112), "red": (160, 72, 38), "gray": (165, 165, 165),
}
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bald", "curly", "bun")
SHIRT_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (180, 40, 40), "blue": (50, 80, 170), "green": (50, 130, 70), "black": (30, 30, 30),
    "white": (235, 235, 235), "gray": (128, 128, 128), "yellow": (220, 190, 60),
    "navy": (30, 40, 90), "maroon": (110, 30, 40), "orange": (220, 120, 40),
}
EYE_COLOURS: tuple[tuple[int, int, int], ...] = (
    (55, 35, 25), (90, 60, 35), (60, 100, 150), (70, 110, 70), (95, 100, 105),
)
# setting -> (wall colour, brightness range); the drawing of each lives in synth_faces.
SETTINGS: dict[str, tuple[tuple[int, int, int], tuple[float, float]]] = {
    "office": ((205, 202, 190), (0.9, 1.1)),
    "dim room": ((85, 70, 60), (0.5, 0.65)),
    "outdoors": ((150, 190, 230), (0.95, 1.15)),
    "kitchen": ((228, 212, 180), (0.85, 1.05)),
    "car": ((70, 72, 78), (0.75, 0.95)),
    "living room": ((185, 150, 118), (0.8, 1.0)),
    "studio": ((120, 140, 160), (0.9, 1.1)),
    "clinic": ((215, 228, 232), (0.9, 1.05)),
}
FILM_SETTINGS: tuple[str, ...] = tuple(s for s in SETTINGS if s != "clinic")
OCCLUDERS: tuple[str, ...] = ("hand_mouth", "hand_chin", "bar")
AGES: tuple[str, ...] = ("young", "middle-aged", "older")


@dataclass(frozen=True)
class Person:
    """Appearance of one synthetic identity (constant over all its clips)."""

    subject: str
    gender: str  # "man" | "woman"
    age: str  # one of AGES
    face_w: float  # half-width of the face in face units
    face_h: float  # half-height of the face in face units
    squareness: float  # superellipse exponent: 2 = oval, larger = squarer
    jaw: float  # 0 = wide jaw, larger = narrower chin
    skin: tuple[int, int, int]
    hair_style: str
    hair_colour: str
    beard: bool
    glasses: bool
    eye_rgb: tuple[int, int, int]
    lip_rgb: tuple[int, int, int]
    shirt_colour: str
    scale: float  # pixels per face unit at 112 px
    cx: float  # face centre, pixels
    cy: float
    roll: float  # resting in-plane rotation, degrees


@dataclass(frozen=True)
class Scene:
    """Filming conditions of one clip: setting, light, camera offsets, noise and occlusion."""

    setting: str
    wall: tuple[int, int, int]
    detail_seed: int  # places windows, shelves, tiles in the background
    light_angle: float  # degrees, direction the light comes from (0 = from the right, 90 = from below)
    light_strength: float  # 0 = even light, 0.45 = strong side light
    brightness: float
    noise_sigma: float  # sensor noise, grey levels
    dx: float  # camera offset of the face, pixels
    dy: float
    zoom: float  # multiplies Person.scale
    occluder: str | None  # one of OCCLUDERS or None
    side: int  # -1 / +1: side of one-sided movements, gaze and occluder


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: float) -> tuple[int, int, int]:
    values = np.clip(np.asarray(rgb, dtype=float) * rng.uniform(1 - amount, 1 + amount, 3), 0, 255)
    return (int(values[0]), int(values[1]), int(values[2]))


def _hair(rng: np.random.Generator, gender: str, age: str) -> tuple[str, str]:
    if gender == "woman":
        style = str(rng.choice(HAIR_STYLES, p=[0.2, 0.45, 0.03, 0.17, 0.15]))
    else:
        style = str(rng.choice(HAIR_STYLES, p=[0.55, 0.08, 0.17, 0.17, 0.03]))
    p_gray = {"young": 0.0, "middle-aged": 0.15, "older": 0.6}[age]
    if rng.random() < p_gray:
        return style, "gray"
    return style, str(rng.choice(["black", "dark brown", "brown", "blond", "red"], p=[0.3, 0.3, 0.2, 0.13, 0.07]))


def sample_person(subject: str, rng: np.random.Generator) -> Person:
    """Draw one identity.

    Args:
        subject: identity id written to manifests (e.g. "m007").
        rng: random source; the same state gives the same person.
    """
    gender = "woman" if rng.random() < 0.5 else "man"
    age = str(rng.choice(AGES, p=[0.45, 0.35, 0.2]))
    style, colour = _hair(rng, gender, age)
    skin = _jitter(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], rng, 0.05)
    lip_base = 0.5 * np.asarray(skin, dtype=float) * np.array([0.8, 0.55, 0.55]) + np.array([80.0, 30.0, 35.0])
    if gender == "woman" and rng.random() < 0.4:
        lip_base = np.array([170.0, 40.0, 60.0])  # lipstick
    return Person(
        subject=subject, gender=gender, age=age,
        face_w=float(rng.uniform(0.86, 1.0)), face_h=float(rng.uniform(1.18, 1.34)),
        squareness=float(rng.uniform(2.0, 2.8)),
        jaw=float(rng.uniform(0.12, 0.3) if gender == "woman" else rng.uniform(0.0, 0.18)),
        skin=skin, hair_style=style, hair_colour=colour,
        beard=gender == "man" and rng.random() < 0.3, glasses=rng.random() < 0.2,
        eye_rgb=EYE_COLOURS[int(rng.integers(len(EYE_COLOURS)))],
        lip_rgb=(int(lip_base[0]), int(lip_base[1]), int(lip_base[2])),
        shirt_colour=str(rng.choice(list(SHIRT_COLOURS))),
        scale=float(rng.uniform(28.0, 33.0)), cx=float(rng.uniform(50.0, 62.0)),
        cy=float(rng.uniform(52.0, 58.0)), roll=float(rng.normal(0.0, 4.0)),
    )


def sample_scene(rng: np.random.Generator, setting: str | None = None, p_occluder: float = 0.08) -> Scene:
    """Draw filming conditions for one clip.

    Args:
        rng: random source.
        setting: force a setting (a key of SETTINGS); None draws one of FILM_SETTINGS.
        p_occluder: probability that a hand or a bar covers part of the picture.
    """
    name = setting if setting is not None else str(rng.choice(FILM_SETTINGS))
    wall, (lo, hi) = SETTINGS[name]
    occluder = str(rng.choice(OCCLUDERS)) if rng.random() < p_occluder else None
    strength = float(rng.uniform(0.0, 0.45)) if rng.random() < 0.75 else 0.0
    return Scene(
        setting=name, wall=_jitter(wall, rng, 0.08), detail_seed=int(rng.integers(2**31)),
        light_angle=float(rng.uniform(0.0, 360.0)), light_strength=strength,
        brightness=float(rng.uniform(lo, hi)), noise_sigma=float(rng.uniform(1.0, 7.0)),
        dx=float(rng.normal(0.0, 3.0)), dy=float(rng.normal(0.0, 2.0)),
        zoom=float(rng.uniform(0.92, 1.08)), occluder=occluder, side=1 if rng.random() < 0.5 else -1,
    )
