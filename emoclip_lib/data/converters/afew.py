"""AFEW release -> manifest rows (Train -> train, Val -> test; one folder per emotion)."""
from __future__ import annotations

from pathlib import Path

from .common import canonical_emotion, first_existing, layout_error, relative
from ..manifest import ManifestRow
from ..video import VIDEO_EXTENSIONS, natural_key

SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("Train", "Train_AFEW", "train", "AFEW_Face/train"),
    "test": ("Val", "Val_AFEW", "val", "Validation", "validation", "AFEW_Face/validation"),
}


def _samples(split_dir: Path) -> list[tuple[Path, str]]:
    """(video file or frame folder, class) for every emotion sub-folder; other folders are ignored."""
    out: list[tuple[Path, str]] = []
    for emotion_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        label = canonical_emotion(emotion_dir.name)
        if label is None:
            continue
        items = [p for p in emotion_dir.iterdir()
                 if p.is_dir() or (p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)]
        out += [(p, label) for p in sorted(items, key=lambda p: natural_key(p.name))]
    return out


def convert(root: Path) -> list[ManifestRow]:
    """AFEW rows: Train/ -> train, Val/ -> test; fold, caption and subject empty.

    Args:
        root: AFEW root holding `Train/` and `Val/` (or `Train_AFEW/` and `Val_AFEW/`), each with one
            sub-folder per emotion (Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise) of videos
            (.avi, .mp4) or frame folders.
    """
    dirs = {split: first_existing(root, names) for split, names in SPLIT_DIRS.items()}
    samples = {split: _samples(d) for split, d in dirs.items() if d is not None}
    if any(not samples.get(split) for split in SPLIT_DIRS):
        raise layout_error("afew", root, [f"{'/ or '.join(names[:2])}/ with sub-folders Angry, Disgust, Fear, "
                                          f"Happy, Neutral, Sad, Surprise holding videos or frame folders"
                                          for names in SPLIT_DIRS.values()])
    return [ManifestRow(path=relative(path, root), labels=label, split=split, fold=None)
            for split in SPLIT_DIRS for path, label in samples[split]]
