"""EmoCLIP model: loss, freezing, official-format and project checkpoints."""
from __future__ import annotations

import math

import pytest
import torch

from emoclip_lib.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from emoclip_lib.model.clip import load_clip
from emoclip_lib.errors import UserError
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig, TemporalTransformer, contrastive_loss
from emoclip_lib.model.official import OfficialTemporalReference
from conftest import official_state
from emoclip_lib.data.tokenizer import tokenize

HEADS, HEAD_DIM, MLP = 8, 32, 64  # the official quirk at tiny scale: wide heads, d_model-wide MLP


@pytest.fixture(scope="module")
def tiny_config() -> ModelConfig:
    return ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=2, heads=4))


def _frames(b: int = 2, t: int = 5, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, 3, size, size, generator=torch.Generator().manual_seed(seed))  # (B, T, 3, H, W)


@pytest.mark.parametrize("batch", [1, 4, 16])
def test_loss_on_uniform_logits_is_log_batch(batch):
    assert contrastive_loss(torch.zeros(batch, batch)).item() == pytest.approx(math.log(batch), abs=1e-6)


def test_loss_is_symmetric_and_rewards_matching_pairs():
    logits = torch.randn(6, 6, generator=torch.Generator().manual_seed(1))
    assert contrastive_loss(logits).item() == pytest.approx(contrastive_loss(logits.t()).item(), abs=1e-6)
    assert contrastive_loss(torch.eye(6) * 20).item() < 1e-6


def test_frozen_backbone_gets_no_gradient(tiny_config):
    model = build_model(tiny_config, seed=0)
    logits = model(_frames(), tokenize(["a smiling face", "a frowning face"]))
    contrastive_loss(logits).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad, "nothing was trained"
    assert all(n.startswith("temporal.") or n == "logit_scale" for n in with_grad), with_grad
    assert "logit_scale" in with_grad
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_unfrozen_text_tower_trains(tiny_config):
    config = ModelConfig(backbone="tiny", temporal=tiny_config.temporal, freeze_text=False)
    model = build_model(config, seed=0)
    contrastive_loss(model(_frames(), tokenize(["a", "b"]))).backward()
    assert model.backbone.token_embedding.weight.grad is not None
    assert model.backbone.visual.conv1.weight.grad is None


def test_logit_scale_starts_from_clip(tiny_config):
    model = build_model(tiny_config, seed=0)
    assert model.logit_scale.item() == pytest.approx(model.backbone.logit_scale.item())


def test_encode_video_shapes_and_seeded_init(tiny_config):
    a, b = build_model(tiny_config, seed=3), build_model(tiny_config, seed=3)
    out = a.encode_video(_frames(b=3, t=7))
    assert out.shape == (3, 64)
    assert torch.equal(out, b.encode_video(_frames(b=3, t=7)))
    assert not torch.equal(a.temporal.pos_embedding, build_model(tiny_config, seed=4).temporal.pos_embedding)


def test_official_layout_parameter_count_matches_the_paper():
    temporal = TemporalTransformer(512, TemporalConfig.official(512))
    qkv = temporal.blocks[0].qkv.weight
    assert tuple(qkv.shape) == (3 * 16384, 512)
    assert tuple(temporal.blocks[0].attn_out.weight.shape) == (512, 16384)
    assert temporal.blocks[0].qkv.bias is None
    n = sum(p.numel() for p in temporal.parameters())
    assert 67e6 < n < 69e6  # about 68M trainable parameters


def _reference_video(clip, ref, frames):
    feats = clip.encode_image(frames.flatten(0, 1)).float().view(*frames.shape[:2], -1)  # (B, T, D)
    return ref(feats)


@pytest.mark.parametrize("visual_only", [False, True])
def test_official_checkpoint_matches_reference_forward(tmp_path, visual_only):
    clip = load_clip("tiny", seed=5)
    clip = clip.half().float()  # what an fp16 checkpoint round-trips to
    torch.manual_seed(0)
    ref = OfficialTemporalReference(64, layers=2, heads=HEADS, head_dim=HEAD_DIM, mlp_dim=MLP).eval()
    # the documented key layout loads strictly into the reference module
    assert set(ref.state_dict()) == {k[len("module.temporal."):] for k in official_state(clip, ref, visual_only)
                                     if k.startswith("module.temporal.")}
    path = tmp_path / "official.pth"
    torch.save(official_state(clip, ref, visual_only), path)
    model = load_checkpoint(path, heads=HEADS)
    assert model.config.temporal.head_dim == HEAD_DIM and model.config.temporal.mlp_dim == MLP
    frames = _frames(b=2, t=6)
    with torch.no_grad():
        expected = _reference_video(clip, ref, frames)
        got = model.encode_video(frames)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    if visual_only:
        assert set(model.head_state) == {"mlp.0.weight", "mlp.0.bias"}
        with pytest.raises(UserError, match="only the visual tower"):
            model.encode_text(tokenize(["x"]))
    else:
        assert model.logit_scale.item() == pytest.approx(3.0)
        torch.testing.assert_close(model.encode_text(tokenize(["a happy face"])),
                                   clip.encode_text(tokenize(["a happy face"])), atol=1e-4, rtol=1e-4)


