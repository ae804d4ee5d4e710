"""Helpers shared by the release converters: class-name synonyms, layout search, text decoding."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ...errors import DataError, UserError

# Lower-case spellings found in releases -> canonical class names.
EMOTION_SYNONYMS: dict[str, str] = {
    "anger": "anger", "angry": "anger",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
    "happiness": "happiness", "happy": "happiness",
    "neutral": "neutral",
    "sadness": "sadness", "sad": "sadness",
    "surprise": "surprise", "surprised": "surprise",
    "contempt": "contempt", "contemptuous": "contempt",
    "anxiety": "anxiety", "anxious": "anxiety",
    "helplessness": "helplessness", "helpless": "helplessness",
    "disappointment": "disappointment", "disappointed": "disappointment",
}


def canonical_emotion(name: str) -> str | None:
    """The canonical class of a release's emotion name (case-insensitive), or None if unknown.

    Args:
        name: e.g. `Happy`, `angry`, `Surprised`.
    """
    return EMOTION_SYNONYMS.get(name.strip().lower())


def first_existing(root: Path, candidates: Iterable[str], want_dir: bool = True) -> Path | None:
    """The first of `root / candidate` that exists (as a folder when `want_dir`, else as a file).

    Args:
        root: dataset root.
        candidates: relative paths, in order of preference.
        want_dir: look for folders (True) or files (False).
    """
    for rel in candidates:
        path = root / rel
        if (path.is_dir() if want_dir else path.is_file()):
            return path
    return None


def layout_error(dataset: str, root: Path, expected: Iterable[str]) -> UserError:
    """A UserError saying which files or folders were expected under `root`.

    Args:
        dataset: dataset name.
        root: the root given by the user.
        expected: descriptions of the expected paths (relative to root).
    """
    return UserError(f"{root} does not look like the {dataset.upper()} release: expected {'; '.join(expected)}; "
                     f"pass the folder that holds these with --root (see data_manifests/README.md)")


def relative(path: Path, root: Path) -> str:
    """`path` relative to `root`, with forward slashes (the manifest convention).

    Args:
        path: a path under root.
        root: dataset root.
    """
    return path.relative_to(root).as_posix()


def decode_text(path: Path, encodings: tuple[str, ...] = ("utf-8-sig",)) -> str:
    """A text file decoded with the first encoding that works.

    Args:
        path: the file.
        encodings: encodings to try in order.
    Raises:
        DataError: naming the file and the line of the first undecodable byte.
    """
    raw = path.read_bytes()
    first_error: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as err:
            first_error = first_error or err
    assert first_error is not None
    line = raw[: first_error.start].count(b"\n") + 1
    raise DataError(f"{path}:{line}: cannot decode the file as {' or '.join(encodings)}; use the file from "
                    f"the original release")


def text_lines(path: Path, encodings: tuple[str, ...] = ("utf-8-sig",)) -> list[tuple[int, str]]:
    """Non-blank lines of a text file as (line number, line without its line ending).

    Args:
        path: the file.
        encodings: encodings to try in order.
    """
    text = decode_text(path, encodings)
    return [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
