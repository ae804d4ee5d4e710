"""CLIP backbone loading: tiny/random models, local checkpoints (state dict, fp16, TorchScript), downloads."""
from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

import pytest
import torch

from emoclip_lib.model import clip as cb
from emoclip_lib.errors import UserError
from emoclip_lib.data.tokenizer import tokenize


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return cb.load_clip("tiny", seed=0)


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    images = torch.randn(2, 3, 32, 32, generator=gen)  # (B, 3, H, W)
    return images, tokenize(["a photo of a cat", "a frowning face"])  # (B, 77)


def _features(model: torch.nn.Module, inputs: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return model.encode_image(inputs[0]), model.encode_text(inputs[1])


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_openai_module_is_private_and_clip_package_not_imported() -> None:
    module = cb.openai_clip_module()
    assert module.__name__ == "emoclip_lib._openai_clip_model"
    assert hasattr(module, "CLIP") and hasattr(module, "VisionTransformer")
    assert "clip" not in sys.modules and "torchvision" not in sys.modules


def test_tiny_is_deterministic_float32_eval(tiny: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    rng_before = torch.get_rng_state()
    again = cb.load_clip("tiny", seed=0)
    assert torch.equal(torch.get_rng_state(), rng_before)  # global RNG untouched
    _assert_same_weights(tiny, again)
    other = cb.load_clip("tiny", seed=1)
    assert not torch.equal(other.visual.conv1.weight, tiny.visual.conv1.weight)
    assert not tiny.training
    assert all(p.dtype == torch.float32 for p in tiny.parameters())
    img, txt = _features(tiny, inputs)
    assert img.shape == (2, 64) and txt.shape == (2, 64)
    assert torch.isfinite(img).all() and torch.isfinite(txt).all()


def test_clip_hparams_of_tiny(tiny: torch.nn.Module) -> None:
    assert cb.clip_hparams(tiny) == cb.TINY_ARCH
    assert tiny.visual.input_resolution == 32
    with pytest.raises(UserError, match="OpenAI CLIP"):
        cb.clip_hparams(torch.nn.Linear(2, 2))


def test_random_vit_b32_has_real_size_without_download(tmp_path: Path) -> None:
    model = cb.load_clip("random:ViT-B/32", cache_dir=str(tmp_path), download=False)
    hp = cb.clip_hparams(model)
    assert hp["embed_dim"] == 512 and hp["vision_width"] == 768
    assert hp["vision_layers"] == 12 and hp["vision_patch_size"] == 32
    assert hp["transformer_width"] == 512 and hp["transformer_heads"] == 8 and hp["transformer_layers"] == 12
    assert model.visual.input_resolution == 224
    assert hp == cb.CLIP_ARCHS["ViT-B/32"]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match="unknown architecture"):
        cb.load_clip("random:ViT-X/99")


def test_arch_table_matches_shape_inference() -> None:
    """Every table entry, built on the meta device (no memory), infers back to itself."""
    module = cb.openai_clip_module()
    for name, arch in cb.CLIP_ARCHS.items():
        with torch.device("meta"):
            model = module.CLIP(**arch)
        assert cb._infer_hparams(model.state_dict(), name) == arch, name
        assert name in cb.CLIP_MODEL_URLS


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_state_dict_file_round_trip(tiny, inputs, tmp_path: Path, dtype: torch.dtype) -> None:
    sd = {k: v.to(dtype) for k, v in tiny.state_dict().items()}
    sd["input_resolution"] = torch.tensor(32)  # extra int entries as in OpenAI's archives are dropped
    path = tmp_path / "tiny.pt"
    torch.save(sd, path)
    before = {k: v.clone() for k, v in sd.items()}
    loaded = cb.load_clip(str(path))
    assert all(p.dtype == torch.float32 for p in loaded.parameters()) and not loaded.training
    assert cb.clip_hparams(loaded) == cb.TINY_ARCH
    want, got = _features(tiny, inputs), _features(loaded, inputs)
    if dtype == torch.float32:
        _assert_same_weights(tiny, loaded)
        assert all(torch.equal(w, g) for w, g in zip(want, got))
    else:
        assert all(torch.allclose(w, g, atol=2e-2, rtol=2e-2) for w, g in zip(want, got))
    assert all(torch.equal(before[k], sd[k]) for k in sd)  # caller's dict untouched


def test_wrapped_and_ddp_state_dicts(tiny, tmp_path: Path) -> None:
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in tiny.state_dict().items()}, "epoch": 3}, path)
    _assert_same_weights(tiny, cb.load_clip(str(path)))


