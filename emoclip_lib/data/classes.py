"""Canonical emotion classes and label parsing shared by every dataset."""
from __future__ import annotations

from ..errors import UserError

# MAFW's 11 classes; DFEW, FERV39k and AFEW use the first seven.
CANONICAL_CLASSES: tuple[str, ...] = (
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
    "contempt", "anxiety", "helplessness", "disappointment",
)
BASIC_CLASSES: tuple[str, ...] = CANONICAL_CLASSES[:7]
COMPOUND_SEPARATOR = "+"


def parse_labels(text: str, known: tuple[str, ...] = CANONICAL_CLASSES) -> list[str]:
    """Split a `labels` field (`anger` or `anger+disgust`) into canonical class names.

    Args:
        text: the field as written in a manifest.
        known: the classes allowed.
    Raises:
        UserError: on an empty field or a class that is not in `known`.
    """
    parts = [p.strip().lower() for p in str(text).split(COMPOUND_SEPARATOR)]
    if not parts or any(not p for p in parts):
        raise UserError(f"empty label in {text!r}: write class names joined by '+', e.g. 'anger+disgust'")
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise UserError(f"unknown class {unknown[0]!r} in labels {text!r}; known classes: {', '.join(known)}")
    return parts


def join_labels(labels: list[str]) -> str:
    """Inverse of `parse_labels`.

    Args:
        labels: canonical class names.
    """
    return COMPOUND_SEPARATOR.join(labels)
