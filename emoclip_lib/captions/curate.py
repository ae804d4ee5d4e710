"""Caption curation for sample-level captions (notebook 02): clean, detect problems, audit, shorten.

`curate(rows)` runs the whole pipeline and returns the curated manifest rows plus a `CurationReport`;
`summary_json(report)` turns the report into plain numbers. The pieces live in `captions_clean`,
`captions_dedup` and `captions_audit` and are re-exported here.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from .audit import (CONTENT_TOKENS, STOPWORDS, class_vocabulary, content_words, leakage,
                             shorten_caption, token_audit, token_summary)
from .clean import (CLEANING_STEPS, clean_caption, clean_caption_steps, conflicting_paths, find_empty,
                             normalise_for_matching, unique_samples, words)
from .dedup import MEASURES, find_duplicates, find_exact_duplicates, find_near_duplicates
from ..data import ClassDescription, load_descriptions

if TYPE_CHECKING:
    from ..data import ManifestRow

__all__ = [
    "CLEANING_STEPS", "CONTENT_TOKENS", "MEASURES", "STOPWORDS", "CurationReport", "class_vocabulary",
    "clean_caption", "clean_caption_steps", "clean_rows", "conflicting_paths", "content_words", "curate",
    "find_duplicates", "find_empty", "find_exact_duplicates", "find_near_duplicates", "leakage",
    "normalise_for_matching", "shorten_caption", "shorten_rows", "summary_json", "token_audit",
    "token_summary", "unique_samples", "words",
]


def clean_rows(rows: list[ManifestRow]) -> tuple[list[ManifestRow], dict[str, Any]]:
    """Apply `clean_caption` to every row (each distinct raw caption is cleaned once).

    Args:
        rows: manifest rows.

    Returns:
        (rows with cleaned captions, in the same order; report) where the report holds rows,
        rows_changed, samples (distinct paths), samples_changed, samples_empty (empty after cleaning)
        and steps {step name: samples changed by that step}.
    """
    cache: dict[str, tuple[str, tuple[str, ...]]] = {}
    out: list[ManifestRow] = []
    for row in rows:
        if row.caption not in cache:
            cache[row.caption] = clean_caption_steps(row.caption)
        text = cache[row.caption][0]
        out.append(row if text == row.caption else dataclasses.replace(row, caption=text))
    samples = unique_samples(rows)
    steps: Counter[str] = Counter(s for r in samples for s in cache[r.caption][1])
    report = {
        "rows": len(rows),
        "rows_changed": sum(a.caption != b.caption for a, b in zip(rows, out)),
        "samples": len(samples),
        "samples_changed": sum(cache[r.caption][0] != r.caption for r in samples),
        "samples_empty": sum(not cache[r.caption][0] for r in samples),
        "steps": {s: steps.get(s, 0) for s in CLEANING_STEPS},
    }
    return out, report


def shorten_rows(rows: list[ManifestRow], max_tokens: int = CONTENT_TOKENS) -> tuple[list[ManifestRow], int]:
    """Apply `shorten_caption` to every row whose caption is longer than `max_tokens` CLIP tokens.

    Args:
        rows: manifest rows (cleaned captions).
        max_tokens: content-token budget.

    Returns:
        (rows in the same order, number of distinct samples shortened).
    """
    cache: dict[str, str] = {}
    out: list[ManifestRow] = []
    for row in rows:
        if row.caption not in cache:
            cache[row.caption] = shorten_caption(row.caption, max_tokens)
        text = cache[row.caption]
        out.append(row if text == row.caption else dataclasses.replace(row, caption=text))
    changed = sum(cache[r.caption] != r.caption for r in unique_samples(rows))
    return out, changed


@dataclass
class CurationReport:
    """Everything `curate` found. DataFrames are described by the function that makes them."""

    cleaning: dict[str, Any]
    conflicting_paths: list[str]
    empty: pd.DataFrame  # find_empty
    duplicates: pd.DataFrame  # find_duplicates (exact and near pairs)
    vocabulary: pd.DataFrame  # class_vocabulary
    tokens_before: pd.DataFrame  # token_audit of the cleaned captions
    tokens_after: pd.DataFrame  # token_audit of the curated captions
    leakage: pd.DataFrame  # leakage
    n_shortened: int = 0
    n_dropped_empty: int = 0
    settings: dict[str, Any] = field(default_factory=dict)


def curate(rows: list[ManifestRow], shorten: bool = True, max_tokens: int = CONTENT_TOKENS,
           threshold: float = 0.8, descriptions: dict[str, ClassDescription] | None = None, top_k: int = 15,
           drop_empty: bool = False, seed: int = 0, progress: bool = False) -> tuple[list[ManifestRow], CurationReport]:
    """Clean, audit and (optionally) shorten the captions of a manifest.

    Duplicates and near duplicates are reported, never removed: different clips may share a caption.
    Audits look at one row per path (MAFW repeats each clip once per fold).

    Args:
        rows: manifest rows.
        shorten: shorten captions longer than `max_tokens` with `shorten_caption`.
        max_tokens: content-token budget (75 = CLIP's 77 minus start and end tokens).
        threshold: near-duplicate similarity threshold.
        descriptions: class descriptions whose synonyms drive the leakage audit (None: shipped file).
        top_k: words per class in the vocabulary table.
        drop_empty: remove rows whose caption is empty after cleaning.
        seed: MinHash seed.
        progress: show progress bars.

    Returns:
        (curated rows in manifest order, report).
    """
    table = load_descriptions() if descriptions is None else descriptions
    synonyms = {c: list(d.synonyms) for c, d in table.items()}
    cleaned, cleaning = clean_rows(rows)
    empty = find_empty(cleaned)
    kept = [r for r in cleaned if r.caption] if drop_empty else cleaned
    before = token_audit(kept, max_tokens, progress)
    curated, n_short = shorten_rows(kept, max_tokens) if shorten else (kept, 0)
    report = CurationReport(
        cleaning=cleaning, conflicting_paths=conflicting_paths(cleaned), empty=empty,
        duplicates=find_duplicates(cleaned, threshold, seed=seed, progress=progress),
        vocabulary=class_vocabulary(cleaned, top_k), tokens_before=before,
        tokens_after=token_audit(curated, max_tokens, progress) if shorten else before,
        leakage=leakage(cleaned, synonyms), n_shortened=n_short, n_dropped_empty=len(cleaned) - len(kept),
        settings={"shorten": shorten, "max_tokens": max_tokens, "threshold": threshold, "top_k": top_k,
                  "drop_empty": drop_empty, "seed": seed})
    return curated, report


def _leakage_numbers(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{class: {frac_own, frac_any, frac_other, n_captions}} from a leakage table."""
    return {str(r["class"]): {"n_captions": int(r["n_captions"]), "frac_own": float(r["frac_own"]),
                              "frac_other": float(r["frac_other"]), "frac_any": float(r["frac_any"])}
            for _, r in frame.iterrows()}


def summary_json(report: CurationReport) -> dict[str, Any]:
    """Plain numbers (ints, floats, nested dicts) of a report, for `02_results.json`.

    Args:
        report: from `curate`.
    """
    dup = report.duplicates
    near = dup[dup["kind"] == "near"] if not dup.empty else dup
    exact = dup[dup["kind"] == "exact"] if not dup.empty else dup
    return {
        "cleaning": {k: (dict(v) if isinstance(v, dict) else int(v)) for k, v in report.cleaning.items()},
        "n_conflicting_paths": len(report.conflicting_paths),
        "n_empty": int(len(report.empty)),
        "n_dropped_empty": int(report.n_dropped_empty),
        "n_exact_duplicate_pairs": int(len(exact)),
        "n_near_duplicate_pairs": int(len(near)),
        "n_near_duplicate_pairs_different_labels": int((~near["same_labels"].astype(bool)).sum()) if len(near) else 0,
        "tokens_before": token_summary(report.tokens_before),
        "tokens_after": token_summary(report.tokens_after),
        "n_shortened": int(report.n_shortened),
        "leakage": _leakage_numbers(report.leakage),
        "settings": {k: v for k, v in report.settings.items()},
    }
