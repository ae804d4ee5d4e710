"""Training only the used token-embedding rows gives the same weights as training the full embedding."""
from __future__ import annotations

import torch

from emoclip_lib.data.tokenizer import tokenize
from emoclip_lib.model import contrastive_loss
from emoclip_lib.model.clip import load_clip
from emoclip_lib.train.pretrain import _make_optimizer, clip_logits
from emoclip_lib.train.vocabulary import (compact_token_embedding, expand_token_embedding, renumber_tokens,
                                          used_vocabulary)

CAPTIONS = ["a wide smile", "eyes narrowed and lips pressed together", "she frowns and looks away",
            "brows raised, mouth open", "a faint smile at the corners of the mouth", "he stares, unmoved"]


def _train(compact: bool, steps: int = 4) -> dict[str, torch.Tensor]:
    """A few AdamW steps of the pretraining loss on fixed images and captions."""
    model = load_clip("tiny", seed=3).train()
    tokens = tokenize(CAPTIONS)  # (6, 77)
    images = torch.randn(len(CAPTIONS), 3, 32, 32, generator=torch.Generator().manual_seed(0))  # (6, 3, 32, 32)
    if compact:
        vocabulary = used_vocabulary(tokens)
        full, tokens = compact_token_embedding(model, vocabulary), renumber_tokens(tokens, vocabulary)
    opt = _make_optimizer(model, 1e-2, 0.1)
    for _ in range(steps):
        loss = contrastive_loss(clip_logits(model, images, tokens, text_groups=2))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if compact:
        expand_token_embedding(model, full, vocabulary)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_renumbering_keeps_the_order_of_ids_and_the_end_token() -> None:
    tokens = tokenize(CAPTIONS)
    vocabulary = used_vocabulary(tokens)
    renumbered = renumber_tokens(tokens, vocabulary)
    assert len(vocabulary) < 60 and int(renumbered.max()) == len(vocabulary) - 1
    assert torch.equal(vocabulary[renumbered], tokens)
    assert torch.equal(renumbered.argmax(-1), tokens.argmax(-1))  # where the text tower reads each caption


def test_compact_vocabulary_training_gives_bit_identical_weights() -> None:
    full, compact = _train(compact=False), _train(compact=True)
    assert full.keys() == compact.keys()
    assert compact["token_embedding.weight"].shape == (49408, 64)
    before = load_clip("tiny", seed=3).token_embedding.weight.detach()
    assert not torch.equal(full["token_embedding.weight"], before)  # the used rows did train
    for name in full:
        assert torch.equal(full[name], compact[name]), name
