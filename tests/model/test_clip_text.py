"""Tests for the padding-free text tower (emoclip_lib.model.clip_text)."""
from __future__ import annotations

import torch

from emoclip_lib.model.clip import load_clip
from emoclip_lib.model.clip_text import encode_text_trimmed
from emoclip_lib.data.tokenizer import tokenize


def test_trimmed_text_tower_equals_openai_encode_text() -> None:
    model = load_clip("tiny", seed=5).eval()
    long = " ".join(["she frowns and looks away"] * 30)  # truncated at 77 tokens: nothing to trim
    for captions in (["a smile"], ["a smile", "he slowly raises both eyebrows and opens his mouth wide"], [long, "x"]):
        tokens = tokenize(captions)
        with torch.no_grad():
            full, trimmed = model.encode_text(tokens), encode_text_trimmed(model, tokens)  # (N, D)
        assert trimmed.shape == full.shape
        torch.testing.assert_close(trimmed, full, rtol=1e-5, atol=1e-5)


def test_trimmed_text_tower_has_the_same_gradients() -> None:
    tokens = tokenize(["a wide smile", "eyes narrowed and lips pressed together"])
    grads = []
    for encode in (lambda m: m.encode_text(tokens), lambda m: encode_text_trimmed(m, tokens)):
        model = load_clip("tiny", seed=2)
        encode(model).pow(2).sum().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "token_embedding.weight" in grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-3, atol=1e-5)  # float rounding only


def test_length_groups_give_the_same_embeddings_in_the_input_order() -> None:
    model = load_clip("tiny", seed=4).eval()
    captions = ["a smile", "he slowly raises both eyebrows and opens his mouth wide, then looks down at the floor",
                "x", "she frowns", "eyes wide open in surprise and the mouth a little open"]
    tokens = tokenize(captions)
    with torch.no_grad():
        full = model.encode_text(tokens)  # (5, D)
        for groups in (2, 3, 5, 9):  # 9 > captions: one caption a group
            torch.testing.assert_close(encode_text_trimmed(model, tokens, groups), full, rtol=1e-5, atol=1e-5)
        swapped = encode_text_trimmed(model, tokens[[3, 0, 1, 2, 4]], 3)
    torch.testing.assert_close(swapped, full[[3, 0, 1, 2, 4]], rtol=1e-5, atol=1e-5)


def test_length_groups_have_the_same_gradients() -> None:
    tokens = tokenize(["a wide smile", "eyes narrowed and lips pressed together, the jaw set hard", "no"])
    grads = []
    for encode in (lambda m: m.encode_text(tokens), lambda m: encode_text_trimmed(m, tokens, 3)):
        model = load_clip("tiny", seed=2)
        encode(model).pow(2).sum().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, full in grads[0].items():  # float rounding only: within a millionth of the gradient's scale
        scale = float(full.abs().max())
        torch.testing.assert_close(grads[1][name], full, rtol=1e-3, atol=2e-6 * scale, msg=name)
