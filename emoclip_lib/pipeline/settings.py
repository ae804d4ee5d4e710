"""Run settings: every parameter of the notebooks, `emoclip train` and `emoclip reproduce`, one default each.

The defaults are the dataclass fields below and those of `model.ModelConfig`/`TemporalConfig` and
`train.TrainConfig` (the paper's recipe); a profile (`profiles/*.yaml`) overrides some of them, and
`-p NAME VALUE` or a notebook's `parameters` cell overrides the profile. Every parameter has one flat
name (`epochs`, `layers`, `synth_size`, ...) that names exactly one field; `PARAMETERS` lists them
with the notebook ("stage") that reads them. Names, types and ranges are checked before any work.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import UserError
from ..model import ModelConfig, TemporalConfig
from ..train import TrainConfig


@dataclass
class DataSettings:
    """Notebook 01: where a run's data comes from."""

    synth_size: str | None = None  # write the synthetic world's releases ("tiny", "small", "medium"); None: real data
    mafw_root: str | None = None  # the MAFW release (training, captions); None: the synthetic one if any
    dfew_root: str | None = None  # the DFEW release (evaluation); None: the synthetic one if any
    ferv39k_root: str | None = None  # the FERV39k release (evaluation); None: the synthetic one if any
    afew_root: str | None = None  # the AFEW release (evaluation); None: the synthetic one if any
    mafw_subset: str = "all"  # MAFW lists converted: "all"; training uses single-label clips, compounds are scored
    strict: bool = True  # stop on any data problem (False: drop the samples with problems)
    check_decode: bool = True  # open every video and decode its first frame (False: check that files exist)


@dataclass
class CurationSettings:
    """Notebook 02: caption curation."""

    shorten: bool = True  # shorten over-long captions at a sentence or word boundary
    max_tokens: int = 75  # CLIP content tokens (77 minus the start and end tokens)
    near_duplicate_threshold: float = 0.8  # similarity above which two captions are near duplicates


@dataclass
class TrainPlan:
    """Notebook 03: which models are trained (each with `TrainConfig`), and the stand-in backbone's pretraining."""

    n_seeds: int = 1  # seeds seed .. seed + n_seeds - 1 are trained (notebook 04 reports their spread)
    folds: list[int] | None = None  # folds to train, e.g. [1, 2, 3, 4, 5]; None: the first fold only
    pretrain_epochs: int = 14  # backbone "tiny": epochs of its CLIP-style pretraining (ignored otherwise)
    pretrain_web_pictures: int = 6000  # backbone "tiny": synthetic web pictures in that pretraining
    selection: str = "validation"  # best epoch on the validation split, or "test_war" (official, test-set selection)


@dataclass
class EvalSettings:
    """Notebook 04: zero-shot evaluation (test clips only)."""

    eval_clip_len: int = 32  # kept frames per test clip (official zero-shot runs: 32)
    eval_downsample: int = 4  # keep every n-th frame of a test clip (official zero-shot runs: 4)
    eval_window: str = "centre"  # "centre" (deterministic), or "random" (the official loaders' start, seeded)
    cross_fold: int | None = None  # the MAFW fold whose models score the other datasets; None: the first trained
    compound: bool = True  # score MAFW's compound test clips (singles and compounds, components' mean)
    loco: bool = True  # run leave-one-class-out (one extra training per class and fold)
    loco_classes: list[str] | None = None  # classes held out in turn; None: every class of the training data
    loco_folds: list[int] | None = None  # folds of the leave-one-class-out trainings; None: the first trained fold
    loco_text: str = "descriptions"  # text the held-out trainings pair clips with: "descriptions" (official), "captions"
    loco_epochs: int | None = None  # epochs of each leave-one-class-out training; None: as in notebook 03
    interactive: bool = False  # True in JupyterLab: the clip explorer becomes an interactive widget


@dataclass
class RegressionSettings:
    """Notebook 05: symptom-severity regression from interview videos."""

    interview_manifest: str | None = None  # your interview manifest CSV; None: the run's synthetic cohort
    interview_root: str | None = None  # folder the manifest's video paths are relative to; None: its folder
    latent_scores: str | None = None  # CSV subject,<items> of true scores to compare with; None: the cohort's own
    encoders: str = "emoclip,clip_frame_avg"  # video encoders compared (comma-separated)
    models: str = "ridge,svr,mlp"  # regressors (comma-separated); the mean predictor is always added
    level: str = "subject"  # "subject": one sample per subject (videos averaged), "video": one per video
    n_boot: int = 500  # subject-bootstrap resamples for the 95% intervals of PCC and CCC (0: none)
    window_clip_len: int = 16  # kept frames per interview window
    window_downsample: int = 2  # keep every n-th interview frame
    window_stride: int | None = 8  # window step in kept frames; None: window_clip_len (no overlap)
    crop_faces: bool = False  # crop the face before encoding (full frame where none is found)
    stats: str = "mean,std"  # per-video statistics of the window embeddings (comma-separated)
    outer_folds: int = 5  # outer, subject-grouped cross-validation folds
    inner_folds: int = 3  # inner (hyperparameter) folds


