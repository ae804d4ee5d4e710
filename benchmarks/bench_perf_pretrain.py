"""Items 9 and 10 of `bench_perf.py`, measured before and after in the same run, outputs compared.

9. the tiny CLIP's pretraining step: every caption of a batch run up to the batch's longest one, with the full
   49,408-row token embedding in AdamW (before) / 3 length groups and the used embedding rows only (after);
10. what notebooks 03-04 read again and again: the class-descriptions YAML (parsed on every call before) and
    the cached frame features of a training (read from disk every epoch before).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench_common import SectionResult
from emoclip_lib.data import load_descriptions, tokenize
from emoclip_lib.data import descriptions as descriptions_module
from emoclip_lib.model import contrastive_loss, load_clip
from emoclip_lib.synth import web
from emoclip_lib.train import pretrain, vocabulary
from emoclip_lib.train.cached_dataset import CachedClipDataset


def _captions(n: int) -> list[str]:
    """Web-picture captions (about 26 tokens), one in six joined to another (about 50, as clip captions)."""
    texts = web.web_stills(n + n // 6 + 1, seed=0, size=32, progress=False)[1]
    return [f"{t} {texts[n + i // 6]}" if i % 6 == 0 else t for i, t in enumerate(texts[:n])]


def _steps(tokens: torch.Tensor, images: torch.Tensor, groups: int, compact: bool,
           steps: int) -> tuple[float, dict[str, torch.Tensor]]:
    """Median seconds of a pretraining step (forward, backward, AdamW) and the weights after `steps` steps."""
    model = load_clip("tiny", seed=0).train()
    if compact:
        vocab = vocabulary.used_vocabulary(tokens)
        full, tokens = vocabulary.compact_token_embedding(model, vocab), vocabulary.renumber_tokens(tokens, vocab)
    opt = pretrain._make_optimizer(model, 2e-3, 0.1)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = contrastive_loss(pretrain.clip_logits(model, images, tokens, groups))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    if compact:
        vocabulary.expand_token_embedding(model, full, vocab)
    return statistics.median(times[1:]), {k: v.detach().clone() for k, v in model.state_dict().items()}


def pretrain_item(result: SectionResult, quick: bool) -> dict[str, Any]:
    """Item 9: seconds per pretraining step, before / after, with the equal-weights checks."""
    batch, steps = (32, 3) if quick else (128, 12)
    tokens = tokenize(_captions(batch))  # (B, 77)
    images = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # (B, 3, 32, 32)
    before, w_before = _steps(tokens, images, 1, False, steps)
    grouped, w_grouped = _steps(tokens, images, pretrain.TEXT_GROUPS, False, steps)
    after, w_after = _steps(tokens, images, pretrain.TEXT_GROUPS, True, steps)
    same = max(float((w_after[k] - w_grouped[k]).abs().max()) for k in w_after)
    result.check("9 pretraining: used embedding rows only vs all rows, weights (max abs diff)", same, 0.0)
    drift = max(float((w_grouped[k] - w_before[k]).abs().max()) for k in w_grouped)
    result.add(f"9 pretraining: length groups vs one group, weights after {steps} steps (max abs diff)", drift, "",
               "float rounding of the text tower's sums (same function)")
    lengths = tokens.argmax(-1) + 1  # (B,)
    result.add("9 pretraining step (tiny CLIP): before / after", before / after, "x",
               f"batch {batch}, captions of {float(lengths.float().mean()):.0f} tokens (longest {int(lengths.max())}): "
               f"{1e3 * before:.0f} -> {1e3 * grouped:.0f} (length groups) -> {1e3 * after:.0f} ms "
               f"(+ used rows only); notebook 03 runs 686 steps")
    return {"batch": batch, "step_s": {"before": before, "length_groups": grouped, "after": after},
            "ratio": before / after, "weights_drift": drift}


def _descriptions_parse(path: Path, calls: int) -> float:
    """Seconds per `load_descriptions` call, parsing every time (the memo emptied before each call)."""
    start = time.perf_counter()
    for _ in range(calls):
        descriptions_module._PARSED.clear()
        load_descriptions(path)
    return (time.perf_counter() - start) / calls


def reread_item(result: SectionResult, work: Path, quick: bool) -> dict[str, Any]:
    """Item 10: class descriptions parsed on every call / once, cached features read every epoch / once."""
    path, calls = descriptions_module.default_descriptions_path(), 5 if quick else 40
    parse = _descriptions_parse(path, calls)
    load_descriptions(path)
    start = time.perf_counter()
    memo = [load_descriptions(path) for _ in range(calls)]
    kept = (time.perf_counter() - start) / calls
    result.check("10 class descriptions: remembered vs parsed (differ: 1)", float(memo[-1] != load_descriptions(path)
                                                                                   or not memo[-1]), 0.0)
    result.add("10 class descriptions: parsed / remembered", parse / kept, "x",
               f"{1e3 * parse:.1f} -> {1e3 * kept:.2f} ms a call; notebook 04 made 56 calls")
    clips, epochs = (20, 3) if quick else (231, 12)  # notebook 03: 231 training clips, 12 epochs
    paths = []
    for i in range(clips):
        paths.append(str(work / f"entry{i}.npy"))
        np.save(paths[-1], np.random.default_rng(i).normal(size=(16, 64)).astype(np.float32))  # (T, D)
    seconds = {}
    for name, budget in (("every epoch", 0), ("once", 256 << 20)):
        data = CachedClipDataset([paths], ["c"] * clips, memory_bytes=budget)
        start = time.perf_counter()
        out = [data[i]["features"] for _ in range(epochs) for i in range(clips)]
        seconds[name] = time.perf_counter() - start
    result.add("10 cached frame features of a training: read every epoch / once", seconds["every epoch"] /
               seconds["once"], "x", f"{clips} clips x {epochs} epochs: {seconds['every epoch']:.2f} -> "
               f"{seconds['once']:.2f} s; last item equal: {bool(torch.equal(out[-1], data[clips - 1]['features']))}")
    return {"descriptions_call_s": {"parsed": parse, "remembered": kept}, "features_s": seconds}
