"""DFEW release -> manifest rows (five folds, single-labelled clips)."""
from __future__ import annotations

import csv
from pathlib import Path

from .common import first_existing, layout_error, relative, text_lines
from ...errors import DataError
from ..manifest import ManifestRow

# DFEW's label numbers (0 = no single label, skipped).
DFEW_LABELS: dict[int, str] = {1: "happiness", 2: "sadness", 3: "neutral", 4: "anger", 5: "surprise",
                               6: "disgust", 7: "fear"}
SPLIT_ROOTS: tuple[str, ...] = ("EmoLabel_DataSplit", "DFEW/EmoLabel_DataSplit", "Annotation/EmoLabel_DataSplit")
# Where a clip may live, in order of preference: frame folders first, then the original videos.
FRAME_ROOTS: tuple[str, ...] = ("Clip/clip_224x224/clip_224x224", "Clip/clip_224x224", "clip_224x224/clip_224x224",
                                "clip_224x224", "DFEW_Frame_Face")
VIDEO_ROOTS: tuple[str, ...] = ("Clip/original/original", "Clip/original", "original")
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi")
FOLDS: tuple[int, ...] = (1, 2, 3, 4, 5)


def _split_dir(base: Path, split: str) -> Path | None:
    """`train(single-labeled)` or a folder named like it (`train_single-labeled`, `Train(single_labeled)`...)."""
    for child in sorted(base.iterdir()):
        name = child.name.lower()
        if child.is_dir() and name.startswith(split) and "single" in name:
            return child
    return None


def _clip_id(name: str) -> str:
    """`1`, `00001` or `00001.mp4` -> `00001` (non-numeric names are kept as they are)."""
    stem = name.strip().rsplit(".", 1)[0] if "." in name else name.strip()
    return stem.zfill(5) if stem.isdigit() else stem


def read_split_file(path: Path) -> list[tuple[str, str]]:
    """Parse one DFEW split CSV (`video_name,label`) into (clip id, class); label 0/empty rows are skipped.

    Args:
        path: e.g. `EmoLabel_DataSplit/train(single-labeled)/set_1.csv`.
    Raises:
        DataError: naming the file and line of a malformed row or an unknown label number.
    """
    lines = text_lines(path)
    name_col, label_col = 0, 1
    out: list[tuple[str, str]] = []
    for index, (line, text) in enumerate(lines):
        fields = [f.strip() for f in next(csv.reader([text]))]
        lowered = [f.lower() for f in fields]
        if index == 0 and "label" in lowered:  # header
            name_col = next((i for i, f in enumerate(lowered) if f in {"video_name", "video", "name"}), 0)
            label_col = lowered.index("label")
            continue
        if len(fields) <= max(name_col, label_col) or not fields[name_col]:
            raise DataError(f"{path}:{line}: expected `video_name,label`, got {text[:80]!r}")
        label = fields[label_col]
        if label in {"", "0"}:
            continue
        if not label.isdigit() or int(label) not in DFEW_LABELS:
            raise DataError(f"{path}:{line}: label {label!r} is not a DFEW label number 1..7 "
                            f"({', '.join(f'{k}={v}' for k, v in DFEW_LABELS.items())}); 0 or empty skips the row")
        out.append((_clip_id(fields[name_col]), DFEW_LABELS[int(label)]))
    return out


