"""Caption text cleaning, word splitting and per-sample row helpers shared by the caption modules.

`clean_caption` repairs the typical defects of crowd-sourced English captions (MAFW's English field
in particular): mojibake, html entities, fullwidth and CJK punctuation, stray Chinese characters,
control characters, ragged whitespace and repeated punctuation.
"""
from __future__ import annotations

import html
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

import ftfy
import pandas as pd
import regex

from ..errors import UserError

if TYPE_CHECKING:
    from ..data import ManifestRow

# CJK and typographic punctuation that NFKC leaves alone, mapped to plain ASCII.
_PUNCT_MAP: dict[str, str] = {
    "。": ".", "、": ",", "・": " ", "〜": "~", "～": "~",
    "「": '"', "」": '"', "『": '"', "』": '"', "《": '"', "》": '"', "〈": '"', "〉": '"',
    "【": "(", "】": ")", "〔": "(", "〕": ")", "〖": "(", "〗": ")",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"', "″": '"',
}
_PUNCT_TABLE = str.maketrans(_PUNCT_MAP)
# Scripts and blocks that do not belong in an English caption.
_CJK = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Bopomofo}\u3000-\u303f\u31c0-\u31ef\uff00-\uffef]+"
)
_HTML_TAG = regex.compile(r"</?(?:br|p|div|span|i|b|em|strong|u|font)\b[^<>]*>", regex.IGNORECASE)
_SPACE = regex.compile(r"\s+")
_SPACE_BEFORE_PUNCT = regex.compile(r"\s+([,.;:!?)\]])")
_SPACE_AFTER_OPEN = regex.compile(r"([(\[])\s+")
_EMPTY_BRACKETS = regex.compile(r"\(\s*\)|\[\s*\]|(?<!\S)\"\s*\"(?!\w)|(?<!\S)'\s*'(?!\w)")
_PUNCT_RUN = regex.compile(r"[,.;:!?](?:\s*[,.;:!?])+")
_MISSING_SPACE = regex.compile(r"([,;:!?])(?=\p{L})|(?<=\p{Ll}\p{Ll})(\.)(?=\p{Lu})")
_LEADING_PUNCT = regex.compile(r"^[\s,.;:!?)\]-]+")
_TRAILING_PUNCT = regex.compile(r"[\s,;:(\[-]+$")
_CONTROL_SPACE = regex.compile(r"[\t\n\r\x0b\x0c\x85]")
_CONTROL = regex.compile(r"[\p{Cc}\p{Cf}\p{Co}\p{Cs}\ufffd]")
_WORD = regex.compile(r"[\p{L}\p{N}]+(?:'\p{L}+)?")

CLEANING_STEPS: tuple[str, ...] = (
    "mojibake", "html", "unicode", "control", "cjk", "whitespace", "punctuation",
)


def _drop_controls(text: str) -> str:
    """Whitespace-like control characters become spaces; other control/format/private characters go."""
    return _CONTROL.sub("", _CONTROL_SPACE.sub(" ", text))


def _tidy_run(match: regex.Match[str]) -> str:
    """One mark for a run of punctuation: an ellipsis stays `...`, otherwise the strongest mark wins."""
    run = match.group(0).replace(" ", "")
    if set(run) == {"."}:
        return "..." if len(run) >= 3 else "."
    for mark in "?!.;:":
        if mark in run:
            return mark
    return ","


def _tidy_punctuation(text: str) -> str:
    """Repeated marks, spaces around marks, empty brackets, leading and dangling marks."""
    text = _EMPTY_BRACKETS.sub(" ", text)
    text = _SPACE.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    text = _PUNCT_RUN.sub(_tidy_run, text)
    text = _MISSING_SPACE.sub(lambda m: (m.group(1) or m.group(2)) + " ", text)
    text = _LEADING_PUNCT.sub("", text)
    text = _TRAILING_PUNCT.sub("", text)
    return _SPACE.sub(" ", text).strip()


@lru_cache(maxsize=1 << 16)
def clean_caption_steps(text: str) -> tuple[str, tuple[str, ...]]:
    """Clean a caption and say which steps changed it.

    Args:
        text: the raw caption.

    Returns:
        (cleaned text, names from CLEANING_STEPS of the steps that changed something). Results are
        cached (the function is pure), so cleaning the same caption again is free.
    """
    changed: list[str] = []

    def step(name: str, new: str) -> str:
        if new != current:
            changed.append(name)
        return new

    if not isinstance(text, str):
        raise UserError(f"a caption must be a string, got {type(text).__name__}: {text!r}")
    current = text
    current = step("mojibake", ftfy.fix_encoding(current))
    current = step("html", _HTML_TAG.sub(" ", html.unescape(html.unescape(current))))
    current = step("unicode", unicodedata.normalize("NFKC", current).translate(_PUNCT_TABLE))
    current = step("control", _drop_controls(current))
    current = step("cjk", _CJK.sub(" ", current))
    current = step("whitespace", _SPACE.sub(" ", current).strip())
    current = step("punctuation", _tidy_punctuation(current))
    return current, tuple(changed)


def clean_caption(text: str) -> str:
    """Normalise one English caption for training and auditing.

    Steps: mojibake repair (ftfy), html entities unescaped twice (`&amp;amp;` -> `&`) and simple tags
    dropped, NFKC (fullwidth letters and punctuation -> ASCII) plus CJK/curly punctuation -> ASCII,
    control and zero-width characters removed, Chinese/Japanese/Korean characters removed, whitespace
    collapsed, repeated punctuation reduced to one mark (`!!!` -> `!`, `......` -> `...`), no space
    before a mark and one after it, leading and dangling marks removed. Case is kept.

    Args:
        text: the raw caption.
    """
    return clean_caption_steps(text)[0]


def normalise_for_matching(text: str) -> str:
    """Lowercased words joined by single spaces (punctuation dropped), for duplicate detection.

    Args:
        text: a caption (cleaned or not).
    """
    return " ".join(words(text))


def words(text: str) -> list[str]:
    """Lowercase words and numbers of a text (`don't` stays one word).

    Args:
        text: any text.
    """
    return _WORD.findall(unicodedata.normalize("NFKC", text).translate(_PUNCT_TABLE).lower())


def unique_samples(rows: list[ManifestRow]) -> list[ManifestRow]:
    """The first row of every distinct path, in manifest order.

    Args:
        rows: manifest rows (one per fold for MAFW).
    """
    seen: set[str] = set()
    out: list[ManifestRow] = []
    for row in rows:
        if row.path not in seen:
            seen.add(row.path)
            out.append(row)
    return out


def conflicting_paths(rows: list[ManifestRow]) -> list[str]:
    """Paths whose rows carry different captions (they should agree across folds).

    Args:
        rows: manifest rows.
    """
    captions: dict[str, set[str]] = {}
    for row in rows:
        captions.setdefault(row.path, set()).add(row.caption.strip())
    return sorted(p for p, c in captions.items() if len(c) > 1)


def find_empty(rows: list[ManifestRow]) -> pd.DataFrame:
    """Samples whose caption is empty after `clean_caption`.

    Args:
        rows: manifest rows (deduplicated by path here).

    Returns:
        DataFrame with columns path, labels, row_number, raw_caption.
    """
    found = [(r.path, r.labels, r.row_number, r.caption) for r in unique_samples(rows) if not clean_caption(r.caption)]
    return pd.DataFrame(found, columns=["path", "labels", "row_number", "raw_caption"])
