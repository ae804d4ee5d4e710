"""Settings of the contrastive training engine (`TrainConfig`) and the learning-rate schedule they describe."""
from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UserError
from ..runtime import loader_settings

OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
SCHEDULES: tuple[str, ...] = ("step", "cosine")
VIEW_SCHEDULES: tuple[str, ...] = ("auto", "cycle", "fresh")
VAL_GROUPS: tuple[str, ...] = ("subject", "clip")
AMP_DTYPES: tuple[str, ...] = ("bf16", "fp16")
SELECT_MODES: tuple[str, ...] = ("auto", "min", "max")
# Settings that may differ between a run and its resumption: they do not change the trained weights
# (`epochs` does: the cosine schedule depends on it).
RESUME_FREE_KEYS: frozenset[str] = frozenset({"num_workers", "cache_dir", "cache_batch_size"})
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Everything that shapes a training run. Defaults follow the paper's recipe (official scripts)."""

    # --- optimisation ---
    optimizer: str = "sgd"  # "sgd" (paper: momentum 0.9, weight decay 5e-4) or "adamw"
    lr: float = 1e-3  # learning rate of the temporal transformer and the logit scale
    momentum: float = 0.9  # SGD momentum (ignored by AdamW)
    weight_decay: float = 5e-4  # applied to every trained parameter, as the official code does
    schedule: str = "step"  # "step" (x gamma at each milestone epoch) or "cosine" (with optional warm-up)
    milestones: tuple[int, ...] = (15, 35, 50)  # step schedule: epochs (0-based) where the lr is multiplied by gamma
    gamma: float = 0.1  # step schedule decay factor
    warmup_epochs: int = 0  # cosine schedule: epochs of linear warm-up before the cosine decay
    min_lr_ratio: float = 0.0  # cosine schedule: final lr as a fraction of `lr`
    epochs: int = 30  # paper: 30 epochs on MAFW
    batch_size: int = 64  # GLOBAL batch (all processes together); each of N processes gets batch_size / N
    backbone_lr_scale: float = 1e-3  # unfrozen CLIP towers train at lr x this (paper: lr x 0.001)
    # --- clips ---
    clip_len: int = 32  # frames per clip
    downsample: int = 2  # keep every n-th frame before taking the window
    augment: bool = True  # random rotation (up to 6 degrees) and flip, the same for all frames of a clip
    # --- frozen-backbone fast path ---
    use_cache: bool = True  # cache CLIP frame embeddings on disk when the visual tower is frozen
    cache_views: int = 2  # augmented views cached per clip; epoch e trains on view e % cache_views
    cache_dir: str | None = None  # where the cache lives (default: <run_dir>/feature_cache); shareable across runs
    cache_batch_size: int = 8  # clips per forward pass while building the cache
    cache_precision: str = "fp32"  # frame encoding into the cache: "fp32", "bf16", "fp16" or "auto"
    # "cycle" = view e % cache_views (what the cache stores), "fresh" = new randomness every epoch
    # (uncached only), "auto" = cycle with the cache, fresh without it.
    view_schedule: str = "auto"  # which randomness epoch e sees: "auto", "cycle" or "fresh"
    # --- speed (CUDA only; ignored with a warning on CPU) ---
    amp: bool | None = None  # autocast mixed precision (GradScaler for fp16); None: on when training on CUDA
    amp_dtype: str = "bf16"  # "bf16" or "fp16"
    compile: bool = False  # torch.compile the training step
    num_workers: int | None = None  # DataLoader worker processes; None: from the CPU count on CUDA, 0 on CPU
    # --- reproducibility, data problems, validation ---
    seed: int = 0  # shuffling and augmentation seed
    on_error: str = "skip"  # unreadable video: "skip" it (counted) or "fail"
    val_fraction: float = 0.1  # share of training rows held out for validation (see `split_train_val`)
    val_group: str = "subject"  # validation disjoint by "subject" (clip when subjects are empty) or by "clip"
    select_metric: str = "val_loss"  # history key picking best.pt ("val_loss", "train_loss", "val_uar", ...)
    select_mode: str = "auto"  # "min", "max" or "auto" (min for keys ending in "loss", else max)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-ready; tuples become lists)."""
        data = dataclasses.asdict(self)
        data["milestones"] = list(self.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build and validate a config from a dict (e.g. notebook parameters or YAML).

        Args:
            data: keys among the dataclass fields; missing keys keep their defaults.
        Raises:
            UserError: for an unknown key (the valid ones are listed) or a bad value.
        """
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise UserError(f"unknown training setting(s) {', '.join(unknown)}; valid settings: {', '.join(valid)}")
        values = dict(data)
        if "milestones" in values:
            try:
                values["milestones"] = tuple(int(m) for m in values["milestones"])
            except (TypeError, ValueError):
                raise UserError(f"milestones must be a list of epochs, got {values['milestones']!r}") from None
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> "TrainConfig":
        """Check every value; return self.

        Raises:
            UserError: naming the bad setting and its allowed values.
        """
        try:
            self._check_values()
        except (TypeError, ValueError) as err:
            raise UserError(f"training settings: a value has the wrong type ({err}); see TrainConfig") from None
        return self

    def _check_values(self) -> None:
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("view_schedule", self.view_schedule, VIEW_SCHEDULES)
        _choice("val_group", self.val_group, VAL_GROUPS)
        _choice("amp_dtype", self.amp_dtype, AMP_DTYPES)
        _choice("select_mode", self.select_mode, SELECT_MODES)
        _choice("on_error", self.on_error, ("skip", "fail"))
        _choice("cache_precision", self.cache_precision, PRECISIONS)
        for name in ("epochs", "batch_size", "clip_len", "downsample", "cache_views", "cache_batch_size"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"training setting {name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "backbone_lr_scale", "momentum", "gamma", "min_lr_ratio"):
            if not float(getattr(self, name)) >= 0.0:
                raise UserError(f"training setting {name} must be a non-negative number, got {getattr(self, name)}")
        if self.warmup_epochs < 0 or (self.num_workers is not None and self.num_workers < 0):
            raise UserError("warmup_epochs and num_workers must be non-negative")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.use_cache and self.view_schedule == "fresh":
            raise UserError("view_schedule='fresh' needs new randomness every epoch, which the feature cache "
                            "cannot hold: set use_cache=False or view_schedule='cycle'")
        if list(self.milestones) != sorted(self.milestones):
            raise UserError(f"milestones must be increasing, got {list(self.milestones)}")

    def for_device(self, device: torch.device) -> "TrainConfig":
        """A copy with the device-dependent settings left unset (None) filled in: `amp` on CUDA only,
        `num_workers` from `runtime.loader_settings`.

        Args:
            device: where training runs.
        """
        amp = device.type == "cuda" if self.amp is None else self.amp
        workers = loader_settings(device)["num_workers"] if self.num_workers is None else self.num_workers
        return dataclasses.replace(self, amp=amp, num_workers=workers)

    def view_for_epoch(self, epoch: int, cached: bool) -> int:
        """The dataset epoch (randomness) used by training epoch `epoch`.

        Args:
            epoch: 0-based training epoch.
            cached: whether the feature cache is in use.
        """
        cycle = self.view_schedule == "cycle" or (self.view_schedule == "auto" and cached)
        return epoch % self.cache_views if cycle else epoch

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of the base learning rates during 0-based epoch `epoch`.

        Args:
            epoch: 0-based epoch.
        """
        if self.schedule == "step":
            return float(self.gamma) ** bisect.bisect_right(list(self.milestones), epoch)
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        span = max(1, self.epochs - self.warmup_epochs)
        progress = min(1.0, (epoch - self.warmup_epochs) / span)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def selection_mode(self) -> str:
        """"min" or "max": how `select_metric` is compared."""
        if self.select_mode != "auto":
            return self.select_mode
        return "min" if self.select_metric.endswith("loss") else "max"


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"training setting {name} must be one of {', '.join(allowed)}, got {value!r}")
