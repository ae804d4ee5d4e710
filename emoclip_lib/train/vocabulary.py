"""Train only the token-embedding rows that the captions use.

The tiny CLIP's token embedding (49,408 x 64) holds 93 % of its weights, but the pretraining captions use a
few hundred token ids. A row that no caption uses gets a zero gradient at every step, and AdamW (no weight
decay on embeddings) then leaves it exactly as it was: its moments stay 0 and its update is -lr * 0 / eps.
So the pretraining can swap in an embedding of the used rows only, with the tokens renumbered in the same
order, and write the rows back at the end: the weights come out bit-identical
(tests/train/test_vocabulary.py), and the AdamW step no longer walks 3.2 M idle weights (a pretraining step
went from 121 to 109 ms; benchmarks/bench_perf.py, item 9).
"""
from __future__ import annotations

import torch
from torch import nn


def used_vocabulary(tokens: torch.Tensor) -> torch.Tensor:
    """The token ids that occur in `tokens` (padding included), ascending.

    Args:
        tokens: (N, 77) token ids.
    Returns:
        (V,) int64 ids.
    """
    return torch.unique(tokens)


def renumber_tokens(tokens: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
    """Each id replaced by its position in `vocabulary`. The order of ids is kept, so the end-of-text token
    (the largest id) is still the largest one.

    Args:
        tokens: (N, 77) ids, all in `vocabulary`.
        vocabulary: (V,) ascending ids from `used_vocabulary`.
    """
    return torch.searchsorted(vocabulary, tokens)  # (N, 77)


def compact_token_embedding(model: nn.Module, vocabulary: torch.Tensor) -> torch.Tensor:
    """Replace `model.token_embedding` by one holding the rows of `vocabulary` only.

    Args:
        model: an OpenAI `CLIP`.
        vocabulary: (V,) ascending ids.
    Returns:
        the full (vocab, W) weight, detached; `expand_token_embedding` writes the trained rows back into it.
    """
    full = model.token_embedding.weight.detach()  # (vocab, W)
    rows = full[vocabulary.to(full.device)].clone()  # (V, W)
    model.token_embedding = nn.Embedding.from_pretrained(rows, freeze=False)
    return full


def expand_token_embedding(model: nn.Module, full: torch.Tensor, vocabulary: torch.Tensor) -> None:
    """Undo `compact_token_embedding`: the full-size embedding with the trained rows written back.

    Args:
        model: the model whose `token_embedding` holds the rows of `vocabulary`.
        full: (vocab, W) weight returned by `compact_token_embedding`.
        vocabulary: (V,) the ids those rows belong to.
    """
    weight = full.clone()  # (vocab, W)
    weight[vocabulary.to(weight.device)] = model.token_embedding.weight.detach()
    model.token_embedding = nn.Embedding.from_pretrained(weight, freeze=False)
