"""Zero-shot library: prompt ensembles, compounds, prediction, metrics aggregation, LOCO, baseline, windows."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emoclip_lib.model.checkpoint import build_model
from emoclip_lib.errors import UserError
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig
from emoclip_lib.data.tokenizer import tokenize
from emoclip_lib.features.windows import frame_average, pool_windows
from emoclip_lib.zeroshot.classify import model_scale, zero_shot_predict
from emoclip_lib.zeroshot.prompts import class_text_embeddings, compound_embeddings, label_indices, label_space
from emoclip_lib.zeroshot.scoring import aggregate_folds, evaluate, loco_recall
from emoclip_lib.zeroshot.tables import REPORTED_RESULTS, paper_table

CLASSES = ["anger", "disgust", "fear", "happiness"]


@pytest.fixture(scope="module")
def tiny():
    model = build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0)
    return model.eval()


def _unit(rows: int, dim: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _lookup_encoder(table: dict[str, torch.Tensor]):
    """A fake text encoder returning a fixed vector per prompt text (found via its tokens)."""
    keys = {tuple(tokenize([text])[0].tolist()): vec for text, vec in table.items()}
    return lambda tokens: torch.stack([keys[tuple(row.tolist())] for row in tokens])


# ---------------------------------------------------------------- text embeddings
def test_ensemble_normalises_each_prompt_before_averaging():
    e1, e2, e3 = torch.eye(3)
    fn = _lookup_encoder({"big": 10 * e1, "small": 0.1 * e2, "lone": 3 * e3})
    emb = class_text_embeddings(fn, {"a": ["big", "small"], "b": ["lone"]})
    assert torch.allclose(emb[0], (e1 + e2) / math.sqrt(2), atol=1e-6)  # not dominated by the big vector
    assert torch.allclose(emb[1], e3, atol=1e-6)


def test_ensemble_matches_manual_computation_and_ignores_batching(tiny):
    prompts = {"anger": ["an angry face", "a person frowning in rage"], "happiness": ["a smiling face"],
               "fear": ["a scared face", "eyes wide open in fear", "a frightened person"]}
    emb = class_text_embeddings(tiny.encode_text, prompts)
    with torch.no_grad():
        manual = torch.stack([F.normalize(F.normalize(tiny.encode_text(tokenize(t)), dim=-1).mean(0), dim=0)
                              for t in prompts.values()])
    assert emb.shape == (3, 64)
    assert torch.allclose(emb, manual, atol=1e-5)
    assert torch.allclose(class_text_embeddings(tiny.encode_text, prompts, batch_size=2), emb, atol=1e-5)


@pytest.mark.parametrize("prompts", [{}, {"anger": []}, {"anger": "an angry face"}, {"anger": [""]}])
def test_bad_prompts_raise_user_error(prompts):
    with pytest.raises(UserError):
        class_text_embeddings(lambda t: torch.zeros(len(t), 4), prompts)


# ---------------------------------------------------------------- compounds and label space
def test_compound_is_normalised_mean_of_normalised_components():
    raw = torch.randn(4, 8, generator=torch.Generator().manual_seed(3)) * torch.tensor([[1.0], [5.0], [0.2], [2.0]])
    got = compound_embeddings(raw, CLASSES, ["anger+disgust", "fear+disgust+happiness", "fear"])
    unit = F.normalize(raw, dim=-1)
    assert torch.allclose(got[0], F.normalize(unit[0] + unit[1], dim=0), atol=1e-6)
    assert torch.allclose(got[1], F.normalize(unit[1] + unit[2] + unit[3], dim=0), atol=1e-6)
    assert torch.allclose(got[2], unit[2], atol=1e-6)
    assert torch.allclose(compound_embeddings(raw, CLASSES, ["disgust+anger"])[0], got[0])


def test_label_space_and_indices():
    space = label_space(CLASSES, include_compounds=["anger+disgust", "Fear+Happiness"])
    assert space == CLASSES + ["anger+disgust", "fear+happiness"]
    assert label_indices(["fear", "disgust+anger", "happiness+fear", "anger"], space).tolist() == [2, 4, 5, 0]
    with pytest.raises(UserError, match="sample 1"):
        label_indices(["anger", "anger+fear"], space)
    with pytest.raises(UserError, match="same class"):
        label_space(CLASSES, include_compounds=["anger+disgust", "disgust+anger"])
    with pytest.raises(UserError):
        label_space(CLASSES, include_compounds=["anger+contempt"])


# ---------------------------------------------------------------- prediction
def test_planted_embeddings_are_recovered():
    text = _unit(43, 512, seed=1)  # (C, D)
    truth = torch.arange(1000) % 43
    gen = torch.Generator().manual_seed(2)
    video = 3.0 * text[truth] + 0.05 * torch.randn(1000, 512, generator=gen)  # unnormalised on purpose
    probs, pred = zero_shot_predict(video, text)
    assert torch.equal(pred, truth)
    assert probs.shape == (1000, 43)
    assert torch.allclose(probs.sum(1), torch.ones(1000), atol=1e-5)
    cos = F.normalize(video, dim=-1) @ text.t()
    assert torch.allclose(probs, torch.softmax(100 * cos, dim=1), atol=1e-6)
    soft, pred2 = zero_shot_predict(video, text, scale=1.0)
    assert torch.equal(pred2, truth) and torch.allclose(soft, torch.softmax(cos, dim=1), atol=1e-6)


def test_predict_rejects_mismatched_shapes_and_model_scale(tiny):
    with pytest.raises(UserError, match="embedding sizes differ"):
        zero_shot_predict(torch.zeros(2, 8), torch.zeros(3, 4))
    assert model_scale(tiny) == pytest.approx(math.exp(tiny.logit_scale.item()))


# ---------------------------------------------------------------- metrics
def test_evaluate_and_aggregate_folds():
    names = ["a", "b", "c"]
    res = evaluate([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], names)
    assert res["per_class_recall"] == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert res["uar"] == pytest.approx(0.5) and res["war"] == pytest.approx(0.6) and res["n"] == 5
    assert res["confusion"].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    fold2 = evaluate([0, 1, 1, 1], [0, 1, 1, 0], names)  # class c absent: NaN recall
    assert math.isnan(fold2["per_class_recall"]["c"])
    agg = aggregate_folds([res, fold2])
    assert agg["uar"]["mean"] == pytest.approx((0.5 + (1 + 2 / 3) / 2) / 2)
    assert agg["war"]["mean"] == pytest.approx(0.675) and agg["war"]["std"] == pytest.approx(0.075)
    assert agg["per_class_recall"]["b"]["mean"] == pytest.approx((1 + 2 / 3) / 2)
    assert agg["per_class_recall"]["c"] == {"mean": 0.0, "std": 0.0}  # the NaN fold is skipped
    assert agg["confusion"].sum() == 9 and agg["folds"] == 2
    assert aggregate_folds([res, fold2], ddof=1)["war"]["std"] == pytest.approx(0.075 * math.sqrt(2))
    with pytest.raises(UserError, match="same class_names"):
        aggregate_folds([res, evaluate([0], [0], ["a", "b"])])


# ---------------------------------------------------------------- leave one class out
def test_loco_recall_on_planted_embeddings():
    text = _unit(4, 16, seed=5)
    rows = ["anger", "anger+disgust", "disgust", "anger", "fear"]
    video = torch.stack([text[0], text[1], text[1], text[0], text[2]])  # sample 1 looks like disgust
    # only single-label clips of the held-out class count: the compound clip 1 (predicted disgust) is not scored
    assert loco_recall(video, rows, text, CLASSES, "anger") == pytest.approx(1.0)
    video[3] = text[2]  # the second anger clip now looks like fear
    assert loco_recall(video, rows, text, CLASSES, "anger") == pytest.approx(0.5)
    assert loco_recall(video, rows, text, CLASSES, "disgust") == pytest.approx(1.0)
    assert math.isnan(loco_recall(video, rows, text, CLASSES, "happiness"))  # no clip of the class
    with pytest.raises(UserError, match="not among the classes"):
        loco_recall(video, rows, text, CLASSES, "sadness")


# ---------------------------------------------------------------- results table
def test_paper_table_layout():
    table = paper_table({("EmoCLIP", "MAFW"): (0.2586, 0.3349), ("CLIP", "DFEW"): (0.2208, 0.213),
                         ("EmoCLIP", "DFEW"): (0.36764, 0.46271)})
    assert list(table.columns) == [("DFEW", "UAR"), ("DFEW", "WAR"), ("MAFW", "UAR"), ("MAFW", "WAR")]
    assert list(table.index) == ["EmoCLIP", "CLIP"]
    assert table.loc["EmoCLIP", ("DFEW", "UAR")] == pytest.approx(36.76)
    assert np.isnan(table.loc["CLIP", ("MAFW", "WAR")])
    reported = paper_table(REPORTED_RESULTS, fractions=False)
    assert reported.loc["EmoCLIP", ("AFEW", "WAR")] == pytest.approx(39.90)
    with pytest.raises(UserError, match="fractions=False"):
        paper_table({("m", "d"): (36.0, 40.0)})


# ---------------------------------------------------------------- video side
def test_frame_average_baseline_matches_manual(tiny):
    frames = torch.randn(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(7))  # (B, T, 3, H, W)
    with torch.no_grad():
        per_frame = F.normalize(tiny.backbone.encode_image(frames.flatten(0, 1)), dim=-1).view(2, 3, -1)
        feats = tiny.encode_frames(frames)  # (B, T, D)
    manual = F.normalize(per_frame.mean(1), dim=-1)
    assert torch.allclose(pool_windows(tiny, feats, "clip_frame_avg"), manual, atol=1e-5)
    assert torch.allclose(frame_average(per_frame * 7.0), manual, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(pool_windows(tiny, feats, "emoclip", batch=1), tiny.encode_video(frames), atol=1e-5)
    with pytest.raises(UserError, match="unknown pooling"):
        pool_windows(tiny, feats, "farl")
