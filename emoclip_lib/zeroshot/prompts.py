"""Zero-shot classification core: class text embeddings (prompt ensembles), compound classes, prediction.

A class is represented by one or more prompt texts (a class-name prompt, one or more descriptions).
Every prompt is encoded and L2-normalised, the prompts of a class are averaged and the mean is
normalised again. A compound class ("anger+disgust") is the normalised mean of its components'
normalised class embeddings. A video is assigned the class of highest cosine similarity; the
probabilities are a softmax over scaled cosines (100 as in CLIP, or the model's learned scale).

Evaluation helpers live in `zeroshot_eval`, video encoding and long-video windows in `zeroshot_video`.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.classes import COMPOUND_SEPARATOR, join_labels, parse_labels
from ..errors import UserError
from ..data.tokenizer import tokenize

CLIP_SCALE = 100.0  # exp(ln 100): CLIP's logit scale at initialisation

EncodeTextFn = Callable[[torch.Tensor], torch.Tensor]  # (N, 77) tokens -> (N, D) embeddings


def _check_prompts(prompts: dict[str, list[str]]) -> None:
    if not isinstance(prompts, dict) or not prompts:
        raise UserError("prompts must be a non-empty dict mapping class name -> list of prompt texts")
    for name, texts in prompts.items():
        if isinstance(texts, str):
            raise UserError(f"prompts[{name!r}] is a single string; wrap it in a list: [{texts!r}]")
        if not texts:
            raise UserError(f"class {name!r} has no prompt text: give at least one sentence")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise UserError(f"prompts[{name!r}][{i}] must be a non-empty string, got {text!r}")


@torch.no_grad()
def class_text_embeddings(encode_text_fn: EncodeTextFn, prompts: dict[str, list[str]], batch_size: int = 256,
                          device: str | torch.device = "cpu", progress: bool = False) -> torch.Tensor:
    """One embedding per class: the normalised mean of its normalised prompt embeddings (prompt ensemble).

    Args:
        encode_text_fn: maps (N, 77) token ids to (N, D) embeddings, e.g. `model.encode_text` of an
            EmoCLIP model or of a plain OpenAI CLIP model.
        prompts: class name -> prompt texts; the rows follow the dict's order.
        batch_size: prompts encoded per call.
        device: where the tokens are sent (the text encoder's device).
        progress: show a progress bar over the batches.
    Returns:
        float32 CPU tensor (C, D) with unit-norm rows.
    """
    _check_prompts(prompts)
    if int(batch_size) < 1:
        raise UserError(f"batch_size must be at least 1, got {batch_size}")
    texts = [text for group in prompts.values() for text in group]
    owner = torch.tensor([c for c, group in enumerate(prompts.values()) for _ in group])  # (N,)
    chunks = []
    for lo in tqdm(range(0, len(texts), batch_size), desc="text", disable=not progress):
        tokens = tokenize(texts[lo : lo + batch_size]).to(device)  # (n, 77)
        chunks.append(F.normalize(encode_text_fn(tokens).float(), dim=-1).cpu())  # (n, D)
    per_prompt = torch.cat(chunks)  # (N, D)
    sums = torch.zeros(len(prompts), per_prompt.shape[1]).index_add_(0, owner, per_prompt)  # (C, D)
    counts = torch.bincount(owner, minlength=len(prompts)).unsqueeze(1)  # (C, 1)
    return F.normalize(sums / counts, dim=-1)


def _space_key(label: str, class_names: Sequence[str]) -> frozenset[str]:
    """The set of components of a single or compound label (order-free)."""
    return frozenset(parse_labels(label, known=tuple(class_names)))


def label_space(class_names: Sequence[str], include_compounds: Sequence[str] | None = None) -> list[str]:
    """Labels to classify into: the single classes followed by the requested compound classes.

    Args:
        class_names: the single classes, in the order of the class embedding rows.
        include_compounds: compound labels such as "anger+disgust" (components must be in `class_names`).
    Returns:
        list of label strings, compounds written with their components in the given order.
    Raises:
        UserError: on an unknown component or a label listed twice (in any component order).
    """
    names = [str(n) for n in class_names]
    if len(set(names)) != len(names):
        raise UserError(f"class_names has duplicates: {names}")
    space, seen = [], {}
    for label in [*names, *(include_compounds or [])]:
        parts = parse_labels(label, known=tuple(names))
        key = frozenset(parts)
        if len(key) != len(parts):
            raise UserError(f"compound label {label!r} repeats a component")
        if key in seen:
            raise UserError(f"label {label!r} is the same class as {seen[key]!r}: list it once")
        seen[key] = label
        space.append(join_labels(parts))
    return space


def compound_embeddings(class_emb: torch.Tensor, class_names: Sequence[str], compounds: Sequence[str]) -> torch.Tensor:
    """Embeddings of compound labels: normalised mean of the components' normalised class embeddings.

    A single-class label gives that class's normalised embedding, so passing `label_space(...)`
    returns the full (L, D) matrix of singles and compounds.

    Args:
        class_emb: (C, D) class embeddings, rows in `class_names` order.
        class_names: the C single classes.
        compounds: K labels such as "anger+disgust".
    Returns:
        (K, D) unit-norm rows, on `class_emb`'s device.
    """
    if class_emb.dim() != 2 or class_emb.shape[0] != len(class_names):
        raise UserError(f"class_emb must be (C, D) with C = {len(class_names)} classes, got {tuple(class_emb.shape)}")
    lookup = {name: i for i, name in enumerate(class_names)}
    unit = F.normalize(class_emb.float(), dim=-1)  # (C, D)
    rows = []
    for label in compounds:
        idx = [lookup[p] for p in parse_labels(label, known=tuple(class_names))]
        rows.append(unit[idx].mean(dim=0))  # (D,)
    if not rows:
        return unit.new_zeros(0, unit.shape[1])
    return F.normalize(torch.stack(rows), dim=-1)  # (K, D)


def label_indices(labels: Sequence[str], space: Sequence[str]) -> np.ndarray:
    """Index of every label string in a label space (compound component order does not matter).

    Args:
        labels: N label strings, e.g. the `labels` returned by `encode_videos`.
        space: the label space, e.g. from `label_space`.
    Returns:
        int64 array (N,).
    Raises:
        UserError: naming the first sample whose label is not in the space.
    """
    singles = sorted({p for label in space for p in str(label).split(COMPOUND_SEPARATOR)})
    lookup = {_space_key(label, singles): i for i, label in enumerate(space)}
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        try:
            out[i] = lookup[_space_key(label, singles)]
        except (KeyError, UserError):
            raise UserError(f"sample {i}: label {label!r} is not in the label space ({', '.join(space)}); "
                            "add it with label_space(..., include_compounds=[...]) or drop the sample") from None
    return out


def model_scale(model: Any) -> float:
    """The multiplier a model applies to cosines: exp(logit_scale) (100 for an untrained CLIP).

    Args:
        model: an EmoCLIP or OpenAI CLIP model (anything with a `logit_scale` holding the log-scale).
    """
    if not hasattr(model, "logit_scale"):
        raise UserError(f"{type(model).__name__} has no logit_scale: pass scale=100.0 instead")
    return float(torch.as_tensor(model.logit_scale).detach().float().exp())


@torch.no_grad()
def zero_shot_predict(video_emb: torch.Tensor, text_emb: torch.Tensor,
                      scale: float | torch.Tensor = CLIP_SCALE) -> tuple[torch.Tensor, torch.Tensor]:
    """Classify videos by cosine similarity to class text embeddings.

    Args:
        video_emb: (N, D) video embeddings (normalised here).
        text_emb: (C, D) class embeddings (normalised here).
        scale: multiplier of the cosines before the softmax: 100 as in CLIP, or `model_scale(model)`.
    Returns:
        probs (N, C) float32 softmax(scale * cos), pred (N,) int64 argmax (first class on ties).
    """
    if video_emb.dim() != 2 or text_emb.dim() != 2:
        raise UserError(f"expected video_emb (N, D) and text_emb (C, D), got {tuple(video_emb.shape)} "
                        f"and {tuple(text_emb.shape)}")
    if video_emb.shape[1] != text_emb.shape[1]:
        raise UserError(f"embedding sizes differ: videos have D={video_emb.shape[1]}, texts D={text_emb.shape[1]}; "
                        "encode both with the same model")
    if text_emb.shape[0] == 0:
        raise UserError("text_emb has no class: give at least one class embedding")
    v = video_emb.float()  # (N, D); divided by its norms after the product: no (N, D) copy
    t = F.normalize(text_emb.float().to(v.device), dim=-1)  # (C, D)
    norms = v.norm(dim=1, keepdim=True).clamp_min_(1e-12)  # (N, 1)
    logits = (v @ t.t()).div_(norms).mul_(float(scale))  # (N, C) scaled cosines
    pred = logits.argmax(dim=1)  # (N,)
    return logits.softmax(dim=1), pred
