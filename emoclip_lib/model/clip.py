"""OpenAI CLIP backbone: official checkpoints, local files, random real-size and tiny test models.

The architecture is OpenAI's own `clip/model.py` from the installed `openai-clip` distribution, loaded
by file path as a private module (the `clip` package itself imports torchvision and is never imported).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import tempfile
import types
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import UserError

_BASE_URL = "https://openaipublic.azureedge.net/clip/models"
# Official checkpoints (TorchScript archives); the path component before the file name is its SHA256.
CLIP_MODEL_URLS: dict[str, str] = {
    "RN50": f"{_BASE_URL}/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
    "RN101": f"{_BASE_URL}/8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt",
    "RN50x4": f"{_BASE_URL}/7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd/RN50x4.pt",
    "RN50x16": f"{_BASE_URL}/52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa/RN50x16.pt",
    "RN50x64": f"{_BASE_URL}/be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c/RN50x64.pt",
    "ViT-B/32": f"{_BASE_URL}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    "ViT-B/16": f"{_BASE_URL}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
    "ViT-L/14": f"{_BASE_URL}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    "ViT-L/14@336px": f"{_BASE_URL}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
}


def _arch(embed: int, res: int, layers: Any, width: int, patch: int | None, text_width: int) -> dict[str, Any]:
    return dict(embed_dim=embed, image_resolution=res, vision_layers=layers, vision_width=width,
                vision_patch_size=patch, context_length=77, vocab_size=49408, transformer_width=text_width,
                transformer_heads=text_width // 64, transformer_layers=12)


# CLIP constructor arguments of the official models (for `random:<name>`, no file needed).
CLIP_ARCHS: dict[str, dict[str, Any]] = {
    "RN50": _arch(1024, 224, (3, 4, 6, 3), 64, None, 512),
    "RN101": _arch(512, 224, (3, 4, 23, 3), 64, None, 512),
    "RN50x4": _arch(640, 288, (4, 6, 10, 6), 80, None, 640),
    "RN50x16": _arch(768, 384, (6, 8, 18, 8), 96, None, 768),
    "RN50x64": _arch(1024, 448, (3, 15, 36, 10), 128, None, 1024),
    "ViT-B/32": _arch(512, 224, 12, 768, 32, 512),
    "ViT-B/16": _arch(512, 224, 12, 768, 16, 512),
    "ViT-L/14": _arch(768, 224, 24, 1024, 14, 768),
    "ViT-L/14@336px": _arch(768, 336, 24, 1024, 14, 768),
}
# Small CLIP for tests. Heads = width // 64 (what is inferred from a state dict), so it round-trips.
TINY_ARCH: dict[str, Any] = {**_arch(64, 32, 2, 64, 8, 64), "transformer_layers": 2}


def _tiny_arch(name: str) -> dict[str, Any]:
    """`tiny` (32 px) or `tiny@RES`: the tiny CLIP at another input resolution (a multiple of its patch, 8)."""
    if name == "tiny":
        return TINY_ARCH
    res = name.partition("@")[2]
    if not res.isdigit() or int(res) % 8 or int(res) < 8:
        raise UserError(f"{name!r}: write tiny@RES with RES a multiple of 8, e.g. tiny@64")
    return {**TINY_ARCH, "image_resolution": int(res)}


_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")  # int buffers in OpenAI's archives


@functools.lru_cache(maxsize=1)
def openai_clip_module() -> types.ModuleType:
    """OpenAI's `clip/model.py` loaded by path as `emoclip_lib._openai_clip_model` (imports torch/numpy only)."""
    try:
        path = Path(str(importlib.metadata.distribution("openai-clip").locate_file("clip/model.py")))
    except importlib.metadata.PackageNotFoundError as err:
        raise UserError("package 'openai-clip' is not installed; run `pip install openai-clip`") from err
    spec = importlib.util.spec_from_file_location("emoclip_lib._openai_clip_model", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise UserError(f"{path} is missing; reinstall with `pip install --force-reinstall openai-clip`")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _construct(cls_name: str, kwargs: dict[str, Any], seed: int) -> nn.Module:
    """Instantiate an OpenAI class with a seeded init, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = getattr(openai_clip_module(), cls_name)(**kwargs)
    return module.float().eval()


def _require(sd: Mapping[str, torch.Tensor], keys: list[str], source: str) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise UserError(f"{source}: not a CLIP state dict, missing keys {missing} (found {len(sd)} keys "
                        f"such as {list(sd)[:3]}); pass an OpenAI CLIP checkpoint or its state dict")


def _vision_hparams(vsd: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """Vision-tower hyperparameters from `visual.`-stripped keys (ViT if `proj` is present)."""
    if "proj" in vsd:
        _require(vsd, ["conv1.weight", "positional_embedding"], source)
        width, _, _, patch = vsd["conv1.weight"].shape
        layers = len({k.split(".")[2] for k in vsd if k.startswith("transformer.resblocks.")})
        grid = round((vsd["positional_embedding"].shape[0] - 1) ** 0.5)
        return dict(image_resolution=patch * grid, vision_layers=layers, vision_width=width,
                    vision_patch_size=patch, output_dim=vsd["proj"].shape[1])
    _require(vsd, ["layer1.0.conv1.weight", "attnpool.positional_embedding", "attnpool.c_proj.weight"], source)
    layers = tuple(len({k.split(".")[1] for k in vsd if k.startswith(f"layer{b}.")}) for b in (1, 2, 3, 4))
    grid = round((vsd["attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
    return dict(image_resolution=grid * 32, vision_layers=layers, vision_width=vsd["layer1.0.conv1.weight"].shape[0],
                vision_patch_size=None, output_dim=vsd["attnpool.c_proj.weight"].shape[0])


def _infer_hparams(sd: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """CLIP constructor arguments inferred from tensor shapes (text heads assumed = width // 64)."""
    _require(sd, ["text_projection", "positional_embedding", "token_embedding.weight", "ln_final.weight"], source)
    vis = _vision_hparams({k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}, source)
    width = sd["ln_final.weight"].shape[0]
    return dict(embed_dim=sd["text_projection"].shape[1], image_resolution=vis["image_resolution"],
                vision_layers=vis["vision_layers"], vision_width=vis["vision_width"],
                vision_patch_size=vis["vision_patch_size"], context_length=sd["positional_embedding"].shape[0],
                vocab_size=sd["token_embedding.weight"].shape[0], transformer_width=width,
                transformer_heads=max(width // 64, 1),
                transformer_layers=len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")}))


def _load_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    try:
        model.load_state_dict(sd, strict=True)  # copies and converts fp16 -> fp32
    except RuntimeError as err:
        raise UserError(f"{source}: weights do not fit the inferred CLIP architecture: {err}") from err
    return model.float().eval()


def _strip_prefix(sd: Mapping[str, Any]) -> dict[str, Any]:
    sd = {k: v for k, v in sd.items() if k not in _EXTRA_KEYS}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def build_clip_from_state_dict(state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict") -> nn.Module:
    """OpenAI `CLIP` (float32, eval, CPU) with hyperparameters inferred from the tensors, loaded strictly.

    Args:
        state_dict: OpenAI CLIP keys (`visual.*`, `transformer.*`, ...), fp16 or fp32; not modified.
        source: name used in error messages (e.g. the checkpoint file).
    """
    sd = _strip_prefix(state_dict)
    model = _construct("CLIP", _infer_hparams(sd, source), seed=0)
    return _load_strict(model, sd, source)


def build_visual_from_state_dict(state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict") -> nn.Module:
    """OpenAI `VisionTransformer` / `ModifiedResNet` from a visual-only state dict, loaded strictly.

    Args:
        state_dict: `visual.*` keys (other keys are ignored) or keys already stripped of `visual.`.
        source: name used in error messages.
    """
    sd = _strip_prefix(state_dict)
    if any(k.startswith("visual.") for k in sd):
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
    hp = _vision_hparams(sd, source)
    common = dict(input_resolution=hp["image_resolution"], width=hp["vision_width"], layers=hp["vision_layers"],
                  output_dim=hp["output_dim"])
    if hp["vision_patch_size"] is None:
        model = _construct("ModifiedResNet", dict(common, heads=hp["vision_width"] * 32 // 64), seed=0)
    else:
        kwargs = dict(common, patch_size=hp["vision_patch_size"], heads=max(hp["vision_width"] // 64, 1))
        model = _construct("VisionTransformer", kwargs, seed=0)
    return _load_strict(model, sd, source)


def clip_hparams(model: nn.Module) -> dict[str, Any]:
    """Constructor hyperparameters of a CLIP model (embed_dim, image_resolution, vision_*, text ones).

    Args:
        model: an OpenAI `CLIP` module.
    """
    if not isinstance(model, openai_clip_module().CLIP):
        raise UserError(f"clip_hparams expects an OpenAI CLIP model, got {type(model).__name__}")
    hp = _infer_hparams(model.state_dict(), type(model).__name__)
    hp["transformer_heads"] = model.transformer.resblocks[0].attn.num_heads
    return hp


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, expected: str, progress: bool) -> None:
    """Download `url` to a temp file next to `target`, check SHA256, then rename atomically."""
    tmp, digest = "", hashlib.sha256()
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as src:
                size = src.headers.get("Content-Length")
                with tqdm(total=int(size) if size else None, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=target.name, disable=not progress) as bar:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise UserError(f"could not download {target.name} ({err}); download it yourself from {url} "
                            f"and save it as {target}") from err
        if digest.hexdigest() != expected:
            raise UserError(f"downloaded {url} but its SHA256 is {digest.hexdigest()}, expected {expected}; "
                            f"the file was deleted, try again or download it yourself and save it as {target}")
        os.replace(tmp, target)
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def download_checkpoint(name: str, cache_dir: str | os.PathLike[str] | None = None, *, url: str | None = None,
                        download: bool = True, progress: bool = True) -> Path:
    """Path of an official CLIP checkpoint in `cache_dir`, downloaded and SHA256-checked if absent.

    Args:
        name: key of `CLIP_MODEL_URLS` (e.g. "ViT-B/32"); ignored for the URL when `url` is given.
        cache_dir: folder of checkpoints (default `~/.cache/clip`), file name = basename of the URL.
        url: override URL; its second-to-last path component must be the file's SHA256.
        download: fetch the file when it is absent (otherwise raise UserError).
        progress: show a tqdm progress bar while downloading.
    """
    if url is None and name not in CLIP_MODEL_URLS:
        raise UserError(f"unknown CLIP model {name!r}; known: {', '.join(CLIP_MODEL_URLS)}")
    url = url or CLIP_MODEL_URLS[name]
    expected = url.rstrip("/").split("/")[-2].lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise UserError(f"URL {url} does not carry a SHA256 as its second-to-last path component")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else Path.home() / ".cache" / "clip"
    target = folder / url.rstrip("/").split("/")[-1]
    if target.exists():
        if not target.is_file():
            raise UserError(f"{target} exists but is not a regular file; remove it")
        if _sha256(target) != expected:
            raise UserError(f"{target} exists but its SHA256 does not match {expected}; delete it to "
                            f"re-download, or replace it with the file from {url}")
        return target
    if not download:
        raise UserError(f"{target} not found; download {url} and save it as {target} (or allow downloading)")
    _fetch(url, target, expected, progress)
    return target


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a TorchScript archive (as OpenAI publishes) or of a `torch.save`d state dict, on CPU.

    Args:
        path: checkpoint file; a dict with a "state_dict" entry is unwrapped.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; check the path")
    try:
        if _is_torchscript(path):
            with warnings.catch_warnings():  # torch.jit.load is deprecated but OpenAI publishes archives
                warnings.simplefilter("ignore", DeprecationWarning)
                obj: Any = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to parse a user file is a user error
        raise UserError(f"{path} is not a readable PyTorch or TorchScript checkpoint "
                        f"({type(err).__name__}: {str(err)[:200]})") from err
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, Mapping) else {}
    if not tensors:
        raise UserError(f"{path} holds no state dict of tensors (found {type(obj).__name__})")
    return tensors


def load_clip(name_or_path: str, device: str | torch.device = "cpu", *, cache_dir: str | None = None,
              download: bool = True, seed: int = 0, progress: bool = True) -> nn.Module:
    """OpenAI CLIP in float32 and eval mode.

    Args:
        name_or_path: an official name ("ViT-B/32", ...; cached in `cache_dir`, downloaded if absent),
            "random:<name>" (that architecture, randomly initialised from `seed`), "tiny" (a small CLIP
            for tests, initialised from `seed`), or a local TorchScript archive / state-dict file.
        device: where to put the model.
        cache_dir: folder of official checkpoints (default `~/.cache/clip`).
        download: allow downloading an official checkpoint that is not cached.
        seed: initialisation seed for "tiny" and "random:*" (global RNG untouched).
        progress: show download progress.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available; use device='cpu'")
    if name_or_path == "tiny" or name_or_path.startswith("tiny@"):
        model = _construct("CLIP", _tiny_arch(name_or_path), seed)
    elif name_or_path.startswith("random:"):
        arch = name_or_path[len("random:"):]
        if arch not in CLIP_ARCHS:
            raise UserError(f"unknown architecture {arch!r} in {name_or_path!r}; known: {', '.join(CLIP_ARCHS)}")
        model = _construct("CLIP", CLIP_ARCHS[arch], seed)
    else:
        if name_or_path in CLIP_MODEL_URLS:
            path = download_checkpoint(name_or_path, cache_dir, download=download, progress=progress)
        else:
            path = Path(name_or_path).expanduser()
            if not path.exists():
                raise UserError(f"{name_or_path!r} is neither a CLIP model name ({', '.join(CLIP_MODEL_URLS)}, "
                                f"tiny, random:<name>) nor an existing checkpoint file")
        model = build_clip_from_state_dict(read_state_dict(path), source=str(path))
    return model.to(dev)
