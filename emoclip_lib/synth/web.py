"""Synthetic "web" pictures for pretraining the tiny stand-in CLIP: many faces, each with alt-text.

OpenAI's CLIP saw hundreds of millions of web images with their text, faces and their expressions among
them, which is why its frozen image tower already tells a smile from a frown. The synthetic profile's
`tiny` CLIP starts from random weights, and the few hundred training clips of the synthetic world are too
few to learn that from (it memorises who is in each clip instead). `web_stills` plays the web: thousands
of single pictures of random people in random rooms, poses and expressions, each captioned with what the
face does (`still_caption`), never who it is. Generated in memory from the seed; with `cache_dir`, the
pictures and captions are also kept on disk, keyed by what they are drawn from (`web_cache_key`).

Drawing takes about 5 ms a picture on one core, a third of it the sensor noise (`backdrop.noise_bank`:
three 120 x 120 banks of Gaussian noise per clip, one numpy call). The noise cannot be drawn more cheaply
and stay the same: a still uses one crop of one bank, but the banks' draws advance the random stream the
rest of the picture and its caption come from. Hence the cache.

Measured (benchmarks/pretrain_probe.py): a ridge probe of the pretrained image embeddings predicts the drawn
expression components of unseen faces with mean R^2 0.16 (brow raise 0.61, brow lowering 0.43, widened eyes
0.42) after 14 epochs over the training clips and 6000 pictures (686 steps, 2 threads), against 0.00 for the
clips-only pretraining (60 epochs); 0.19 with the earlier 1-thread pretraining. In a development run, drawing the pictures' expressions at 35-100% strength with
random head roll and turn brought the same budget down to 0.03.
"""
from __future__ import annotations

import functools

import hashlib
import inspect
import json
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch

from ..data import CANONICAL_CLASSES
from ..data import resize_center_crop_uint8
from ..io_utils import atomic_write
from .captions import still_caption
from .faces import CHANNELS
from ..workers import parallel_map
from .people import sample_person, sample_scene
from .recipes import VISIBLE_MIN, clip_rng, render_states, sample_expression

WEB_FORMAT = 1  # version of the pictures and captions drawn here: bump when either changes (cache key)


def _still_states(apex: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """(1, len(CHANNELS)) channels of one picture: the expression, a head position and sometimes speech.

    No head roll or turn: the measured configuration (module docstring) has neither."""
    states = np.zeros((1, len(CHANNELS)))
    for comp, value in apex.items():
        states[0, CHANNELS.index(comp)] = value
    states[0, CHANNELS.index("shift_x")], states[0, CHANNELS.index("shift_y")] = rng.normal(0.0, 2.0, 2)
    if rng.random() < 0.3:
        states[0, CHANNELS.index("talk")] = rng.uniform(0.2, 0.7)
    return states


class WebPicture(NamedTuple):
    """One web picture: what is drawn, what its caption says, and the drawn expression (for probes)."""

    frame: np.ndarray  # (112, 112, 3) uint8 RGB
    caption: str
    apex: dict[str, float]  # component -> drawn intensity


def web_still(index: int, seed: int) -> WebPicture:
    """Picture `index` of the web corpus of `seed`; depends on (seed, index) only.

    Args:
        index: picture number (>= 0).
        seed: world seed.
    """
    rng = clip_rng(seed, "web", index, 0)
    person, scene = sample_person(f"w{index}", rng), sample_scene(rng)
    label = str(rng.choice(CANONICAL_CLASSES))
    # full-strength expressions: the measured configuration (module docstring); weaker ones learnt less
    apex = sample_expression(label, rng)
    frame = render_states(person, scene, _still_states(apex, rng), rng)[0]
    visible = {comp: value for comp, value in apex.items() if value >= VISIBLE_MIN}
    return WebPicture(frame, still_caption(person, scene, visible, (label,), rng), apex)


def web_cache_key(n: int, seed: int, size: int) -> str:
    """Key of the cached pictures: (n, seed, size), `WEB_FORMAT`, the drawing code and the library versions.

    The code is the source of this package and of the resize helper, so an edit of the drawing code is a
    miss even when `WEB_FORMAT` was not bumped.

    Args:
        n, seed, size: as in `web_stills`.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")) + [Path(inspect.getsourcefile(resize_center_crop_uint8))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    blob = {"format": WEB_FORMAT, "n": int(n), "seed": int(seed), "size": int(size), "code": digest.hexdigest(),
            "numpy": np.__version__, "opencv": cv2.__version__, "torch": torch.__version__.split("+")[0]}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def _read_cached(file: Path, n: int, size: int) -> tuple[torch.Tensor, list[str]] | None:
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as data:
            images, captions = data["images"], data["captions"].tolist()
    except (OSError, ValueError, KeyError):
        return None  # damaged: draw again and overwrite
    if images.shape != (n, 3, size, size) or images.dtype != np.uint8 or len(captions) != n:
        return None
    return torch.from_numpy(images), [str(c) for c in captions]


def _draw(n: int, seed: int, size: int, progress: bool) -> tuple[torch.Tensor, list[str]]:
    chunks, pending, captions = [], [], []
    pictures = parallel_map(functools.partial(web_still, seed=seed), list(range(n)), "web pictures", progress)
    for i, picture in enumerate(pictures):
        pending.append(picture.frame)
        captions.append(picture.caption)
        if len(pending) == 256 or i == n - 1:  # resize in chunks: one call per 256 pictures
            batch = torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2)  # (b, 3, 112, 112)
            chunks.append(resize_center_crop_uint8(batch, size))
            pending = []
    return (torch.cat(chunks) if chunks else torch.zeros(0, 3, size, size, dtype=torch.uint8)), captions


def web_stills(n: int, seed: int, size: int, progress: bool = True,
               cache_dir: str | Path | None = None) -> tuple[torch.Tensor, list[str]]:
    """The first `n` pictures of the web corpus, resized and centre-cropped to `size`, with their captions.

    Args:
        n: number of pictures.
        seed: world seed.
        size: output side length (the CLIP's input resolution).
        progress: show a progress bar.
        cache_dir: folder of cached pictures (`web-<web_cache_key>.npz`, written atomically), or None to
            draw them every time; the cached pictures are byte-identical to drawn ones.
    Returns:
        (n, 3, size, size) uint8 pictures and n captions.
    """
    file = None if cache_dir is None else Path(cache_dir) / f"web-{web_cache_key(n, seed, size)}.npz"
    cached = None if file is None else _read_cached(file, n, size)
    if cached is not None:
        return cached
    images, captions = _draw(n, seed, size, progress)
    if file is not None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, images=images.numpy(), captions=np.array(captions, dtype=str))

        atomic_write(file, write)
    return images, captions
