"""Caption curation: cleaning, duplicate detection, vocabulary, token audit/shortening, leakage, pipeline."""
from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest

from emoclip_lib.captions.curate import (class_vocabulary, clean_caption, clean_rows, conflicting_paths, curate,
                                  find_duplicates, find_empty, find_exact_duplicates, find_near_duplicates,
                                  leakage, shorten_caption, summary_json, token_audit, token_summary,
                                  unique_samples)
from emoclip_lib.captions.dedup import band_params, jaccard, lsh_candidates, minhash_signatures, shingles
from emoclip_lib.errors import UserError
from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.data.tokenizer import get_tokenizer, tokenize

SENTENCE = "The woman on the left frowns deeply, her eyebrows pulled together and lips pressed tight."  # 18 tokens


def row(path: str, caption: str, labels: str = "anger", fold: int | None = None) -> ManifestRow:
    return ManifestRow(path=path, labels=labels, caption=caption, fold=fold)


# ---------------------------------------------------------------- cleaning

@pytest.mark.parametrize("raw, clean", [
    ("Tom &amp;amp; Jerry", "Tom & Jerry"),
    ("a &lt;br&gt; b", "a b"),
    ("The man，frowns。He looks down！！！", "The man, frowns. He looks down!"),
    ("Ｔｈｅ ｗｏｍａｎ smiles", "The woman smiles"),
    ("（愤怒）The woman is angry", "The woman is angry"),
    ("The man 生气 is angry ,very angry !!", "The man is angry, very angry!"),
    ("他很生气。", ""),
    ("  a\u3000\u3000b\t\n c  ", "a b c"),
    ("zero\u200bwidth and bell\x07", "zerowidth and bell"),
    ("wait……", "wait..."),
    ("Really?!?! Yes.. no", "Really? Yes. no"),
    (",: The man smiles.", "The man smiles."),
    ("He frowns, ", "He frowns"),
    ("It’s “fine”", "It's \"fine\""),
    ("Iâ€™m happy", "I'm happy"),
    ("3.5 seconds, e.g., a.m.", "3.5 seconds, e.g. a.m."),
    ("", ""),
])
def test_clean_caption_examples(raw: str, clean: str) -> None:
    assert clean_caption(raw) == clean
    assert clean_caption(clean) == clean  # idempotent


def test_clean_caption_rejects_non_strings() -> None:
    with pytest.raises(UserError, match="must be a string"):
        clean_caption(None)  # type: ignore[arg-type]


def test_clean_rows_report_counts_samples_once() -> None:
    rows = [row("a.mp4", "He smiles ！！", fold=f) for f in (1, 2)] + [row("b.mp4", "He smiles.", fold=1),
                                                                    row("c.mp4", "生气", fold=1)]
    out, report = clean_rows(rows)
    assert [r.caption for r in out] == ["He smiles!", "He smiles!", "He smiles.", ""]
    assert [r.fold for r in out] == [1, 2, 1, 1] and out[2] is rows[2]
    assert report["rows"] == 4 and report["rows_changed"] == 3
    assert report["samples"] == 3 and report["samples_changed"] == 2 and report["samples_empty"] == 1
    assert report["steps"]["cjk"] == 1 and report["steps"]["punctuation"] == 1 and report["steps"]["html"] == 0
    assert report["steps"]["unicode"] == 1 and report["steps"]["whitespace"] == 1


def test_unique_samples_conflicts_and_empty() -> None:
    rows = [row("a", "x", fold=1), row("a", "x", fold=2), row("b", "y", fold=1), row("b", "z", fold=2),
            row("c", " ... ", fold=1)]
    assert [r.path for r in unique_samples(rows)] == ["a", "b", "c"]
    assert conflicting_paths(rows) == ["b"]
    empty = find_empty(rows)
    assert empty["path"].tolist() == ["c"]


# ---------------------------------------------------------------- duplicates

def random_caption(rng: random.Random, vocab: list[str]) -> str:
    return "The " + " ".join(rng.sample(vocab, rng.randint(12, 18))) + "."


