"""Empty, exact-duplicate and near-duplicate captions.

Near duplicates are found without comparing every pair: each distinct caption gets a MinHash
signature of its word set and/or its character 3-gram set, signatures are cut into bands, and only
captions that share a band bucket (locality-sensitive hashing) are compared exactly. Work grows about
linearly with the number of captions (10k captions take a few seconds on one core).

All functions take manifest rows and look at one row per sample path (MAFW repeats every clip once
per fold): see `captions_clean.unique_samples`.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .clean import clean_caption, normalise_for_matching, unique_samples
from ..errors import UserError

if TYPE_CHECKING:
    from ..data import ManifestRow

MEASURES: tuple[str, ...] = ("token", "char3")
_PRIME = np.uint64((1 << 61) - 1)
PAIR_COLUMNS: list[str] = ["kind", "path_a", "path_b", "labels_a", "labels_b", "same_labels",
                           "token_jaccard", "char3_jaccard", "similarity", "caption_a", "caption_b"]


def shingles(text: str, measure: str) -> set[str]:
    """The set compared by `measure`: words ("token") or character 3-grams ("char3") of the normalised text.

    Args:
        text: a caption.
        measure: "token" or "char3".
    """
    norm = normalise_for_matching(text)
    if measure == "token":
        return set(norm.split())
    if measure == "char3":
        return {norm[i : i + 3] for i in range(len(norm) - 2)} or ({norm} if norm else set())
    raise UserError(f"unknown similarity measure {measure!r}; use one of {', '.join(MEASURES)}")


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b| (0 for two empty sets).

    Args:
        a: first set.
        b: second set.
    """
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def band_params(threshold: float, num_perm: int, recall: float = 0.98) -> tuple[int, int]:
    """(bands, rows per band) with the most rows whose chance of pairing two sets of similarity
    `threshold` is at least `recall`: fewest false candidates at the wanted recall.

    Args:
        threshold: the similarity that must be found.
        num_perm: signature length.
        recall: wanted probability that a pair at `threshold` becomes a candidate.
    """
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if 1.0 - (1.0 - threshold**r) ** b >= recall:
            best = (b, r)
    return best


def _hash32(item: str, cache: dict[str, int]) -> int:
    """Stable (process-independent) 32-bit hash of a shingle."""
    value = cache.get(item)
    if value is None:
        value = int.from_bytes(hashlib.blake2b(item.encode("utf-8"), digest_size=4).digest(), "little")
        cache[item] = value
    return value


