"""The feature file of `emoclip features`: an `.npz` (no pickles) with `features` (N, F), `path`, `subject`,
`session` (N,), `items` (I,), `scores` (N, I) with NaN for missing, `n_windows` (N,) and `settings` (JSON text).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from ..io_utils import atomic_write
from .features import feature_matrix

FEATURE_KEYS: tuple[str, ...] = ("features", "path", "subject", "session", "items", "scores", "n_windows",
                                 "settings")


def save_features(table: pd.DataFrame, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write a per-video feature table (from `extract_features`) to an `.npz` file atomically.

    Args:
        table: the feature table; `attrs["items"]` names the score columns.
        path: destination file.
        extra: more settings to record (e.g. the checkpoint path).
    """
    items = list(table.attrs.get("items", []))
    settings = {**table.attrs.get("settings", {}), **(extra or {})}
    arrays = {"features": feature_matrix(table), "path": table["path"].to_numpy(str),
              "subject": table["subject"].to_numpy(str), "session": table["session"].to_numpy(str),
              "items": np.asarray(items, dtype=str),
              "scores": table[items].to_numpy(np.float64).reshape(len(table), len(items)),
              "n_windows": table["n_windows"].to_numpy(np.int64), "settings": np.asarray(json.dumps(settings))}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    return atomic_write(path, write)


def _bad(path: Path, what: str) -> UserError:
    """The one-line error for a damaged or hand-edited feature file."""
    return UserError(f"{path} is not a valid feature file ({what}); re-create it with `emoclip features`")


def _check_arrays(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Shapes agree (one entry per video, one score column per item); returns the parsed settings."""
    features, scores, items = arrays["features"], arrays["scores"], arrays["items"]
    if features.ndim != 2 or items.ndim != 1 or scores.ndim != 2:
        raise _bad(path, f"features must be (videos, values), items a list and scores (videos, items); got "
                         f"shapes {features.shape}, {items.shape} and {scores.shape}")
    if not all(np.issubdtype(arrays[k].dtype, np.number) for k in ("features", "scores", "n_windows")):
        raise _bad(path, "features, scores and n_windows must hold numbers")
    n = features.shape[0]
    for key in ("path", "subject", "session", "n_windows", "scores"):
        if arrays[key].ndim != (2 if key == "scores" else 1) or arrays[key].shape[0] != n:
            raise _bad(path, f"{key} has shape {arrays[key].shape} but features has {n} rows: one entry per video")
    if scores.shape[1] != items.shape[0]:
        raise _bad(path, f"scores has {scores.shape[1]} columns but there are {items.shape[0]} items")
    try:
        settings = json.loads(str(arrays["settings"]))
    except ValueError as err:
        raise _bad(path, f"its settings entry is not valid JSON: {err}") from None
    if not isinstance(settings, dict):
        raise _bad(path, "its settings entry is not a JSON object")
    return settings


def load_features(path: str | Path) -> pd.DataFrame:
    """Read a feature file written by `save_features` back into a per-video table.

    Args:
        path: the `.npz` file.
    Raises:
        UserError: naming the file when it is missing, not an `.npz`, lacks an entry, or its entries
            disagree (lengths, shapes, settings that are not JSON), e.g. after editing it by hand.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"feature file {path} does not exist: create it with `emoclip features`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in FEATURE_KEYS}
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise UserError(f"{path} is not a feature file written by `emoclip features` ({err}); "
                        f"re-create it") from None
    settings = _check_arrays(path, arrays)
    items = [str(i) for i in arrays["items"]]
    table = pd.DataFrame({"path": arrays["path"], "subject": arrays["subject"], "session": arrays["session"]})
    for k, item in enumerate(items):
        table[item] = arrays["scores"][:, k]
    table["n_windows"] = arrays["n_windows"]
    table["features"] = list(arrays["features"])
    table.attrs["items"] = items
    table.attrs["settings"] = settings
    return table