def _locator(root: Path):  # -> Callable[[str], str]
    """A function giving a clip's manifest path: the first frame folder or video found, searched in known places."""
    frame_roots = [root / r for r in FRAME_ROOTS if (root / r).is_dir()]
    video_roots = [root / r for r in VIDEO_ROOTS if (root / r).is_dir()]
    if not frame_roots and not video_roots:
        raise layout_error("dfew", root, [f"{r}/<5-digit clip id>/ (face frames)" for r in FRAME_ROOTS]
                           + [f"{r}/<5-digit clip id>.mp4" for r in VIDEO_ROOTS])

    def locate(clip_id: str) -> str:
        """The manifest path of one clip."""
        for base in frame_roots:
            if (base / clip_id).is_dir():
                return relative(base / clip_id, root)
        for base in video_roots:
            for suffix in VIDEO_SUFFIXES:
                if (base / f"{clip_id}{suffix}").is_file():
                    return relative(base / f"{clip_id}{suffix}", root)
        # Not found: point where the dataset keeps its clips so that `emoclip validate` reports it.
        return relative(frame_roots[0] / clip_id, root) if frame_roots else \
            relative(video_roots[0] / f"{clip_id}.mp4", root)

    return locate


LOADER_LIST = "DFEW_set_{fold}_{split}.txt"  # the official EmoCLIP loader's lists: `path num_frames label`
LOADER_DIRS: tuple[str, ...] = (".", "EmoLabel_DataSplit", "annotation", "Annotation", "data_split")


def read_loader_list(path: Path) -> list[tuple[str, str]]:
    """Parse one of the official EmoCLIP loader's DFEW lists (`path num_frames label`, label 1..7).

    Args:
        path: e.g. `DFEW_set_1_train.txt`.
    Returns:
        (clip id, class) per row: the clip id is the last component of the path.
    Raises:
        DataError: naming the file and line of a malformed row or an unknown label number.
    """
    out: list[tuple[str, str]] = []
    for line, text in text_lines(path):
        fields = text.split()
        if len(fields) < 3 or not fields[-1].isdigit() or int(fields[-1]) not in DFEW_LABELS:
            raise DataError(f"{path}:{line}: expected `path num_frames label` with label 1..7, got {text[:80]!r}")
        clip = fields[0].replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        out.append((_clip_id(clip), DFEW_LABELS[int(fields[-1])]))
    return out


def _loader_lists(root: Path) -> dict[tuple[int, str], Path] | None:
    """The ten `DFEW_set_{fold}_{split}.txt` lists of the official loader, when all are there."""
    for folder in LOADER_DIRS:
        found = {(f, s): root / folder / LOADER_LIST.format(fold=f, split=s) for f in FOLDS for s in ("train", "test")}
        if all(p.is_file() for p in found.values()):
            return found
    return None


def convert(root: Path) -> list[ManifestRow]:
    """DFEW rows: fold = set number, single-labelled clips only, captions and subjects empty.

    Reads the release's `EmoLabel_DataSplit/` CSVs, or the lists the official EmoCLIP loader reads
    (`DFEW_set_{fold}_{split}.txt`, with frames in `DFEW_Frame_Face/<clip>/`).

    Args:
        root: DFEW root holding `EmoLabel_DataSplit/` and the clips (see data_manifests/README.md).
    """
    lists = _loader_lists(root)
    if lists is not None:
        locate = _locator(root)
        return [ManifestRow(path=locate(clip_id), labels=label, split=split, fold=fold)
                for (fold, split), path in lists.items() for clip_id, label in read_loader_list(path)]
    base = first_existing(root, SPLIT_ROOTS)
    dirs = {s: _split_dir(base, s) for s in ("train", "test")} if base is not None else {}
    if base is None or None in dirs.values():
        raise layout_error("dfew", root, [f"{SPLIT_ROOTS[0]}/{s}(single-labeled)/set_{{1..5}}.csv"
                                          for s in ("train", "test")]
                           + ["or the official loader's DFEW_set_{1..5}_{train,test}.txt with DFEW_Frame_Face/"])
    locate = _locator(root)
    rows: list[ManifestRow] = []
    for fold in FOLDS:
        for split, folder in dirs.items():
            assert folder is not None
            path = folder / f"set_{fold}.csv"
            if not path.is_file():
                raise layout_error("dfew", root, [relative(path, root)])
            for clip_id, label in read_split_file(path):
                rows.append(ManifestRow(path=locate(clip_id), labels=label, split=split, fold=fold))
    return rows