def test_official_checkpoint_unknown_and_missing_keys_are_listed(tmp_path):
    clip = load_clip("tiny")
    ref = OfficialTemporalReference(64, layers=1, heads=HEADS, head_dim=HEAD_DIM, mlp_dim=MLP)
    state = official_state(clip, ref, visual_only=False)
    state["module.temporal.extra_thing"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="temporal.extra_thing"):
        load_checkpoint(tmp_path / "bad.pth")
    state.pop("module.temporal.extra_thing")
    state.pop("module.temporal.temporal_transformer.layers.0.1.fn.fn.net.3.bias")
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(UserError, match="net.3.bias|mlp_out.bias"):
        load_checkpoint(tmp_path / "missing.pth")


def test_wrong_head_count_is_a_clear_error(tmp_path):
    clip = load_clip("tiny")
    ref = OfficialTemporalReference(64, layers=1, heads=HEADS, head_dim=HEAD_DIM, mlp_dim=MLP)
    torch.save(official_state(clip, ref, visual_only=False), tmp_path / "o.pth")
    with pytest.raises(UserError, match="heads"):
        load_checkpoint(tmp_path / "o.pth", heads=5)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(UserError, match="notes.pt"):
        load_checkpoint(tmp_path / "notes.pt")
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


def test_project_checkpoint_round_trip(tmp_path, tiny_config):
    model = build_model(tiny_config, seed=1).eval()
    with torch.no_grad():
        model.temporal.cls_token.add_(0.5)
    save_checkpoint(model, tmp_path / "m.pt", meta={"epoch": 3})
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config == model.config
    frames, tokens = _frames(), tokenize(["a face", "another face"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames, tokens), model(frames, tokens), atol=0, rtol=0)
    assert torch.load(tmp_path / "m.pt", weights_only=True)["meta"] == {"epoch": 3}


def test_project_checkpoint_with_unknown_setting_is_a_clear_error(tmp_path, tiny_config):
    save_checkpoint(build_model(tiny_config), tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["model_config"]["colour"] = "blue"
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(UserError, match="unknown settings"):
        load_checkpoint(tmp_path / "m.pt")


def test_model_matches_official_layout_reference_at_default_settings():
    torch.manual_seed(0)
    ref = OfficialTemporalReference(64, layers=2, heads=4, head_dim=16, mlp_dim=256).eval()
    ours = TemporalTransformer(64, TemporalConfig(layers=2, heads=4))
    from emoclip_lib.model.official import convert_temporal_keys
    converted, unknown = convert_temporal_keys({f"temporal.{k}": v for k, v in ref.state_dict().items()})
    assert not unknown
    ours.load_state_dict({k[len("temporal."):]: v for k, v in converted.items()})
    x = torch.randn(3, 9, 64)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)




def test_official_layout_by_name_sizes_heads_and_mlp_from_d_model():
    temporal = TemporalTransformer(64, TemporalConfig(layers=1, heads=8, layout="official"))
    assert tuple(temporal.blocks[0].qkv.weight.shape) == (3 * 8 * 2048, 64)
    assert tuple(temporal.blocks[0].mlp_in.weight.shape) == (64, 64)
    with pytest.raises(UserError, match="layout"):
        TemporalTransformer(64, TemporalConfig(layout="wide"))


def test_last_block_computes_only_the_cls_token_without_changing_it():
    torch.manual_seed(0)
    temporal = TemporalTransformer(64, TemporalConfig(layers=2, heads=4)).eval()
    x = torch.randn(3, 9, 64)
    full = torch.cat([temporal.cls_token.expand(3, -1, -1), x], 1) + temporal.pos_embedding[:, :10]
    for block in temporal.blocks:
        full = block(full)  # every token through every block
    torch.testing.assert_close(temporal(x), full[:, 0], atol=1e-6, rtol=1e-6)


def test_training_settings_follow_the_device():
    from emoclip_lib.train import TrainConfig

    cpu = TrainConfig(epochs=3).for_device(torch.device("cpu"))
    assert (cpu.amp, cpu.num_workers, cpu.epochs) == (False, 0, 3)
    cuda = TrainConfig().for_device(torch.device("cuda"))
    assert cuda.amp is True and cuda.num_workers >= 1
    fixed = TrainConfig(amp=False, num_workers=2).for_device(torch.device("cuda"))
    assert (fixed.amp, fixed.num_workers) == (False, 2)
