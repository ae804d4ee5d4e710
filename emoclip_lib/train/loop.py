"""Contrastive training of EmoCLIP on clip/caption pairs: the engine behind notebook 03 and `emoclip train`.

`train` runs on the CPU, on one GPU, or under `torchrun` with DistributedDataParallel (same code). With a
frozen visual tower it trains from cached CLIP frame embeddings (`feature_cache`). Every epoch it
records the train loss, the validation loss and optional metrics in `run_dir/history.json`, keeps the
best model (by `config.select_metric`) in `best.pt` and the resumable state in `last.pt`; a run
resumed with `resume=True` ends with exactly the weights of an uninterrupted run.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from . import distributed as D
from ..model import save_checkpoint
from ..errors import UserError
from ..features import weights_fingerprint
from ..io_utils import atomic_write_json
from ..data import ManifestRow
from ..model import EmoCLIP
from .config import TrainConfig
from .data import drop_empty_captions, make_eval_loader, make_train_loader
from .inputs import TrainInputs, prepare_inputs
from .state import build_optimizer, build_scheduler, check_compatible, read_state, restore, save_state
from .step import ContrastiveStep, evaluate_loss, train_epoch

logger = logging.getLogger(__name__)

EvaluateFn = Callable[[EmoCLIP], dict[str, float]]


@dataclass
class TrainResult:
    """What a training run produced (files are in `run_dir`)."""

    history: list[dict[str, Any]]  # one record per epoch (also in history.json)
    best_epoch: int | None  # 1-based epoch saved as best.pt (None on ranks other than 0)
    best_value: float | None  # its `select_metric` value
    select_metric: str  # the history key used for model selection
    run_dir: Path
    used_cache: bool  # whether the frozen-backbone feature cache was used
    dropped_empty_captions: dict[str, int] = field(default_factory=dict)  # {"train": n, "val": n}
    world_size: int = 1

    @property
    def best_path(self) -> Path:
        """The best model (`load_checkpoint` it)."""
        return self.run_dir / "best.pt"

    @property
    def last_path(self) -> Path:
        """The resumable training state."""
        return self.run_dir / "last.pt"


def train(model: EmoCLIP, train_rows: list[ManifestRow], val_rows: list[ManifestRow], root: str | Path,
          classes: tuple[str, ...], config: TrainConfig | dict[str, Any] | None = None,
          run_dir: str | Path = "runs/train", device: str | torch.device = "cpu", resume: bool = False,
          evaluate_fn: EvaluateFn | None = None, progress: bool = True) -> TrainResult:
    """Train `model` contrastively on clip/caption pairs (in place) and keep the best epoch.

    Args:
        model: EmoCLIP model; `model.config.freeze_visual/freeze_text` say which CLIP towers train.
        train_rows: training rows (e.g. from `split_train_val`); rows without a caption are dropped.
        val_rows: validation rows (may be empty); never the test fold.
        root: dataset root the row paths are relative to.
        classes: class names of the rows' labels.
        config: `TrainConfig` (or a dict for `TrainConfig.from_dict`); None uses the paper's recipe.
        run_dir: output folder (history.json, best.pt, last.pt, train_config.json, feature cache).
        device: "cpu" or "cuda" (under torchrun each process takes cuda:LOCAL_RANK).
        resume: continue from `run_dir/last.pt` when it exists.
        evaluate_fn: called as `evaluate_fn(model)` after every epoch on rank 0 (model in eval mode, no
            grad); its dict is added to the history (keys prefixed `val_` unless they already are).
        progress: show progress bars.
    Raises:
        UserError: bad settings, no captioned training rows, an incompatible `last.pt`.
    """
    if config is None:
        config = TrainConfig()
    elif isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    config.validate()
    ctx = D.init_from_env(device)
    config = config.for_device(ctx.device)
    try:
        return _train(model, train_rows, val_rows, Path(root), tuple(classes), config, Path(run_dir), ctx,
                      resume, evaluate_fn, progress)
    finally:
        D.shutdown(ctx)


def _train(model: EmoCLIP, train_rows: list[ManifestRow], val_rows: list[ManifestRow], root: Path,
           classes: tuple[str, ...], config: TrainConfig, run_dir: Path, ctx: D.DistContext, resume: bool,
           evaluate_fn: EvaluateFn | None, progress: bool) -> TrainResult:
    train_rows, dropped_train = drop_empty_captions(list(train_rows))
    val_rows, dropped_val = drop_empty_captions(list(val_rows))
    if dropped_train or dropped_val:
        logger.warning("dropped %d training and %d validation rows without a caption", dropped_train, dropped_val)
    if not train_rows:
        raise UserError("no training rows with a caption: contrastive training needs captioned clips")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(config.to_dict(), run_dir / "train_config.json")
    model.to(ctx.device)
    amp, compile_ = _speed_options(config, ctx)
    metric = _selection_metric(config, bool(val_rows), evaluate_fn)
    inputs = prepare_inputs(model, train_rows, val_rows, root, classes, config, run_dir, ctx, progress)
    run = _Run(model, config, ctx, inputs, run_dir, metric, amp, compile_, progress)
    if resume:
        run.resume()
    run.fit(evaluate_fn)
    D.barrier(ctx)
    best = run.best or {}
    return TrainResult(history=run.history, best_epoch=best.get("epoch"), best_value=best.get("value"),
                       select_metric=metric, run_dir=run_dir, used_cache=inputs.cached,
                       dropped_empty_captions={"train": dropped_train, "val": dropped_val},
                       world_size=ctx.world_size)


def _speed_options(config: TrainConfig, ctx: D.DistContext) -> tuple[bool, bool]:
    """AMP and torch.compile are CUDA-only: ignored with a warning elsewhere."""
    on_cuda = ctx.device.type == "cuda"
    for name in ("amp", "compile"):
        if getattr(config, name) and not on_cuda:
            warnings.warn(f"{name}=True is ignored on {ctx.device.type}: it is only used on CUDA", stacklevel=4)
    return config.amp and on_cuda, config.compile and on_cuda


def _selection_metric(config: TrainConfig, has_val: bool, evaluate_fn: EvaluateFn | None) -> str:
    metric = config.select_metric
    if metric not in ("train_loss", "val_loss") and not metric.startswith("val_"):
        raise UserError(f"select_metric {metric!r} is not a history key: use train_loss, val_loss or val_<name> "
                        f"for a metric <name> returned by evaluate_fn")
    if metric == "val_loss" and not has_val:
        warnings.warn("no validation rows: best.pt is selected on train_loss instead of val_loss", stacklevel=4)
        return "train_loss"
    if metric.startswith("val_") and metric != "val_loss" and evaluate_fn is None:
        raise UserError(f"select_metric {metric!r} needs an evaluate_fn that returns it; pass one or use "
                        f"select_metric='val_loss'")
    if metric.startswith("val_") and not has_val:
        raise UserError(f"select_metric {metric!r} needs validation rows; set val_fraction > 0 or select on "
                        f"train_loss")
    return metric


class _Run:
    """The state of one training run: model, optimiser, schedule, history and best record."""

    def __init__(self, model: EmoCLIP, config: TrainConfig, ctx: D.DistContext, inputs: TrainInputs,
                 run_dir: Path, metric: str, amp: bool, compile_: bool, progress: bool) -> None:
        self.model, self.config, self.ctx, self.inputs = model, config, ctx, inputs
        self.run_dir, self.metric, self.amp, self.progress = run_dir, metric, amp, progress
        self.optimizer = build_optimizer(model, config)
        self.scheduler = build_scheduler(self.optimizer, config)
        use_scaler = amp and config.amp_dtype == "fp16"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        step = D.wrap_ddp(ContrastiveStep(model), ctx)
        self.step = torch.compile(step) if compile_ else step
        self.loader = make_train_loader(inputs.train, inputs.collate, ctx, config.batch_size, config.seed,
                                        config.num_workers)
        self.val_loader = (make_eval_loader(inputs.val, inputs.collate, config.batch_size, config.num_workers)
                           if inputs.val is not None and ctx.is_main else None)
        frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
        self.frozen_fingerprint = weights_fingerprint(frozen)
        self.epoch, self.history, self.best = 0, [], None  # type: int, list[dict[str, Any]], dict | None

    def resume(self) -> None:
        """Continue from `last.pt` if it exists (every process reads it)."""
        path = self.run_dir / "last.pt"
        if not path.is_file():
            logger.info("no %s yet: starting from epoch 1", path)
            return
        state = read_state(path)
        check_compatible(state, self.model, self.config, self.frozen_fingerprint, path)
        restore(state, self.model, self.optimizer, self.scheduler, self.scaler)
        self.epoch, self.history, self.best = int(state["epoch"]), list(state["history"]), state["best"]
        logger.info("resuming %s after epoch %d", self.run_dir, self.epoch)

    def fit(self, evaluate_fn: EvaluateFn | None) -> None:
        """Train the remaining epochs, recording and saving after each."""
        bar = tqdm(total=self.config.epochs, initial=self.epoch, desc="training", unit="epoch",
                   disable=not (self.progress and self.ctx.is_main))
        with bar:
            while self.epoch < self.config.epochs:
                start = time.perf_counter()
                record = self._train_one(self.epoch)
                if self.ctx.is_main:
                    record.update(self._validate(evaluate_fn))
                self.scheduler.step()
                self.epoch += 1
                record["seconds"] = round(time.perf_counter() - start, 3)
                self.history.append(record)
                if self.ctx.is_main:
                    self._save(record)
                bar.set_postfix({k: f"{record[k]:.4g}" for k in ("train_loss", "val_loss") if k in record})
                bar.update(1)

    def _train_one(self, epoch: int) -> dict[str, Any]:
        view = self.config.view_for_epoch(epoch, self.inputs.cached)
        self.inputs.train.set_epoch(view)
        self.loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        self.model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        stats = train_epoch(self.step, self.loader, self.optimizer, self.inputs.spec, self.ctx, self.amp,
                            self.config.amp_dtype, self.scaler, self.progress,
                            desc=f"epoch {epoch + 1}/{self.config.epochs}")
        return {"epoch": epoch + 1, "lr": lr, "view": view, "train_loss": stats["loss"],
                "train_samples": stats["samples"], "unreadable": stats["missing"]}

    def _validate(self, evaluate_fn: EvaluateFn | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.model.eval()
        if self.val_loader is not None:
            stats = evaluate_loss(self.model, self.val_loader, self.inputs.spec, self.ctx.device, self.amp,
                                  self.config.amp_dtype, self.progress)
            out.update(val_loss=stats["loss"], val_samples=stats["samples"])
        if evaluate_fn is not None:
            with torch.no_grad():
                metrics = evaluate_fn(self.model)
            out.update({(k if k.startswith("val_") else f"val_{k}"): _plain(v) for k, v in metrics.items()})
        self.model.train()
        return out

    def _save(self, record: dict[str, Any]) -> None:
        if self.metric not in record:
            raise UserError(f"select_metric {self.metric!r} is not in the epoch record; available: "
                            f"{', '.join(sorted(record))}")
        value = float(record[self.metric])
        if _better(value, self.best, self.config.selection_mode()):
            self.best = {"epoch": record["epoch"], "value": value, "metric": self.metric}
            save_checkpoint(self.model, self.run_dir / "best.pt",
                            meta={**self.best, "config": self.config.to_dict(), "record": record})
        atomic_write_json(self.history, self.run_dir / "history.json")
        save_state(self.run_dir / "last.pt", self.model, self.optimizer, self.scheduler, self.scaler, self.epoch,
                   self.history, self.config, self.best, self.frozen_fingerprint)


def _better(value: float, best: dict[str, Any] | None, mode: str) -> bool:
    if math.isnan(value):
        return best is None
    if best is None or math.isnan(best["value"]):
        return True
    return value < best["value"] if mode == "min" else value > best["value"]


def _plain(value: Any) -> Any:
    """JSON- and `weights_only`-friendly metric value (tensors and numpy values become Python numbers/lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.tolist() if hasattr(value, "tolist") else value
