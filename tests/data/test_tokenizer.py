"""CLIP BPE tokenizer: ids must equal OpenAI's `clip.tokenize(..., truncate=True)`.

The expected id lists were computed once with the distribution's original `simple_tokenizer.py`
and are hard-coded here.
"""
from __future__ import annotations

import pytest
import torch

from emoclip_lib.errors import UserError
from emoclip_lib.data.tokenizer import EOT_ID, SOT_ID, BPETokenizer, get_tokenizer, tokenize

EXPECTED = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "": [49406, 49407],
    "Café naïve — 😀": [49406, 15304, 1097, 35689, 563, 2005, 7334, 49407],
    "Tom &amp; Jerry &lt;3": [49406, 2435, 261, 9164, 283, 274, 49407],
    "  Hello,\n\tWORLD!!  it's 2024 ": [49406, 3306, 267, 1002, 748, 585, 568, 273, 271, 273, 275, 49407],
    "don't you'll we've": [49406, 847, 713, 592, 1342, 649, 1200, 49407],
}

LONG_CAPTION = "The woman on the left frowns deeply, her eyebrows pulled together and lips pressed tight. " * 6
_SENTENCE = [518, 2308, 525, 518, 1823, 626, 12950, 11449, 267, 899, 19923, 8525, 1952, 537, 8847, 20080, 9123, 269]
# 108 BPE ids untruncated; OpenAI keeps SOT + the first 75 ids and puts EOT last.
LONG_EXPECTED = [49406, *(_SENTENCE * 5)[:75], 49407]


@pytest.mark.parametrize("text", list(EXPECTED))
def test_ids_match_openai(text: str) -> None:
    ids = tokenize(text)
    assert ids.shape == (1, 77)
    assert ids.dtype == torch.long
    want = EXPECTED[text]
    assert ids[0, : len(want)].tolist() == want
    assert ids[0, len(want) :].eq(0).all()


def test_batch_and_context_length() -> None:
    ids = tokenize(["a photo of a cat", ""], context_length=10)
    assert ids.shape == (2, 10)
    assert ids[0].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407, 0, 0, 0]
    assert ids[1].tolist() == [49406, 49407] + [0] * 8


def test_long_caption_is_truncated_with_eot_last() -> None:
    assert len(get_tokenizer().encode(LONG_CAPTION)) == 108
    ids = tokenize([LONG_CAPTION])
    assert ids.shape == (1, 77)
    assert ids[0].tolist() == LONG_EXPECTED
    assert ids[0, -1].item() == EOT_ID and ids[0, 0].item() == SOT_ID
    # EOT is the row maximum, which CLIP's encode_text relies on
    assert ids[0].argmax().item() == 76


def test_truncation_to_short_context() -> None:
    ids = tokenize("a photo of a cat", context_length=4)
    assert ids[0].tolist() == [49406, 320, 1125, 49407]


def test_special_tokens_and_vocab_size() -> None:
    tok = get_tokenizer()
    assert len(tok.token_ids) == 49408
    assert tok.token_ids["<|startoftext|>"] == SOT_ID == 49406
    assert tok.token_ids["<|endoftext|>"] == EOT_ID == 49407
    assert tok.encode("<|endoftext|>") == [EOT_ID]


def test_bpe_is_cached_per_word() -> None:
    tok = BPETokenizer()
    tok.encode("frowning frowning")
    assert len(tok._word_cache) == 3  # two special tokens + "frowning</w>"
    cached = tok._word_cache["frowning"]
    tok.encode("frowning")
    assert tok._word_cache["frowning"] is cached


def test_bad_input_raises_user_error() -> None:
    with pytest.raises(UserError, match="item 1"):
        tokenize(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(UserError, match="context_length"):
        tokenize("x", context_length=1)
