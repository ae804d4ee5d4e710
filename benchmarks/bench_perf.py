"""The performance issue's items side by side, before / after, in one run, plus a FERV39k-sized estimate.

"Encode each frame once, recompute nothing, bf16 where the hardware has it":
1. frame cache of looped short clips (distinct frames encoded once);      (bench_perf_items.py)
2. interview features of both encoders from one pass over each video;    (bench_perf_items.py)
3. frames per pass of the image tower (ViT-B/32 fp32 frames/s per batch; the default vs 256);
4. nested CV's inner grid search in n_jobs processes;                    (bench_perf_items.py)
5. web pictures from a disk cache, AdamW foreach;                        (bench_perf_items.py)
6. FLOPs per frame counted with FlopCounterMode, % of a matmul measured in this run;
7. bf16 autocast vs fp32 frame encoding (ViT-B/32);
8. estimated end-to-end zero-shot rate of a FERV39k-sized evaluation (7,847 clips x 32 frames) from the
   measured stage rates (decode + preprocess, frame encoding, temporal model + scoring), CPU fp32, CPU bf16
   and CUDA when available;
9. the tiny CLIP's pretraining step: text tower in length groups, AdamW on the used embedding rows only;
                                                                          (bench_perf_pretrain.py)
10. class descriptions parsed once per file, cached frame features read once per training.
                                                                          (bench_perf_pretrain.py)

Real-size model: `random:ViT-B/32` (random weights, the real architecture and speed). Every equal-output
check must pass (exit code 1 otherwise). Default run: about 3 minutes on 2 CPU cores; `--quick`: a tiny
model and sizes, seconds, numbers meaningless (the smoke test). Results:
`benchmarks/results/perf-<host kind>-<date>[-quick].json` and `.md`.

Usage:
    .venv/bin/python benchmarks/bench_perf.py [--quick] [--threads N] [--out DIR] [--device auto|cpu|cuda]
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import bench_perf_items as items
import bench_perf_pretrain as pretrain_items
from bench_common import (BenchContext, SectionResult, cuda_sync, forward_flops, host_kind, load_average,
                          machine_info, matmul_peak_tflops, measure, synthetic_clips)
from emoclip_lib.data import CANONICAL_CLASSES, VideoDataset
from emoclip_lib.model import ModelConfig, build_model
from emoclip_lib.runtime import CPU_FRAME_BATCH, autocast_context, loader_settings

TITLE = "Performance items, before / after"
FERV39K_CLIPS, FERV39K_FRAMES = 7847, 32
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def encode_rate(model: torch.nn.Module, batch: int, precision: str, device: torch.device,
                repeats: int = 1) -> tuple[float, float | None]:
    """Frames/s of the image tower (no gradient) from wall and (CPU only) CPU time, one batch size."""
    res = int(model.input_resolution)
    frames = torch.randn(1, batch, 3, res, res, generator=torch.Generator().manual_seed(0)).to(device)

    def step() -> None:
        with torch.no_grad(), autocast_context(device, precision):
            model.encode_frames(frames)

    t = measure(step, repeats=repeats, warmup=0, sync=cuda_sync(device))
    return batch / t["median_s"], (batch / t["cpu_median_s"] if device.type == "cpu" else None)


def batch_item(result: SectionResult, model: torch.nn.Module, device: torch.device,
               batches: tuple[int, ...], label: str) -> dict[str, Any]:
    """Items 3 and 7: fp32 frames/s per frames-per-pass (the default vs 256 frames, the frame cache's passes
    before: 8 clips x 32 frames) and bf16 frames/s at the default pass."""
    encode_rate(model, batches[0], "fp32", device)  # warm-up
    rates: dict[str, dict[int, tuple[float, float | None]]] = {}
    for precision in DTYPES:
        sweep = batches if precision == "fp32" else batches[1:3]  # bf16: the default and the next size
        rates[precision] = {b: encode_rate(model, b, precision, device) for b in sweep}
        text = ", ".join(f"{b}: {w:.1f}" for b, (w, _) in rates[precision].items())
        best_cpu = max(c or 0 for _, c in rates[precision].values()) or None
        result.add(f"3/7 {label} encode {precision}, sweep", max(w for w, _ in rates[precision].values()),
                   "frames/s", f"best of frames per pass {text}", cpu=best_cpu)
    default, big = batches[1], batches[-1]
    wall, cpu = rates["fp32"][default], rates["fp32"][big]
    result.add(f"3 frames per pass: {default} (default) / {big} (before)", wall[0] / cpu[0], "x",
               "fp32 frames/s ratio", cpu=wall[1] / cpu[1] if wall[1] and cpu[1] else None)
    bf, fp = rates["bf16"][default], rates["fp32"][default]
    has_bf16 = device.type == "cuda" or torch.cpu._is_avx512_bf16_supported()
    result.add(f"7 bf16 autocast / fp32, {default} frames per pass", bf[0] / fp[0], "x",
               f"CPU bf16 units (AVX512-BF16/AMX): {'yes' if has_bf16 else 'no'}",
               cpu=bf[1] / fp[1] if bf[1] and fp[1] else None)
    return {"rates": {p: {b: w for b, (w, _) in r.items()} for p, r in rates.items()}, "default_batch": default}


def precision_check(result: SectionResult, model: torch.nn.Module, device: torch.device) -> None:
    """Item 7: bf16 frame embeddings close to fp32 ones; fp32 context changes nothing."""
    res = int(model.input_resolution)
    frames = torch.randn(1, 8, 3, res, res, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        plain = model.encode_frames(frames)[0]
        with autocast_context(device, "fp32"):
            same = model.encode_frames(frames)[0]
        with autocast_context(device, "bf16"):
            bf16 = model.encode_frames(frames)[0].float()
    result.check("7 precision fp32 context vs no context (max abs diff)", float((plain - same).abs().max()), 0.0)
    cos = float(F.cosine_similarity(plain, bf16, dim=-1).min())
    result.check("7 bf16 vs fp32 frame embeddings (1 - min cosine)", 1.0 - cos, 0.01)


def flops_item(result: SectionResult, model: torch.nn.Module, device: torch.device, rates: dict,
               default: int, quick: bool) -> dict[str, Any]:
    """Item 6: counted FLOPs per frame and the encoder's % of a dense matmul measured now, per precision."""
    res = int(model.input_resolution)
    flops = forward_flops(model.backbone.visual, torch.zeros(1, 3, res, res, device=device))
    result.add("6 FLOPs per frame (FlopCounterMode)", flops / 1e9, "GFLOP",
               "multiply-add = 2 FLOPs; bench_cuda's old constant was 4.4 (multiply-adds)")
    peaks = {}
    for precision, dtype in DTYPES.items():
        peaks[precision] = matmul_peak_tflops(device, dtype, n=512 if quick else 2048, repeats=3)
        achieved = rates[precision][default] * flops / 1e12
        result.add(f"6 encode {precision}: % of matmul peak", 100 * achieved / peaks[precision], "%",
                   f"{1e3 * achieved:.1f} of {1e3 * peaks[precision]:.1f} GFLOP/s ({'2048' if not quick else '512'}^3 "
                   f"matmul, same run, {torch.get_num_threads()} threads)")
    return {"flops_per_frame": flops, "matmul_tflops": peaks}


