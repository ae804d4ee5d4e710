"""Shared test helpers: a one-thread torch fixture, small video writers, a drawn face, a MAFW-layout tree, a tiny
chain profile."""
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


def write_video(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """Write RGB frames (H, W, 3) uint8 to an mp4 (mp4v)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def random_video(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (64, 48), interpolation=cv2.INTER_CUBIC)
    return write_video(path, [np.roll(base, 2 * t, axis=1) for t in range(n)])


SKIN = (210, 170, 140)
BACKGROUND = (40, 60, 110)


def draw_face(height: int, width: int, cx: int, cy: int, scale: float = 1.0) -> np.ndarray:
    """An RGB cartoon face (hair, oval, brows, eye sockets, eyes, nose, mouth) centred at (cx, cy).

    The Haar cascade found this drawing in 280 of 280 random placements (scale 0.4-1.1) tried
    while writing these tests; without the hair it missed about one small face in five.
    """
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = BACKGROUND

    def p(dx: float, dy: float) -> tuple[int, int]:
        return cx + int(round(dx * scale)), cy + int(round(dy * scale))

    def r(a: float, b: float) -> tuple[int, int]:
        return max(1, int(round(a * scale))), max(1, int(round(b * scale)))

    cv2.ellipse(img, p(0, -8), r(50, 66), 0, 180, 360, (50, 35, 25), -1, cv2.LINE_AA)  # hair
    cv2.ellipse(img, p(0, 0), r(45, 60), 0, 0, 360, SKIN, -1, cv2.LINE_AA)
    for dx in (-18, 18):
        cv2.ellipse(img, p(dx, -14), r(14, 9), 0, 0, 360, (165, 130, 105), -1, cv2.LINE_AA)  # socket
        cv2.ellipse(img, p(dx, -12), r(10, 5), 0, 0, 360, (40, 30, 30), -1, cv2.LINE_AA)
        cv2.line(img, p(dx - 12, -26), p(dx + 12, -26), (60, 40, 30), max(1, int(4 * scale)), cv2.LINE_AA)
    cv2.line(img, p(0, -5), p(0, 15), (150, 110, 90), max(1, int(3 * scale)))
    cv2.ellipse(img, p(0, 33), r(18, 5), 0, 0, 360, (90, 40, 40), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


# --- a MAFW release in its official layout (GBK split files) ---
SINGLE = {f"{i:05d}": lab for i, lab in enumerate(
    ["anger", "happy", "Sad", "surprised", "neutral", "fear", "disgust", "contempt", "anxiety", "helplessness"],
    start=1)}
COMPOUND = {f"{i:05d}": lab for i, lab in enumerate(
    ["anger_disgust", "happiness_surprise", "sadness_anxiety", "fear_surprise", "disappointment_sadness"], start=11)}
CHINESE = "这个人皱着眉头，看起来很生气。"


def english(clip: str) -> str:
    return f"The person in clip {clip} frowns, then looks away."


def write_gbk(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode("gbk"))


def make_mafw(root: Path) -> None:
    """Five folds; train lists with captions, test lists without (set_1's test list in with_caption_new)."""
    for kind, labels, per_fold in (("single", SINGLE, 2), ("compound", COMPOUND, 1)):
        clips = list(labels)
        for fold in range(1, 6):
            test = clips[(fold - 1) * per_fold: fold * per_fold]
            train = [c for c in clips if c not in test]
            base = root / "Train_Test_Set" / kind
            write_gbk(base / "with_caption_new" / f"set_{fold}" / "train.txt",
                      [f"{c}.mp4\t{labels[c]}\t{CHINESE}\t{english(c)}" for c in train])
            test_dir = "with_caption_new" if fold == 1 else "no_caption_new"
            write_gbk(base / test_dir / f"set_{fold}" / "test.txt", [f"{c}.mp4\t{labels[c]}" for c in test])
    for clip in list(SINGLE) + list(COMPOUND):
        if clip != "00010":
            (root / "data" / "faces" / clip).mkdir(parents=True)
    (root / "data" / "clips").mkdir(parents=True)


# --- official EmoCLIP checkpoints ---
def official_state(clip: torch.nn.Module, ref: torch.nn.Module, visual_only: bool) -> dict:
    """A state dict in the official EmoCLIP layout (DDP prefix, fp16 CLIP); visual-only = the downstream variant."""
    state = {}
    for k, v in clip.state_dict().items():
        if not visual_only or k.startswith("visual."):
            state[f"module.backbone.{k}"] = v.half()  # official CUDA runs keep CLIP in fp16
    for k, v in ref.state_dict().items():
        state[f"module.temporal.{k}"] = v
    if visual_only:
        state["module.mlp.0.weight"] = torch.randn(16, 64)
        state["module.mlp.0.bias"] = torch.zeros(16)
    else:
        state["module.logit_scale"] = torch.tensor(3.0)
    return state


@pytest.fixture
def interview_videos(tmp_path: Path) -> tuple[Path, Path]:
    """Three small interview videos (30, 21 and 9 frames) of two subjects and their manifest."""
    root = tmp_path / "videos"
    root.mkdir()
    for k, n in enumerate((30, 21, 9)):
        random_video(root / f"v{k}.mp4", n, seed=k)
    manifest = tmp_path / "interviews.csv"
    manifest.write_text("path,subject,session,hallucination,apathy\nv0.mp4,s1,a,3,1.5\nv1.mp4,s1,b,5,\n"
                        "v2.mp4,s2,a,2,4\n", encoding="utf-8")
    return manifest, root


def tiny_chain_profile(description: str, notebooks: list[str], **extra: object) -> str:
    """Profile YAML of a tiny synthetic chain (tiny world and CLIP, 1 pretraining epoch, 2 epochs of 4-frame clips).

    Args:
        description: the profile's description.
        notebooks: the stages `reproduce` runs, e.g. ["01", "02"].
        extra: more parameters (name: YAML scalar), after the shared ones.
    """
    params = {"synth_size": "tiny", "backbone": "tiny", "pretrain_epochs": 1, "pretrain_web_pictures": 16,
              "epochs": 2, "batch_size": 8, "clip_len": 4, "optimizer": "adamw", "schedule": "cosine", **extra}
    lines = "".join(f"  {k}: {v}\n" for k, v in params.items())
    return f"description: {description}\nnotebooks: {notebooks}\nparameters:\n{lines}"