def minhash_signatures(sets: list[set[str]], num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures with multiply-shift hash functions ((a*x + b) mod 2^64) >> 32.

    Args:
        sets: non-empty shingle sets.
        num_perm: signature length.
        seed: seed of the hash coefficients.

    Returns:
        uint64 array (N, num_perm) of 32-bit values.
    """
    cache: dict[str, int] = {}
    hashed = [np.fromiter((_hash32(s, cache) for s in items), dtype=np.uint64, count=len(items)) for items in sets]
    flat = np.concatenate(hashed)  # (S,) all shingles of all sets
    starts = np.cumsum([0] + [len(h) for h in hashed[:-1]])  # (N,)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
    b = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64)
    out = np.empty((len(sets), num_perm), dtype=np.uint64)  # (N, P)
    shift = np.uint64(32)
    step = max(1, (1 << 22) // max(len(flat), 1))  # keep the (p, S) temporary near 32 MB
    with np.errstate(over="ignore"):
        for lo in range(0, num_perm, step):
            hi = min(lo + step, num_perm)
            values = (a[lo:hi, None] * flat[None, :] + b[lo:hi, None]) >> shift  # (p, S), wraps mod 2^64
            out[:, lo:hi] = np.minimum.reduceat(values, starts, axis=1).T
    return out


def lsh_candidates(signatures: np.ndarray, bands: int, rows_per_band: int, max_bucket: int = 500,
                   progress: bool = False) -> np.ndarray:
    """Index pairs (i < j) that share at least one band bucket.

    A bucket with more than `max_bucket` members links each member to its first member only, so a
    huge cluster of templated captions cannot make the work quadratic.

    Args:
        signatures: (N, P) MinHash signatures.
        bands: number of bands.
        rows_per_band: signature entries per band (bands * rows_per_band <= P).
        max_bucket: largest bucket expanded into all its pairs.
        progress: show a progress bar over bands.

    Returns:
        int64 array (M, 2), sorted, without repeats.
    """
    n = signatures.shape[0]
    triangles: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    codes: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    mixer = np.random.default_rng(0).integers(1, 1 << 63, size=rows_per_band, dtype=np.uint64) | np.uint64(1)
    for band in tqdm(range(bands), desc="LSH bands", disable=not progress):
        block = signatures[:, band * rows_per_band : (band + 1) * rows_per_band]  # (N, r)
        with np.errstate(over="ignore"):
            keys = (block * mixer[None, :]).sum(axis=1)  # (N,) wrapping hash of the band
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        shared = np.flatnonzero(counts[inverse] >= 2)  # members of buckets with 2+ captions, ascending
        if shared.size == 0:
            continue
        order = np.argsort(inverse[shared], kind="stable")
        members_sorted, groups_sorted = shared[order], inverse[shared][order]
        for members in np.split(members_sorted, np.flatnonzero(np.diff(groups_sorted)) + 1):
            if len(members) <= max_bucket:
                if len(members) not in triangles:
                    triangles[len(members)] = np.triu_indices(len(members), 1)
                left, right = triangles[len(members)]
                codes.append(members[left] * n + members[right])
            else:
                codes.append(members[0] * n + members[1:])
    unique = np.unique(np.concatenate(codes)).astype(np.int64)
    return np.stack([unique // n, unique % n], axis=1)


def _lsh_pairs(sets: list[set[str]], threshold: float, num_perm: int, seed: int, max_bucket: int,
               progress: bool) -> np.ndarray:
    """Candidate index pairs (M, 2) whose MinHash estimate is within 4 standard deviations of `threshold`."""
    keep = np.array([k for k, s in enumerate(sets) if s], dtype=np.int64)
    if len(keep) < 2:
        return np.empty((0, 2), dtype=np.int64)
    sigs = minhash_signatures([sets[k] for k in keep], num_perm, seed)  # (K, num_perm)
    pairs = lsh_candidates(sigs, *band_params(threshold, num_perm), max_bucket, progress)  # (M, 2)
    chunks = np.array_split(pairs, max(1, len(pairs) // 20000))
    estimate = np.concatenate([(sigs[c[:, 0]] == sigs[c[:, 1]]).mean(axis=1) for c in chunks])  # (M,)
    margin = 4.0 * (threshold * (1.0 - threshold) / num_perm) ** 0.5 + 0.02
    return keep[pairs[estimate >= threshold - margin]]


def _pair_record(kind: str, a: ManifestRow, b: ManifestRow, cap_a: str, cap_b: str,
                 tok: float, chr3: float, sim: float) -> dict[str, object]:
    """One output row."""
    return {"kind": kind, "path_a": a.path, "path_b": b.path, "labels_a": a.labels, "labels_b": b.labels,
            "same_labels": a.labels == b.labels, "token_jaccard": tok, "char3_jaccard": chr3,
            "similarity": sim, "caption_a": cap_a, "caption_b": cap_b}


def _distinct_captions(rows: list[ManifestRow]) -> tuple[list[ManifestRow], list[str], list[list[int]]]:
    """(samples, their cleaned captions, sample indices per distinct case-folded non-empty caption)."""
    samples = unique_samples(rows)
    texts = [clean_caption(r.caption) for r in samples]
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        if text:
            groups.setdefault(text.casefold(), []).append(i)
    return samples, texts, list(groups.values())


def _frame(records: list[dict[str, object]]) -> pd.DataFrame:
    """Pairs as a DataFrame in a fixed order (exact first, most similar first)."""
    frame = pd.DataFrame(records, columns=PAIR_COLUMNS)
    if frame.empty:
        return frame
    frame = frame.sort_values(["kind", "similarity", "path_a", "path_b"], ascending=[True, False, True, True])
    return frame.reset_index(drop=True)


def find_exact_duplicates(rows: list[ManifestRow]) -> pd.DataFrame:
    """Samples with the same caption after cleaning, ignoring case.

    Each later sample of a group is paired with the group's first sample (n - 1 pairs per group).

    Args:
        rows: manifest rows (deduplicated by path here).

    Returns:
        DataFrame with PAIR_COLUMNS, kind "exact".
    """
    samples, texts, groups = _distinct_captions(rows)
    records = []
    for group in groups:
        first = group[0]
        for other in group[1:]:
            tok = jaccard(shingles(texts[first], "token"), shingles(texts[other], "token"))
            chr3 = jaccard(shingles(texts[first], "char3"), shingles(texts[other], "char3"))
            records.append(_pair_record("exact", samples[first], samples[other], texts[first], texts[other],
                                        tok, chr3, 1.0))
    return _frame(records)


def find_near_duplicates(rows: list[ManifestRow], threshold: float = 0.8, measures: tuple[str, ...] = MEASURES,
                         num_perm: int = 128, seed: int = 0, max_bucket: int = 500,
                         progress: bool = False) -> pd.DataFrame:
    """Pairs of distinct captions whose word-set or character-3-gram Jaccard similarity is >= threshold.

    Exact duplicates (see `find_exact_duplicates`) are represented by their first sample. Candidates
    come from MinHash LSH (about 98% of pairs exactly at `threshold` become candidates, more above
    it), are kept when their MinHash estimate is within 4 standard deviations of `threshold`, and are
    then checked exactly, so every reported pair is a true match.

    Args:
        rows: manifest rows (deduplicated by path here).
        threshold: similarity in (0, 1].
        measures: any of "token" (word-set Jaccard) and "char3" (character 3-gram Jaccard).
        num_perm: MinHash signature length (more: better recall, slower).
        seed: seed of the MinHash functions.
        max_bucket: see `lsh_candidates`.
        progress: show progress bars.

    Returns:
        DataFrame with PAIR_COLUMNS, kind "near".
    """
    if not 0.0 < threshold <= 1.0:
        raise UserError(f"near-duplicate threshold must be in (0, 1] (got {threshold})")
    if not measures or any(m not in MEASURES for m in measures):
        raise UserError(f"measures {measures!r} must be a non-empty subset of {MEASURES}")
    if num_perm < 8:
        raise UserError(f"num_perm must be at least 8 (got {num_perm})")
    samples, texts, groups = _distinct_captions(rows)
    reps = [g[0] for g in groups]  # sample index of each distinct caption
    sets = {m: [shingles(texts[i], m) for i in reps] for m in MEASURES}
    found = [_lsh_pairs(sets[m], threshold, num_perm, seed, max_bucket, progress) for m in measures]
    candidates = np.unique(np.concatenate(found), axis=0)
    records = []
    for i, j in tqdm(candidates.tolist(), desc="verify pairs", disable=not progress):
        sim = {m: jaccard(sets[m][i], sets[m][j]) for m in MEASURES}
        best = max(sim[m] for m in measures)
        if best >= threshold:
            a, b = reps[i], reps[j]
            records.append(_pair_record("near", samples[a], samples[b], texts[a], texts[b],
                                        sim["token"], sim["char3"], best))
    return _frame(records)


def find_duplicates(rows: list[ManifestRow], threshold: float = 0.8, measures: tuple[str, ...] = MEASURES,
                    seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Exact and near duplicates together (see `find_exact_duplicates`, `find_near_duplicates`).

    Args:
        rows: manifest rows.
        threshold: near-duplicate similarity threshold.
        measures: near-duplicate measures.
        seed: MinHash seed.
        progress: show progress bars.
    """
    exact = find_exact_duplicates(rows)
    near = find_near_duplicates(rows, threshold, measures, seed=seed, progress=progress)
    frames = [f for f in (exact, near) if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else exact
