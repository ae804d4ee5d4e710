"""Tests of the synthetic face-video world (rendering, captions, corpora, cohort, writing, CLI)."""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoclip_lib.data.classes import BASIC_CLASSES, CANONICAL_CLASSES, parse_labels
from emoclip_lib.data.descriptions import load_descriptions
from emoclip_lib.errors import UserError
from emoclip_lib.cli import synth as cli_synth
from emoclip_lib.synth.captions import (CLASS_WORDS, EXTRA_SENTENCES, PHRASES, STILL_SENTENCES,
                                        class_word_pattern, make_caption)
from emoclip_lib.synth.backdrop import finish_frame, light_gain, noise_bank
from emoclip_lib.synth.cohort import ITEMS, plan_cohort, render_session
from emoclip_lib.synth.descriptions import characteristic_components, write_class_descriptions
from emoclip_lib.synth.faces import COMPONENTS, mouth_box
from emoclip_lib.synth.people import sample_person, sample_scene
from emoclip_lib.synth.recipes import (CLASS_RECIPES, ClipSpec, apex_frame_index, clip_rng, render_clip,
                                       sample_expression)
from emoclip_lib.synth.world import SIZES, generate_world, plan_corpus, render_example, visible_components

HEADER = ["path", "labels", "caption", "split", "fold", "subject"]
STEMS = {  # words a phrase about each component must contain one of
    "brow_raise": ("brow",), "inner_brow_raise": ("brow",), "brow_lower": ("brow", "frown"),
    "brow_knit": ("brow",), "eyes_wide": ("eye",), "eyes_narrow": ("eye", "squint"),
    "eyes_closed": ("eye",), "lip_corner_up": ("smile", "corner"), "lip_corner_down": ("corner", "lips"),
    "lip_corner_one_side": ("corner", "smirk", "half-smile"), "lips_press": ("lips",),
    "mouth_open": ("mouth", "jaw", "lips"), "nose_wrinkle": ("nose",), "gaze_down": ("down", "gaze"),
    "gaze_away": ("away", "camera", "glance", "averted", "eyes"), "head_tilt": ("head",),
}


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synth")
    out = {"a": root / "a", "b": root / "b", "c": root / "c"}
    generate_world(out["a"], "tiny", seed=0, progress=False)
    generate_world(out["b"], "tiny", seed=0, progress=False)
    generate_world(out["c"], "tiny", seed=1, progress=False)
    return out


def test_same_seed_gives_identical_bytes_and_other_seed_differs(worlds: dict[str, Path]) -> None:
    a, b, c = (_hashes(worlds[k]) for k in "abc")
    assert a == b
    assert len(a) == 10 + 5 + 12 + 3 + 3  # videos, 3 manifests, latent scores, world.json, descriptions
    differing = [k for k in a if k in c and a[k] != c[k]]
    assert "mafw_like/manifest.csv" in differing and "mafw_like/videos/000000.mp4" in differing


def test_decord_reads_videos_as_rendered(worlds: dict[str, Path]) -> None:
    import decord  # a hard dependency: fail, do not skip, when it is missing
    spec = plan_corpus("mafw_like", "tiny", 0)[3]
    reader = decord.VideoReader(str(worlds["a"] / "mafw_like" / "videos" / "000003.mp4"))
    assert len(reader) == spec.n_frames
    decoded = reader.get_batch(list(range(len(reader)))).asnumpy()
    assert decoded.shape == (spec.n_frames, 112, 112, 3) and decoded.dtype == np.uint8
    rendered = render_clip(spec)
    assert np.abs(decoded.astype(float) - rendered).mean() < 6.0  # lossy, but the same picture, in RGB order
    channel_gap = np.abs(decoded.mean(axis=(0, 1, 2)) - rendered.mean(axis=(0, 1, 2)))
    assert channel_gap.max() < 4.0
    interview = decord.VideoReader(str(worlds["a"] / "interviews" / "videos" / "s001_2.mp4"))
    assert 40 <= len(interview) <= 48 and interview[0].shape == (112, 112, 3)


