"""Atomic file writes: a killed process never leaves a half-written checkpoint, manifest or result."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write through a temporary file in the same folder, then rename it over `path`.

    Args:
        path: destination file.
        write: function writing the content to the temporary path it is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` atomically.

    Args:
        obj: anything `torch.save` accepts (keep it to tensors and plain types for `weights_only` loading).
        path: destination file.
    """
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_json(data: Any, path: str | Path) -> Path:
    """Write JSON (indented, keys in insertion order) atomically.

    Args:
        data: JSON-serialisable object.
        path: destination file.
    """
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def json_cell(value: Any) -> Any:
    """A table cell in JSON-safe form: NaN, NA and None become None, numpy scalars Python numbers.

    Args:
        value: one cell of a pandas table.
    """
    import pandas as pd  # only table writers need pandas; keep it out of every io_utils import

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