@dataclass
class RunSettings:
    """Everything a run is made of, grouped by what it shapes."""

    seed: int = 0  # the run's one seed (world, MinHash, training seeds, t-SNE, cross-validation)
    device: str = "auto"  # "auto" (CUDA when available), "cpu" or "cuda[:N]"
    descriptions: str | None = None  # class-description YAML; None: the dataset's, else the shipped one
    checkpoint: str | None = None  # a checkpoint to score (ours, official, or clip:ViT-B/32); None: notebook 03's
    text_tower: str | None = None  # CLIP whose text tower completes a visual-only (downstream) checkpoint
    frame_precision: str = "auto"  # CLIP frame encoding: "auto" (bf16/fp16 on CUDA, fp32 on CPU), "fp32", "bf16", "fp16"
    data: DataSettings = field(default_factory=DataSettings)
    curation: CurationSettings = field(default_factory=CurationSettings)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    plan: TrainPlan = field(default_factory=TrainPlan)
    eval: EvalSettings = field(default_factory=EvalSettings)
    regression: RegressionSettings = field(default_factory=RegressionSettings)

    def flat(self) -> dict[str, Any]:
        """Every parameter by its flat name (JSON-ready: tuples become lists)."""
        out = {}
        for name, spec in PARAMETERS.items():
            value = getattr(_owner(self, spec.path), spec.path[-1])
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, params: dict[str, Any], where: str = "parameters") -> "RunSettings":
        """A copy with flat-named parameters changed, each checked for name, type and range.

        Args:
            params: flat name -> value (a None value leaves the parameter as it is).
            where: what the parameters come from, for error messages ("-p", a profile's path, ...).
        Raises:
            UserError: an unknown name (the valid ones are listed), a wrong type or a value out of range.
        """
        unknown = sorted(set(params) - set(PARAMETERS))
        for name in set(unknown) & set(SET_BY_COMMAND):
            raise UserError(f"parameter {name!r} is set by the command ({where}): use {SET_BY_COMMAND[name]}")
        if unknown:
            raise UserError(f"unknown parameter(s) {', '.join(unknown)} (from {where}); valid parameters: "
                            f"{', '.join(PARAMETERS)}")
        out = _copy(self)
        for name, value in params.items():
            if value is not None:
                spec = PARAMETERS[name]
                setattr(_owner(out, spec.path), spec.path[-1], _checked(name, value, spec.type, where))
        out.validate(where)
        return out

    def validate(self, where: str = "parameters") -> None:
        """Check every range and choice.

        Args:
            where: what the parameters come from, for error messages.
        """
        try:
            self.train.validate()
            _check_ranges(self)
        except UserError as err:
            raise UserError(f"{where}: {err}") from None


@dataclass(frozen=True)
class Parameter:
    """Where a flat parameter lives and which notebook reads it."""

    path: tuple[str, ...]  # attribute path from RunSettings
    type: Any  # the field's type hint
    default: Any
    comment: str  # the field's comment in its dataclass
    stage: str  # the notebook that reads it ("01".."05"); shared ones: the first


SHARED_STAGES: dict[str, tuple[str, ...]] = {"seed": ("01", "02", "03", "04", "05"),
                                             "device": ("03", "04", "05"), "descriptions": ("03", "04"),
                                             "checkpoint": ("04", "05"), "text_tower": ("04", "05"),
                                             "frame_precision": ("03", "04", "05")}
SECTION_STAGES: dict[str, str] = {"data": "01", "curation": "02", "plan": "03", "model": "03", "train": "03",
                                  "eval": "04", "regression": "05"}
SET_BY_COMMAND: dict[str, str] = {"run_dir": "--out", "profile": "--profile"}
SET_BY_PIPELINE: frozenset[str] = frozenset({"seed", "cache_dir", "cache_precision"})  # TrainConfig fields the pipeline fills


def _fields(cls: type, path: tuple[str, ...], stage: str) -> Iterator[tuple[str, Parameter]]:
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _fields(hints[f.name], (*path, f.name), stage)
        elif not (cls is TrainConfig and f.name in SET_BY_PIPELINE):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            yield f.name, Parameter((*path, f.name), hints[f.name], default, comments.get(f.name, ""), stage)


def _field_comments(cls: type) -> dict[str, str]:
    """The `# comment` after each field of a dataclass, from its source."""
    import inspect

    out = {}
    for line in inspect.getsource(cls).splitlines():
        head, _, comment = line.partition("  # ")
        name = head.strip().split(":")[0]
        if comment and ":" in head and name.isidentifier():
            out[name] = comment.strip()
    return out


def _registry() -> dict[str, Parameter]:
    out: dict[str, Parameter] = {}
    for name, spec in _fields(RunSettings, (), ""):
        stage = SHARED_STAGES[name][0] if name in SHARED_STAGES else SECTION_STAGES[spec.path[0]]
        if name in out:
            raise RuntimeError(f"parameter name {name!r} is used twice")  # a programming error, caught by tests
        out[name] = dataclasses.replace(spec, stage=stage)
    return out


PARAMETERS: dict[str, Parameter] = _registry()


