"""Shared test helpers: a one-thread torch fixture and a tiny noise-video writer."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch


@pytest.fixture()
def one_thread():
    """Tiny ops run faster on one thread, and a busy machine does not slow them down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_clip(path: Path, seed: int, frames: int = 12) -> None:
    """Write a 32x32 mp4 of seeded noise frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 32))
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    writer.release()
