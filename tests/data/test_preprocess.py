"""Tensor preprocessing: shortest-side resize, centre crop, CLIP normalisation, clip-consistent augmentation."""
from __future__ import annotations

import pytest
import torch

from emoclip_lib.data.preprocess import CLIP_MEAN, CLIP_STD, augment_clip, normalize, preprocess_frames, resize_center_crop


def test_resize_keeps_aspect_and_crops_the_centre():
    frames = torch.zeros(2, 3, 3, 40, 80, dtype=torch.uint8)  # (B, T, 3, H, W)
    frames[..., 30:50] = 255  # a bright vertical band in the middle of the wide frame
    out = resize_center_crop(frames, 20)
    assert out.shape == (2, 3, 3, 20, 20) and out.dtype == torch.float32
    # 40x80 -> 20x40, centre crop keeps columns 10..30 of the resized frame: the band becomes the middle
    assert out[0, 0, 0, 10, 10] > 0.9 and out[0, 0, 0, 10, 0] < 0.2
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_normalize_uses_clip_statistics():
    grey = torch.full((1, 3, 4, 4), 0.5)
    out = normalize(grey)
    for c in range(3):
        assert out[0, c, 0, 0].item() == pytest.approx((0.5 - CLIP_MEAN[c]) / CLIP_STD[c], abs=1e-6)
    torch.testing.assert_close(preprocess_frames(torch.full((1, 3, 4, 4), 128, dtype=torch.uint8), 4),
                               normalize(torch.full((1, 3, 4, 4), 128 / 255)))


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        resize_center_crop(torch.zeros(2, 4, 8, 8), 4)


def test_augmentation_is_the_same_for_every_frame_and_seeded():
    frame = torch.rand(3, 16, 16)
    clip = frame.expand(5, 3, 16, 16).clone()  # (T, 3, H, W): identical frames
    out = augment_clip(clip, torch.Generator().manual_seed(3))
    assert all(torch.equal(out[0], out[t]) for t in range(1, 5))
    again = augment_clip(clip, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    flipped = augment_clip(clip, torch.Generator().manual_seed(0), max_rotation_deg=0.0, flip_p=1.0)
    assert torch.equal(flipped, clip.flip(-1))
