"""The synthetic face-video world: a captioned training corpus (MAFW-like), a caption-free evaluation
corpus with new identities (DFEW-like) and an interview cohort with symptom scores.

`generate_world` writes all three as real mp4 files plus CSV manifests; the `plan_*` functions give
the same content without rendering (for tests and quick looks).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..data import BASIC_CLASSES, CANONICAL_CLASSES, InterviewRow, join_labels, write_interview_manifest, write_manifest
from ..errors import UserError
from .captions import make_caption
from .descriptions import write_class_descriptions
from .cohort import ITEMS, InterviewSubject, plan_cohort, render_session
from ..workers import parallel_run
from .files import fold_rows, subject_folds, write_csv, write_video
from .people import FILM_SETTINGS, Person, sample_person, sample_scene
from .recipes import (CORPUS_CODES, MOUTH_COMPONENTS, VISIBLE_MIN, ClipSpec, check_labels, clip_rng,
                            render_clip, sample_expression, sample_timing)

SYNTH_VERSION = "emoclip-synth-2"  # 2: class_descriptions.yaml in the captions' vocabulary
MAFW_WEIGHTS: dict[str, float] = {
    "anger": 1.2, "disgust": 0.8, "fear": 0.8, "happiness": 1.4, "neutral": 1.0, "sadness": 1.4,
    "surprise": 1.0, "contempt": 0.6, "anxiety": 0.9, "helplessness": 0.6, "disappointment": 0.6,
}
DFEW_WEIGHTS: dict[str, float] = {
    "anger": 1.1, "disgust": 0.5, "fear": 0.8, "happiness": 1.3, "neutral": 1.2, "sadness": 1.2, "surprise": 0.8,
}
COMPOUNDS: tuple[str, ...] = (
    "anger+disgust", "happiness+surprise", "fear+surprise", "sadness+anxiety", "sadness+helplessness",
    "anger+surprise", "disgust+contempt", "sadness+disappointment", "fear+anxiety",
)
SUBJECT_PREFIX: dict[str, str] = {"mafw_like": "m", "dfew_like": "d", "ferv39k_like": "f", "afew_like": "a"}
DESCRIPTIONS_FILE = "class_descriptions.yaml"


@dataclass(frozen=True)
class WorldSize:
    """How much to generate."""

    mafw_subjects: int
    mafw_clips_per_subject: int
    dfew_subjects: int
    dfew_clips_per_subject: int
    interview_subjects: int
    interview_sessions: int
    clip_frames: tuple[int, int]
    interview_frames: tuple[int, int]
    compound_fraction: float = 0.12
    ferv39k_subjects: int = 5  # FERV39k-like and AFEW-like corpora (official layouts only)
    afew_subjects: int = 5
    eval_clips_per_subject: int = 1


SIZES: dict[str, WorldSize] = {
    "tiny": WorldSize(5, 2, 5, 1, 6, 2, (12, 16), (40, 48)),
    "small": WorldSize(30, 13, 25, 8, 40, 3, (24, 40), (96, 160), ferv39k_subjects=20, afew_subjects=15,
                       eval_clips_per_subject=5),
    "medium": WorldSize(60, 26, 50, 16, 160, 3, (24, 40), (96, 160), ferv39k_subjects=40, afew_subjects=30,
                        eval_clips_per_subject=10),
}


def check_seed(seed: object) -> None:
    """Refuse a world seed that is not a non-negative integer.

    Args:
        seed: the value given.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"seed={seed!r}: the seed must be a non-negative integer")


def resolve_size(size: str | WorldSize) -> WorldSize:
    """Look up a size by name.

    Args:
        size: "tiny", "small", "medium" or a WorldSize.
    """
    if isinstance(size, WorldSize):
        return size
    if size not in SIZES:
        raise UserError(f"unknown world size {size!r}: choose one of {', '.join(SIZES)}")
    return SIZES[size]


def _largest_remainder(total: int, weights: dict[str, float]) -> list[str]:
    raw = np.array(list(weights.values())) * total / sum(weights.values())
    counts = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - counts), kind="stable")[: total - counts.sum()]:
        counts[k] += 1
    return [name for name, c in zip(weights, counts.tolist()) for _ in range(c)]


def _label_plan(corpus: str, clip_folds: list[int], size: WorldSize, rng: np.random.Generator) -> list[str]:
    """Labels per clip, dealt round-robin over folds so every fold gets a similar class mix."""
    n = len(clip_folds)
    if corpus == "mafw_like":
        n_compound = int(round(n * size.compound_fraction))
        multiset = _largest_remainder(n - n_compound, MAFW_WEIGHTS)
        multiset += _largest_remainder(n_compound, {c: 1.0 for c in COMPOUNDS}) if n_compound else []
    else:
        multiset = _largest_remainder(n, DFEW_WEIGHTS)
    queues = [rng.permutation([i for i in range(n) if clip_folds[i] == f]).tolist() for f in range(1, 6)]
    order = []
    while any(queues):
        order += [q.pop(0) for q in queues if q]
    labels = [""] * n
    for clip, label in zip(order, multiset):
        labels[clip] = label
    return labels


