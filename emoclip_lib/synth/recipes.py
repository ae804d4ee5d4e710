"""Expression recipes (class -> facial action components), clip timing and per-frame channels.

A clip is planned as a `ClipSpec` (cheap: no pixels) and rendered with `render_clip`; both depend
only on the spec's seed, so clips are independent of the order in which they are generated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import CANONICAL_CLASSES, parse_labels
from ..errors import UserError
from .faces import CHANNELS, COMPONENTS, ClipCanvas
from .people import Person, Scene

# class -> (component, probability, (low, high) intensity); the first entry is always used.
Recipe = tuple[tuple[str, float, tuple[float, float]], ...]
CLASS_RECIPES: dict[str, Recipe] = {
    "anger": (("brow_lower", 1.0, (0.5, 1.0)), ("brow_knit", 0.8, (0.4, 1.0)), ("lips_press", 0.55, (0.4, 1.0)),
              ("mouth_open", 0.3, (0.3, 0.8)), ("eyes_narrow", 0.3, (0.3, 0.7)), ("eyes_wide", 0.2, (0.3, 0.6)),
              ("nose_wrinkle", 0.15, (0.2, 0.5))),
    "disgust": (("nose_wrinkle", 1.0, (0.5, 1.0)), ("lip_corner_down", 0.5, (0.3, 0.8)),
                ("brow_lower", 0.5, (0.3, 0.7)), ("eyes_narrow", 0.5, (0.3, 0.8)), ("gaze_away", 0.3, (0.4, 0.9)),
                ("head_tilt", 0.2, (0.3, 0.7)), ("mouth_open", 0.25, (0.1, 0.3))),
    "fear": (("brow_raise", 1.0, (0.5, 1.0)), ("eyes_wide", 0.85, (0.5, 1.0)), ("brow_knit", 0.6, (0.3, 0.8)),
             ("mouth_open", 0.6, (0.2, 0.6)), ("lip_corner_down", 0.3, (0.2, 0.6)), ("gaze_away", 0.2, (0.3, 0.8))),
    "happiness": (("lip_corner_up", 1.0, (0.5, 1.0)), ("mouth_open", 0.6, (0.2, 0.8)),
                  ("eyes_narrow", 0.6, (0.3, 0.8)), ("brow_raise", 0.15, (0.2, 0.5))),
    "neutral": (),
    "sadness": (("lip_corner_down", 1.0, (0.5, 1.0)), ("inner_brow_raise", 0.7, (0.4, 1.0)),
                ("gaze_down", 0.6, (0.4, 1.0)), ("brow_knit", 0.5, (0.2, 0.6)), ("eyes_narrow", 0.3, (0.2, 0.5)),
                ("head_tilt", 0.3, (0.2, 0.6))),
    "surprise": (("brow_raise", 1.0, (0.6, 1.0)), ("eyes_wide", 0.9, (0.5, 1.0)), ("mouth_open", 0.8, (0.5, 1.0))),
    "contempt": (("lip_corner_one_side", 1.0, (0.5, 1.0)), ("eyes_narrow", 0.35, (0.2, 0.6)),
                 ("head_tilt", 0.4, (0.2, 0.6)), ("gaze_away", 0.3, (0.3, 0.8))),
    "anxiety": (("brow_knit", 1.0, (0.4, 0.9)), ("brow_raise", 0.7, (0.3, 0.7)), ("lips_press", 0.7, (0.3, 0.9)),
                ("gaze_away", 0.7, (0.4, 1.0)), ("eyes_wide", 0.3, (0.2, 0.5)), ("mouth_open", 0.15, (0.1, 0.25))),
    "helplessness": (("inner_brow_raise", 1.0, (0.5, 1.0)), ("mouth_open", 0.7, (0.15, 0.4)),
                     ("head_tilt", 0.7, (0.3, 0.8)), ("gaze_down", 0.6, (0.3, 0.9)),
                     ("lip_corner_down", 0.3, (0.2, 0.5))),
    "disappointment": (("lip_corner_down", 1.0, (0.25, 0.6)), ("gaze_down", 0.7, (0.3, 0.8)),
                       ("lips_press", 0.6, (0.3, 0.7)), ("brow_knit", 0.3, (0.2, 0.5)),
                       ("head_tilt", 0.2, (0.2, 0.5))),
}
# Pairs that cannot be shown at once: the weaker one is dropped.
CONFLICTS: tuple[tuple[str, str], ...] = (
    ("brow_raise", "brow_lower"), ("inner_brow_raise", "brow_lower"), ("eyes_wide", "eyes_narrow"),
    ("eyes_wide", "eyes_closed"), ("eyes_narrow", "eyes_closed"), ("lip_corner_up", "lip_corner_down"),
    ("lip_corner_up", "lip_corner_one_side"), ("lip_corner_down", "lip_corner_one_side"),
    ("lips_press", "mouth_open"),
)
MOUTH_COMPONENTS: frozenset[str] = frozenset(
    {"lip_corner_up", "lip_corner_down", "lip_corner_one_side", "lips_press", "mouth_open"})
VISIBLE_MIN = 0.12  # apex intensity below which a component is not described
CORPUS_CODES: dict[str, int] = {"mafw_like": 1, "dfew_like": 2, "interviews": 3, "web": 4, "ferv39k_like": 5,
                                "afew_like": 6, "examples": 9}


@dataclass(frozen=True)
class Timing:
    """Onset-apex-offset envelope of a clip, in frames; after the offset the face keeps `release`."""

    onset_start: float
    apex_start: float
    apex_end: float
    offset_end: float
    release: float


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render and describe one clip (no pixels)."""

    corpus: str
    index: int
    seed: int
    labels: tuple[str, ...]
    apex: dict[str, float]
    person: Person
    scene: Scene
    n_frames: int
    timing: Timing
    caption: str = ""
    fold: int = 0


