"""The window encoder (features.windows), its disk cache (features.window_cache) and interview features
(downstream.features): windows, encoders, cache keys and hits, aggregation, face crops."""
from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from emoclip_lib.downstream import features
from emoclip_lib.errors import UserError
from emoclip_lib.features import window_cache, windows
from emoclip_lib.model.checkpoint import build_model
from emoclip_lib.errors import DataError
from emoclip_lib.data.faces import FaceCrop, FaceNotFound
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig
from emoclip_lib.data.preprocess import CLIP_MEAN, CLIP_STD
from emoclip_lib.data.video import window_indices, window_starts
from conftest import SKIN, draw_face, random_video, write_video

CLIP_LEN, DOWNSAMPLE = 4, 2


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0).eval()


def write_manifest(path: Path, rows: list[str]) -> Path:
    path.write_text("path,subject,session,hallucination,apathy\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def dataset(interview_videos):
    return interview_videos


class FrameIndexModel:
    """Stand-in model: a frame's embedding is its index (frame i is uniformly 10 * i), a window's the indices."""

    input_resolution = 8

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:  # (1, n, 3, S, S) -> (1, n, 1)
        return ((x[:, :, 0, 0, 0] * CLIP_STD[0] + CLIP_MEAN[0]) * 255.0 / 10.0).round().unsqueeze(-1)

    def encode_video_features(self, feats: torch.Tensor) -> torch.Tensor:  # (W, L, 1) -> (W, L)
        return feats[..., 0]


def index_frames(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):  # frame i is uniformly 10 * i (PNG: lossless)
        cv2.imwrite(str(folder / f"f{i}.png"), np.full((20, 24, 3), 10 * i, np.uint8))
    return folder


def test_windows_cover_the_video_and_each_frame_is_decoded_once(tmp_path, monkeypatch):
    folder = index_frames(tmp_path / "frames", 23)
    decoded: list[int] = []
    real_read = windows.read_frames
    monkeypatch.setattr(windows, "read_frames", lambda p, idx: decoded.extend(idx) or real_read(p, idx))
    video = windows.window_embeddings(FrameIndexModel(), folder, clip_len=4, downsample=2, stride=3, device="cpu",
                                      batch=2)
    np.testing.assert_array_equal(video.starts, window_starts(23, 4, 2, 3))
    expected = np.stack([window_indices(23, 4, 2, s) for s in video.starts])  # (W, 4)
    np.testing.assert_array_equal(video.embeddings["emoclip"].numpy(), expected)
    assert sorted(decoded) == sorted(set(expected.ravel().tolist()))  # kept frames only, each decoded once
    assert expected[-1, -1] == 22 and video.num_frames == 23  # the last kept frame is covered
    with pytest.raises(UserError, match="stride must be at least 1"):
        windows.window_embeddings(FrameIndexModel(), folder, 4, 2, 0, "cpu")


def test_both_poolings_match_direct_encoding(model, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(11):
        cv2.imwrite(str(folder / f"f{i}.png"), rng.integers(0, 256, (36, 40, 3), dtype=np.uint8))
    video = windows.window_embeddings(model, folder, 3, 2, 2, "cpu", poolings=windows.POOLINGS, batch=4)
    from emoclip_lib.data.preprocess import preprocess_frames
    from emoclip_lib.data.video import read_frames
    with torch.no_grad():
        clips = torch.stack([preprocess_frames(read_frames(folder, window_indices(11, 3, 2, int(s))), 32)
                             for s in video.starts])  # (W, T, 3, S, S)
        direct = model.encode_video(clips)
        per_frame = F.normalize(model.encode_frames(clips), dim=-1)  # (W, T, D)
    torch.testing.assert_close(video.embeddings["emoclip"], direct, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(video.embeddings["clip_frame_avg"], F.normalize(per_frame.mean(1), dim=-1),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(UserError, match="unknown encoder"):
        window_cache.make_encoder(model, "farl")


def test_weights_fingerprint_tracks_the_weights_each_encoder_uses(model):
    def prints(m):
        return {name: window_cache.make_encoder(m, name).fingerprint for name in window_cache.ENCODERS}

    base = prints(model)
    temporal = copy.deepcopy(model)
    with torch.no_grad():
        temporal.temporal.cls_token.add_(1e-3)
    changed = prints(temporal)
    assert changed["emoclip"] != base["emoclip"] and changed["clip_frame_avg"] == base["clip_frame_avg"]
    visual = copy.deepcopy(model)
    with torch.no_grad():
        visual.backbone.visual.conv1.weight.mul_(1.01)
    assert all(prints(visual)[k] != base[k] for k in base)
    text = copy.deepcopy(model)
    with torch.no_grad():
        text.backbone.token_embedding.weight.add_(1.0)
    assert prints(text) == base  # the text tower plays no part in video features


def test_cache_key_changes_with_every_setting():
    crop = FaceCrop()
    args = dict(video_sha256="a" * 64, fingerprint="b" * 64, encoder="emoclip", clip_len=32, downsample=4,
                stride=None, size=224, crop=None)
    base = window_cache.cache_key(**args)
    assert window_cache.cache_key(**{**args, "stride": 32}) == base  # None means clip_len
    variants = {"video_sha256": "c" * 64, "fingerprint": "d" * 64, "encoder": "clip_frame_avg", "clip_len": 16,
                "downsample": 2, "stride": 8, "size": 32, "crop": crop}
    keys = {window_cache.cache_key(**{**args, k: v}) for k, v in variants.items()}
    assert len(keys) == len(variants) and base not in keys
    assert window_cache.cache_key(**{**args, "crop": FaceCrop(margin=0.4)}) != window_cache.cache_key(**{**args, "crop": crop})


def test_aggregate_math():
    emb = np.arange(20, dtype=np.float64).reshape(5, 4) ** 1.5  # (W=5, D=4)
    out = features.aggregate(emb, ("mean", "std", "max", "min", "median", "q10", "q90"))
    expected = np.concatenate([emb.mean(0), emb.std(0), emb.max(0), emb.min(0), np.median(emb, 0),
                               np.quantile(emb, 0.1, axis=0), np.quantile(emb, 0.9, axis=0)])
    np.testing.assert_allclose(out, expected)
    population_std = np.sqrt(((emb - emb.mean(0)) ** 2).mean(0))
    np.testing.assert_allclose(features.aggregate(emb, ("std", "mean"))[:4], population_std)
    np.testing.assert_array_equal(features.aggregate(emb[:1], ("mean", "std")), np.r_[emb[0], np.zeros(4)])
    for bad in (("mode",), ("q0",), ("q100",), ()):
        with pytest.raises(UserError):
            features.aggregate(emb, bad)


def test_extract_features_table_and_cache_hits(dataset, model, tmp_path, monkeypatch):
    manifest, root = dataset
    calls: list[str] = []
    real = window_cache.window_embeddings

    def counting(model, path, *args, **kwargs):
        calls.append(Path(path).name)
        return real(model, path, *args, **kwargs)

    monkeypatch.setattr(window_cache, "window_embeddings", counting)
    monkeypatch.setattr(features, "torch_workers", lambda device, jobs: 1)  # counted in this process
    cache = tmp_path / "cache"
    opts = dict(clip_len=CLIP_LEN, downsample=DOWNSAMPLE, progress=False)
    first = features.extract_features(manifest, root, model, "emoclip", cache, **opts)
    assert calls == ["v0.mp4", "v1.mp4", "v2.mp4"] and len(list(cache.glob("*.npz"))) == 3
    assert list(first.columns) == ["path", "subject", "session", "hallucination", "apathy", "n_windows", "features"]
    assert first["n_windows"].tolist() == [len(window_starts(n, CLIP_LEN, DOWNSAMPLE)) for n in (30, 21, 9)]
    assert np.isnan(first.loc[1, "apathy"]) and first.loc[0, "hallucination"] == 3.0
    emb = F.normalize(real(model, root / "v0.mp4", CLIP_LEN, DOWNSAMPLE, None, "cpu").embeddings["emoclip"], dim=-1)
    np.testing.assert_allclose(first.loc[0, "features"], features.aggregate(emb.numpy()), rtol=1e-5, atol=1e-6)

    again = features.extract_features(manifest, root, model, "emoclip", cache, **opts)
    assert len(calls) == 3  # all three from the cache
    np.testing.assert_array_equal(features.feature_matrix(again), features.feature_matrix(first))
    more = features.extract_features(manifest, root, model, "emoclip", cache, stats=("mean", "max", "q90"), **opts)
    assert len(calls) == 3 and features.feature_matrix(more).shape == (3, 3 * 64)
    features.extract_features(manifest, root, model, "clip_frame_avg", cache, **opts)
    features.extract_features(manifest, root, model, "emoclip", cache, stride=2, **opts)
    assert len(calls) == 9 and len(list(cache.glob("*.npz"))) == 9


def test_a_damaged_cache_entry_is_recomputed(dataset, model, tmp_path):
    manifest, root = dataset
    cache = tmp_path / "cache"
    first = features.extract_features(manifest, root, model, cache_dir=cache, clip_len=4, progress=False)
    for file in cache.glob("*.npz"):
        file.write_bytes(b"truncated")
    again = features.extract_features(manifest, root, model, cache_dir=cache, clip_len=4, progress=False)
    np.testing.assert_array_equal(features.feature_matrix(again), features.feature_matrix(first))


def test_subject_features_average_videos_and_scores():
    table = pd.DataFrame({"path": ["a", "b", "c"], "subject": ["s2", "s1", "s2"], "session": ["1", "1", "2"],
                          "x": [1.0, 4.0, np.nan], "y": [np.nan, 2.0, np.nan], "n_windows": [3, 3, 3],
                          "features": [np.array([1.0, 2.0]), np.array([5.0, 5.0]), np.array([3.0, 0.0])]})
    table.attrs["items"] = ["x", "y"]
    out = features.subject_features(table)
    assert out["subject"].tolist() == ["s1", "s2"] and out["n_videos"].tolist() == [1, 2]
    np.testing.assert_allclose(features.feature_matrix(out), [[5.0, 5.0], [2.0, 1.0]])
    assert out["x"].tolist() == [4.0, 1.0]  # s2's missing score is skipped
    assert out.loc[0, "y"] == 2.0 and np.isnan(out.loc[1, "y"])  # all missing -> NaN


def test_missing_video_names_the_manifest_line(dataset, model, tmp_path):
    manifest, root = dataset
    bad = write_manifest(tmp_path / "bad.csv", ["v0.mp4,s1,a,1,1", "gone.mp4,s2,a,1,1"])
    with pytest.raises(DataError, match=r"bad\.csv:3: .*gone\.mp4 does not exist"):
        features.extract_features(bad, root, model, cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(UserError, match="unknown statistic"):
        features.extract_features(manifest, root, model, cache_dir=tmp_path / "c", stats=("avg",), progress=False)


def test_face_crop_feeds_face_crops_and_reports_faceless_videos(tmp_path, model):
    face = write_video(tmp_path / "face.mp4", [draw_face(160, 192, 90 + 2 * t, 80, 0.6) for t in range(10)])
    seen: list[torch.Tensor] = []

    class Recording(FrameIndexModel):
        input_resolution = 32

        def encode_frames(self, x: torch.Tensor) -> torch.Tensor:  # (1, n, 3, S, S) -> (1, n, 3)
            seen.append(x)
            return x.mean(dim=(3, 4))

    crop = FaceCrop(min_size=20, every=3)
    windows.window_embeddings(Recording(), face, clip_len=4, downsample=2, stride=None, device="cpu", crop=crop)
    centre = seen[0][0, :, :, 14:18, 14:18].mean(dim=(0, 2, 3))  # normalised RGB at the crop centre
    rgb = (centre * torch.tensor(CLIP_STD) + torch.tensor(CLIP_MEAN)) * 255
    assert (rgb - torch.tensor(SKIN, dtype=torch.float32)).abs().max() < 40

    random_video(tmp_path / "noface.mp4", 10, seed=3)
    manifest = write_manifest(tmp_path / "m.csv", ["face.mp4,s1,a,1,1", "noface.mp4,s2,a,2,2"])
    with pytest.raises(FaceNotFound, match=r"m\.csv:3: no face found in .*noface\.mp4"):
        features.extract_features(manifest, tmp_path, model, cache_dir=tmp_path / "c", clip_len=4, crop=crop,
                                  progress=False)
    fallback = FaceCrop(min_size=20, every=3, full_frame=True)
    table = features.extract_features(manifest, tmp_path, model, cache_dir=tmp_path / "c", clip_len=4,
                                      crop=fallback, progress=False)
    assert features.feature_matrix(table).shape == (2, 128)
