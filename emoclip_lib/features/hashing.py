"""Content hashes of videos (file bytes, or a frame folder's names and images), remembered on disk per
path + mtime + size so that a dataset is read in full only once. Keys of the feature cache."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..errors import DataError
from ..io_utils import atomic_write_json
from ..data.video import list_frame_files

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def content_hash(path: str | Path) -> str:
    """sha256 of a video file's bytes, or of a frame folder's frame names and image bytes (natural order).

    Args:
        path: video file or frame folder.
    """
    path = Path(path)
    digest = hashlib.sha256()
    files = list_frame_files(path) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(f"{file.name}\0{file.stat().st_size}\0".encode())
        with open(file, "rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


def _signature(path: Path) -> str:
    """Cheap change detector: mtime and size of the file (of every frame file of a folder)."""
    files = list_frame_files(path) if path.is_dir() else [path]
    parts = []
    for file in files:
        st = file.stat()
        parts.append(f"{file.name}:{st.st_mtime_ns}:{st.st_size}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


class ContentHasher:
    """`content_hash` remembered on disk per (path, mtime, size), so that each file is read once."""

    def __init__(self, folder: str | Path | None, writer: str = "main") -> None:
        """Args:
            folder: where the `<writer>.json` indexes live (None keeps them in memory only).
            writer: this process's index name (distinct per process when several build at once)."""
        self.folder = Path(folder) if folder is not None else None
        self.writer = writer
        self.index: dict[str, dict[str, str]] = {}
        self.computed = 0  # hashes computed (not found in the index)
        for file in sorted(self.folder.glob("*.json")) if self.folder and self.folder.is_dir() else []:
            try:
                self.index.update(json.loads(file.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                logger.warning("ignoring unreadable hash index %s", file)

    def hash(self, path: str | Path) -> str:
        """Content hash of `path` (from the index when the file is unchanged).

        Args:
            path: video file or frame folder.
        Raises:
            DataError: when the path does not exist.
        """
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path} does not exist: check the dataset root and the manifest path")
        key, sig = str(path.resolve()), _signature(path)
        entry = self.index.get(key)
        if entry is None or entry.get("sig") != sig:
            entry = {"sig": sig, "sha256": content_hash(path)}
            self.index[key] = entry
            self.computed += 1
        return entry["sha256"]

    def save(self) -> None:
        """Write this writer's index atomically (no-op without a folder)."""
        if self.folder is not None:
            atomic_write_json(self.index, self.folder / f"{self.writer}.json")
