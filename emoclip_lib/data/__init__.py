from .preprocess import preprocess_frames as preprocess_frames
from .tokenizer import tokenize as tokenize
