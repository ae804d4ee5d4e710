"""Models: the CLIP backbone (OpenAI architecture, no torchvision), EmoCLIP, checkpoints (ours and official)."""
from .checkpoint import build_model as build_model
from .checkpoint import load_checkpoint as load_checkpoint
from .checkpoint import save_checkpoint as save_checkpoint
from .checkpoint import with_text_tower as with_text_tower
from .clip import build_clip_from_state_dict as build_clip_from_state_dict
from .clip import load_clip as load_clip
from .clip_text import encode_text_trimmed as encode_text_trimmed
from .emoclip import contrastive_loss as contrastive_loss
from .emoclip import EmoCLIP as EmoCLIP
from .emoclip import ModelConfig as ModelConfig
from .emoclip import TemporalConfig as TemporalConfig
from .official import OfficialTemporalReference as OfficialTemporalReference
