"""FERV39k release -> manifest rows (one train/test split, labels from the emotion folder)."""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from .common import canonical_emotion, first_existing, layout_error, relative, text_lines
from ...errors import DataError
from ..manifest import ManifestRow

# the release's 4_setups lists, then where the official EmoCLIP loader's `{split}_image.txt` may lie
SETUP_DIRS: tuple[str, ...] = ("Data/4_setups/All_scenes", "4_setups/All_scenes", "Data/4_setups", "4_setups", ".",
                               "Data")
FRAME_ROOTS: tuple[str, ...] = ("Data/2_ClipsforFaceCrop", "2_ClipsforFaceCrop")
LIST_NAMES: dict[str, tuple[str, ...]] = {
    split: tuple(f"{split}_{tag}.{ext}" for tag in ("All", "all") for ext in ("csv", "txt"))
    + (f"{split}.csv", f"{split}.txt", f"{split}_image.txt")
    for split in ("train", "test")
}



def _first_field(text: str) -> str:
    """The path field: before the first comma/tab, else the line without its trailing numbers."""
    text = text.strip()
    if "," in text or "\t" in text:
        return re.split(r"[,\t]", text)[0].strip()
    tokens = text.split()
    while len(tokens) > 1 and tokens[-1].lstrip("-").isdigit():
        tokens.pop()
    return " ".join(tokens)


def read_list_file(path: Path) -> list[tuple[str, str]]:
    """Parse a FERV39k list (`scene/emotion/clip label` or `scene/emotion/clip,label`).

    Args:
        path: e.g. `Data/4_setups/All_scenes/train_All.csv`.
    Returns:
        (relative clip path `scene/emotion/clip`, class); the class comes from the emotion component.
    Raises:
        DataError: naming the file and line of a row whose path has no emotion folder.
    """
    out: list[tuple[str, str]] = []
    for index, (line, text) in enumerate(text_lines(path)):
        first = _first_field(text).replace("\\", "/").strip("\"'")
        parts = PurePosixPath(first).parts
        emotion = canonical_emotion(parts[-2]) if len(parts) >= 3 else None
        if emotion is None:
            if index == 0 and len(parts) < 3:  # a header line
                continue
            raise DataError(f"{path}:{line}: expected `scene/emotion/clip` (emotion one of Angry, Disgust, Fear, "
                            f"Happy, Neutral, Sad, Surprise) as the first field, got {first!r}")
        out.append(("/".join(parts[-3:]), emotion))
    return out


def convert(root: Path) -> list[ManifestRow]:
    """FERV39k rows: split from the list file, fold, caption and subject empty.

    Args:
        root: FERV39k root holding `Data/4_setups/` and `Data/2_ClipsforFaceCrop/` (or those without `Data/`).
    """
    frames = first_existing(root, FRAME_ROOTS)
    setups, lists = None, {}
    for folder in SETUP_DIRS:  # the first folder holding both lists
        found = {s: first_existing(root / folder, LIST_NAMES[s], want_dir=False) for s in ("train", "test")}
        if (root / folder).is_dir() and None not in found.values():
            setups, lists = root / folder, found
            break
    if setups is None or frames is None or None in lists.values():
        raise layout_error("ferv39k", root, [f"{SETUP_DIRS[0]}/train_All.csv and test_All.csv (rows "
                                             f"`scene/emotion/clip label`)", f"{FRAME_ROOTS[0]}/<scene>/<emotion>/<clip>/"])
    rows: list[ManifestRow] = []
    for split, list_file in lists.items():
        assert list_file is not None
        for clip, label in read_list_file(list_file):
            rows.append(ManifestRow(path=relative(frames / clip, root), labels=label, split=split, fold=None))
    return rows
