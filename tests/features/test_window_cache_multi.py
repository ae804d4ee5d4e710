"""Several encoders of one model from one pass over each video (features.window_cache, downstream.features),
with the numbers and cache entries of one pass per encoder; frame-encoding precision of the window encoder."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emoclip_lib import workers
from emoclip_lib.downstream import features
from emoclip_lib.errors import UserError
from emoclip_lib.features import window_cache, windows
from emoclip_lib.model.checkpoint import build_model
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig

BOTH = ("emoclip", "clip_frame_avg")
OPTS = dict(clip_len=4, downsample=2, progress=False)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0).eval()


@pytest.fixture
def dataset(interview_videos):
    return interview_videos


class Passes:
    """Counts `window_embeddings` passes (one per video and model) and the frames they encode."""

    def __init__(self, monkeypatch) -> None:
        self.passes: list[tuple[str, tuple[str, ...]]] = []
        self.frames = 0
        real_pass, real_encode = window_cache.window_embeddings, windows.encode_video_frames

        def counting_pass(model, path, *args, **kwargs):
            self.passes.append((Path(path).name, tuple(kwargs["poolings"])))
            return real_pass(model, path, *args, **kwargs)

        def counting_encode(model, path, indices, *args, **kwargs):
            self.frames += len(indices)
            return real_encode(model, path, indices, *args, **kwargs)

        monkeypatch.setattr(window_cache, "window_embeddings", counting_pass)
        monkeypatch.setattr(windows, "encode_video_frames", counting_encode)
        monkeypatch.setattr(features, "torch_workers", lambda device, jobs: 1)  # counted in this process


def test_one_pass_gives_the_entries_of_separate_passes(model, dataset, tmp_path, monkeypatch):
    _, root = dataset
    encs = [window_cache.make_encoder(model, name) for name in BOTH]
    separate = {enc.name: window_cache.cached_window_embeddings(enc, root / "v0.mp4", tmp_path / "a", 4, 2)
                for enc in encs}
    counter = Passes(monkeypatch)
    shared = window_cache.cached_window_embeddings_multi(encs, root / "v0.mp4", tmp_path / "b", 4, 2)
    assert counter.passes == [("v0.mp4", BOTH)] and counter.frames == 15  # 15 kept frames, each encoded once
    assert list(shared) == list(BOTH)
    for name in BOTH:
        np.testing.assert_array_equal(shared[name][0], separate[name][0])
        np.testing.assert_array_equal(shared[name][1], separate[name][1])
    assert sorted(p.name for p in (tmp_path / "a").glob("*.npz")) == sorted(p.name for p in (tmp_path / "b").glob("*.npz"))
    again = window_cache.cached_window_embeddings_multi(encs, root / "v0.mp4", tmp_path / "a", 4, 2)
    assert len(counter.passes) == 1  # entries written by single-encoder calls hit (same keys)
    assert all(np.array_equal(again[n][1], separate[n][1]) for n in BOTH)


def test_extract_features_of_both_encoders_at_once(model, dataset, tmp_path, monkeypatch):
    manifest, root = dataset
    single = {name: features.extract_features(manifest, root, model, name, tmp_path / "a", **OPTS) for name in BOTH}
    counter = Passes(monkeypatch)
    both = features.extract_features(manifest, root, model, BOTH, tmp_path / "b", **OPTS)
    assert [p for p, _ in counter.passes] == ["v0.mp4", "v1.mp4", "v2.mp4"]  # one pass per video
    assert list(both) == list(BOTH)
    for name in BOTH:
        a, b = single[name], both[name]
        assert a.attrs == b.attrs and list(a.columns) == list(b.columns)
        np.testing.assert_array_equal(features.feature_matrix(a), features.feature_matrix(b))
        assert a.drop(columns="features").equals(b.drop(columns="features"))


@pytest.mark.skipif(not workers.can_fork(), reason="needs fork")
def test_videos_embedded_in_forked_workers_equal_those_embedded_here(model, dataset, tmp_path, monkeypatch):
    manifest, root = dataset
    monkeypatch.setattr(features, "torch_workers", lambda device, jobs: 1)
    here = features.extract_features(manifest, root, model, BOTH, tmp_path / "a", **OPTS)
    monkeypatch.setattr(features, "torch_workers", lambda device, jobs: 2)
    forked = features.extract_features(manifest, root, model, BOTH, tmp_path / "b", **OPTS)
    for name in BOTH:
        assert list(forked[name]["path"]) == ["v0.mp4", "v1.mp4", "v2.mp4"]  # in manifest order
        np.testing.assert_array_equal(features.feature_matrix(forked[name]), features.feature_matrix(here[name]))
        assert forked[name].drop(columns="features").equals(here[name].drop(columns="features"))
    assert sorted(p.name for p in (tmp_path / "a").glob("*.npz")) == sorted(p.name for p in (tmp_path / "b").glob("*.npz"))
    bad = tmp_path / "bad.csv"
    bad.write_text(manifest.read_text().replace("v1.mp4", "v1.txt"), encoding="utf-8")
    (root / "v1.txt").write_text("not a video")
    with pytest.raises(UserError, match=r"bad.csv:3: "):  # a worker's error names the manifest row
        features.extract_features(bad, root, model, BOTH, tmp_path / "c", **OPTS)


def test_different_model_objects_get_a_pass_each(model, dataset, tmp_path, monkeypatch):
    manifest, root = dataset
    baseline = copy.deepcopy(model)  # as pipeline.regression.load_encoders may give: another object
    counter = Passes(monkeypatch)
    both = features.extract_features(manifest, root, {"emoclip": model, "clip_frame_avg": baseline}, BOTH,
                                     tmp_path / "c", **OPTS)
    assert counter.passes[:2] == [("v0.mp4", ("emoclip",)), ("v0.mp4", ("clip_frame_avg",))]
    assert len(counter.passes) == 6
    alone = features.extract_features(manifest, root, model, "clip_frame_avg", tmp_path / "d", **OPTS)
    np.testing.assert_array_equal(features.feature_matrix(both["clip_frame_avg"]), features.feature_matrix(alone))
    with pytest.raises(UserError, match="no model given for encoder 'clip_frame_avg'"):
        features.extract_features(manifest, root, {"emoclip": model}, BOTH, tmp_path / "e", **OPTS)
    with pytest.raises(UserError, match="distinct"):
        features.extract_features(manifest, root, model, ("emoclip", "emoclip"), tmp_path / "e", **OPTS)


def test_precision_of_the_window_encoder(model, dataset, tmp_path):
    _, root = dataset
    video = root / "v0.mp4"
    base = windows.window_embeddings(model, video, 4, 2, None, "cpu", poolings=BOTH)
    fp32 = windows.window_embeddings(model, video, 4, 2, None, "cpu", poolings=BOTH, precision="fp32")
    auto = windows.window_embeddings(model, video, 4, 2, None, "cpu", poolings=BOTH, precision="auto")
    bf16 = windows.window_embeddings(model, video, 4, 2, None, "cpu", poolings=BOTH, precision="bf16")
    for name in BOTH:
        assert torch.equal(base.embeddings[name], fp32.embeddings[name])  # fp32 is today's computation
        assert torch.equal(base.embeddings[name], auto.embeddings[name])  # auto is fp32 on the CPU
        assert bf16.embeddings[name].dtype == torch.float32
        assert F.cosine_similarity(base.embeddings[name], bf16.embeddings[name], dim=-1).min() >= 0.999
    enc = window_cache.make_encoder(model, "emoclip")
    window_cache.cached_window_embeddings(enc, video, tmp_path / "p", 4, 2)
    window_cache.cached_window_embeddings(enc, video, tmp_path / "p", 4, 2, precision="bf16")
    assert len(list((tmp_path / "p").glob("*.npz"))) == 2  # bf16 entries have their own key
    with pytest.raises(UserError, match="precision must be one of"):
        windows.window_embeddings(model, video, 4, 2, None, "cpu", precision="fp8")