def visible_components(apex: dict[str, float], occluder: str | None) -> dict[str, float]:
    """The components a viewer can see at the apex: strong enough and not hidden by an occluder.

    Args:
        apex: component -> apex intensity.
        occluder: the scene's occluder (a hand over the mouth hides the mouth components).
    """
    hidden = MOUTH_COMPONENTS if occluder == "hand_mouth" else frozenset()
    return {c: v for c, v in apex.items() if v >= VISIBLE_MIN and c not in hidden}


def plan_clip(corpus: str, index: int, seed: int, labels: str, person: Person, home: str,
              frames: tuple[int, int], with_caption: bool, fold: int = 0) -> ClipSpec:
    """Plan one clip (expression, timing, scene, caption) from (seed, corpus, index) alone.

    Args:
        corpus: a key of CORPUS_CODES.
        index: clip index in the corpus.
        seed: world seed.
        labels: "happiness" or a compound such as "anger+disgust".
        person: the identity.
        home: the person's usual setting (used for about half of the clips).
        frames: (min, max) clip length.
        with_caption: write a caption (False leaves it empty).
        fold: the clip's fold (1..5; 0 when not in a fold).
    """
    names = check_labels(labels)
    rng = clip_rng(seed, corpus, index, 0)
    scene = sample_scene(rng, setting=home if rng.random() < 0.5 else None)
    n_frames = int(rng.integers(frames[0], frames[1] + 1))
    apex = sample_expression(names, rng)
    timing = sample_timing(n_frames, rng)
    caption = ""
    if with_caption:
        onset = (timing.apex_start - timing.onset_start) / n_frames
        caption = make_caption(person, scene, visible_components(apex, scene.occluder), names, onset,
                               timing.release, clip_rng(seed, corpus, index, 2)).text
    return ClipSpec(corpus, index, seed, names, apex, person, scene, n_frames, timing, caption, fold)


def plan_subjects(corpus: str, n_subjects: int, seed: int) -> list[tuple[Person, str]]:
    """Identities of a corpus with their usual setting; ids are prefixed per corpus so corpora never share one.

    Args:
        corpus: a key of SUBJECT_PREFIX.
        n_subjects: number of identities.
        seed: world seed.
    """
    out = []
    for i in range(n_subjects):
        rng = clip_rng(seed, corpus, i, 3)
        person = sample_person(f"{SUBJECT_PREFIX[corpus]}{i:03d}", rng)
        out.append((person, str(rng.choice(FILM_SETTINGS))))
    return out


