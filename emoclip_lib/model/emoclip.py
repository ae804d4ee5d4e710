"""EmoCLIP video-text model: frozen CLIP frame encoder + temporal transformer + CLIP text encoder."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError


OFFICIAL_FF_DIM = 2048  # the feed-forward size the official code passes as the per-head size


@dataclass
class TemporalConfig:
    """Shape of the temporal transformer that pools per-frame CLIP embeddings into one video embedding."""

    # The official code passes its feed-forward size (2048) where the per-head size goes, giving 2048-d
    # heads and a d_model-wide MLP: layout="official" builds that, as its released weights need.
    layers: int = 2  # temporal transformer depth; the paper's runs use 2
    heads: int = 8  # attention heads; the paper's runs use 8
    head_dim: int | None = None  # per-head size; None: d_model // heads (64 for ViT-B/32), official 2048
    mlp_dim: int | None = None  # MLP hidden size; None: 4 * d_model (2048 for ViT-B/32), official d_model
    max_positions: int = 1024  # learnable positional table size (official: 1024 positions)
    layout: str = "standard"  # "standard" (64-d heads) or "official" (unset sizes as in the official code)
    init_std: float = 0.02  # std of the random CLS token / positional embedding initialisation

    @classmethod
    def official(cls, d_model: int, layers: int = 2, heads: int = 8, ff_dim: int = 2048) -> "TemporalConfig":
        """The official code's layout: `ff_dim` becomes the per-head size and the MLP is d_model wide.

        Args:
            d_model: CLIP embedding size.
            layers: transformer depth.
            heads: attention heads.
            ff_dim: the feed-forward size the official constructor was given.
        """
        return cls(layers=layers, heads=heads, head_dim=ff_dim, mlp_dim=d_model, layout="official")


@dataclass
class ModelConfig:
    """Everything needed to rebuild an EmoCLIP model around a CLIP backbone."""

    backbone: str = "ViT-B/32"  # CLIP model name, `tiny`, or a checkpoint path
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    freeze_visual: bool = True  # keep CLIP's visual tower frozen (the paper's default)
    freeze_text: bool = True  # keep CLIP's text tower frozen (the paper's default)

    def to_dict(self) -> dict:
        """Plain-dict form (saved inside checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Inverse of `to_dict`; unknown keys are an error.

        Args:
            data: as written by `to_dict`.
        """
        data = dict(data)
        temporal = TemporalConfig(**data.pop("temporal", {}))
        return cls(temporal=temporal, **data)


class TemporalBlock(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)); x + MLP(LN(x)) with tanh-approximate GELU, no dropout."""

    def __init__(self, d_model: int, heads: int, head_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.attn_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * heads * head_dim, bias=False)
        self.attn_out = nn.Linear(heads * head_dim, d_model)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp_in = nn.Linear(d_model, mlp_dim)
        self.mlp_out = nn.Linear(mlp_dim, d_model)

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        """Args:
            x: (B, N, D) tokens.
            cls_only: return only the first token's output (B, 1, D); the other tokens still serve as
                keys and values, so the CLS output is unchanged while the last block does ~1/N of the work.
        """
        b, n, _ = x.shape
        qkv = self.qkv(self.attn_norm(x)).view(b, n, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, dh)
        if cls_only:
            q, x = q[:, :, :1], x[:, :1]  # (B, H, 1, dh), (B, 1, D)
        attn = F.scaled_dot_product_attention(q, k, v)  # (B, H, Nq, dh)
        x = x + self.attn_out(attn.transpose(1, 2).reshape(b, q.shape[2], self.heads * self.head_dim))
        return x + self.mlp_out(F.gelu(self.mlp_in(self.mlp_norm(x)), approximate="tanh"))


class TemporalTransformer(nn.Module):
    """Prepends a learnable CLS token, adds learnable positions, returns the CLS output."""

    def __init__(self, d_model: int, config: TemporalConfig) -> None:
        super().__init__()
        if config.layout not in ("standard", "official"):
            raise UserError(f"temporal layout must be 'standard' or 'official', got {config.layout!r}")
        official = config.layout == "official"
        head_dim = config.head_dim or (OFFICIAL_FF_DIM if official else d_model // config.heads)
        mlp_dim = config.mlp_dim or (d_model if official else 4 * d_model)
        self.max_positions = config.max_positions
        self.cls_token = nn.Parameter(torch.randn(1, 1, d_model) * config.init_std)
        self.pos_embedding = nn.Parameter(torch.randn(1, config.max_positions, d_model) * config.init_std)
        self.blocks = nn.ModuleList(
            TemporalBlock(d_model, config.heads, head_dim, mlp_dim) for _ in range(config.layers)
        )

    def forward(self, frame_features: torch.Tensor) -> torch.Tensor:
        """Pool per-frame features into one embedding per clip.

        Args:
            frame_features: (B, T, D) per-frame CLIP image embeddings.
        Returns:
            (B, D) CLS outputs.
        """
        b, t, _ = frame_features.shape
        if t + 1 > self.max_positions:
            raise UserError(f"clip of {t} frames exceeds the {self.max_positions - 1} frames the model supports")
        x = torch.cat([self.cls_token.expand(b, -1, -1).to(frame_features.dtype), frame_features], dim=1)
        x = x + self.pos_embedding[:, : t + 1].to(x.dtype)  # (B, T+1, D)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, cls_only=i == last)  # only the CLS output of the last block is used
        return x[:, 0]


class EmoCLIP(nn.Module):
    """CLIP backbone (`backbone`), temporal pooling (`temporal`) and a learnable `logit_scale`."""

    def __init__(self, backbone: nn.Module, config: ModelConfig, embed_dim: int) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.temporal = TemporalTransformer(embed_dim, config.temporal)
        init_scale = getattr(backbone, "logit_scale", None)
        init = init_scale.detach().float().clone() if init_scale is not None else torch.tensor(4.6052)
        self.logit_scale = nn.Parameter(init.reshape(()))
        self.head_state: dict[str, torch.Tensor] = {}  # official downstream MLP head, kept as loaded
        self.source: dict = {}  # where the weights came from (`checkpoint.load_checkpoint` fills it)
        self.apply_freezing()

    def apply_freezing(self) -> None:
        """Set `requires_grad` of the CLIP towers from the config (temporal and logit scale always train)."""
        for name, param in self.backbone.named_parameters():
            is_visual = name.startswith("visual.")
            frozen = self.config.freeze_visual if is_visual else self.config.freeze_text
            param.requires_grad_(not frozen and name != "logit_scale")  # CLIP's own scale is unused

    @property
    def input_resolution(self) -> int:
        """Side length of the frames the visual tower expects."""
        return int(self.backbone.visual.input_resolution)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode every frame with the CLIP image encoder.

        Args:
            frames: (B, T, 3, H, W) normalised frames.
        Returns:
            (B, T, D) float32 frame embeddings (not normalised).
        """
        b, t = frames.shape[:2]
        flat = frames.flatten(0, 1)  # (B*T, 3, H, W)
        dtype = self.backbone.visual.conv1.weight.dtype
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_visual):
            feats = self.backbone.encode_image(flat.to(dtype))  # (B*T, D)
        return feats.float().view(b, t, -1)

    def encode_video_features(self, frame_features: torch.Tensor) -> torch.Tensor:
        """Video embeddings from cached frame embeddings (the frozen-backbone fast path).

        Args:
            frame_features: (B, T, D) CLIP frame embeddings.
        """
        return self.temporal(frame_features.float())  # (B, D)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """Video embeddings (not normalised).

        Args:
            frames: (B, T, 3, H, W) normalised frames.
        """
        return self.encode_video_features(self.encode_frames(frames))  # (B, D)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Text embeddings (not normalised).

        Args:
            tokens: (N, 77) token ids from `emoclip_lib.tokenize`.
        """
        if not hasattr(self.backbone, "encode_text"):
            raise UserError("this checkpoint holds only the visual tower: it can encode videos, not text")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_text):
            return self.backbone.encode_text(tokens).float()  # (N, D)

    def logits(self, video_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarities.

        Args:
            video_emb: (B, D) video embeddings.
            text_emb: (N, D) text embeddings.
        Returns:
            (B, N) logits = exp(logit_scale) * cos.
        """
        v = F.normalize(video_emb, dim=-1)
        t = F.normalize(text_emb, dim=-1)
        return self.logit_scale.exp() * v @ t.t()

    def forward(self, frames: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits between each clip and each caption.

        Args:
            frames: (B, T, 3, H, W) normalised frames.
            tokens: (N, 77) caption tokens.
        Returns:
            (B, N) logits.
        """
        return self.logits(self.encode_video(frames), self.encode_text(tokens))


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: clip i is paired with caption i.

    Args:
        logits: (B, B) video-to-text logits.
    """
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


class VisualOnlyCLIP(nn.Module):
    """A CLIP backbone holding only the visual tower (the official downstream checkpoints)."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Args:
            images: (N, 3, H, W) normalised images. Returns (N, D) embeddings."""
        return self.visual(images)
