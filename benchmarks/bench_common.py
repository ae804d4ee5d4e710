"""Shared pieces of the benchmark suite: section results, timing, machine description, synthetic clips.

Every section module exposes `run(ctx: BenchContext) -> SectionResult`; `run_benchmarks.py` calls them
in one process and writes the results side by side.
"""
from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.synth.files import write_video
from emoclip_lib.synth.world import render_example


@dataclass
class BenchContext:
    """What every section receives."""

    quick: bool  # tiny sizes (smoke test), numbers meaningless
    work_dir: Path  # scratch folder (synthetic clips, caches); deleted after the run
    device: torch.device  # "cuda" when available, else "cpu"
    seed: int = 0
    progress: bool = False


@dataclass
class SectionResult:
    """One section's outcome: table rows, equal-output checks and raw details (all JSON-ready)."""

    title: str
    status: str = "ok"  # "ok", "skipped" or "error"
    note: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the section

    def add(self, name: str, value: float | str | None, unit: str = "", note: str = "",
            cpu: float | None = None) -> None:
        """Add a table row.

        Args:
            name: what was measured.
            value: the number from wall-clock time (rounded for the table only), a string, or None.
            unit: "s", "clips/s", "x", ...
            note: short context (sizes, settings).
            cpu: the same figure computed from this process's CPU time instead (None where it does not
                apply: GPU work, worker processes, sizes). On a shared machine with `--threads 1` it is
                about what an idle machine would show.
        """
        self.rows.append({"name": name, "value": value, "cpu_value": cpu, "unit": unit, "note": note})

    def check(self, name: str, value: float, limit: float, note: str = "") -> bool:
        """Record an equal-output check that passes when `value <= limit`.

        Args:
            name: what is compared.
            value: the observed difference (e.g. max abs diff).
            limit: the tolerance.
            note: how the difference is computed.
        """
        passed = bool(value <= limit)
        self.checks.append({"name": name, "value": float(value), "limit": float(limit), "passed": passed,
                            "note": note})
        return passed

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


def measure(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1,
            sync: Callable[[], None] | None = None) -> dict[str, float]:
    """Time `fn()` after `warmup` untimed calls.

    Args:
        fn: the work to time.
        repeats: timed calls.
        warmup: untimed calls first.
        sync: called before reading the clock (e.g. `torch.cuda.synchronize`).
    Returns:
        dict median_s, min_s, max_s, repeats and cpu_median_s (this process's CPU time per call).
    """
    wait = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    wait()
    times, cpu_times = [], []
    for _ in range(max(1, repeats)):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        wait()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": len(times),
            "cpu_median_s": statistics.median(cpu_times)}


def cuda_sync(device: torch.device) -> Callable[[], None] | None:
    """`torch.cuda.synchronize` on a CUDA device, None elsewhere.

    Args:
        device: where the timed work runs.
    """
    return torch.cuda.synchronize if device.type == "cuda" else None


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of CPU flash attention (torch's flop counter knows the CUDA kernels only): the same formula."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def forward_flops(module: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one no-grad forward pass, counted by `torch.utils.flop_counter.FlopCounterMode`.

    A multiply-add counts 2 FLOPs (as in peak FLOP/s figures); matrix products, convolutions and attention
    are counted (CPU flash attention too), element-wise work is not.

    Args:
        module: the model (on the inputs' device).
        inputs: its positional inputs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flops
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        module(*inputs)
    return int(counter.get_total_flops())


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 3) -> float:
    """Measured dense matmul rate (TFLOP/s) of an (n x n) @ (n x n) product in `dtype` on `device`.

    The reference for "% of peak": what this machine's matmul reaches in the same run, at the same thread
    count and load (fp32 on CUDA honours `torch.backends.cuda.matmul.allow_tf32`).

    Args:
        device: where to multiply.
        dtype: torch.float32, torch.bfloat16 or torch.float16.
        n: matrix side (2 n^3 FLOPs per product).
        repeats: timed products (median), after one warm-up.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    t = measure(lambda: torch.mm(a, b), repeats=repeats, warmup=1, sync=cuda_sync(device))
    return 2.0 * n ** 3 / t["median_s"] / 1e12


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU model, cores, torch version and threads, device, library versions and the git commit.

    Args:
        device: the device the suite runs on.
    """
    import cv2
    import decord

    info: dict[str, Any] = {
        "cpu_model": cpu_model(), "cpu_cores": os.cpu_count(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "device": str(device), "python": platform.python_version(),
        "platform": platform.platform(), "decord": decord.__version__, "opencv": cv2.__version__,
        "git_commit": _git_commit(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                    allow_tf32=bool(torch.backends.cuda.matmul.allow_tf32))
    return info


def host_kind(device: torch.device) -> str:
    """File-name tag of the machine: `cuda-<gpu name>` or `cpu-<cores>c`.

    Args:
        device: the device the suite runs on.
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device).lower()
        return "cuda-" + re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    return f"cpu-{os.cpu_count()}c"


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def synthetic_clips(folder: Path, count: int, n_frames: int, seed: int = 0) -> list[ManifestRow]:
    """Write `count` synthetic face clips (112 x 112 mp4, from `synth_world.render_example`), once.

    Args:
        folder: where the clips go (existing files with the expected names are reused).
        count: number of clips; each has its own seed and class.
        n_frames: frames per clip (at least 8).
        seed: base seed.
    Returns:
        manifest rows (paths relative to `folder`, captions from the synthetic world).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        label = CANONICAL_CLASSES[i % len(CANONICAL_CLASSES)]
        frames, spec = render_example(label, seed=seed * 100_003 + i, n_frames=n_frames)
        rel = f"clip_{n_frames:03d}_{i:05d}.mp4"
        if not (folder / rel).is_file():
            write_video(folder / rel, frames)
        rows.append(ManifestRow(path=rel, labels=label, caption=spec.caption, subject=f"s{i}", row_number=i + 1))
    return rows
