"""Class descriptions for zero-shot classification: load and validate the YAML, build text prompts.

The default file is `data_manifests/class_descriptions.yaml` (all 11 canonical classes); a user file
may hold a subset or new classes (an unseen emotion is handled by writing its description). The
official EmoCLIP code's flat format (`anger: "sentence"`) is read too.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from .classes import CANONICAL_CLASSES, COMPOUND_SEPARATOR
from ..errors import UserError
from .tokenizer import get_tokenizer

PROMPT_MODES: tuple[str, ...] = ("name", "description", "ensemble")
DEFAULT_TEMPLATE = "a person showing {name}."
_MAX_TOKENS = 75  # CLIP's 77-token context minus start and end tokens


@dataclass(frozen=True)
class ClassDescription:
    """Prompts of one class: the class-name prompt, the descriptions (first = primary), synonyms."""

    name_prompt: str
    descriptions: tuple[str, ...]
    synonyms: tuple[str, ...]
    name: str = ""


def default_descriptions_path() -> Path:
    """The shipped YAML: `data_manifests/class_descriptions.yaml` of the repository, else a copy
    installed next to this module."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[1] / "data_manifests" / "class_descriptions.yaml", here / "class_descriptions.yaml"):
        if candidate.is_file():
            return candidate
    raise UserError("class_descriptions.yaml not found next to the package or in data_manifests/; "
                    "pass the path of your own descriptions file")


