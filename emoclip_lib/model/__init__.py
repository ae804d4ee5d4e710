from .checkpoint import build_model as build_model
from .checkpoint import load_checkpoint as load_checkpoint
from .checkpoint import save_checkpoint as save_checkpoint
from .clip import load_clip as load_clip
from .emoclip import EmoCLIP as EmoCLIP
from .emoclip import ModelConfig as ModelConfig
from .emoclip import TemporalConfig as TemporalConfig
from .emoclip import contrastive_loss as contrastive_loss
