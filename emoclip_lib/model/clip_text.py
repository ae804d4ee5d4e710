"""CLIP's text tower without the padding: the same numbers as OpenAI's `encode_text`, for less work.

OpenAI's text transformer runs all 77 positions of every caption, but its attention is causal and the
caption embedding is read at the end-of-text token, so positions after a caption's end token cannot change
its result. `encode_text_trimmed` runs only the positions up to the longest caption's end token; with
`groups > 1` it sorts the captions by length and runs each group of similar length only up to its own
longest caption. With the tiny CLIP and expression captions (~30 tokens) trimming makes a training step of
the text tower 2-3x cheaper; 3 length groups then took a whole pretraining step (batch 128, captions of
29 tokens on average, the longest 74) from 208 to 121 ms (benchmarks/bench_perf.py, item 9).
"""
from __future__ import annotations

import torch
from torch import nn


def _tower(model: nn.Module, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
    """The text transformer over the first `L` positions of `x`, read at each caption's end token.

    Args:
        model: an OpenAI `CLIP`.
        x: (N, L, W) token embeddings, L = the longest caption's end position + 1.
        eot: (N,) end-token positions.
    Returns:
        (N, W) final-layer-normed features at the end tokens (before the text projection).
    """
    length = x.shape[1]
    x = (x + model.positional_embedding[:length].type(model.dtype)).permute(1, 0, 2)  # (L, N, W)
    for block in model.transformer.resblocks:
        mask = block.attn_mask
        mask = None if mask is None else mask[:length, :length].to(dtype=x.dtype, device=x.device)  # (L, L)
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_final(x.permute(1, 0, 2)).type(model.dtype)  # (N, L, W)
    return x[torch.arange(x.shape[0], device=x.device), eot]  # (N, W)


def encode_text_trimmed(model: nn.Module, tokens: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """OpenAI CLIP's `encode_text`, computed over the positions up to each caption's end token only.

    Args:
        model: an OpenAI `CLIP` (its `transformer.resblocks` are `ResidualAttentionBlock`s with a causal mask).
        tokens: (N, 77) token ids; the end-of-text token has the largest id, as in OpenAI's tokenizer.
        groups: 1 = all captions up to the longest one's end token; G > 1 = the captions sorted by length
            and split into G groups of near-equal count, each run up to its own longest caption (the
            result comes back in the input order). The values differ by float rounding only.
    Returns:
        (N, D) text embeddings, equal to `model.encode_text(tokens)` up to float rounding.
    """
    eot = tokens.argmax(dim=-1)  # (N,) position of each caption's end token
    x = model.token_embedding(tokens[:, :int(eot.max()) + 1]).type(model.dtype)  # (N, L, W)
    if groups <= 1:
        return _tower(model, x, eot) @ model.text_projection  # (N, D)
    order = torch.argsort(eot, stable=True)  # (N,) shortest first
    parts = []
    for idx in order.tensor_split(min(groups, len(order))):
        length = int(eot[idx].max()) + 1
        parts.append(_tower(model, x[idx, :length], eot[idx]))  # (n, W)
    return torch.cat(parts)[torch.argsort(order)] @ model.text_projection  # (N, D)
