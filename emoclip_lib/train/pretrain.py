"""Contrastive pretraining of a small CLIP on (frame, caption) pairs: the synthetic profile's "web pretraining".

OpenAI's CLIP learnt its towers from web image-text pairs; a randomly initialised `tiny` CLIP knows nothing,
so before the EmoCLIP stage (which freezes the backbone) both towers are trained here, CLIP-style, on single
frames of the training clips paired with their clip's caption. The result is cached: `out_path` holds
`{"state_dict": ..., "meta": ...}`, which `load_clip(str(out_path))` reads directly, plus a JSON sidecar
(`<out_path>.json`); an end-of-epoch checkpoint (`<out_path>.partial`) lets a killed run resume.
Pairs, frame decoding and batch order live in `clip_pretrain_data`.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..model import build_clip_from_state_dict, load_clip
from ..model import encode_text_trimmed
from .pretrain_data import (FRAME_SPAN, PretrainData, assemble_data, clip_groups, embed_images, epoch_order,
                                 frame_positions, load_frames, training_pairs)
from ..errors import UserError
from ..io_utils import atomic_torch_save, atomic_write_json
from ..data import ManifestRow
from ..model import contrastive_loss
from ..data import augment_clip, normalize
from ..synth import WEB_FORMAT
from ..workers import torch_threads
from .vocabulary import compact_token_embedding, expand_token_embedding, renumber_tokens, used_vocabulary

__all__ = ["FRAME_SPAN", "PretrainData", "assemble_data", "clip_groups", "clip_logits", "embed_images", "epoch_order",
           "fingerprint", "frame_positions", "load_frames", "lr_factor", "pretrain_clip", "training_pairs"]
FORMAT = "emoclip_lib.clip_pretrain"
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps exp(logit_scale) at 100
TEXT_GROUPS = 3  # captions of a batch run through the text tower in 3 length groups (see encode_text_trimmed)


def fingerprint(rows: list[ManifestRow], config: dict[str, Any]) -> str:
    """SHA256 of the training pairs (paths, subjects, captions) and the training configuration.

    Args:
        rows: the rows trained on (after `training_pairs`).
        config: every setting that changes the result (seed, epochs, lr, ...).
    """
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8"))
    for row in rows:
        digest.update(f"\n{row.path}\t{row.subject}\t{row.caption}".encode("utf-8"))
    return digest.hexdigest()


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warmup to 1 over `warmup` steps, then cosine decay to 0 at `total`.

    Args:
        step: 0-based optimisation step.
        total: number of steps in the run.
        warmup: warmup steps.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with CLIP's betas; no decay on gains, biases, embeddings and the logit scale.

    `foreach=True` (one multi-tensor update, 2.5x faster steps on the tiny CLIP) gives weights bit-identical
    to the per-tensor loop on the CPU (tests/train/test_pretrain_perf.py); `fused=True` would not."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        skip = param.ndim < 2 or "embedding" in name or "logit_scale" in name or name.endswith("class_embedding")
        (no_decay if skip else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, foreach=True)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator that depends on (seed, epoch) only, so a resumed run draws what an uninterrupted one does."""
    state = np.random.SeedSequence([seed, epoch, 0x636C6970]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _batch(data: PretrainData, idx: torch.Tensor, g: torch.Generator,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One random frame per item of `idx` (clip frames augmented, web pictures as drawn), normalised,
    and the items' caption tokens."""
    pick = torch.randint(data.frames.shape[1], (len(idx),), generator=g)  # (B,)
    images = data.frames[idx, pick].float().div_(255.0)  # (B, 3, S, S)
    images = torch.cat([augment_clip(img[None], g) if aug else img[None]
                        for img, aug in zip(images, data.augment[idx].tolist())])  # (B, 3, S, S)
    return normalize(images).to(device), data.tokens[idx].to(device)


def clip_logits(model: nn.Module, images: torch.Tensor, tokens: torch.Tensor, text_groups: int = 1) -> torch.Tensor:
    """CLIP's scaled cosine similarities between images and captions.

    Args:
        model: OpenAI CLIP.
        images: (B, 3, S, S) normalised images.
        tokens: (B, 77) caption tokens.
        text_groups: length groups of the text tower (`encode_text_trimmed`).
    Returns:
        (B, B) image-to-text logits.
    """
    img = F.normalize(model.encode_image(images), dim=-1)  # (B, D)
    txt = F.normalize(encode_text_trimmed(model, tokens, text_groups), dim=-1)  # (B, D)
    return model.logit_scale.exp() * img @ txt.t()


def _train_epoch(model: nn.Module, opt: torch.optim.Optimizer, data: PretrainData,
                 epoch: int, cfg: dict[str, Any], device: torch.device) -> float:
    """One pass over the items in near-equal batches of whole groups; returns the mean loss."""
    g = _epoch_generator(cfg["seed"], epoch)
    n_batches = max(1, round(len(data.frames) / cfg["batch_size"]))
    total, warmup = cfg["epochs"] * n_batches, max(1, round(cfg["warmup_frac"] * cfg["epochs"] * n_batches))
    losses = []
    for b, idx in enumerate(epoch_order(data.groups, g).tensor_split(n_batches)):
        for group in opt.param_groups:
            group["lr"] = cfg["lr"] * lr_factor(epoch * n_batches + b, total, warmup)
        loss = contrastive_loss(clip_logits(model, *_batch(data, idx, g, device), cfg["text_groups"]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


def _read_payload(path: Path, key: str) -> dict[str, Any] | None:
    """A saved payload whose meta fingerprint equals `key`, else None (missing or unreadable files too)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a stale or foreign file is simply not a cache hit
        return None
    meta = payload.get("meta", {}) if isinstance(payload, dict) else {}
    return payload if meta.get("fingerprint") == key else None


def _check_config(cfg: dict[str, Any], num_threads: int | None) -> None:
    """Raise UserError for a setting that cannot train."""
    for name in ("epochs", "frames_per_clip"):
        if int(cfg[name]) < 1:
            raise UserError(f"{name} must be at least 1, got {cfg[name]}")
    if int(cfg["web_pictures"]) < 0:
        raise UserError(f"web_pictures must be 0 or more, got {cfg['web_pictures']}")
    if int(cfg["batch_size"]) < 2:
        raise UserError(f"batch_size must be at least 2 for contrastive training, got {cfg['batch_size']}")
    if not cfg["lr"] > 0 or not 0.0 <= cfg["warmup_frac"] < 1.0:
        raise UserError(f"need lr > 0 and 0 <= warmup_frac < 1, got lr={cfg['lr']}, warmup_frac={cfg['warmup_frac']}")
    if num_threads is not None and int(num_threads) < 1:
        raise UserError(f"num_threads must be at least 1 (or None), got {num_threads}")


def _save_final(model: nn.Module, out_path: Path, meta: dict[str, Any]) -> None:
    """The finished weights (CPU) with their meta, then the human-readable JSON sidecar."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"state_dict": state, "meta": meta}, out_path)
    atomic_write_json(meta, out_path.with_name(out_path.name + ".json"))


def pretrain_clip(rows: list[ManifestRow], root: str | Path, out_path: str | Path, *, seed: int = 0,
                  epochs: int = 60, batch_size: int = 128, lr: float = 2e-3, frames_per_clip: int = 4,
                  size: int | None = None, weight_decay: float = 0.1, warmup_frac: float = 0.1,
                  backbone: str = "tiny", group_by_subject: bool = True, web_pictures: int = 0,
                  device: str | torch.device = "cpu",
                  progress: bool = True, resume: bool = True, checkpoint_seconds: float = 10.0,
                  num_threads: int | None = 2, max_epochs_this_call: int | None = None,
                  web_cache: str | Path | None = None) -> nn.Module:
    """Pretrain both towers of a random CLIP on (frame, caption) pairs, or load the finished run from `out_path`
    when its fingerprint (pairs, seed, settings up to `group_by_subject`) matches; else retrain and overwrite.

    Args:
        rows: training manifest rows; uncaptioned rows are skipped, repeated paths (one row per fold) merged.
        root: dataset root the rows' paths are relative to.
        out_path: cache file (`load_clip(str(out_path))` reads it); `<out_path>.json` describes it and
            `<out_path>.partial` is the end-of-epoch checkpoint of an unfinished run.
        seed: seeds the initialisation, the shuffling, the frame picks and the augmentation.
        epochs: passes over the clips (one random frame of each clip per pass).
        batch_size: pairs per step (the epoch is split into near-equal batches of about this size).
        lr: peak AdamW learning rate (linear warmup, cosine decay to 0).
        frames_per_clip: frames decoded per clip, evenly spaced in its middle half.
        size: frame side length; None (or the same value) = the model's input resolution.
        weight_decay: AdamW decay of weight matrices (not of gains, biases, embeddings, logit scale).
        warmup_frac: fraction of the steps spent warming up.
        backbone: `load_clip` name of the random architecture ("tiny" or "random:<name>").
        group_by_subject: fill batches with whole subjects, so that a caption must be told apart from
            captions of the same person (same looks, often the same room) by the expression.
        web_pictures: synthetic face pictures with expression captions added to the pairs (`synth_web`), the
            stand-in for the web data real CLIP learnt faces from; 0 = the training clips only.
        device: where to train.
        progress: show progress bars.
        resume: continue from `<out_path>.partial` when it has the same fingerprint.
        checkpoint_seconds: write `<out_path>.partial` (about 3 MB: it holds only the used embedding rows)
            after the first epoch ending this long after the last write, and when stopping early (0 = every
            epoch).
        num_threads: CPU threads while training (then restored; None keeps torch's setting). A fixed count
            keeps the weights the same on machines with more cores; 2 threads measured 1.5x faster than 1 on
            2 quiet cores (and slower than 1 when the cores are shared with other work).
        max_epochs_this_call: stop after this many epochs (checkpoint kept, nothing final written).
        web_cache: folder keeping the drawn web pictures (byte-identical, keyed by what they are drawn
            from) so that the next run does not draw them again; None draws them every time.
    Returns:
        the CLIP model in eval mode on `device`.
    """
    cfg = dict(format=FORMAT, backbone=backbone, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
               weight_decay=weight_decay, warmup_frac=warmup_frac, frames_per_clip=frames_per_clip,
               group_by_subject=group_by_subject, frame_span=list(FRAME_SPAN), web_pictures=web_pictures,
               web_format=WEB_FORMAT, num_threads=num_threads,  # the thread count changes the weights
               text_groups=TEXT_GROUPS)
    _check_config(cfg, num_threads)
    pairs = training_pairs(rows)
    if len(pairs) < 2:
        raise UserError(f"CLIP pretraining needs at least 2 captioned clips, got {len(pairs)}; check that the "
                        f"manifest's training rows have captions")
    dev = torch.device(device)
    model = load_clip(backbone, seed=seed, progress=progress)
    cfg["size"] = resolution = int(model.visual.input_resolution)
    if size is not None and int(size) != resolution:
        raise UserError(f"size={size} does not match the {backbone} CLIP's input resolution {resolution}; "
                        f"leave size=None")
    key = fingerprint(pairs, cfg)
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    cached = _read_payload(out_path, key)
    if cached is not None:
        return build_clip_from_state_dict(cached["state_dict"], source=str(out_path)).to(dev)

    t0 = time.perf_counter()
    data = assemble_data(pairs, root, frames_per_clip, resolution, group_by_subject, web_pictures, seed, progress,
                         web_cache)
    meta: dict[str, Any] = dict(config=cfg, fingerprint=key, clips=len(pairs), web_pictures=web_pictures,
                                decode_seconds=round(time.perf_counter() - t0, 2))
    vocabulary = used_vocabulary(data.tokens)  # train the used embedding rows only (bit-identical weights)
    data = data._replace(tokens=renumber_tokens(data.tokens, vocabulary))
    full = compact_token_embedding(model, vocabulary)  # (49408, W), the rows no caption uses
    with torch_threads(num_threads, dev):
        _fit(model.to(dev), data, meta, partial, dev, resume, max_epochs_this_call, checkpoint_seconds, progress)
    expand_token_embedding(model, full.to(dev), vocabulary)
    if meta["epochs_done"] == epochs:
        meta.update(final_loss=meta["losses"][-1], logit_scale=float(model.logit_scale.detach().exp()))
        _save_final(model, out_path, meta)
        partial.unlink(missing_ok=True)
    return model.eval()


def _fit(model: nn.Module, data: tuple[torch.Tensor, ...], meta: dict[str, Any], partial: Path,
         device: torch.device, resume: bool, max_epochs: int | None, checkpoint_seconds: float,
         progress: bool) -> None:
    """Train from the checkpoint `partial` (if resuming) or from scratch; checkpoint at the end of an epoch
    once `checkpoint_seconds` have passed since the last save, and when stopping early."""
    cfg, t0 = meta["config"], time.perf_counter()
    last_save = t0
    opt = _make_optimizer(model, cfg["lr"], cfg["weight_decay"])
    ckpt = _read_payload(partial, meta["fingerprint"]) if resume else None
    start, losses, seconds = 0, [], 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        start, losses, seconds = ckpt["meta"]["epochs_done"], list(ckpt["meta"]["losses"]), ckpt["meta"]["seconds"]
    stop = cfg["epochs"] if max_epochs is None else min(cfg["epochs"], start + max(0, max_epochs))
    meta.update(epochs_done=start, losses=losses, seconds=seconds)
    model.train()
    bar = tqdm(range(start, stop), desc="CLIP pretraining", disable=not progress, initial=start,
               total=cfg["epochs"])
    for epoch in bar:
        losses.append(_train_epoch(model, opt, data, epoch, cfg, device))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        meta.update(epochs_done=epoch + 1, losses=losses, seconds=seconds + time.perf_counter() - t0)
        due = time.perf_counter() - last_save >= checkpoint_seconds
        if epoch + 1 < cfg["epochs"] and (due or epoch + 1 == stop):  # a finished run saves the final file
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            atomic_torch_save({"state_dict": state, "optimizer": opt.state_dict(), "meta": meta}, partial)
            last_save = time.perf_counter()
    model.eval()