def clip_rng(seed: int, corpus: str, index: int, stream: int) -> np.random.Generator:
    """Random source of one clip, derived from (seed, corpus, index, stream) only.

    Args:
        seed: world seed (non-negative).
        corpus: a key of CORPUS_CODES.
        index: clip (or subject) index inside the corpus.
        stream: 0 planning, 1 rendering, 2 captions, 3 identity.
    """
    return np.random.default_rng([seed, CORPUS_CODES[corpus], index, stream])


def resolve_conflicts(apex: dict[str, float]) -> dict[str, float]:
    """Drop the weaker of each pair of components that cannot co-occur.

    Args:
        apex: component -> intensity.
    """
    out = dict(apex)
    for a, b in CONFLICTS:
        if a in out and b in out:
            del out[b if out[a] >= out[b] else a]
    return out


def sample_expression(labels: str | tuple[str, ...], rng: np.random.Generator) -> dict[str, float]:
    """Apex intensities of the components of one (possibly compound) expression.

    Args:
        labels: "anger", "anger+disgust" or a tuple of canonical class names.
        rng: random source.
    Returns:
        component -> apex intensity in (0, 1].
    """
    names = list(check_labels(labels if isinstance(labels, str) else "+".join(labels)))
    apex: dict[str, float] = {}
    for name in names:
        strength = rng.uniform(0.7, 1.1)
        for k, (comp, prob, (lo, hi)) in enumerate(CLASS_RECIPES[name]):
            if k == 0 or rng.random() < prob:
                value = min(1.0, float(rng.uniform(lo, hi) * strength))
                apex[comp] = max(apex.get(comp, 0.0), value)
    if names == ["neutral"] and rng.random() < 0.35:
        comp = str(rng.choice(["brow_raise", "lips_press", "gaze_away", "gaze_down", "eyes_narrow", "head_tilt"]))
        apex[comp] = float(rng.uniform(0.05, 0.2))
    elif rng.random() < 0.15:  # an unrelated faint movement, as in real faces
        comp = str(rng.choice(COMPONENTS))
        value = float(rng.uniform(0.1, 0.35))
        if comp not in apex and not any({comp, other} == set(pair) for pair in CONFLICTS for other in apex):
            apex[comp] = value
    return {k: round(v, 3) for k, v in resolve_conflicts(apex).items()}


def sample_timing(n_frames: int, rng: np.random.Generator) -> Timing:
    """Random onset, apex and offset times (neutral -> apex -> partial release).

    Args:
        n_frames: clip length.
        rng: random source.
    """
    t0 = rng.uniform(0.0, 0.2) * n_frames
    t1 = t0 + rng.uniform(0.15, 0.3) * n_frames
    t2 = t1 + max(4.0, rng.uniform(0.2, 0.35) * n_frames)
    t3 = t2 + rng.uniform(0.1, 0.25) * n_frames
    return Timing(round(t0, 2), round(t1, 2), round(t2, 2), round(t3, 2), round(float(rng.uniform(0.25, 0.7)), 3))


