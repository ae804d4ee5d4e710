"""The tiny CLIP's pretraining made faster without changing a bit: multi-tensor AdamW, cached web pictures."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.model import contrastive_loss
from emoclip_lib.model.clip import load_clip
from emoclip_lib.train import pretrain
from emoclip_lib.train.pretrain import clip_logits, pretrain_clip

pytestmark = pytest.mark.usefixtures("one_thread")


def _per_tensor_adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """`_make_optimizer` as it was: the same groups, torch's per-tensor loop (the CPU default)."""
    opt = pretrain._make_optimizer(model, lr, weight_decay)
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in opt.param_groups]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, foreach=False)


def _train(make_opt, steps: int = 6) -> dict[str, torch.Tensor]:
    model = load_clip("tiny", seed=0).train()
    opt = make_opt(model, 2e-3, 0.1)
    g = torch.Generator().manual_seed(1)
    res = int(model.visual.input_resolution)
    for step in range(steps):
        images = torch.randn(12, 3, res, res, generator=g)  # (B, 3, S, S)
        tokens = torch.randint(1, 400, (12, 77), generator=g)  # (B, 77)
        for group in opt.param_groups:
            group["lr"] = 2e-3 * (step + 1) / steps
        loss = contrastive_loss(clip_logits(model, images, tokens))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_multi_tensor_adamw_gives_bit_identical_weights():
    model = load_clip("tiny", seed=0)
    opt = pretrain._make_optimizer(model, 2e-3, 0.1)
    assert all(group["foreach"] for group in opt.param_groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    fast, reference = _train(pretrain._make_optimizer), _train(_per_tensor_adamw)
    assert fast.keys() == reference.keys() and all(torch.equal(fast[k], reference[k]) for k in fast)


def _corpus(root: Path) -> list[ManifestRow]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        writer = cv2.VideoWriter(str(root / f"c{i}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 32))
        for _ in range(6):
            writer.write(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        writer.release()
        rows.append(ManifestRow(f"c{i}.mp4", "anger", f"a face number {i}", "train", 1, f"s{i}"))
    return rows


def test_cached_web_pictures_train_the_same_weights(tmp_path):
    rows = _corpus(tmp_path)
    opts = dict(epochs=1, batch_size=4, frames_per_clip=2, web_pictures=6, progress=False)
    plain = pretrain_clip(rows, tmp_path, tmp_path / "a.pt", **opts)
    cached = pretrain_clip(rows, tmp_path, tmp_path / "b.pt", web_cache=tmp_path / "web", **opts)
    assert len(list((tmp_path / "web").glob("web-*.npz"))) == 1
    again = pretrain_clip(rows, tmp_path, tmp_path / "c.pt", web_cache=tmp_path / "web", **opts)  # from the cache
    for model in (cached, again):
        a, b = plain.state_dict(), model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
