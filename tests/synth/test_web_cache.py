"""The web pictures stay byte-identical (hashes recorded from the code before the cache existed) and their
disk cache returns exactly what drawing gives, keyed by what they are drawn from."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from emoclip_lib.synth import web
from emoclip_lib.synth.web import web_cache_key, web_still, web_stills

# sha256 over (frame bytes, caption) of web_still(index, seed) for these seeds and indices, and of
# web_stills(40, seed=3, size=32): computed with emoclip_lib/synth/web.py as of commit 62dfa6b. A change
# here means the pictures changed: bump WEB_FORMAT and record the new hashes.
SEEDS, INDICES = (0, 1, 7), (0, 1, 2, 5, 17, 123, 999, 4321, 5999)
STILLS_SHA = "798e0f9b03bacb900964549111a96a13f8f43514bd5d689f8be9cee16837945c"
STILLS32_SHA = "2504f5e454d54203e0c16a4ae29d41e8088a8b6ecbe669c593ef3cb204704118"


def _digest(images: torch.Tensor, captions: list[str]) -> str:
    return hashlib.sha256(images.numpy().tobytes() + "\n".join(captions).encode()).hexdigest()


def test_pictures_are_byte_identical_to_the_recorded_ones():
    digest = hashlib.sha256()
    for seed in SEEDS:
        for index in INDICES:
            picture = web_still(index, seed)
            digest.update(np.ascontiguousarray(picture.frame).tobytes())
            digest.update(picture.caption.encode())
    assert digest.hexdigest() == STILLS_SHA
    assert _digest(*web_stills(40, seed=3, size=32, progress=False)) == STILLS32_SHA


def test_cache_returns_the_drawn_pictures_without_drawing(tmp_path, monkeypatch):
    drawn = web_stills(40, seed=3, size=32, progress=False, cache_dir=tmp_path)
    assert _digest(*drawn) == STILLS32_SHA and len(list(tmp_path.glob("web-*.npz"))) == 1

    def no_drawing(index: int, seed: int):
        raise AssertionError("a cached picture was drawn again")

    monkeypatch.setattr(web, "web_still", no_drawing)
    images, captions = web_stills(40, seed=3, size=32, progress=False, cache_dir=tmp_path)
    assert images.dtype == torch.uint8 and torch.equal(images, drawn[0]) and captions == drawn[1]
    with pytest.raises(AssertionError, match="drawn again"):
        web_stills(40, seed=4, size=32, progress=False, cache_dir=tmp_path)  # another seed: a miss


def test_cache_key_follows_every_input_and_a_damaged_entry_is_redrawn(tmp_path):
    base = web_cache_key(40, 3, 32)
    assert len({base, web_cache_key(41, 3, 32), web_cache_key(40, 4, 32), web_cache_key(40, 3, 48)}) == 4
    assert web_cache_key(40, 3, 32) == base
    file = tmp_path / f"web-{base}.npz"
    file.write_bytes(b"truncated")
    assert _digest(*web_stills(40, seed=3, size=32, progress=False, cache_dir=tmp_path)) == STILLS32_SHA
    empty, none = web_stills(0, seed=3, size=32, progress=False, cache_dir=tmp_path)
    assert empty.shape == (0, 3, 32, 32) and none == []
    assert web_stills(0, seed=3, size=32, progress=False, cache_dir=tmp_path)[0].shape == (0, 3, 32, 32)