def test_manifests_schema_folds_and_disjoint_identities(worlds: dict[str, Path]) -> None:
    subjects = {}
    for corpus in ("mafw_like", "dfew_like"):
        header, rows = _read(worlds["a"] / corpus / "manifest.csv")
        assert header == HEADER
        per_clip = defaultdict(list)
        for row in rows:
            per_clip[row["path"]].append(row)
            assert (worlds["a"] / corpus / row["path"]).is_file()
        for clip_rows in per_clip.values():
            assert sorted(int(r["fold"]) for r in clip_rows) == [1, 2, 3, 4, 5]
            assert [r["split"] for r in clip_rows].count("test") == 1
        for fold in "12345":
            train = {r["subject"] for r in rows if r["fold"] == fold and r["split"] == "train"}
            test = {r["subject"] for r in rows if r["fold"] == fold and r["split"] == "test"}
            assert test and train and not train & test
        known = CANONICAL_CLASSES if corpus == "mafw_like" else BASIC_CLASSES
        assert all(parse_labels(r["labels"], known) for r in rows)
        subjects[corpus] = {r["subject"] for r in rows}
    assert not subjects["mafw_like"] & subjects["dfew_like"]
    assert all(r["caption"] == "" for r in _read(worlds["a"] / "dfew_like" / "manifest.csv")[1])
    assert all(r["caption"] for r in _read(worlds["a"] / "mafw_like" / "manifest.csv")[1])
    info = json.loads((worlds["a"] / "world.json").read_text())
    assert info["seed"] == 0 and info["counts"]["mafw_like"] == 10 and info["counts"]["interview_subjects"] == 6


def test_interview_files(worlds: dict[str, Path]) -> None:
    header, rows = _read(worlds["a"] / "interviews" / "manifest.csv")
    assert header == ["path", "subject", "session", *ITEMS] and len(rows) == 12
    assert all(1 <= int(r[k]) <= 7 for r in rows for k in ITEMS)
    latent_header, latent = _read(worlds["a"] / "interviews" / "latent_scores.csv")
    assert latent_header == ["subject", *ITEMS] and {r["subject"] for r in latent} == {r["subject"] for r in rows}


def test_small_plan_has_every_class_in_every_test_fold_and_compounds() -> None:
    specs = plan_corpus("mafw_like", "small", 0)
    assert len(specs) == 390
    for fold in range(1, 6):
        test = [s for s in specs if s.fold == fold]
        assert {c for s in test for c in s.labels} == set(CANONICAL_CLASSES)
        assert any(len(s.labels) == 2 for s in test)
    dfew = plan_corpus("dfew_like", "small", 0)
    assert {s.labels for s in dfew} == {(c,) for c in BASIC_CLASSES}
    assert not {s.person.subject for s in specs} & {s.person.subject for s in dfew}


def test_captions_length_and_class_word_minority() -> None:
    specs = plan_corpus("mafw_like", "small", 0)
    words = np.array([len(s.caption.split()) for s in specs])
    assert words.min() >= 15 and np.mean(words <= 60) > 0.9 and (words > 60).sum() >= 3
    named = np.mean([any(class_word_pattern(c).search(s.caption) for c in s.labels) for s in specs])
    assert 0.1 < named < 0.4
    assert len({s.caption for s in specs}) == len(specs)


def test_caption_describes_exactly_what_is_visible() -> None:
    rng = np.random.default_rng(0)
    for trial in range(40):
        person, scene = sample_person("t", rng), sample_scene(rng)
        apex = sample_expression(str(rng.choice(CANONICAL_CLASSES)), rng)
        visible = visible_components(apex, scene.occluder)
        cap = make_caption(person, scene, visible, ("anger",), 0.3, 0.5, np.random.default_rng(trial))
        strongest = set(sorted(visible, key=lambda c: (-visible[c], c))[:4])
        assert set(cap.mentioned) == strongest
        for comp, phrase in cap.mentioned.items():
            assert phrase in cap.text and any(stem in phrase for stem in STEMS[comp])
            assert re.search(r"\b(slight|faint|subtle|clear|noticeabl|visibl|moderate|strong|sharp|marked"
                             r"|pronounced|intense|a little|a bit|a lot|subtl)", phrase)
    assert visible_components({"mouth_open": 0.9, "brow_raise": 0.5}, "hand_mouth") == {"brow_raise": 0.5}
    assert visible_components({"mouth_open": 0.05}, None) == {}


