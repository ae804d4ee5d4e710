"""Synthetic interview cohort for the downstream symptom-severity task.

Each subject has latent symptom scores on a 1-7 scale that change how the face behaves in its
interview videos: blunted affect weakens and thins out expression episodes, reduced speech
movement shrinks talking mouth motion, poor eye contact adds gaze-away/down events and anxiety
signs add worried episodes and fidgety head motion. Rated scores are latent + rater noise.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .faces import CHANNELS
from .people import Person, Scene, sample_person, sample_scene
from .recipes import Timing, clip_rng, envelope, head_motion, render_states, sample_expression

ITEMS: tuple[str, ...] = ("blunted_affect", "reduced_speech_movement", "poor_eye_contact", "anxiety_signs")
RATER_NOISE = 0.6
EPISODE_CLASSES: tuple[str, ...] = ("happiness", "surprise", "sadness", "anger", "disgust", "contempt", "anxiety", "fear")


@dataclass(frozen=True)
class InterviewSubject:
    """One cohort member: identity, interview room, latent scores and per-session ratings."""

    index: int
    person: Person
    scene: Scene
    latent: dict[str, float]
    sessions: tuple[tuple[int, int, dict[str, int]], ...]  # (session number, n_frames, ratings)


def _latent_scores(rng: np.random.Generator) -> dict[str, float]:
    z = rng.normal()
    e = rng.normal(size=4)
    raw = (0.7 * z + 0.714 * e[0], 0.6 * z + 0.8 * e[1], 0.4 * z + 0.917 * e[2], e[3])
    return {item: round(float(np.clip(4.0 + 1.6 * r, 1.0, 7.0)), 2) for item, r in zip(ITEMS, raw)}


def plan_cohort(n_subjects: int, n_sessions: int, frames: tuple[int, int], seed: int) -> list[InterviewSubject]:
    """Plan the cohort without rendering anything.

    Args:
        n_subjects: number of subjects.
        n_sessions: interview videos per subject.
        frames: (min, max) frames per video.
        seed: world seed.
    """
    cohort = []
    for i in range(n_subjects):
        person = sample_person(f"s{i:03d}", clip_rng(seed, "interviews", i, 3))
        rng = clip_rng(seed, "interviews", i, 0)
        scene = replace(sample_scene(rng, setting="clinic", p_occluder=0.0), noise_sigma=float(rng.uniform(1.0, 3.0)))
        latent = _latent_scores(rng)
        sessions = []
        for s in range(1, n_sessions + 1):
            n_frames = int(rng.integers(frames[0], frames[1] + 1))
            ratings = {k: int(np.clip(np.rint(v + rng.normal(0.0, RATER_NOISE)), 1, 7)) for k, v in latent.items()}
            sessions.append((s, n_frames, ratings))
        cohort.append(InterviewSubject(i, person, scene, latent, tuple(sessions)))
    return cohort


def _episodes(states: np.ndarray, latent: dict[str, float], rng: np.random.Generator) -> None:
    n = len(states)
    expressivity = 1.0 - 0.115 * (latent["blunted_affect"] - 1.0)
    anxiety = (latent["anxiety_signs"] - 1.0) / 6.0
    weights = np.array([0.35, 0.12, 0.15, 0.08, 0.05, 0.05, 0.1 + 0.5 * anxiety, 0.05 + 0.1 * anxiety])
    t = rng.uniform(2.0, 20.0)
    while t < n - 8:
        label = str(rng.choice(EPISODE_CLASSES, p=weights / weights.sum()))
        length = rng.uniform(14.0, 30.0)
        timing = Timing(t, t + 0.3 * length, t + 0.65 * length, t + length, 0.0)
        scale = expressivity * rng.uniform(0.8, 1.1)
        for comp, value in sample_expression(label, rng).items():
            col = CHANNELS.index(comp)
            states[:, col] = np.maximum(states[:, col], min(1.0, value * scale) * envelope(n, timing))
        t += length + rng.uniform(8.0, 30.0) / (0.3 + 0.7 * expressivity)


def _talking(states: np.ndarray, latent: dict[str, float], rng: np.random.Generator) -> None:
    n = len(states)
    speech = 1.0 - 0.14 * (latent["reduced_speech_movement"] - 1.0)
    amp = 0.06 + 0.6 * speech
    col = CHANNELS.index("talk")
    t = int(rng.integers(0, 10))
    while t < n:
        length = int(rng.integers(10, 31))
        period = rng.uniform(3.5, 5.5)
        frames = np.arange(length)
        syllables = rng.uniform(0.5, 1.0, length // 3 + 2)[frames // 3]
        wave = np.abs(np.sin(np.pi * frames / period + rng.uniform(0, np.pi))) * syllables * amp
        end = min(n, t + length)
        states[t:end, col] = wave[: end - t]
        t = end + int(rng.uniform(6.0, 20.0) * (0.5 + 2.5 * (1.0 - speech)))


def _gaze(states: np.ndarray, latent: dict[str, float], rng: np.random.Generator) -> None:
    n = len(states)
    p = (latent["poor_eye_contact"] - 1.0) / 6.0
    for _ in range(int(rng.poisson(n / 50.0 * (0.2 + 3.0 * p)))):
        start = rng.uniform(0.0, n - 4)
        length = rng.uniform(6.0, 24.0)
        timing = Timing(start, start + 0.25 * length, start + 0.75 * length, start + length, 0.0)
        col = CHANNELS.index("gaze_away" if rng.random() < 0.6 else "gaze_down")
        states[:, col] = np.maximum(states[:, col], rng.uniform(0.5, 1.0) * envelope(n, timing))


def session_states(subject: InterviewSubject, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Per-frame channels of one interview video (episodes, talking, gaze, head motion).

    Args:
        subject: the cohort member.
        n_frames: video length.
        rng: random source of this session.
    Returns:
        (T, len(CHANNELS)) float array.
    """
    states = np.zeros((n_frames, len(CHANNELS)))
    _episodes(states, subject.latent, rng)
    _talking(states, subject.latent, rng)
    _gaze(states, subject.latent, rng)
    anxiety = (subject.latent["anxiety_signs"] - 1.0) / 6.0
    motion = head_motion(n_frames, rng, amount=1.0 + 1.2 * anxiety)
    for k, name in enumerate(("blink", "shift_x", "shift_y", "roll")):
        states[:, CHANNELS.index(name)] = motion[:, k]
    phase = rng.uniform(0, 2 * np.pi)
    states[:, CHANNELS.index("turn")] = 0.03 * np.sin(np.arange(n_frames) / 15.0 + phase)
    return states


def render_session(subject: InterviewSubject, session: int, seed: int) -> np.ndarray:
    """Render one interview video; depends only on (seed, subject index, session).

    Args:
        subject: the cohort member.
        session: session number (1-based, as in `subject.sessions`).
        seed: world seed.
    Returns:
        (T, 112, 112, 3) uint8 RGB frames.
    """
    n_frames = dict((s, n) for s, n, _ in subject.sessions)[session]
    rng = clip_rng(seed, "interviews", subject.index, 10 + session)
    return render_states(subject.person, subject.scene, session_states(subject, n_frames, rng), rng)
