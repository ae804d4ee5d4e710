"""Section 3: video loading speed (always on the CPU).

Frames/s of whole-clip decoding from mp4 (decord) and from JPEG frame folders (PIL), both through
`emoclip_lib.data.video.read_frames`; then clips/s of `emoclip_lib.data.dataset.VideoDataset` (training
sampling: 16 frames, every 2nd, resize + centre crop 224, augmentation) behind a DataLoader with 0
and 2 workers, i.e. how many clips per second the loader can feed the model.
"""
from __future__ import annotations

import time
from pathlib import Path

from PIL import Image
from torch.utils.data import DataLoader

from bench_common import BenchContext, SectionResult, measure, synthetic_clips
from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.data.dataset import VideoDataset, collate
from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.data.video import read_frames

TITLE = "Video loading"


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"clips": 4, "frames": 16, "clip_len": 8, "size": 64, "batch": 2, "repeats": 1, "workers": 2}
    return {"clips": 32, "frames": 64, "clip_len": 16, "size": 224, "batch": 8, "repeats": 3, "workers": 2}


def frame_folders(root: Path, rows: list[ManifestRow], quality: int = 95) -> list[ManifestRow]:
    """Decode each mp4 once and store its frames as a JPEG folder next to it (reused when present).

    Args:
        root: folder of the mp4 files.
        rows: rows pointing at the mp4 files.
        quality: JPEG quality.
    Returns:
        the same rows pointing at the frame folders.
    """
    out = []
    for row in rows:
        folder = root / (Path(row.path).stem + "_frames")
        if not folder.is_dir():
            folder.mkdir()
            frames = read_frames(root / row.path).permute(0, 2, 3, 1).numpy()  # (T, H, W, 3)
            for t, frame in enumerate(frames):
                Image.fromarray(frame).save(folder / f"frame_{t + 1:05d}.jpg", quality=quality)
        out.append(ManifestRow(path=folder.name, labels=row.labels, caption=row.caption, row_number=row.row_number))
    return out


def _decode_all(root: Path, rows: list[ManifestRow]) -> int:
    return sum(int(read_frames(root / row.path).shape[0]) for row in rows)


def _loader_pass(dataset: VideoDataset, batch: int, workers: int) -> tuple[float, float, dict[int, float]]:
    """One pass (worker start-up included); returns wall seconds, this process's CPU seconds and a float64
    checksum per clip."""
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate)
    sums: dict[int, float] = {}
    start, cpu_start = time.perf_counter(), time.process_time()
    for item in loader:
        for index, frames in zip(item["index"].tolist(), item["frames"]):
            sums[index] = float(frames.double().sum())
    return time.perf_counter() - start, time.process_time() - cpu_start, sums


def run(ctx: BenchContext) -> SectionResult:
    """Time decoding and the training data loader.

    Args:
        ctx: suite context (quick sizes, seed, work folder).
    """
    s = _sizes(ctx.quick)
    result = SectionResult(TITLE)
    root = ctx.work_dir / "loading"
    mp4_rows = synthetic_clips(root, s["clips"], s["frames"], ctx.seed)
    jpeg_rows = frame_folders(root, mp4_rows)
    n_frames = s["clips"] * s["frames"]
    shape = f"{s['clips']} clips x {s['frames']} frames, 112x112"
    timing = {}
    for kind, rows in (("mp4_decord", mp4_rows), ("jpeg_pil", jpeg_rows)):
        timing[kind] = measure(lambda r=rows: _decode_all(root, r), repeats=s["repeats"], warmup=1)
        label = "mp4 through decord" if kind == "mp4_decord" else "JPEG folders through PIL"
        result.add(f"decode {label}", n_frames / timing[kind]["median_s"], "frames/s", shape,
                   cpu=n_frames / timing[kind]["cpu_median_s"])
    _decode_check(result, root, mp4_rows[0], jpeg_rows[0])
    loaders: dict[str, dict[str, float]] = {}
    sums: dict[str, dict[int, float]] = {}
    for kind, rows in (("mp4", mp4_rows), ("jpeg", jpeg_rows)):
        dataset = VideoDataset(rows, root, CANONICAL_CLASSES, s["clip_len"], 2, s["size"], train=True, augment=True,
                               seed=ctx.seed)
        for workers in (0, s["workers"]):
            _loader_pass(dataset, s["batch"], workers)  # warm the page cache and the code paths
            seconds, cpu_s, sums[f"{kind}_{workers}"] = _loader_pass(dataset, s["batch"], workers)
            loaders[f"{kind}_workers{workers}"] = {"seconds": seconds, "clips_per_s": s["clips"] / seconds,
                                                   "cpu_seconds_main_process": cpu_s}
            result.add(f"VideoDataset + DataLoader, {kind}, {workers} workers", s["clips"] / seconds, "clips/s",
                       f"{s['clip_len']} frames every 2nd, {s['size']}px, augment, batch {s['batch']}",
                       cpu=s["clips"] / cpu_s if workers == 0 else None)
    best = max(loaders.items(), key=lambda kv: kv[1]["clips_per_s"])
    result.add("loader can feed (best setting)", best[1]["clips_per_s"], "clips/s",
               f"{best[0]}; = {best[1]['clips_per_s'] * s['clip_len']:.0f} frames/s at {s['clip_len']} frames/clip")
    for kind in ("mp4", "jpeg"):
        a, b = sums[f"{kind}_0"], sums[f"{kind}_{s['workers']}"]
        diff = max(abs(a[i] - b[i]) for i in a) if a.keys() == b.keys() else float("inf")
        result.check(f"{kind} clips identical with 0 and {s['workers']} workers (max checksum diff)", diff, 0.0,
                     "randomness depends on (seed, epoch, index) only")
    result.details = {"sizes": s, "decode": timing, "loaders": loaders}
    return result


def _decode_check(result: SectionResult, root: Path, mp4_row: ManifestRow, jpeg_row: ManifestRow) -> None:
    """Both decoders must return the same clip (JPEG at quality 95 moves pixels by about 1 level)."""
    a = read_frames(root / mp4_row.path).float()  # (T, 3, H, W)
    b = read_frames(root / jpeg_row.path).float()  # (T, 3, H, W)
    diff = float((a - b).abs().mean()) if a.shape == b.shape else float("inf")
    result.check("mp4 vs JPEG frames (mean abs diff, 0-255)", diff, 3.0, "JPEG quality 95 re-encoding")