def _class_lines(text: str) -> dict[str, int]:
    """Line number (1-based) of each class key (under `classes:`, or at the top of a flat file), for errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            lines.setdefault(str(key.value).strip().lower(), key.start_mark.line + 1)
            if key.value == "classes" and isinstance(value, yaml.MappingNode):
                lines.update({str(k.value).strip().lower(): k.start_mark.line + 1 for k, _ in value.value})
    return lines


def _is_flat(data: Any) -> bool:
    """The official EmoCLIP code's format: `class: "description"` (or a list of descriptions) at the top."""
    return isinstance(data, dict) and bool(data) and "classes" not in data and all(
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v)) for v in data.values())


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse the file; UserError for a missing file, bad YAML or a wrong top-level layout."""
    if not path.is_file():
        raise UserError(f"class descriptions file {path} does not exist; check the path")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: not valid YAML ({getattr(err, 'problem', err)}); fix the syntax") from None
    if _is_flat(data):
        data = {"classes": {key: {"name": str(key).strip().lower(), "descriptions": value}
                            for key, value in data.items()}}
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict) or not data["classes"]:
        raise UserError(f"{path}: expected a mapping with a non-empty `classes:` mapping (class -> name, "
                        f"descriptions, synonyms; see data_manifests/class_descriptions.yaml) or the official "
                        f"code's flat `class: \"description\"` mapping")
    return data, _class_lines(text)


def _strings(value: Any, where: str, field: str, required: bool) -> tuple[str, ...]:
    """A string or a list of non-empty strings, as a tuple."""
    if value is None and not required:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
        raise UserError(f"{where}: `{field}` must be a non-empty list of non-empty strings")
    return tuple(" ".join(s.split()) for s in items)


def _parse_class(key: str, entry: Any, template: str, where: str) -> ClassDescription:
    """Validate one class entry."""
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected a mapping with `name` and `descriptions`")
    for field in ("name", "descriptions"):
        if field not in entry or entry[field] in (None, "", []):
            raise UserError(f"{where}: missing `{field}`; every class needs `name` and `descriptions`")
    name = _strings(entry["name"], where, "name", True)[0]
    descriptions = _strings(entry["descriptions"], where, "descriptions", True)
    synonyms = _strings(entry.get("synonyms"), where, "synonyms", False)
    prompt = entry.get("name_prompt") or template.format(name=name)
    if not isinstance(prompt, str):
        raise UserError(f"{where}: `name_prompt` must be a string")
    tok = get_tokenizer()
    for i, text in enumerate((prompt, *descriptions)):
        n = len(tok.encode(text))
        if n > _MAX_TOKENS:
            what = "the name prompt" if i == 0 else f"description {i}"
            raise UserError(f"{where}: {what} has {n} CLIP tokens but only {_MAX_TOKENS} fit; shorten it")
    return ClassDescription(name_prompt=" ".join(prompt.split()), descriptions=descriptions,
                            synonyms=tuple(s.lower() for s in synonyms), name=name)


# (file, sha256 of its bytes, required) -> parsed classes: a notebook reads the same file dozens of times
# (each zero-shot scoring and held-out-class training), and YAML parsing took 4.6 s of notebook 04.
_PARSED: dict[tuple, dict[str, ClassDescription]] = {}


def load_descriptions(path: str | Path | None = None,
                      required: Iterable[str] | None = None) -> dict[str, ClassDescription]:
    """Load and validate a class-descriptions YAML.

    Args:
        path: the YAML file; None loads the shipped file (see `default_descriptions_path`).
        required: classes that must be present; None means the 11 canonical classes for the shipped
            file and nothing for a user file (which may hold a subset of classes or new ones).

    Returns:
        {class: ClassDescription} in file order (a file whose bytes are those of an earlier call is not
        parsed again).

    Raises:
        UserError: naming the file, line and class of a missing class or field, a bad value, a
            prompt too long for CLIP, or a bad `name_template`.
    """
    file = default_descriptions_path() if path is None else Path(path)
    needed = tuple(CANONICAL_CLASSES if path is None else ()) if required is None else tuple(required)
    try:
        key: tuple | None = (str(file), hashlib.sha256(file.read_bytes()).hexdigest(), needed)
    except OSError:
        key = None  # missing or unreadable: _parse_file says so
    if key is None or key not in _PARSED:
        if len(_PARSED) >= 16:
            _PARSED.clear()
        parsed = _parse_file(file, needed)
        if key is None:
            return parsed
        _PARSED[key] = parsed
    return dict(_PARSED[key])


def _parse_file(file: Path, required: tuple[str, ...]) -> dict[str, ClassDescription]:
    """`load_descriptions` without the memo."""
    data, lines = _read_yaml(file)
    template = data.get("name_template", DEFAULT_TEMPLATE)
    if not isinstance(template, str) or "{name}" not in template:
        raise UserError(f"{file}: `name_template` must be a string containing {{name}}, e.g. {DEFAULT_TEMPLATE!r}")
    try:
        template.format(name="x")
    except (IndexError, KeyError, ValueError):
        raise UserError(f"{file}: `name_template` may only use the {{name}} placeholder "
                        f"(write other braces as {{{{ and }}}})") from None
    out: dict[str, ClassDescription] = {}
    for raw_key, entry in data["classes"].items():
        key = str(raw_key).strip().lower()
        where = f"{file}:{lines.get(key, 0)}: class {key!r}"
        if not key or COMPOUND_SEPARATOR in key:
            raise UserError(f"{where}: class keys must be non-empty and must not contain "
                            f"{COMPOUND_SEPARATOR!r} (compound classes are built from their components)")
        if key in out:
            raise UserError(f"{where}: class defined twice; keep one entry")
        out[key] = _parse_class(key, entry, template, where)
    missing = [c for c in required if c not in out]
    if missing:
        raise UserError(f"{file}: missing class {missing[0]!r} (needed: {', '.join(missing)}); add an entry "
                        f"with `name` and `descriptions`")
    return out


def prompts(classes: Iterable[str], mode: str = "name",
            descriptions: dict[str, ClassDescription] | None = None) -> list[list[str]]:
    """Text prompts per class, for building zero-shot class embeddings.

    "name": [the class-name prompt]; "description": [the primary description]; "ensemble": all the
    descriptions (average their embeddings). A compound class `anger+disgust` gets the prompts of its
    components in order; averaging its prompts' embeddings gives the paper's compound embedding in
    the "name" and "description" modes.

    Args:
        classes: class names (compound ones joined by '+').
        mode: "name", "description" or "ensemble".
        descriptions: from `load_descriptions`; None loads the shipped file.

    Returns:
        One list of prompts per class, in the order of `classes`.
    """
    if mode not in PROMPT_MODES:
        raise UserError(f"prompt mode {mode!r} is not one of {', '.join(PROMPT_MODES)}")
    table = load_descriptions() if descriptions is None else descriptions
    out: list[list[str]] = []
    for cls in classes:
        texts: list[str] = []
        for part in (p.strip().lower() for p in str(cls).split(COMPOUND_SEPARATOR)):
            if part not in table:
                raise UserError(f"class {part!r} has no description; add it to your class descriptions YAML "
                                f"(known: {', '.join(table)})")
            entry = table[part]
            texts += [entry.name_prompt] if mode == "name" else (
                [entry.descriptions[0]] if mode == "description" else list(entry.descriptions))
        out.append(texts)
    return out
