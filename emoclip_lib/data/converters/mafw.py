"""MAFW release -> manifest rows (five folds, English captions, single and compound labels)."""
from __future__ import annotations

import re
from pathlib import Path

from ..classes import COMPOUND_SEPARATOR
from .common import canonical_emotion, first_existing, layout_error, relative, text_lines
from ...errors import DataError, UserError
from ..manifest import ManifestRow

SPLIT_ROOTS: tuple[str, ...] = ("Train_Test_Set", "Train & Test Set")
CAPTION_DIRS: tuple[str, ...] = ("with_caption_new", "with_caption")
NO_CAPTION_DIRS: tuple[str, ...] = ("no_caption_new", "no_caption")
MAFW_SUBSETS: tuple[str, ...] = ("all", "single", "compound")
FOLDS: tuple[int, ...] = (1, 2, 3, 4, 5)
ENCODINGS: tuple[str, ...] = ("utf-8-sig", "gb18030")  # the release is GBK; re-saved UTF-8 copies also work

_SPACES = re.compile(r"\s+")


def _labels(path: Path, line: int, field: str) -> str:
    """`anger_disgust` -> `anger+disgust` (names mapped to canonical classes)."""
    names = [part for part in field.strip().split("_") if part.strip()]
    canonical = [canonical_emotion(part) for part in names]
    if not names or None in canonical:
        bad = next((n for n, c in zip(names, canonical) if c is None), field)
        raise DataError(f"{path}:{line}: unknown MAFW label {bad!r} in {field!r}; expected class names such as "
                        f"anger, happiness or anger_disgust")
    return COMPOUND_SEPARATOR.join(dict.fromkeys(c for c in canonical if c is not None))


def _clean_caption(text: str) -> str:
    """Collapse whitespace (including stray control characters) to single spaces."""
    text = "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in text)
    caption = _SPACES.sub(" ", text).strip()
    return "" if caption in {"-", "_"} else caption


def read_split_file(path: Path) -> list[tuple[str, str, str]]:
    """Parse one MAFW split file into (clip file name, labels, English caption or "").

    Args:
        path: a `train.txt` or `test.txt`, tab-separated and GBK-encoded.
    Raises:
        DataError: naming the file and line of a malformed row or an unknown label.
    """
    out: list[tuple[str, str, str]] = []
    for line, text in text_lines(path, ENCODINGS):
        fields = [f.strip() for f in text.split("\t")]
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise DataError(f"{path}:{line}: expected `clip.mp4<TAB>label[<TAB>Chinese caption<TAB>English "
                            f"caption]`, got {text[:80]!r}; is the file tab-separated?")
        english = " ".join(fields[3:]) if len(fields) >= 4 else ""
        out.append((fields[0], _labels(path, line, fields[1]), _clean_caption(english)))
    return out


def _split_files(base: Path, kind: str, fold: int, split: str) -> list[Path]:
    """The split files for one (kind, fold, split): with-caption variant first, then no-caption."""
    found = []
    for group in (CAPTION_DIRS, NO_CAPTION_DIRS):
        hit = first_existing(base / kind, [f"{d}/set_{fold}/{split}.txt" for d in group], want_dir=False)
        if hit is not None:
            found.append(hit)
    return found


def _clip_path(root: Path, clip: str) -> str:
    """`data/faces/<clip id>` when that frame folder exists, else `data/clips/<clip>`."""
    clip_id = clip.rsplit(".", 1)[0] if "." in clip else clip
    faces = root / "data" / "faces" / clip_id
    if faces.is_dir():
        return relative(faces, root)
    name = clip if "." in clip else f"{clip}.mp4"
    return relative(root / "data" / "clips" / name, root)


def _collect(base: Path, kinds: list[str]) -> list[tuple[int, str, str, str, str]]:
    """(fold, split, clip, labels, caption) for every listed sample; the first listing of a clip wins."""
    samples: dict[tuple[int, str, str], tuple[str, str]] = {}
    for kind in kinds:
        for fold in FOLDS:
            for split in ("train", "test"):
                files = _split_files(base, kind, fold, split)
                if not files:
                    raise DataError(f"{base / kind}: no split file for set_{fold}/{split}.txt under "
                                    f"{CAPTION_DIRS[0]}/ or {NO_CAPTION_DIRS[0]}/; the release is incomplete")
                for file in files:
                    for clip, labels, caption in read_split_file(file):
                        samples.setdefault((fold, split, clip), (labels, caption))
    return [(fold, split, clip, labels, caption) for (fold, split, clip), (labels, caption) in samples.items()]


def convert(root: Path, subset: str = "all") -> list[ManifestRow]:
    """MAFW rows: fold = set number, English captions, labels like `anger+disgust`.

    A sample listed in several files of the same fold and split (with- and no-caption variants, or
    the single and compound sets) keeps its first listing, in the order with-caption before
    no-caption and single before compound. Empty captions are filled from another listing of the
    same clip that has one.

    Args:
        root: MAFW root holding `Train_Test_Set/` and `data/`.
        subset: "all" (single and compound sets), "single" (the official EmoCLIP protocol) or "compound".
    """
    if subset not in MAFW_SUBSETS:
        raise UserError(f"MAFW subset {subset!r} is not one of {', '.join(MAFW_SUBSETS)}")
    base = first_existing(root, SPLIT_ROOTS)
    kinds = ["single", "compound"] if subset == "all" else [subset]
    if base is None or not all((base / k).is_dir() for k in kinds):
        raise layout_error("mafw", root, [f"{SPLIT_ROOTS[0]}/{k}/{{with_caption_new,no_caption_new}}/set_{{1..5}}/"
                                          f"{{train,test}}.txt" for k in kinds]
                           + ["data/faces/<clip id>/ (frames) or data/clips/<clip>.mp4"])
    if not (root / "data" / "faces").is_dir() and not (root / "data" / "clips").is_dir():
        raise layout_error("mafw", root, ["data/faces/<clip id>/*.jpg (face frames) or data/clips/<clip>.mp4"])
    samples = _collect(base, kinds)
    captions: dict[str, str] = {}
    for _, _, clip, _, caption in samples:
        if caption:
            captions.setdefault(clip, caption)
    rows = [ManifestRow(path=_clip_path(root, clip), labels=labels, caption=caption or captions.get(clip, ""),
                        split=split, fold=fold, subject="")
            for fold, split, clip, labels, caption in samples]
    return sorted(rows, key=lambda r: (r.fold, r.split != "train", r.path))
