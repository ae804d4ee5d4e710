"""Frame and window embeddings: the on-disk frame cache, content and weight fingerprints, the one window encoder."""
from .frame_cache import build_frame_cache as build_frame_cache
from .frame_cache import caption_embeddings as caption_embeddings
from .frame_cache import Preprocessing as Preprocessing
from .hashing import content_hash as content_hash
from .hashing import modules_fingerprint as modules_fingerprint
from .hashing import tower_fingerprint as tower_fingerprint
from .hashing import weights_fingerprint as weights_fingerprint
from .window_cache import cached_window_embeddings as cached_window_embeddings
from .window_cache import cached_window_embeddings_multi as cached_window_embeddings_multi
from .window_cache import ENCODERS as ENCODERS
from .window_cache import make_encoder as make_encoder
from .windows import encode_frames_in_passes as encode_frames_in_passes
from .windows import frame_average as frame_average
from .windows import pool_windows as pool_windows
from .windows import POOLINGS as POOLINGS
from .windows import VideoWindows as VideoWindows
from .windows import window_embeddings as window_embeddings
