"""Frame preprocessing on tensors (no per-frame PIL loop): resize, centre crop, CLIP normalisation, augmentation."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# CLIP's image normalisation constants (RGB).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def to_unit_float(frames: torch.Tensor) -> torch.Tensor:
    """Convert uint8 frames to float32 in [0, 1]; float frames are returned as float32 unchanged.

    Args:
        frames: (..., 3, H, W) uint8 or float tensor.
    """
    if frames.dtype == torch.uint8:
        return frames.float().div_(255.0)
    return frames.float()


def resize_center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shortest side to `size` (bicubic, antialiased) and take the centre `size` x `size` crop.

    Args:
        frames: (..., 3, H, W) uint8 or float in [0, 1], e.g. (B, T, 3, H, W).
        size: output side length in pixels.
    Returns:
        float32 tensor (..., 3, size, size) clamped to [0, 1].
    """
    if frames.dim() < 3 or frames.shape[-3] != 3:
        raise ValueError(f"expected frames shaped (..., 3, H, W), got {tuple(frames.shape)}")
    lead, (h, w) = frames.shape[:-3], frames.shape[-2:]
    x = to_unit_float(frames).reshape(-1, 3, h, w)  # (N, 3, H, W)
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[:, :, top : top + size, left : left + size].clamp_(0.0, 1.0)
    return x.reshape(*lead, 3, size, size)


def resize_center_crop_uint8(frames: torch.Tensor, size: int) -> torch.Tensor:
    """`resize_center_crop` stored compactly: the same pixels rounded to uint8 (frames kept in memory).

    Args:
        frames: (..., 3, H, W) uint8 or float in [0, 1].
        size: output side length in pixels.
    """
    return resize_center_crop(frames, size).mul_(255.0).round_().to(torch.uint8)


def normalize(frames: torch.Tensor) -> torch.Tensor:
    """Apply CLIP's mean/std normalisation.

    Args:
        frames: (..., 3, H, W) float in [0, 1] (uint8 is converted first).
    """
    x = to_unit_float(frames)
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def preprocess_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize, centre-crop and normalise frames as CLIP expects.

    Args:
        frames: (..., 3, H, W) uint8 or float in [0, 1].
        size: the model's input resolution.
    """
    return normalize(resize_center_crop(frames, size))


def augment_clip(
    frames: torch.Tensor,
    generator: torch.Generator,
    max_rotation_deg: float = 6.0,
    flip_p: float = 0.5,
) -> torch.Tensor:
    """Random rotation and horizontal flip, identical for every frame of the clip.

    Args:
        frames: (T, 3, H, W) float in [0, 1].
        generator: CPU generator that draws the angle and the flip (reproducible per clip).
        max_rotation_deg: rotation drawn uniformly in [-max, max] degrees.
        flip_p: probability of a horizontal flip.
    """
    draws = torch.rand(2, generator=generator)
    angle = math.radians((2.0 * float(draws[0]) - 1.0) * max_rotation_deg)
    flip = float(draws[1]) < flip_p
    x = frames.flip(-1) if flip else frames
    if angle == 0.0:
        return x
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    theta = theta.unsqueeze(0).expand(x.shape[0], 2, 3)  # (T, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