def stage_parameters(stage: str) -> list[str]:
    """The flat parameter names a notebook reads, in declaration order.

    Args:
        stage: two-digit notebook number.
    """
    return [n for n, spec in PARAMETERS.items() if spec.stage == stage or stage in SHARED_STAGES.get(n, ())]


def _owner(settings: RunSettings, path: tuple[str, ...]) -> Any:
    obj: Any = settings
    for part in path[:-1]:
        obj = getattr(obj, part)
    return obj


def _copy(settings: RunSettings) -> RunSettings:
    data = dataclasses.asdict(settings)
    model = ModelConfig(temporal=TemporalConfig(**data["model"].pop("temporal")), **data["model"])
    return RunSettings(seed=data["seed"], device=data["device"], descriptions=data["descriptions"],
                       checkpoint=data["checkpoint"], text_tower=data["text_tower"],
                       frame_precision=data["frame_precision"],
                       data=DataSettings(**data["data"]), curation=CurationSettings(**data["curation"]),
                       model=model, train=TrainConfig(**data["train"]), plan=TrainPlan(**data["plan"]),
                       eval=EvalSettings(**data["eval"]), regression=RegressionSettings(**data["regression"]))


TYPE_NAMES: dict[Any, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _checked(name: str, value: Any, hint: Any, where: str) -> Any:
    """`value` converted to the field type `hint`, or a UserError that says what was expected."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _checked(name, value, inner[0], where)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(items, (list, tuple)):
            raise UserError(f"{where}: parameter {name} must be a list of integers such as [1, 2], got {value!r}")
        checked = [_checked(f"{name}[{i}]", v, args[0], where) for i, v in enumerate(items)]
        return tuple(checked) if origin is tuple else checked
    if hint is str and isinstance(value, os.PathLike):
        value = os.fspath(value)  # paths are recorded as text
    ok = {bool: isinstance(value, bool), int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool), str: isinstance(value, str)}
    if not ok.get(hint, True):
        raise UserError(f"{where}: parameter {name} must be {TYPE_NAMES[hint]}, got {value!r} "
                        f"({type(value).__name__})")
    return float(value) if hint is float else value


def _at_least(settings: RunSettings, minimum: int, *names: str) -> None:
    flat = settings.flat()
    for name in names:
        if flat[name] is not None and flat[name] < minimum:
            raise UserError(f"parameter {name} must be at least {minimum}, got {flat[name]}")


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"parameter {name} must be one of {', '.join(allowed)}, got {value!r}")


def _names_in(name: str, value: str, allowed: tuple[str, ...]) -> None:
    names = [v.strip() for v in value.split(",")]
    if not all(names) or any(n not in allowed for n in names):
        raise UserError(f"parameter {name} must name one or more of {', '.join(allowed)} (comma-separated), "
                        f"got {value!r}")


def _check_ranges(s: RunSettings) -> None:
    from ..data import MAFW_SUBSETS
    from ..downstream import MODELS, STAT_PATTERN
    from ..features import ENCODERS
    from ..synth import SIZES

    if s.data.synth_size is not None:
        _one_of("synth_size", s.data.synth_size, tuple(SIZES))
    _one_of("mafw_subset", s.data.mafw_subset, MAFW_SUBSETS)
    _one_of("layout", s.model.temporal.layout, ("standard", "official"))
    _one_of("level", s.regression.level, ("subject", "video"))
    _one_of("eval_window", s.eval.eval_window, ("centre", "random"))
    _one_of("loco_text", s.eval.loco_text, ("descriptions", "captions"))
    _one_of("selection", s.plan.selection, ("validation", "test_war"))
    _one_of("frame_precision", s.frame_precision, ("auto", "fp32", "bf16", "fp16"))
    _names_in("models", s.regression.models, MODELS)
    _names_in("encoders", s.regression.encoders, ENCODERS)
    if not all(STAT_PATTERN.fullmatch(v.strip()) for v in s.regression.stats.split(",")):
        raise UserError(f"parameter stats must list mean, std, max, min, median or q1..q99 (comma-separated), "
                        f"got {s.regression.stats!r}")
    _at_least(s, 0, "seed", "n_boot", "pretrain_web_pictures")
    _at_least(s, 1, "max_tokens", "n_seeds", "pretrain_epochs", "loco_epochs", "eval_clip_len", "eval_downsample",
              "cross_fold", "layers", "heads", "head_dim",
              "mlp_dim", "max_positions", "window_clip_len", "window_downsample", "window_stride")
    _at_least(s, 2, "outer_folds", "inner_folds")
    if not 0.0 < s.curation.near_duplicate_threshold <= 1.0:
        raise UserError(f"parameter near_duplicate_threshold must be in (0, 1], got "
                        f"{s.curation.near_duplicate_threshold}")
    if s.curation.max_tokens > 75:
        raise UserError(f"parameter max_tokens must be at most 75 (CLIP's context), got {s.curation.max_tokens}")
    for name, value in (("folds", s.plan.folds), ("loco_folds", s.eval.loco_folds)):
        if value is not None and (not value or min(value) < 1):
            raise UserError(f"parameter {name} must list fold numbers from 1, got {value}")
