"""Caption audits: per-class vocabulary, CLIP token lengths (and shortening), class-name leakage.

Every audit looks at one row per sample path (see `captions_clean.unique_samples`); a compound
sample (`anger+disgust`) counts for each of its classes unless `include_compound=False`.
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import regex
from tqdm.auto import tqdm

from .clean import unique_samples, words
from ..data import CANONICAL_CLASSES, COMPOUND_SEPARATOR
from ..errors import UserError
from ..data import get_tokenizer

if TYPE_CHECKING:
    from ..data import ManifestRow

CONTENT_TOKENS = 75  # CLIP's 77-token context minus the start and end tokens
STOPWORDS: frozenset[str] = frozenset("""
a an the and or but nor so yet if then than that this these those there here where when while what which
who whom whose why how as at by for from in into onto on off of to with without within about above below
over under up down out through during before after again further once very too also just only even still
not no yes all any both each few more most other some such own same is am are was were be been being have
has had having do does did doing will would shall should can could may might must it its it's itself he
him his himself she her hers herself they them their theirs themselves we us our ours you your yours i me
my mine one ones someone something thing things get gets got getting let lets like seems seem seemed
appears appear appeared look looks looked looking while whilst because since until though although
around toward towards between among against along across behind beside next near far s t don't doesn't
isn't aren't wasn't weren't can't couldn't won't wouldn't didn't hasn't haven't he's she's they're
""".split())


def _class_samples(rows: list[ManifestRow], include_compound: bool) -> dict[str, list[ManifestRow]]:
    """Samples per class, classes in canonical order then alphabetical."""
    out: dict[str, list[ManifestRow]] = {}
    for row in unique_samples(rows):
        labels = [p.strip() for p in row.labels.split(COMPOUND_SEPARATOR) if p.strip()]
        if len(labels) > 1 and not include_compound:
            continue
        for label in labels:
            out.setdefault(label, []).append(row)
    rank = {c: i for i, c in enumerate(CANONICAL_CLASSES)}
    return dict(sorted(out.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def content_words(text: str, stopwords: frozenset[str] = STOPWORDS, min_length: int = 3) -> set[str]:
    """Distinct alphabetic words of a text that are not stopwords and have at least `min_length` letters.

    Args:
        text: a caption.
        stopwords: words to ignore (lowercase).
        min_length: shortest word kept.
    """
    return {w for w in words(text) if len(w) >= min_length and w.isalpha() and w not in stopwords}


def class_vocabulary(rows: list[ManifestRow], top_k: int = 15, stopwords: frozenset[str] = STOPWORDS,
                     include_compound: bool = True) -> pd.DataFrame:
    """The `top_k` content words of each class, by the number of the class's captions using them.

    Args:
        rows: manifest rows.
        top_k: words per class.
        stopwords: words to ignore.
        include_compound: count compound samples for each of their classes.

    Returns:
        DataFrame with columns class, rank (1 = most common), word, n_captions, doc_freq (fraction of
        the class's captions), lift (doc_freq / doc_freq over all samples: > 1 means typical of the class).
    """
    if top_k < 1:
        raise UserError(f"top_k must be at least 1 (got {top_k})")
    sample_words = {r.path: content_words(r.caption, stopwords) for r in unique_samples(rows)}
    overall = Counter(w for ws in sample_words.values() for w in ws)
    n_all = max(len(sample_words), 1)
    records = []
    for cls, samples in _class_samples(rows, include_compound).items():
        counts = Counter(w for r in samples for w in sample_words[r.path])
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        for rank, (word, n) in enumerate(ranked, start=1):
            freq = n / len(samples)
            records.append({"class": cls, "rank": rank, "word": word, "n_captions": n, "doc_freq": freq,
                            "lift": freq / (overall[word] / n_all)})
    return pd.DataFrame(records, columns=["class", "rank", "word", "n_captions", "doc_freq", "lift"])


@lru_cache(maxsize=1 << 17)
def count_tokens(text: str) -> int:
    """CLIP BPE tokens of a text, without start/end tokens (cached: the tokenizer is deterministic).

    Args:
        text: any text.
    """
    return len(get_tokenizer().encode(text))


def token_audit(rows: list[ManifestRow], max_tokens: int = CONTENT_TOKENS, progress: bool = False) -> pd.DataFrame:
    """CLIP token count of every sample's caption and what truncation to the context would lose.

    Args:
        rows: manifest rows (deduplicated by path here).
        max_tokens: content tokens CLIP keeps (75 = 77 minus start and end tokens).
        progress: show a progress bar.

    Returns:
        DataFrame with columns path, labels, n_words, n_tokens, truncated, tokens_lost, words_lost
        (words not wholly inside the first `max_tokens` tokens; a word cut in two counts as lost).
    """
    records = []
    for row in tqdm(unique_samples(rows), desc="token audit", disable=not progress):
        n_tokens = count_tokens(row.caption)
        per_word = [count_tokens(w.lower()) for w in row.caption.split()]  # sums to n_tokens
        kept_words = int(np.searchsorted(np.cumsum(per_word), max_tokens, side="right"))
        records.append({"path": row.path, "labels": row.labels, "n_words": len(per_word), "n_tokens": n_tokens,
                        "truncated": n_tokens > max_tokens, "tokens_lost": max(n_tokens - max_tokens, 0),
                        "words_lost": len(per_word) - kept_words})
    columns = ["path", "labels", "n_words", "n_tokens", "truncated", "tokens_lost", "words_lost"]
    return pd.DataFrame(records, columns=columns)


def token_summary(audit: pd.DataFrame) -> dict[str, float]:
    """Plain-number summary of a `token_audit` table.

    Args:
        audit: the table.

    Returns:
        n_captions, n_truncated, frac_truncated, mean_tokens, median_tokens, p95_tokens, max_tokens,
        mean_tokens_lost (over truncated captions), mean_words_lost (over truncated captions),
        total_tokens_lost.
    """
    n = len(audit)
    cut = audit[audit["truncated"]]
    tokens = audit["n_tokens"]
    return {"n_captions": n, "n_truncated": int(len(cut)), "frac_truncated": len(cut) / n if n else 0.0,
            "mean_tokens": float(tokens.mean()) if n else 0.0, "median_tokens": float(tokens.median()) if n else 0.0,
            "p95_tokens": float(tokens.quantile(0.95)) if n else 0.0, "max_tokens": int(tokens.max()) if n else 0,
            "mean_tokens_lost": float(cut["tokens_lost"].mean()) if len(cut) else 0.0,
            "mean_words_lost": float(cut["words_lost"].mean()) if len(cut) else 0.0,
            "total_tokens_lost": int(audit["tokens_lost"].sum())}


_SENTENCE_END = regex.compile(r"(?<=[.!?])\s+")
_DANGLING = ",;:-–—(['\" "


def shorten_caption(text: str, max_tokens: int = CONTENT_TOKENS) -> str:
    """Shorten a caption to at most `max_tokens` CLIP tokens without cutting a word.

    Whole trailing sentences are dropped first; if the first sentence alone is too long it is cut
    after the last word that fits, trailing commas/dashes are removed and a full stop is added.
    A caption that already fits is returned stripped. Returns "" only if not even one word fits.

    Args:
        text: the caption (cleaned; sentences end with . ! or ? followed by a space).
        max_tokens: content-token budget (75 for CLIP's 77-token context).
    """
    if max_tokens < 1:
        raise UserError(f"max_tokens must be at least 1 (got {max_tokens})")
    text = " ".join(text.split())
    if count_tokens(text) <= max_tokens:
        return text
    sentences = _SENTENCE_END.split(text)
    kept: list[str] = []
    for sentence in sentences:
        if count_tokens(" ".join([*kept, sentence])) > max_tokens:
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept)
    pieces = sentences[0].split()

    def candidate(k: int) -> str:
        head = " ".join(pieces[:k]).rstrip(_DANGLING)
        return head if not head or head[-1] in ".!?" else head + "."

    lo, hi = 0, len(pieces)  # invariant: candidate(lo) fits (k=0 gives ""), candidate(hi + 1) does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(candidate(mid)) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return candidate(lo)


def _normal_term(term: str) -> str:
    """Lowercase with single spaces: the key under which a matched term is looked up."""
    return " ".join(term.lower().split())


def _term_pattern(terms: list[str]) -> regex.Pattern[str]:
    """Whole-word, case-insensitive match of any term (spaces inside a term match any whitespace)."""
    alternatives = sorted({r"\s+".join(regex.escape(p) for p in t.lower().split()) for t in terms if t.strip()},
                          key=lambda s: (-len(s), s))
    return regex.compile(r"(?<![\w'])(?:" + "|".join(alternatives) + r")(?![\w])", regex.IGNORECASE)


def _class_hits(samples: list[ManifestRow], synonyms: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """{path: {class: matched terms}} with one regex pass per caption."""
    classes = {c for r in samples for c in r.labels.split(COMPOUND_SEPARATOR)} | set(synonyms)
    owners: dict[str, set[str]] = {}
    for cls in classes:
        for term in [cls, *synonyms.get(cls, [])]:
            if term.strip():
                owners.setdefault(_normal_term(term), set()).add(cls)
    pattern = _term_pattern(list(owners))
    hits: dict[str, dict[str, list[str]]] = {}
    for row in samples:
        found: dict[str, list[str]] = {}
        for match in pattern.findall(row.caption):
            term = _normal_term(match)
            for cls in owners[term]:
                found.setdefault(cls, []).append(term)
        hits[row.path] = found
    return hits


def leakage(rows: list[ManifestRow], synonyms: dict[str, list[str]], include_compound: bool = True) -> pd.DataFrame:
    """How often captions name their own class (or a synonym / inflection of it), and any class.

    Matching is whole-word and case-insensitive; negations ("not angry") count as mentions.

    Args:
        rows: manifest rows (deduplicated by path; empty captions are left out).
        synonyms: class -> words that name it (see `descriptions.load_descriptions(...)[c].synonyms`);
            the class name itself always counts. Classes missing here are matched by name only.
        include_compound: count compound samples for each of their classes.

    Returns:
        DataFrame, one row per class plus a final row "all" (every sample once; "own" = any of its
        classes): class, n_captions, n_own, frac_own, n_other (names another class but not its own),
        frac_other, n_any, frac_any, top_terms ("angry:12, anger:3").
    """
    samples = [r for r in unique_samples(rows) if r.caption.strip()]
    found = _class_hits(samples, synonyms)
    per_class = _class_samples(samples, include_compound)
    per_class["all"] = samples
    records = []
    for cls, members in per_class.items():
        own_n = other_n = any_n = 0
        terms: Counter[str] = Counter()
        for r in members:
            hits = set(found[r.path])
            own = set(r.labels.split(COMPOUND_SEPARATOR)) if cls == "all" else {cls}
            own_n += bool(hits & own)
            other_n += bool(hits - own) and not hits & own
            any_n += bool(hits)
            terms.update(t for c in own for t in found[r.path].get(c, []))
        n = max(len(members), 1)
        top = sorted(terms.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        records.append({"class": cls, "n_captions": len(members), "n_own": own_n, "frac_own": own_n / n,
                        "n_other": other_n, "frac_other": other_n / n, "n_any": any_n, "frac_any": any_n / n,
                        "top_terms": ", ".join(f"{t}:{k}" for t, k in top)})
    return pd.DataFrame(records)