def test_caption_templates_never_name_a_class() -> None:
    templates = [t for vps, nps in PHRASES.values() for t in vps + nps] + list(STILL_SENTENCES + EXTRA_SENTENCES)
    for label in CLASS_WORDS:
        pattern = class_word_pattern(label)
        assert not [t for t in templates if pattern.search(t)], label


def test_class_descriptions_use_the_caption_vocabulary(worlds: dict[str, Path], tmp_path: Path) -> None:
    path = worlds["a"] / "class_descriptions.yaml"
    assert json.loads((worlds["a"] / "world.json").read_text())["descriptions"] == path.name
    table = load_descriptions(path, required=CANONICAL_CLASSES)  # also checks the 75-token limit
    assert list(table) == list(CANONICAL_CLASSES)
    for label, entry in table.items():
        assert 3 <= len(entry.descriptions) == len(set(entry.descriptions)) <= 4
        assert class_word_pattern(label).search(entry.descriptions[0])  # only the primary names the class
        assert not [d for d in entry.descriptions[1:] for c in CLASS_WORDS if class_word_pattern(c).search(d)]
        assert label in entry.synonyms and class_word_pattern(label).search(entry.name_prompt)
        for comp in characteristic_components(label)[:3]:
            assert any(stem in entry.descriptions[0] for stem in STEMS[comp]), (label, comp)
    assert characteristic_components("anger")[:3] == ["brow_lower", "brow_knit", "lips_press"]
    assert characteristic_components("neutral") == []
    vocab = {w for s in plan_corpus("mafw_like", "small", 0) for w in re.findall(r"[a-z]+", s.caption.lower())}
    texts = [t for e in table.values() for t in (e.name_prompt, *e.descriptions)]
    words = [w for t in texts for w in re.findall(r"[a-z]+", t.lower())]
    assert np.mean([w in vocab for w in words]) >= 0.9
    assert write_class_descriptions(tmp_path / "same.yaml", seed=0).read_bytes() == path.read_bytes()
    assert write_class_descriptions(tmp_path / "other.yaml", seed=1).read_bytes() != path.read_bytes()
    with pytest.raises(UserError, match="seed"):
        write_class_descriptions(tmp_path / "bad.yaml", seed=-1)


def test_recipes_always_show_their_core_component() -> None:
    rng = np.random.default_rng(1)
    for label, recipe in CLASS_RECIPES.items():
        for _ in range(30):
            apex = sample_expression(label, rng)
            assert set(apex) <= set(COMPONENTS) and all(0 < v <= 1 for v in apex.values())
            if recipe:
                assert recipe[0][0] in apex
            else:
                assert all(v <= 0.35 for v in apex.values())
    with pytest.raises(UserError):
        sample_expression("joy", rng)
    with pytest.raises(UserError):
        render_example("neutral+anger")


def _apex_at_32px(spec: ClipSpec, apex: dict[str, float]) -> np.ndarray:
    frame = render_clip(replace(spec, apex=apex))[apex_frame_index(spec)]
    return cv2.resize(frame, (32, 32), interpolation=cv2.INTER_AREA).astype(float)


def test_expressions_are_visible_at_32_pixels() -> None:
    mouth, whole = defaultdict(list), defaultdict(list)
    for seed in range(6):
        spec = render_example("neutral", seed=seed, n_frames=24)[1]
        rest = _apex_at_32px(spec, {})  # same person, scene, motion and noise, no expression
        x0, y0, x1, y1 = (int(round(v * 32 / 112)) for v in mouth_box(spec.person, spec.scene))
        for comp in ("lip_corner_up", "lip_corner_down", "mouth_open", "lips_press", "brow_raise", "eyes_wide"):
            diff = np.abs(_apex_at_32px(spec, {comp: 0.8}) - rest)
            mouth[comp].append(diff[y0:y1, x0:x1].mean())
            whole[comp].append(diff.mean())
    for comp in ("lip_corner_up", "lip_corner_down", "lips_press"):
        assert np.median(mouth[comp]) > 5.0, comp  # grey levels, mean over the mouth box
    assert min(mouth["mouth_open"]) > 10.0
    assert min(whole["brow_raise"]) > 0.5 and min(whole["eyes_wide"]) > 0.5
    assert max(mouth["brow_raise"] + mouth["eyes_wide"]) < 1.0  # upper-face actions leave the mouth alone