def test_torchscript_archive(tiny, inputs, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(tiny, inputs, check_trace=False)
    path = tmp_path / "tiny_jit.pt"
    traced.save(str(path))
    assert cb._is_torchscript(path)
    loaded = cb.load_clip(str(path))
    _assert_same_weights(tiny, loaded)
    assert all(torch.equal(w, g) for w, g in zip(_features(tiny, inputs), _features(loaded, inputs)))


def test_bad_files_raise_user_error(tiny, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nor an existing checkpoint"):
        cb.load_clip(str(tmp_path / "absent.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(UserError, match="garbage.pt"):
        cb.load_clip(str(garbage))
    no_tensors = tmp_path / "list.pt"
    torch.save([1, 2, 3], no_tensors)
    with pytest.raises(UserError, match="list.pt"):
        cb.load_clip(str(no_tensors))
    partial = tmp_path / "partial.pt"
    torch.save({k: v for k, v in tiny.state_dict().items() if k != "text_projection"}, partial)
    with pytest.raises(UserError, match=r"partial\.pt.*text_projection"):
        cb.load_clip(str(partial))
    extra = tmp_path / "extra.pt"
    torch.save({**tiny.state_dict(), "visual.transformer.resblocks.0.attn.extra": torch.zeros(1)}, extra)
    with pytest.raises(UserError, match=r"extra\.pt.*do not fit"):
        cb.load_clip(str(extra))


def test_visual_only_state_dict(tiny, inputs) -> None:
    sd = {k: v.half() for k, v in tiny.state_dict().items() if k.startswith("visual.")}
    sd["temporal.cls_token"] = torch.zeros(1, 1, 64)  # non-visual keys are ignored
    visual = cb.build_visual_from_state_dict(sd)
    assert isinstance(visual, cb.openai_clip_module().VisionTransformer)
    assert visual.output_dim == 64 and visual.input_resolution == 32
    with torch.no_grad():
        assert torch.allclose(visual(inputs[0]), tiny.encode_image(inputs[0]), atol=2e-2, rtol=2e-2)
    del sd["visual.ln_post.weight"]
    with pytest.raises(UserError, match="ln_post"):
        cb.build_visual_from_state_dict(sd)


def _serve(tmp_path: Path, tiny: torch.nn.Module, sha: str | None = None) -> tuple[str, str]:
    """A file:// URL laid out like OpenAI's (<sha256>/ViT-B-32.pt); returns (url, true sha)."""
    payload = tmp_path / "payload.pt"
    torch.save(tiny.state_dict(), payload)
    true_sha = hashlib.sha256(payload.read_bytes()).hexdigest()
    folder = tmp_path / "server" / (sha or true_sha)
    folder.mkdir(parents=True)
    payload.rename(folder / "ViT-B-32.pt")
    return (folder / "ViT-B-32.pt").as_uri(), true_sha


def test_download_verifies_and_caches(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, sha = _serve(tmp_path, tiny)
    monkeypatch.setitem(cb.CLIP_MODEL_URLS, "ViT-B/32", url)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="ViT-B-32.pt not found"):
        cb.load_clip("ViT-B/32", cache_dir=str(cache), download=False)
    model = cb.load_clip("ViT-B/32", cache_dir=str(cache), progress=False)
    _assert_same_weights(tiny, model)
    assert [p.name for p in cache.iterdir()] == ["ViT-B-32.pt"]
    assert hashlib.sha256((cache / "ViT-B-32.pt").read_bytes()).hexdigest() == sha
    # cached now: works without the server and without downloading
    (Path(url[len("file://"):])).unlink()
    _assert_same_weights(tiny, cb.load_clip("ViT-B/32", cache_dir=str(cache), download=False))
    # a corrupted cached file is reported, not silently used
    (cache / "ViT-B-32.pt").write_bytes(b"corrupt")
    with pytest.raises(UserError, match="SHA256 does not match"):
        cb.load_clip("ViT-B/32", cache_dir=str(cache))


def test_download_checksum_mismatch_deletes_file(tiny, tmp_path: Path) -> None:
    url, _ = _serve(tmp_path, tiny, sha="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="SHA256"):
        cb.download_checkpoint("ViT-B/32", cache, url=url, progress=False)
    assert list(cache.iterdir()) == []  # no partial or bad file left behind


def test_download_failure_says_what_to_fetch(tmp_path: Path) -> None:
    url = (tmp_path / "nowhere" / ("a" * 64) / "ViT-B-16.pt").as_uri()
    cache = tmp_path / "cache"
    with pytest.raises(UserError) as info:
        cb.download_checkpoint("ViT-B/16", cache, url=url, progress=False)
    message = str(info.value)
    assert url in message and str(cache / "ViT-B-16.pt") in message
    assert list(cache.iterdir()) == []
    with pytest.raises(UserError, match="SHA256"):
        cb.download_checkpoint("x", cache, url="file:///tmp/nosha/ViT-B-32.pt")
    with pytest.raises(UserError, match="unknown CLIP model"):
        cb.download_checkpoint("ViT-Q/1", cache)


def test_official_table_uses_openai_file_names() -> None:
    url = cb.CLIP_MODEL_URLS["ViT-B/32"]
    assert url.startswith("https://openaipublic.azureedge.net/clip/models/")
    assert url.endswith("/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt")
    assert cb.CLIP_MODEL_URLS["ViT-L/14"].endswith("/ViT-L-14.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown on machines without CUDA")
def test_cuda_request_without_cuda_is_user_error() -> None:
    with pytest.raises(UserError, match="CUDA is not available"):
        cb.load_clip("tiny", device="cuda")


def test_tiny_at_a_resolution_keeps_the_architecture():
    model = cb.load_clip("tiny@64", seed=0)
    assert model.visual.input_resolution == 64
    assert model.encode_image(torch.zeros(1, 3, 64, 64)).shape == (1, 64)
    with pytest.raises(UserError, match="multiple of 8"):
        cb.load_clip("tiny@30")
