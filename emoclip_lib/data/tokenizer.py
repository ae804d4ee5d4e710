"""CLIP's byte-level BPE tokenizer, reading the vocabulary shipped with the `openai-clip` distribution.

Same algorithm and ids as OpenAI's `clip.tokenize(texts, truncate=True)`, without importing the `clip`
package (whose `__init__` needs torchvision).
"""
from __future__ import annotations

import gzip
import html
import importlib.metadata
from functools import lru_cache
from pathlib import Path

import ftfy
import regex
import torch

from ..errors import UserError

SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
SOT_ID = 49406
EOT_ID = 49407
_NUM_MERGES = 49152 - 256 - 2  # merge rules used: vocab-file lines 1 .. 48894
_TOKEN_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)
_END_OF_WORD = "</w>"


def vocab_file() -> Path:
    """Path of `bpe_simple_vocab_16e6.txt.gz` inside the installed `openai-clip` distribution."""
    try:
        dist = importlib.metadata.distribution("openai-clip")
    except importlib.metadata.PackageNotFoundError as err:
        raise UserError("package 'openai-clip' is not installed; run `pip install openai-clip`") from err
    path = Path(str(dist.locate_file("clip/bpe_simple_vocab_16e6.txt.gz")))
    if not path.is_file():
        raise UserError(f"CLIP vocabulary {path} is missing; reinstall with `pip install --force-reinstall openai-clip`")
    return path


def byte_alphabet() -> dict[int, str]:
    """Map each of the 256 byte values to a printable unicode character (printable bytes map to themselves)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _clean(text: str) -> str:
    """ftfy repair, double html unescape, collapse whitespace, lowercase."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


class BPETokenizer:
    """Byte-level BPE tokenizer with CLIP's 49408-token vocabulary.

    Args:
        path: gzip vocabulary file (default: the one in the `openai-clip` distribution).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        path = Path(path) if path is not None else vocab_file()
        with gzip.open(path, "rb") as fh:
            lines = fh.read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
        self.byte_table = byte_alphabet()
        symbols = list(self.byte_table.values())
        symbols += [s + _END_OF_WORD for s in symbols]
        symbols += ["".join(pair) for pair in merges]
        symbols += [SOT_TOKEN, EOT_TOKEN]
        self.token_ids: dict[str, int] = {s: i for i, s in enumerate(symbols)}
        self.merge_rank: dict[tuple[str, ...], int] = {pair: r for r, pair in enumerate(merges)}
        self.pattern = regex.compile(_TOKEN_PATTERN, regex.IGNORECASE)
        self._word_cache: dict[str, tuple[str, ...]] = {SOT_TOKEN: (SOT_TOKEN,), EOT_TOKEN: (EOT_TOKEN,)}

    def _merge_word(self, word: str) -> tuple[str, ...]:
        """BPE of one pre-token (already mapped to the byte alphabet); cached per word."""
        cached = self._word_cache.get(word)
        if cached is not None:
            return cached
        parts = [*word[:-1], word[-1] + _END_OF_WORD]
        while len(parts) > 1:
            ranked = [(self.merge_rank.get(p, _NUM_MERGES), p) for p in zip(parts[:-1], parts[1:])]
            rank, (left, right) = min(ranked)
            if rank == _NUM_MERGES:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == left and parts[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        result = tuple(parts)
        self._word_cache[word] = result
        return result

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without start/end tokens.

        Args:
            text: any string; it is cleaned (ftfy, html entities, whitespace) and lowercased.
        """
        ids: list[int] = []
        for piece in self.pattern.findall(_clean(text)):
            mapped = "".join(self.byte_table[b] for b in piece.encode("utf-8"))
            ids.extend(self.token_ids[sym] for sym in self._merge_word(mapped))
        return ids


@lru_cache(maxsize=1)
def get_tokenizer() -> BPETokenizer:
    """The shared tokenizer built from the distribution's vocabulary (built once, then cached)."""
    return BPETokenizer()


def tokenize(texts: str | list[str], context_length: int = 77) -> torch.Tensor:
    """Tokenize captions exactly like OpenAI's `clip.tokenize(texts, truncate=True)`.

    Each row is [SOT] + BPE ids + [EOT], zero padded; a too-long row is cut to `context_length`
    and its last position set to EOT.

    Args:
        texts: one string or a list of strings.
        context_length: tokens per row (77 for every CLIP model).

    Returns:
        LongTensor (N, context_length).
    """
    if isinstance(texts, str):
        texts = [texts]
    if context_length < 2:
        raise UserError(f"context_length must be at least 2 (got {context_length})")
    tok = get_tokenizer()
    out = torch.zeros(len(texts), context_length, dtype=torch.long)  # (N, L)
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            raise UserError(f"tokenize expects strings; item {row} is {type(text).__name__}: {text!r}")
        ids = [SOT_ID, *tok.encode(text), EOT_ID][:context_length]
        ids[-1] = EOT_ID
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out