def test_clips_do_not_depend_on_render_order() -> None:
    specs = plan_corpus("dfew_like", "tiny", 7)[:3]
    forward = [render_clip(s) for s in specs]
    backward = [render_clip(s) for s in reversed(specs)][::-1]
    assert all(np.array_equal(f, b) for f, b in zip(forward, backward))
    assert not np.array_equal(forward[0][0], forward[1][0])
    assert clip_rng(0, "mafw_like", 1, 0).random() != clip_rng(0, "dfew_like", 1, 0).random()


def test_cohort_plan_small_scores_in_range() -> None:
    small = SIZES["small"]
    cohort = plan_cohort(small.interview_subjects, small.interview_sessions, small.interview_frames, seed=0)
    assert len(cohort) >= 40 and all(len(s.sessions) == 3 for s in cohort)
    latent = np.array([[s.latent[k] for k in ITEMS] for s in cohort for _ in s.sessions])
    rated = np.array([[r[k] for k in ITEMS] for s in cohort for _, _, r in s.sessions])
    assert latent.min() >= 1 and latent.max() <= 7 and rated.min() >= 1 and rated.max() <= 7
    assert rated.dtype.kind == "i" and np.corrcoef(latent.ravel(), rated.ravel())[0, 1] > 0.7
    assert all(96 <= n <= 160 for s in cohort for _, n, _ in s.sessions)


def test_mouth_motion_falls_with_reduced_speech_movement() -> None:
    cohort = plan_cohort(16, 1, (64, 64), seed=3)
    energy = []
    for subject in cohort:
        video = render_session(subject, 1, seed=3).astype(np.float32)  # (T, H, W, 3)
        x0, y0, x1, y1 = mouth_box(subject.person, subject.scene)
        energy.append(np.abs(np.diff(video[:, y0:y1, x0:x1], axis=0)).mean())
    scores = [s.latent["reduced_speech_movement"] for s in cohort]
    assert np.corrcoef(energy, scores)[0, 1] < -0.5


def _synth_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_synth.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["synth", *argv])


def test_cli_refuses_non_empty_folder_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("x")
    args = _synth_args(["--out", str(tmp_path), "--size", "tiny", "--seed", "2", "--no-progress"])
    with pytest.raises(UserError, match="not empty"):
        args.func(args)
    forced = _synth_args(["--out", str(tmp_path), "--size", "tiny", "--seed", "2", "--no-progress", "--force"])
    assert forced.func(forced) == 0
    out = capsys.readouterr().out
    assert "MAFW: 10 clips (emoclip manifest mafw --root" in out and "DFEW: 5 clips" in out  # official layout
    assert (tmp_path / "keep.txt").read_text() == "x"
    assert json.loads((tmp_path / "world.json").read_text())["seed"] == 2
    assert (tmp_path / "MAFW" / "Train_Test_Set" / "single" / "with_caption_new" / "set_1" / "train.txt").is_file()
    manifest = _synth_args(["--out", str(tmp_path / "m"), "--size", "tiny", "--layout", "manifest", "--no-progress"])
    assert manifest.func(manifest) == 0 and "10 mafw_like clips" in capsys.readouterr().out
    with pytest.raises(UserError, match="seed"):
        generate_world(tmp_path / "neg", "tiny", seed=-1, progress=False)
    with pytest.raises(UserError, match="size"):
        generate_world(tmp_path / "big", "huge", seed=0, progress=False)


def test_a_three_channel_gain_gives_the_frames_of_the_one_channel_gain() -> None:
    # ClipCanvas keeps the lighting gain repeated to 3 channels (faster to multiply): the same frames
    scene = sample_scene(np.random.default_rng(4))
    img = np.random.default_rng(5).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    bank = noise_bank(scene, np.random.default_rng(6))
    gain = light_gain(scene)  # (112, 112, 1)
    one = finish_frame(img, gain, bank, np.random.default_rng(7))
    three = finish_frame(img, np.repeat(gain, 3, axis=2), bank, np.random.default_rng(7))
    assert gain.shape == (112, 112, 1) and np.array_equal(one, three)