def planted_set(n: int = 240, seed: int = 0) -> tuple[list[ManifestRow], set[frozenset[str]]]:
    """Random unrelated captions plus near-duplicate pairs: one word swapped, typos, reordered words."""
    rng = random.Random(seed)
    vocab = sorted({"".join(rng.choices("abcdefghijklmnoprstuvw", k=rng.randint(4, 9))) for _ in range(600)})
    caps = [random_caption(rng, vocab) for _ in range(n)]
    planted: set[frozenset[str]] = set()
    extra = []
    for k in range(0, 30, 3):
        words = caps[k].rstrip(".").split()
        swapped = words[:]
        swapped[-1] = "different"  # one word of ~16 replaced: token Jaccard >= 0.8
        typo = [w[:-1] if i % 4 == 1 else w for i, w in enumerate(words)]  # character 3-grams stay close
        reordered = words[1:] + words[:1]
        for j, variant in enumerate((swapped, typo, reordered)):
            extra.append(" ".join(variant) + ".")
            planted.add(frozenset({f"c{k}", f"v{k}_{j}"}))
    rows = [row(f"c{i}", c) for i, c in enumerate(caps)]
    rows += [row(f"v{k}_{j}", extra[(k // 3) * 3 + j]) for k in range(0, 30, 3) for j in range(3)]
    return rows, planted


def brute_force(rows: list[ManifestRow], threshold: float) -> set[frozenset[str]]:
    found = set()
    sets = [(r, shingles(r.caption, "token"), shingles(r.caption, "char3")) for r in rows]
    for (a, tok_a, chr_a), (b, tok_b, chr_b) in itertools.combinations(sets, 2):
        sim = max(jaccard(tok_a, tok_b), jaccard(chr_a, chr_b))
        if sim >= threshold and a.caption.lower() != b.caption.lower():
            found.add(frozenset({a.path, b.path}))
    return found


def test_near_duplicates_find_planted_pairs_only() -> None:
    rows, planted = planted_set()
    pairs = find_near_duplicates(rows, threshold=0.8, seed=0)
    found = {frozenset({a, b}) for a, b in zip(pairs["path_a"], pairs["path_b"])}
    truth = brute_force(rows, 0.8)
    assert planted <= truth  # the planted variants really are near duplicates
    assert found == truth
    family = {p: p.split("_")[0].lstrip("cv") for p in {x for pair in found for x in pair}}
    assert all(len({family[p] for p in pair}) == 1 for pair in found)  # nothing unrelated is paired
    sets = [shingles(r.caption, "token") for r in rows]
    candidates = lsh_candidates(minhash_signatures(sets, 128, 0), *band_params(0.8, 128))
    assert len(candidates) < 0.05 * len(rows) * (len(rows) - 1) / 2  # LSH compares few pairs
    assert (pairs["kind"] == "near").all() and (pairs["similarity"] >= 0.8).all()
    assert pairs["similarity"].is_monotonic_decreasing
    again = find_near_duplicates(rows, threshold=0.8, seed=0)
    assert again.equals(pairs)  # deterministic


def test_near_duplicates_ignore_unrelated_captions() -> None:
    rows = [row("a", "The man frowns and looks down at the floor."),
            row("b", "The woman smiles and looks up at the sky."),
            row("c", "A child laughs loudly while playing outside."),
            row("d", "The man frowns and looks down at the floor!", labels="sadness")]
    pairs = find_near_duplicates(rows, threshold=0.8)
    assert len(pairs) == 1
    rec = pairs.iloc[0]
    assert {rec["path_a"], rec["path_b"]} == {"a", "d"} and not rec["same_labels"]
    assert rec["token_jaccard"] == 1.0


def test_exact_duplicates_after_cleaning_and_per_path() -> None:
    rows = [row("a", "He smiles.", fold=1), row("a", "He smiles.", fold=2), row("b", "he SMILES. "),
            row("c", "He  smiles.", labels="happiness"), row("d", "She cries."), row("e", "")]
    exact = find_exact_duplicates(rows)
    assert sorted(zip(exact["path_a"], exact["path_b"])) == [("a", "b"), ("a", "c")]
    assert exact["same_labels"].tolist().count(False) == 1
    both = find_duplicates(rows)
    assert set(both["kind"]) == {"exact"}  # no near pairs between distinct captions here


def test_bad_near_duplicate_parameters() -> None:
    with pytest.raises(UserError, match=r"threshold must be in \(0, 1\]"):
        find_near_duplicates([row("a", "x")], threshold=0.0)
    with pytest.raises(UserError, match="measures"):
        find_near_duplicates([row("a", "x")], measures=("cosine",))


def test_minhash_estimates_jaccard_and_band_recall() -> None:
    a = {f"w{i}" for i in range(100)}
    b = {f"w{i}" for i in range(50, 150)}  # Jaccard 1/3
    sig = minhash_signatures([a, b, a], num_perm=256, seed=3)
    assert sig.shape == (3, 256) and (sig[0] == sig[2]).all()
    assert abs((sig[0] == sig[1]).mean() - 1 / 3) < 0.1
    bands, rows_per_band = band_params(0.8, 128)
    assert bands * rows_per_band <= 128
    assert 1 - (1 - 0.8**rows_per_band) ** bands >= 0.98


def test_lsh_large_bucket_is_linked_to_first_member() -> None:
    sig = np.zeros((6, 8), dtype=np.uint64)
    assert lsh_candidates(sig, 2, 4, max_bucket=10).shape == (15, 2)
    assert lsh_candidates(sig, 2, 4, max_bucket=3).tolist() == [[0, j] for j in range(1, 6)]


# ---------------------------------------------------------------- vocabulary

def test_class_vocabulary_counts_content_words() -> None:
    rows = [row("a", "The man frowns angrily, frowns again."), row("b", "She frowns and glares."),
            row("c", "She smiles.", labels="happiness"), row("c", "She smiles.", labels="happiness", fold=2),
            row("d", "He smiles and glares.", labels="anger+happiness")]
    vocab = class_vocabulary(rows, top_k=2)
    anger = vocab[vocab["class"] == "anger"]
    assert anger["word"].tolist() == ["frowns", "glares"]  # 2 of 3 samples each (the compound one too)
    assert anger["n_captions"].tolist() == [2, 2] and anger["rank"].tolist() == [1, 2]
    assert anger["doc_freq"].tolist() == pytest.approx([2 / 3, 2 / 3])
    assert anger["lift"].tolist() == pytest.approx([(2 / 3) / (2 / 4)] * 2)
    happy = vocab[vocab["class"] == "happiness"]
    assert happy["word"].tolist() == ["smiles", "glares"] and happy["n_captions"].tolist() == [2, 1]
    assert "the" not in set(vocab["word"]) and "she" not in set(vocab["word"])
    single = class_vocabulary(rows, top_k=5, include_compound=False)
    assert single[single["class"] == "happiness"]["word"].tolist() == ["smiles"]


# ---------------------------------------------------------------- tokens

def test_token_audit_counts_lost_tokens_and_words() -> None:
    long = " ".join([SENTENCE] * 6)  # 108 tokens, 90 words
    audit = token_audit([row("a", long, fold=1), row("a", long, fold=2), row("b", SENTENCE)])
    assert audit["path"].tolist() == ["a", "b"]
    first = audit.iloc[0]
    assert (first["n_tokens"], first["n_words"], first["tokens_lost"]) == (108, 90, 33)
    assert first["words_lost"] == 90 - (4 * 15 + 3)  # 4 sentences (72 tokens) and "The woman on" fit
    assert bool(first["truncated"]) and not bool(audit.iloc[1]["truncated"])
    summary = token_summary(audit)
    assert summary["n_truncated"] == 1 and summary["frac_truncated"] == 0.5
    assert summary["mean_tokens_lost"] == 33.0 and summary["max_tokens"] == 108
    assert summary["mean_tokens"] == pytest.approx((108 + 18) / 2)


def test_shorten_drops_whole_trailing_sentences() -> None:
    long = " ".join([SENTENCE] * 6)
    assert shorten_caption(long) == " ".join([SENTENCE] * 4)
    assert shorten_caption(SENTENCE) == SENTENCE
    assert shorten_caption("  a   short  caption ") == "a short caption"


@pytest.mark.parametrize("seed", range(6))
def test_shorten_long_first_sentence_ends_on_a_whole_word(seed: int) -> None:
    rng = random.Random(seed)
    vocab = ["eyebrows", "furrowed", "mouth", "slightly", "open", "gaze", "downward", "unbelievably",
             "tightly-pressed", "lips,", "head", "tilted", "forehead", "wrinkled", "(cheeks", "raised)"]
    first = "The " + " ".join(rng.choice(vocab) for _ in range(rng.randint(75, 95))) + "."
    text = first + " Then he smiles."
    tok = get_tokenizer()
    assert len(tok.encode(first)) > 75  # the first sentence alone does not fit
    out = shorten_caption(text, max_tokens=75)
    assert 0 < len(tok.encode(out)) <= 75
    ids = tokenize(out)[0]
    assert (ids != 0).sum() <= 77 and ids[(ids != 0).sum() - 1] == 49407  # nothing truncated
    assert out.endswith(".")
    kept = out[:-1].split()
    original = text.split()
    assert kept[:-1] == original[: len(kept) - 1]
    last = original[len(kept) - 1]  # the last kept word is whole (at most a trailing comma dropped)
    assert last.startswith(kept[-1]) and last.rstrip(",;:(") == kept[-1].rstrip(",;:(")
    longer = " ".join(original[: len(kept) + 1]) + "."
    assert len(tok.encode(longer)) > 75  # as many words as fit


def test_shorten_word_longer_than_budget() -> None:
    assert shorten_caption("a" * 400 + " b", max_tokens=5) == ""
    with pytest.raises(UserError, match="max_tokens"):
        shorten_caption("x", max_tokens=0)


# ---------------------------------------------------------------- leakage

SYNONYMS = {"anger": ["angry", "furious"], "happiness": ["happy"], "sadness": ["sad", "unhappy"],
            "disgust": ["disgusted"], "helplessness": ["helpless", "at a loss"]}


def test_leakage_counts_on_hand_made_set() -> None:
    rows = [row("a1", "He is ANGRY and shouting."), row("a2", "She looks furious."),
            row("a3", "He frowns at the dog."), row("a4", "He seems sad."),
            row("a1", "He is ANGRY and shouting.", fold=2),  # same sample, other fold
            row("h1", "Happiness fills her face.", labels="happiness"),
            row("h2", "An unhappy man.", labels="happiness"),  # 'happy' must not match inside 'unhappy'
            row("h3", "She is at a\nloss and happy-ish.", labels="happiness"),
            row("c1", "He is disgusted.", labels="anger+disgust"),
            row("e1", "", labels="anger")]
    table = leakage(rows, SYNONYMS).set_index("class")
    anger = table.loc["anger"]
    assert (anger["n_captions"], anger["n_own"], anger["n_other"], anger["n_any"]) == (5, 2, 2, 4)
    assert anger["frac_own"] == pytest.approx(0.4) and anger["frac_any"] == pytest.approx(0.8)
    assert anger["top_terms"] == "angry:1, furious:1"
    happy = table.loc["happiness"]
    assert (happy["n_captions"], happy["n_own"], happy["n_other"], happy["n_any"]) == (3, 2, 1, 3)
    assert table.loc["disgust", "n_own"] == 1 and table.loc["disgust", "frac_own"] == 1.0
    everything = table.loc["all"]
    assert (everything["n_captions"], everything["n_own"], everything["n_any"]) == (8, 5, 7)
    assert list(table.index)[-1] == "all"


# ---------------------------------------------------------------- pipeline

def test_curate_pipeline_and_summary() -> None:
    long = " ".join([SENTENCE] * 6)
    rows = []
    for fold in (1, 2):
        rows += [row("a", "He smiles happily ！！", labels="happiness", fold=fold),
                 row("b", long, fold=fold), row("c", "生气", fold=fold),
                 row("d", "he smiles happily!", labels="happiness", fold=fold)]
    curated, report = curate(rows, seed=0)
    assert len(curated) == len(rows) and [r.path for r in curated] == [r.path for r in rows]
    by_path = {r.path: r.caption for r in curated}
    assert by_path["a"] == "He smiles happily!" and by_path["c"] == ""
    assert by_path["b"] == " ".join([SENTENCE] * 4)
    assert report.empty["path"].tolist() == ["c"]
    assert report.duplicates[["path_a", "path_b"]].values.tolist() == [["a", "d"]]
    summary = summary_json(report)
    json.dumps(summary)  # plain numbers only
    assert summary["n_shortened"] == 1 and summary["tokens_before"]["n_truncated"] == 1
    assert summary["tokens_after"]["n_truncated"] == 0 and summary["n_exact_duplicate_pairs"] == 1
    assert summary["leakage"]["happiness"]["frac_own"] == 1.0
    assert summary["cleaning"]["samples_empty"] == 1
    dropped, report2 = curate(rows, shorten=False, drop_empty=True)
    assert "c" not in {r.path for r in dropped} and report2.n_dropped_empty == 2
    assert {r.path: r.caption for r in dropped}["b"] == long
