"""Contrastive training of EmoCLIP (CPU, one GPU or DDP) and the CLIP-style pretraining of the stand-in backbone."""
from . import distributed as distributed
from .config import TrainConfig as TrainConfig
from .data import split_train_val as split_train_val
from .distributed import DistContext as DistContext
from .loop import train as train
from .loop import TrainResult as TrainResult
from .pretrain import pretrain_clip as pretrain_clip
