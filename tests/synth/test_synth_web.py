"""Tests for the synthetic web pictures of the tiny CLIP's pretraining (emoclip_lib.synth.web)."""
from __future__ import annotations

import re

import torch

from emoclip_lib.synth.captions import CLASS_WORDS
from emoclip_lib.synth.web import web_still, web_stills

IDENTITY_WORDS = re.compile(r"\b(hair|beard|glasses|room|office|outdoors|light|woman|man|guy|camera stays)\b", re.I)


def test_web_stills_are_deterministic_and_sized() -> None:
    a_img, a_cap = web_stills(12, seed=3, size=32, progress=False)
    b_img, b_cap = web_stills(12, seed=3, size=32, progress=False)
    assert a_img.shape == (12, 3, 32, 32) and a_img.dtype == torch.uint8
    assert torch.equal(a_img, b_img) and a_cap == b_cap
    c_img, c_cap = web_stills(12, seed=4, size=32, progress=False)
    assert not torch.equal(a_img, c_img) and a_cap != c_cap
    picture = web_still(5, seed=3)  # one picture depends on (seed, index) only
    assert picture.frame.shape == (112, 112, 3) and picture.caption == a_cap[5]
    assert picture.apex and all(0.0 < v <= 1.0 for v in picture.apex.values())
    assert web_stills(0, seed=3, size=32, progress=False)[0].shape == (0, 3, 32, 32)


def test_web_captions_describe_the_face_not_the_person() -> None:
    _, captions = web_stills(60, seed=0, size=32, progress=False)
    assert len(set(captions)) > 50  # varied wording
    assert all(c and c[0].isupper() and c.endswith(".") for c in captions)
    assert not any(IDENTITY_WORDS.search(c) for c in captions), [c for c in captions if IDENTITY_WORDS.search(c)]
    emotion_words = {w for adjs, nouns in CLASS_WORDS.values() for w in adjs + nouns}
    assert any(any(w in c for w in emotion_words) for c in captions)  # some name the emotion
    assert sum(bool(re.search(r"eyebrow|brow|mouth|lip|eyes|nose|gaze|head|smile", c)) for c in captions) > 40
