"""Class text embeddings: the prompts of each class, prompt ensembles, compound classes.

A class is represented by one or more prompt texts (a class-name prompt, one or more descriptions,
from a class-descriptions YAML: `data.descriptions`). Every prompt is encoded and L2-normalised, the
prompts of a class are averaged and the mean is normalised again. A compound class ("anger+disgust")
is the normalised mean of its components' normalised class embeddings (the paper's rule).
`class_embeddings` is the one entry point; classification itself lives in `classify`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import COMPOUND_SEPARATOR, join_labels, parse_labels
from ..data import DEFAULT_TEMPLATE, load_descriptions
from ..data import prompts as description_prompts
from ..errors import UserError
from ..data import tokenize

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


def parse_class_list(text: str) -> list[str]:
    """Split "happiness, sadness,anger+disgust" into normalised labels (lower case, no spaces around '+').

    Args:
        text: comma-separated class names; compounds join classes with '+'.
    """
    labels = [COMPOUND_SEPARATOR.join(p.strip().lower() for p in item.split(COMPOUND_SEPARATOR))
              for item in str(text).split(",") if item.strip()]
    if not labels or any(not p for label in labels for p in label.split(COMPOUND_SEPARATOR)):
        raise UserError(f"bad class list {text!r}: write class names separated by commas, e.g. 'happiness,sadness'")
    twice = [label for i, label in enumerate(labels) if label in labels[:i]]
    if twice:
        raise UserError(f"class {twice[0]!r} is listed twice in {text!r}; list it once")
    return labels


def resolve_prompts(labels: Sequence[str] | None, mode: str = "description",
                    descriptions: str | Path | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """Prompts of the single classes of `labels`, from a class-descriptions YAML (`data.descriptions`).

    Args:
        labels: output labels (normalised, see `parse_class_list`), compounds "a+b" allowed; None
            takes every class of the descriptions file.
        mode: "name" (class-name prompt; any free class name works), "description" (primary
            description) or "ensemble" (all descriptions).
        descriptions: a YAML in the format of `data_manifests/class_descriptions.yaml`; None uses
            the shipped file (the 11 canonical classes).
    Returns:
        (prompts: single class -> prompt texts, labels: the output labels).
    """
    table = load_descriptions(descriptions)
    labels = list(table) if labels is None else [str(label) for label in labels]
    singles = list(dict.fromkeys(p for label in labels for p in label.split(COMPOUND_SEPARATOR)))
    unknown = [c for c in singles if c not in table]
    if unknown and mode != "name":
        source = descriptions or "data_manifests/class_descriptions.yaml"
        raise UserError(f"unknown class {unknown[0]!r}; known classes (in {source}): {', '.join(table)}; for a "
                        f"new emotion write its description in a descriptions YAML, or use the 'name' prompt mode")
    known = [c for c in singles if c in table]
    found = dict(zip(known, description_prompts(known, mode, table)))
    return {c: found.get(c, [DEFAULT_TEMPLATE.format(name=c)]) for c in singles}, labels


def class_embeddings(encode_text_fn: EncodeTextFn, labels: Sequence[str] | None = None, mode: str = "description",
                     descriptions: str | Path | None = None, prompts: dict[str, list[str]] | None = None,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """Text embeddings (L, D) of the labels to classify into: single classes and compounds of them.

    Args:
        encode_text_fn: (N, 77) tokens -> (N, D), e.g. `model.encode_text`.
        labels: the labels, in order; "a+b" is the normalised mean of the embeddings of classes a and b.
            None: every class of `prompts` (or of the descriptions file).
        mode: prompt mode ("name", "description", "ensemble"; see `resolve_prompts`).
        descriptions: class-descriptions YAML (None: the shipped one).
        prompts: single class -> prompt texts, used instead of the descriptions file when given.
        device: where the text encoder lives.
    Returns:
        (L, D) float32 unit-norm rows on the CPU.
    """
    if prompts is None:
        prompts, labels = resolve_prompts(labels, mode, descriptions)
    names = list(prompts)
    labels = names if labels is None else [str(label) for label in labels]
    if not labels:
        raise UserError("no class to classify into: give at least one class")
    for label in labels:
        parts = label.split(COMPOUND_SEPARATOR) if label not in prompts else [label]
        missing = [p for p in parts if p not in prompts]
        if missing:
            raise UserError(f"unknown class {missing[0]!r}: known classes are {', '.join(names)}")
    class_emb = class_text_embeddings(encode_text_fn, prompts, device=device)  # (C, D)
    rows = [class_emb[names.index(label)] if label in prompts
            else compound_embeddings(class_emb, names, [label])[0] for label in labels]
    return torch.stack(rows)  # (L, D)