def _stage_rates(model: torch.nn.Module, work: Path, device: torch.device, quick: bool) -> dict[str, float]:
    """Clips/s of decode + preprocess (224 px, 32 frames) and of temporal model + zero-shot scoring."""
    rows = synthetic_clips(work / "eval_clips", 2 if quick else 6, 40, seed=3)
    dataset = VideoDataset(rows, work / "eval_clips", CANONICAL_CLASSES, FERV39K_FRAMES, 1, 224)
    dataset[0]
    decode = measure(lambda: [dataset[i] for i in range(len(rows))], repeats=1)
    feats = torch.randn(64, FERV39K_FRAMES, int(model.backbone.visual.output_dim), device=device)  # (B, T, D)
    text = F.normalize(torch.randn(7, feats.shape[-1], device=device), dim=-1)

    def temporal() -> None:
        with torch.no_grad():
            (F.normalize(model.encode_video_features(feats), dim=-1) @ text.t()).softmax(-1)

    pool = measure(temporal, repeats=3, warmup=1, sync=cuda_sync(device))
    return {"decode_clips_per_s": len(rows) / decode["median_s"], "temporal_clips_per_s": 64 / pool["median_s"]}


def end_to_end_item(result: SectionResult, model: torch.nn.Module, work: Path, device: torch.device,
                    rates: dict, default: int, quick: bool) -> dict[str, Any]:
    """Item 8: estimated FERV39k zero-shot clips/s from the stage rates (serial on the CPU)."""
    stages = _stage_rates(model, work, device, quick)
    out = {"stages": stages}
    for precision in DTYPES:
        encode = rates[precision][default] / FERV39K_FRAMES  # clips/s
        rate = 1.0 / (1.0 / stages["decode_clips_per_s"] + 1.0 / encode + 1.0 / stages["temporal_clips_per_s"])
        out[f"{device.type}_{precision}"] = rate
        result.add(f"8 FERV39k zero-shot estimate, {device.type} {precision}", rate, "clips/s",
                   f"{FERV39K_CLIPS} clips x {FERV39K_FRAMES} frames: {FERV39K_CLIPS / rate / 3600:.1f} h; decode "
                   f"{stages['decode_clips_per_s']:.1f}, encode {encode:.2f}, temporal "
                   f"{stages['temporal_clips_per_s']:.0f} clips/s")
    return out


