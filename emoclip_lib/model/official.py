"""The official EmoCLIP code's parameter layout: key conversion and a plain reference module.

The official temporal transformer nests each block as Residual(PreNorm(fn)), so its keys read
`temporal.temporal_transformer.layers.{i}.{0|1}.fn.{norm|fn}...`. Its constructor passes the
feed-forward size (2048) where the per-head size goes: heads are 2048-d and the MLP is d_model wide.
`OfficialTemporalReference` reproduces that layout with einsum attention, for tests and benchmarks.
"""
from __future__ import annotations

import re

import torch

from torch import nn

from ..errors import UserError

_PREFIX = "temporal.temporal_transformer.layers."
# official suffix (after "layers.{i}.") -> this project's suffix (after "temporal.blocks.{i}.")
_BLOCK_KEYS: dict[str, str] = {
    "0.fn.norm.weight": "attn_norm.weight",
    "0.fn.norm.bias": "attn_norm.bias",
    "0.fn.fn.to_qkv.weight": "qkv.weight",
    "0.fn.fn.to_out.0.weight": "attn_out.weight",
    "0.fn.fn.to_out.0.bias": "attn_out.bias",
    "1.fn.norm.weight": "mlp_norm.weight",
    "1.fn.norm.bias": "mlp_norm.bias",
    "1.fn.fn.net.0.weight": "mlp_in.weight",
    "1.fn.fn.net.0.bias": "mlp_in.bias",
    "1.fn.fn.net.3.weight": "mlp_out.weight",
    "1.fn.fn.net.3.bias": "mlp_out.bias",
}
_LAYER_RE = re.compile(r"^temporal\.temporal_transformer\.layers\.(\d+)\.(.+)$")


def strip_ddp_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DistributedDataParallel's `module.` prefix where present.

    Args:
        state: a state dict.
    """
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def is_official_state(state: dict[str, torch.Tensor]) -> bool:
    """True when the keys follow the official EmoCLIP layout.

    Args:
        state: a state dict (DDP prefix already stripped).
    """
    return "temporal.cls_token" in state and any(k.startswith(_PREFIX) for k in state)


def convert_temporal_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map official `temporal.*` keys to this project's names.

    Args:
        state: official state dict (no DDP prefix).
    Returns:
        (converted temporal entries, keys that were not recognised).
    """
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if key in ("temporal.cls_token", "temporal.pos_embedding"):
            out[key] = value
            continue
        if not key.startswith("temporal."):
            continue
        match = _LAYER_RE.match(key)
        if match and match.group(2) in _BLOCK_KEYS:
            out[f"temporal.blocks.{match.group(1)}.{_BLOCK_KEYS[match.group(2)]}"] = value
        else:
            unknown.append(key)
    return out, unknown


def temporal_shape(state: dict[str, torch.Tensor], heads: int) -> dict[str, int]:
    """Infer depth, head size, MLP size and positions from official tensors.

    Args:
        state: official state dict (no DDP prefix).
        heads: number of attention heads (not recoverable from the tensors).
    """
    layers = {int(m.group(1)) for k in state if (m := _LAYER_RE.match(k))}
    if not layers:
        raise UserError("no `temporal.temporal_transformer.layers.*` keys: not an official EmoCLIP checkpoint")
    qkv = state[f"{_PREFIX}0.0.fn.fn.to_qkv.weight"]
    if qkv.shape[0] % (3 * heads):
        raise UserError(f"to_qkv has {qkv.shape[0]} outputs, not divisible by 3 x {heads} heads: pass heads=")
    return {
        "layers": max(layers) + 1,
        "heads": heads,
        "head_dim": qkv.shape[0] // (3 * heads),
        "mlp_dim": state[f"{_PREFIX}0.1.fn.fn.net.0.weight"].shape[0],
        "max_positions": state["temporal.pos_embedding"].shape[1],
    }


class _Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim), fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, head_dim**-0.5
        self.to_qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * head_dim, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, D)
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1) for t in self.to_qkv(x).chunk(3, dim=-1))
        attn = torch.einsum("bihd,bjhd->bhij", q, k).mul(self.scale).softmax(dim=-1)  # (B, H, N, N)
        out = torch.einsum("bhij,bjhd->bihd", attn, v).reshape(b, n, -1)  # (B, N, H*dh)
        return self.to_out(out)


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Stack(nn.Module):
    def __init__(self, dim: int, layers: int, heads: int, head_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([
                _Residual(_PreNorm(dim, _Attention(dim, heads, head_dim))),
                _Residual(_PreNorm(dim, _FeedForward(dim, mlp_dim))),
            ])
            for _ in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = ff(attn(x))
        return x


class OfficialTemporalReference(nn.Module):
    """The official temporal module's structure and key names, written plainly (einsum attention).

    Args:
        dim: d_model.
        layers: depth.
        heads: attention heads.
        head_dim: per-head size (2048 in the official runs).
        mlp_dim: MLP hidden size (d_model in the official runs).
        max_positions: positional table size.
    """

    def __init__(self, dim: int, layers: int, heads: int, head_dim: int, mlp_dim: int, max_positions: int = 1024):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, max_positions, dim))
        self.temporal_transformer = _Stack(dim, layers, heads, head_dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args:
            x: (B, T, D) frame features. Returns (B, D) CLS outputs."""
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embedding[:, : x.shape[1] + 1]
        return self.temporal_transformer(x)[:, 0]


