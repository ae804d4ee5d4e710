"""Section 2: temporal transformer forward + backward, this project's module vs the official layout's reference.

`emoclip_lib.model.emoclip.TemporalTransformer` (fused scaled-dot-product attention) and
`emoclip_lib.model.official.OfficialTemporalReference` (einsum attention, the official code's structure) are
given the SAME weights (official keys converted with `official.convert_temporal_keys`) and checked for
equal outputs and input gradients; then both are timed at the official layout (2048-d heads, MLP of
d_model) and ours alone at the default layout (64-d heads, MLP 4 x d_model).
"""
from __future__ import annotations

import torch
from torch import nn

from bench_common import BenchContext, SectionResult, cuda_sync, measure
from emoclip_lib.model.emoclip import TemporalConfig, TemporalTransformer
from emoclip_lib.model.official import OfficialTemporalReference, convert_temporal_keys

TITLE = "Temporal transformer forward+backward"


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"batch": 4, "frames": 8, "d_model": 64, "ff_dim": 128, "layers": 2, "heads": 4, "repeats": 2}
    return {"batch": 64, "frames": 16, "d_model": 512, "ff_dim": 2048, "layers": 2, "heads": 8, "repeats": 3}


def paired_modules(d_model: int, layers: int, heads: int, ff_dim: int,
                   seed: int) -> tuple[OfficialTemporalReference, TemporalTransformer]:
    """The official reference and this project's module at the official layout, holding the same weights.

    Args:
        d_model: embedding size.
        layers: depth.
        heads: attention heads.
        ff_dim: the feed-forward size the official constructor receives (becomes the per-head size).
        seed: initialisation seed of the reference (global RNG untouched).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ref = OfficialTemporalReference(d_model, layers, heads, head_dim=ff_dim, mlp_dim=d_model)
    official_state = {f"temporal.{k}": v for k, v in ref.state_dict().items()}
    converted, unknown = convert_temporal_keys(official_state)
    if unknown:
        raise RuntimeError(f"official keys not converted: {unknown}")
    config = TemporalConfig.official(d_model, layers=layers, heads=heads, ff_dim=ff_dim)
    config.max_positions = ref.pos_embedding.shape[1]
    ours = TemporalTransformer(d_model, config)
    ours.load_state_dict({k[len("temporal."):]: v for k, v in converted.items()})
    return ref, ours


def _forward_backward(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Output (B, D) and the gradient of its sum w.r.t. the input (B, T, D)."""
    module.zero_grad(set_to_none=True)
    inp = x.detach().clone().requires_grad_(True)
    out = module(inp)  # (B, D)
    out.sum().backward()
    return out.detach(), inp.grad.detach()  # type: ignore[union-attr]


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run(ctx: BenchContext) -> SectionResult:
    """Check equal outputs and time forward+backward of both modules.

    Args:
        ctx: suite context (device, quick sizes, seed).
    """
    s = _sizes(ctx.quick)
    result = SectionResult(TITLE)
    ref, ours = paired_modules(s["d_model"], s["layers"], s["heads"], s["ff_dim"], ctx.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed + 1)
        default = TemporalTransformer(s["d_model"], TemporalConfig(layers=s["layers"], heads=s["heads"]))
        x = torch.randn(s["batch"], s["frames"], s["d_model"])  # (B, T, D)
    ref, ours, default, x = ref.to(ctx.device), ours.to(ctx.device), default.to(ctx.device), x.to(ctx.device)
    _equal_checks(result, ref, ours, x)
    sync = cuda_sync(ctx.device)
    timings = {}
    for name, module in (("reference_official", ref), ("ours_official", ours), ("ours_default", default)):
        timings[name] = measure(lambda m=module: _forward_backward(m, x), repeats=s["repeats"], warmup=1, sync=sync)
    _add_rows(result, s, timings, _params(ours), _params(default), ctx.device.type == "cpu")
    result.details = {"sizes": s, "timings": timings, "params": {"official": _params(ours),
                                                                 "default": _params(default)}}
    return result


def _add_rows(result: SectionResult, s: dict[str, int], timings: dict[str, dict[str, float]], official_params: int,
              default_params: int, on_cpu: bool) -> None:
    def pick(name: str, key: str) -> float | None:
        return timings[name][key] if key == "median_s" or on_cpu else None

    def ratio(a: str, b: str, key: str) -> float | None:
        x, y = pick(a, key), pick(b, key)
        return x / y if x is not None and y else None

    shape = f"B={s['batch']} T={s['frames']} D={s['d_model']}"
    official = f"{shape}, {s['heads']}x{s['ff_dim']}-d heads, MLP {s['d_model']}, {official_params / 1e6:.1f}M params"
    default = (f"{shape}, {s['heads']}x{s['d_model'] // s['heads']}-d heads, MLP {4 * s['d_model']}, "
               f"{default_params / 1e6:.1f}M params")
    rows = [("official reference (einsum), official layout", "reference_official", "s/iter", official),
            ("ours (SDPA), official layout", "ours_official", "s/iter", official),
            ("speed-up ours vs reference, official layout", ("reference_official", "ours_official"), "x",
             "same weights"),
            ("ours (SDPA), default layout", "ours_default", "s/iter", default),
            ("speed-up default vs official layout (ours)", ("ours_official", "ours_default"), "x",
             "different models: not weight-compatible")]
    for name, source, unit, note in rows:
        if isinstance(source, tuple):
            result.add(name, ratio(*source, "median_s"), unit, note, cpu=ratio(*source, "cpu_median_s"))
        else:
            result.add(name, pick(source, "median_s"), unit, note, cpu=pick(source, "cpu_median_s"))


def _equal_checks(result: SectionResult, ref: nn.Module, ours: nn.Module, x: torch.Tensor) -> None:
    """Outputs and input gradients of the two modules must agree to float32 rounding."""
    out_ref, grad_ref = _forward_backward(ref, x)
    out_ours, grad_ours = _forward_backward(ours, x)
    out_diff = float((out_ref - out_ours).abs().max())
    grad_diff = float((grad_ref - grad_ours).abs().max())
    out_scale = max(1.0, float(out_ref.abs().max()))
    grad_scale = max(1.0, float(grad_ref.abs().max()))
    result.check("temporal output, ours vs official reference (max abs diff)", out_diff, 1e-4 * out_scale,
                 f"limit 1e-4 x max|output| ({out_scale:.3g})")
    result.check("input gradient, ours vs official reference (max abs diff)", grad_diff, 1e-4 * grad_scale,
                 f"limit 1e-4 x max|grad| ({grad_scale:.3g})")