def cuda_estimate(result: SectionResult, stages: dict[str, float], quick: bool) -> dict[str, Any]:
    """Item 8 on CUDA: GPU encode rates at 256 frames per pass, decode on CPU workers in parallel."""
    gpu = torch.device("cuda")
    model = build_model(ModelConfig(backbone="random:ViT-B/32"), device=gpu).eval()
    out = {}
    for precision in ("fp32", "bf16"):
        encode_rate(model, 32, precision, gpu)  # warm-up
        frames_s, _ = encode_rate(model, 64 if quick else 256, precision, gpu, repeats=3)
        workers = int(loader_settings(gpu)["num_workers"])  # what training and the frame cache use on CUDA
        rate = min(frames_s / FERV39K_FRAMES, workers * stages["decode_clips_per_s"])
        out[precision] = {"encode_frames_per_s": frames_s, "clips_per_s": rate}
        result.add(f"8 FERV39k zero-shot estimate, cuda {precision}", rate, "clips/s",
                   f"{FERV39K_CLIPS / rate / 60:.1f} min; GPU encode {frames_s:.0f} frames/s, decode "
                   f"{workers} CPU workers x {stages['decode_clips_per_s']:.1f} clips/s (pipelined)")
    return out


def run(ctx: BenchContext) -> SectionResult:
    """Every item, before / after, with equal-output checks.

    Args:
        ctx: suite context (quick sizes, scratch folder, device).
    """
    result = SectionResult(TITLE)
    device = ctx.device
    tiny = build_model(ModelConfig(backbone="tiny"), seed=ctx.seed).eval()
    big = tiny if ctx.quick else build_model(ModelConfig(backbone="random:ViT-B/32"), seed=ctx.seed).eval()
    batches = (4, 8, 16) if ctx.quick else (16, CPU_FRAME_BATCH, 64, 256)
    details: dict[str, Any] = {"model": "tiny" if ctx.quick else "random:ViT-B/32"}
    details["1_frames"] = items.frames_item(result, big, ctx.work_dir, ctx.quick)
    details["2_interviews"] = items.interview_item(result, tiny, ctx.work_dir, ctx.quick)
    cpu = torch.device("cpu")
    sweep = batch_item(result, big, cpu, batches, details["model"])
    precision_check(result, big, cpu)
    details["3_7_encode"] = sweep
    details["4_regression"] = items.regression_item(result, ctx.quick)
    details["5_web_adamw"] = items.web_item(result, ctx.work_dir, ctx.quick)
    details["6_flops"] = flops_item(result, big, cpu, sweep["rates"], sweep["default_batch"], ctx.quick)
    details["8_end_to_end"] = end_to_end_item(result, big, ctx.work_dir, cpu, sweep["rates"], sweep["default_batch"],
                                              ctx.quick)
    details["9_pretrain_step"] = pretrain_items.pretrain_item(result, ctx.quick)
    details["10_rereads"] = pretrain_items.reread_item(result, ctx.work_dir, ctx.quick)
    if device.type == "cuda":
        details["8_end_to_end"]["cuda"] = cuda_estimate(result, details["8_end_to_end"]["stages"], ctx.quick)
    result.details = details
    return result


def main(argv: list[str] | None = None) -> int:
    """Run every item, write `perf-<host>-<date>[-quick].json` and `.md`, print the table.

    Args:
        argv: command-line arguments (default: sys.argv[1:]).
    """
    import run_benchmarks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and sizes: checks that it runs")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="cuda adds the CUDA estimate of item 8 (auto: when available)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    started = time.perf_counter()
    report: dict[str, Any] = {
        "schema": 1, "date": datetime.date.today().isoformat(),
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_kind": host_kind(device), "quick": args.quick, "seed": 0,
        "command": " ".join(["benchmarks/bench_perf.py"] + (sys.argv[1:] if argv is None else list(argv))),
        "machine": machine_info(device), "load_average": {"before": load_average()}, "sections": {}}
    with tempfile.TemporaryDirectory(prefix="emoclip-perf-") as work:
        ctx = BenchContext(quick=args.quick, work_dir=Path(work), device=device)
        result = run(ctx)
    result.seconds = time.perf_counter() - started
    report["sections"]["perf"] = result.to_dict()
    report["load_average"]["after"] = load_average()
    report["total_seconds"] = time.perf_counter() - started
    report["all_ok"] = all(c["passed"] for c in result.checks)
    stem = f"perf-{report['host_kind']}-{report['date']}" + ("-quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    table = run_benchmarks.markdown(report)
    (args.out / f"{stem}.md").write_text(table, encoding="utf-8")
    print(table)
    print(f"wrote {args.out / stem}.json and .md", file=sys.stderr)
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
