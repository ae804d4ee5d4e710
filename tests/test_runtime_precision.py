"""runtime's frame-encoding precision (`autocast_context`) and frames-per-pass defaults; fp32 changes nothing."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emoclip_lib.errors import UserError
from emoclip_lib.features import encode_frames_in_passes
from emoclip_lib.model.checkpoint import build_model
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig
from emoclip_lib.runtime import (CPU_FRAME_BATCH, PRECISIONS, autocast_context, frame_batch_size,
                                 resolve_precision)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0).eval()


@pytest.fixture(scope="module")
def frames():
    return torch.randn(40, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # (N, 3, S, S)


def test_resolve_precision():
    assert PRECISIONS == ("fp32", "bf16", "fp16", "auto")
    assert resolve_precision("cpu", "auto") == "fp32"  # CPU results stay bit-for-bit repeatable
    assert [resolve_precision("cpu", p) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    with pytest.raises(UserError, match="precision must be one of"):
        resolve_precision("cpu", "float32")
    if torch.cuda.is_available():
        assert resolve_precision("cuda", "auto") in ("bf16", "fp16")


def test_fp32_context_changes_nothing_and_bf16_is_close(model, frames):
    with torch.no_grad():
        plain = model.encode_frames(frames[None])[0]  # (N, D)
        with autocast_context("cpu", "fp32"):
            fp32 = model.encode_frames(frames[None])[0]
        with autocast_context("cpu", "bf16"):
            bf16 = model.encode_frames(frames[None])[0].float()
    assert torch.equal(plain, fp32)
    assert not torch.equal(plain, bf16)
    assert F.cosine_similarity(plain, bf16, dim=-1).min() >= 0.999


def test_passes_of_frames_equal_one_pass(model, frames):
    with torch.no_grad():
        whole = model.encode_frames(frames[None])[0]  # (40, D)
    for per_pass in (None, 40, 32, 16, 7, 1):  # 7 -> passes of 4; 32 -> 32 + 8
        assert torch.equal(encode_frames_in_passes(model, frames, "cpu", per_pass), whole)
    for n in (1, 3, 15, 17):  # filled up to a multiple of ROW_BLOCK: the same bits as in the 40-frame pass
        assert torch.equal(encode_frames_in_passes(model, frames[:n], "cpu"), whole[:n])
    bf16 = encode_frames_in_passes(model, frames, "cpu", 16, precision="bf16")
    assert bf16.dtype == torch.float32 and F.cosine_similarity(whole, bf16, dim=-1).min() >= 0.999


def test_frame_batch_size():
    assert frame_batch_size("cpu") == CPU_FRAME_BATCH and frame_batch_size("cpu", 7) == 7
    assert frame_batch_size(torch.device("cuda")) is None  # a GPU takes the whole batch
    with pytest.raises(UserError, match="at least 1"):
        frame_batch_size("cpu", 0)


@pytest.mark.parametrize("threads", [2])  # with 4+ threads some pass sizes round differently (documented)
def test_a_frame_does_not_depend_on_its_pass_with_two_threads(model, frames, threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            whole = model.encode_frames(frames[None])[0]  # (40, D)
        for n in (1, 5, 15):
            assert torch.equal(encode_frames_in_passes(model, frames[:n], "cpu"), whole[:n])
            assert torch.equal(encode_frames_in_passes(model, frames[n:], "cpu", per_pass=12), whole[n:])
    finally:
        torch.set_num_threads(previous)