def plan_corpus(corpus: str, size: str | WorldSize, seed: int) -> list[ClipSpec]:
    """Plan every clip of "mafw_like" (11 classes, compounds, captions) or of a 7-class caption-free corpus
    with its own identities ("dfew_like", "ferv39k_like", "afew_like"); clips carry subject-disjoint folds 1..5.

    Args:
        corpus: a key of SUBJECT_PREFIX.
        size: a size name or WorldSize.
        seed: world seed.
    """
    if corpus not in SUBJECT_PREFIX:
        raise UserError(f"unknown corpus {corpus!r}: choose one of {', '.join(SUBJECT_PREFIX)}")
    sz = resolve_size(size)
    mafw = corpus == "mafw_like"
    n_subj, per = {"mafw_like": (sz.mafw_subjects, sz.mafw_clips_per_subject),
                   "dfew_like": (sz.dfew_subjects, sz.dfew_clips_per_subject),
                   "ferv39k_like": (sz.ferv39k_subjects, sz.eval_clips_per_subject),
                   "afew_like": (sz.afew_subjects, sz.eval_clips_per_subject)}[corpus]
    people = plan_subjects(corpus, n_subj, seed)
    world_rng = np.random.default_rng([seed, CORPUS_CODES[corpus], 0, 99])
    folds = subject_folds(n_subj, world_rng)
    clip_folds = [folds[i // per] for i in range(n_subj * per)]
    labels = _label_plan(corpus, clip_folds, sz, world_rng)
    return [plan_clip(corpus, i, seed, labels[i], *people[i // per], sz.clip_frames, mafw, clip_folds[i])
            for i in range(n_subj * per)]


def render_example(labels: str, seed: int = 0, n_frames: int = 32) -> tuple[np.ndarray, ClipSpec]:
    """Render one captioned example clip of a class (for notebooks: grids of frames per class).

    Args:
        labels: "happiness" or a compound such as "anger+disgust".
        seed: picks the person, the scene, the expression and the caption.
        n_frames: clip length.
    Returns:
        frames (T, 112, 112, 3) uint8 RGB and the clip's spec (see `apex_frame_index`).
    """
    if n_frames < 8:
        raise UserError(f"n_frames={n_frames}: an example clip needs at least 8 frames")
    person = sample_person(f"x{seed:03d}", clip_rng(seed, "examples", 0, 3))
    spec = plan_clip("examples", 0, seed, labels, person, "studio", (n_frames, n_frames), True)
    return render_clip(spec), spec


def _write_corpus(out: Path, specs: list[ClipSpec], progress: bool) -> dict[str, int]:
    corpus = specs[0].corpus
    (out / corpus / "videos").mkdir(parents=True, exist_ok=True)
    clips = []
    for spec in tqdm(specs, desc=corpus, disable=not progress):
        rel = f"videos/{spec.index:06d}.mp4"
        write_video(out / corpus / rel, render_clip(spec))
        clips.append((rel, join_labels(list(spec.labels)), spec.caption, spec.fold, spec.person.subject))
    write_manifest(fold_rows(clips), out / corpus / "manifest.csv")
    return dict(sorted(Counter(c[1] for c in clips).items()))


def _render_job(job: tuple[InterviewSubject, int, int, Path]) -> None:
    """Render one interview session and write its video (a worker's task: nothing large goes back)."""
    write_video(job[3], render_session(*job[:3]))


def write_interviews(out: Path, size: WorldSize, seed: int, progress: bool) -> int:
    """Render the interview cohort into `out/interviews/` (manifest.csv, videos/, latent_scores.csv).

    Args:
        out: the world's folder.
        size: how many subjects, sessions and frames.
        seed: world seed.
        progress: show a progress bar.
    Returns:
        the number of interview videos.
    """
    cohort = plan_cohort(size.interview_subjects, size.interview_sessions, size.interview_frames, seed)
    (out / "interviews" / "videos").mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(subj, s, ratings) for subj in cohort for s, _, ratings in subj.sessions]
    rels = [f"videos/{subj.person.subject}_{session}.mp4" for subj, session, _ in jobs]
    parallel_run(_render_job, [(subj, s, seed, out / "interviews" / rel) for (subj, s, _), rel in zip(jobs, rels)],
                 "interviews", progress)
    for (subj, session, ratings), rel in zip(jobs, rels):
        rows.append(InterviewRow(rel, subj.person.subject, str(session), {k: ratings[k] for k in ITEMS}))
    write_interview_manifest(rows, list(ITEMS), out / "interviews" / "manifest.csv")
    latent = [[s.person.subject] + [f"{s.latent[k]:.2f}" for k in ITEMS] for s in cohort]
    write_csv(out / "interviews" / "latent_scores.csv", ("subject",) + ITEMS, latent)
    return len(rows)


def generate_world(out_dir: str | Path, size: str | WorldSize = "small", seed: int = 0,
                   progress: bool = True) -> dict:
    """Write the synthetic world: mafw_like/, dfew_like/, interviews/, class_descriptions.yaml (class
    descriptions in the captions' vocabulary, see `synth_descriptions`) and world.json under `out_dir`.

    Args:
        out_dir: output folder (created; existing files with the same names are overwritten).
        size: "tiny", "small", "medium" or a WorldSize.
        seed: non-negative world seed; the same seed gives byte-identical files.
        progress: show progress bars.
    Returns:
        summary with seed, size, version, counts, class_counts, manifest paths and the descriptions path.
    """
    check_seed(seed)
    sz = resolve_size(size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    class_counts = {c: _write_corpus(out, plan_corpus(c, sz, seed), progress) for c in ("mafw_like", "dfew_like")}
    n_interviews = write_interviews(out, sz, seed, progress)
    write_class_descriptions(out / DESCRIPTIONS_FILE, seed=seed)
    info = {
        "version": SYNTH_VERSION, "seed": seed, "size": size if isinstance(size, str) else "custom",
        "size_params": asdict(sz), "fps": 16, "frame_size": 112,
        "counts": {"mafw_like": sum(class_counts["mafw_like"].values()),
                   "dfew_like": sum(class_counts["dfew_like"].values()),
                   "interviews": n_interviews, "interview_subjects": sz.interview_subjects},
        "class_counts": class_counts,
        "manifests": {c: f"{c}/manifest.csv" for c in ("mafw_like", "dfew_like", "interviews")},
        "descriptions": DESCRIPTIONS_FILE,
        "classes": {"mafw_like": list(CANONICAL_CLASSES), "dfew_like": list(BASIC_CLASSES)},
    }
    (out / "world.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return {**info, "out_dir": str(out), "paths": {c: str(out / p) for c, p in info["manifests"].items()},
            "descriptions_path": str(out / DESCRIPTIONS_FILE)}
