"""EmoCLIP reproducibility suite: the shared library behind the notebooks and the `emoclip` command.

Subpackages, in the direction data flows: `data` (manifests, videos, preprocessing, tokenizer,
release converters), `captions` (curation), `synth` (the synthetic face-video world), `model`
(CLIP backbone, EmoCLIP, checkpoints), `features` (frame-embedding cache, the window encoder),
`train` (contrastive training), `zeroshot` (class prompts, evaluation, prediction, explorer),
`downstream` (symptom regression), `pipeline` (the notebooks' stages and the run folder) and `cli`.
"""
from __future__ import annotations

from . import metrics as metrics
from .data import preprocess_frames as preprocess_frames
from .data import tokenize as tokenize
from .errors import UserError as UserError
from .model import EmoCLIP as EmoCLIP
from .model import ModelConfig as ModelConfig
from .model import TemporalConfig as TemporalConfig
from .model import build_model as build_model
from .model import contrastive_loss as contrastive_loss
from .model import load_checkpoint as load_checkpoint
from .model import load_clip as load_clip
from .model import save_checkpoint as save_checkpoint

__version__ = "0.1.0"
__all__ = ["EmoCLIP", "ModelConfig", "TemporalConfig", "UserError", "build_model", "contrastive_loss",
           "load_checkpoint", "load_clip", "metrics", "preprocess_frames", "save_checkpoint", "tokenize"]