def envelope(n_frames: int, timing: Timing, lag: float = 0.0) -> np.ndarray:
    """Intensity multiplier per frame: 0 before onset, 1 at apex, `release` after the offset.

    Args:
        n_frames: clip length.
        timing: the envelope's times.
        lag: delay of this component, frames.
    Returns:
        (T,) float array.
    """
    t = np.arange(n_frames, dtype=float) - lag
    rise = np.clip((t - timing.onset_start) / max(timing.apex_start - timing.onset_start, 1e-6), 0, 1)
    fall = np.clip((t - timing.apex_end) / max(timing.offset_end - timing.apex_end, 1e-6), 0, 1)
    smooth = lambda x: x * x * (3 - 2 * x)  # noqa: E731
    return smooth(rise) * (1.0 - (1.0 - timing.release) * smooth(fall))


def head_motion(n_frames: int, rng: np.random.Generator, amount: float = 1.0) -> np.ndarray:
    """Smooth random head jitter and blinks.

    Args:
        n_frames: clip length.
        rng: random source.
        amount: jitter scale (1 = calm).
    Returns:
        (T, 4) array of blink, shift_x, shift_y, roll.
    """
    walk = np.cumsum(rng.normal(0.0, 0.35 * amount, (n_frames, 3)), axis=0)
    walk = np.clip(walk * (1.0, 1.0, 1.5), -3.0, 3.0)
    blink = np.zeros(n_frames)
    for start in np.flatnonzero(rng.random(n_frames) < 1 / 45):
        for k, v in enumerate((0.5, 1.0, 0.5)):
            if start + k < n_frames:
                blink[start + k] = max(blink[start + k], v)
    return np.concatenate([blink[:, None], walk], axis=1)


def clip_states(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """Per-frame channel values of a planned clip.

    Args:
        spec: the clip.
        rng: rendering random source (lags, jitter, blinks).
    Returns:
        (T, len(CHANNELS)) float array; columns follow CHANNELS.
    """
    n = spec.n_frames
    states = np.zeros((n, len(CHANNELS)))
    max_lag = max(0.0, min(3.0, spec.timing.apex_end - spec.timing.apex_start - 1.0))
    lags = rng.uniform(0.0, max_lag, len(COMPONENTS))  # drawn for all, so the rest does not depend on the apex
    for comp, value in spec.apex.items():
        states[:, CHANNELS.index(comp)] = value * envelope(n, spec.timing, lags[COMPONENTS.index(comp)])
    motion = head_motion(n, rng)
    for k, name in enumerate(("blink", "shift_x", "shift_y", "roll")):
        states[:, CHANNELS.index(name)] = motion[:, k]
    return states


def render_states(person: Person, scene: Scene, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render frames from per-frame channel values.

    Args:
        person: the identity.
        scene: the filming conditions.
        states: (T, len(CHANNELS)) channel values.
        rng: random source for sensor noise.
    Returns:
        (T, 112, 112, 3) uint8 RGB frames.
    """
    canvas = ClipCanvas(person, scene, rng)
    frames = [canvas.draw(dict(zip(CHANNELS, row.tolist()))) for row in states]
    return np.stack(frames)


def render_clip(spec: ClipSpec) -> np.ndarray:
    """Render a planned clip; the result depends only on the spec.

    Args:
        spec: the clip.
    Returns:
        (T, 112, 112, 3) uint8 RGB frames.
    """
    rng = clip_rng(spec.seed, spec.corpus, spec.index, 1)
    return render_states(spec.person, spec.scene, clip_states(spec, rng), rng)


def apex_frame_index(spec: ClipSpec) -> int:
    """Index of the frame in the middle of the apex (the most expressive frame).

    Args:
        spec: the clip.
    """
    middle = (spec.timing.apex_start + spec.timing.apex_end) / 2 + 1.5
    return int(min(spec.n_frames - 1, max(0, round(middle))))


def check_labels(labels: str) -> tuple[str, ...]:
    """Parse and validate a label string for the synthetic world.

    Args:
        labels: e.g. "happiness" or "anger+disgust".
    """
    names = tuple(parse_labels(labels))
    if "neutral" in names and len(names) > 1:
        raise UserError(f"labels {labels!r}: 'neutral' cannot be part of a compound expression")
    return tuple(sorted(names, key=CANONICAL_CLASSES.index))
