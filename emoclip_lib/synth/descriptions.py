"""Class descriptions of the synthetic world, written in the visual vocabulary of its own captions.

The tiny CLIP of the synthetic profile learns its text tower from the generator's captions only, so
free English descriptions (data_manifests/class_descriptions.yaml) use words it has never seen. Here
each class is described, like the paper's descriptions, by its facial actions: the most characteristic
components of its recipe (CLASS_RECIPES), worded with the caption phrase bank. Only class-level recipe
knowledge is used, never a sample. The YAML has the schema of data_manifests/class_descriptions.yaml.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..data import CANONICAL_CLASSES
from ..errors import UserError
from .captions import ADJ, ADV_POST, ADV_PRE, CLASS_WORDS, PHRASES
from .recipes import CLASS_RECIPES, CONFLICTS

# In the captions' own words: "The emotion shown is {noun}." (every class name is a caption class noun).
NAME_TEMPLATE = "the emotion shown is {name}."
LEADS = ("A face with {x}.", "The face shows {x}.", "A face seen with {x}.")
NEUTRAL_SENTENCES = ("Nothing much moves on the face.", "The face stays at rest, with no clear movement.",
                     "The face stays still and looks at the camera.")
MIN_SCORE = 0.1  # probability x mean intensity below which a component is not characteristic of a class
MAX_COMPONENTS = 4
STRENGTH = (0.7, 1.1)  # per-clip strength multiplier of sample_expression
HEADER = ("# Class descriptions of the synthetic world (written by emoclip_lib.synth.descriptions from the\n"
          "# class recipes, in the words of the synthetic captions).\n"
          "# Schema: data_manifests/class_descriptions.yaml.\n")


def characteristic_components(label: str) -> list[str]:
    """The recipe components that best characterise a class, most characteristic first.

    Ranked by probability x mean intensity; components below MIN_SCORE, or that cannot be shown
    together with a better-ranked one (CONFLICTS), are left out; at most MAX_COMPONENTS.

    Args:
        label: a canonical class name.
    """
    recipe = CLASS_RECIPES[label]
    scored = [(-1.0 if k == 0 else -prob * (lo + hi) / 2, k, comp)  # the core component always comes first
              for k, (comp, prob, (lo, hi)) in enumerate(recipe)]
    chosen: list[str] = []
    for score, _, comp in sorted(scored):
        clash = any({comp, other} == set(pair) for pair in CONFLICTS for other in chosen)
        if -score >= MIN_SCORE and not clash and len(chosen) < MAX_COMPONENTS:
            chosen.append(comp)
    return chosen


def typical_level(label: str, comp: str) -> int:
    """Most frequent intensity level (0 slight, 1 clear, 2 strong) of a component in the class's clips.

    Args:
        label: a canonical class name.
        comp: a component of the class's recipe.
    """
    lo, hi = next(r for c, _, r in CLASS_RECIPES[label] if c == comp)
    grid = np.linspace(0.0, 1.0, 41)
    value = np.minimum(1.0, np.outer(lo + (hi - lo) * grid, STRENGTH[0] + (STRENGTH[1] - STRENGTH[0]) * grid))
    levels = np.digitize(value.ravel(), [0.35, 0.7])  # the caption writer's thresholds
    return int(np.bincount(levels, minlength=3).argmax())


def _phrase(template: str, level: int, rng: np.random.Generator) -> str:
    """A caption noun phrase with intensity words of `level` (no pronoun: noun phrases use none)."""
    adj = str(rng.choice(ADJ[level]))
    words = {"adj": adj, "a_adj": ("an " if adj[0] in "aeiou" else "a ") + adj,
             "advp": str(rng.choice(ADV_POST[level])), "adv": str(rng.choice(ADV_PRE[level])),
             "p": "the", "side": "left"}
    return template.format(**words)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _subsets(comps: list[str]) -> list[list[str]]:
    """Components of each description: primary = top 3, then all, the core pair, core + the rest."""
    out = [comps[:3], comps, comps[:2], comps[:1] + comps[2:]]
    unique: list[list[str]] = []
    for subset in out:
        if subset and subset not in unique:
            unique.append(subset)
    return unique[:4]


def _class_adjective(label: str, rng: np.random.Generator) -> str:
    """A one-word class adjective that reads well before "face" (not "afraid")."""
    options = [a for a in CLASS_WORDS[label][0] if " " not in a and a != "afraid"]
    return str(rng.choice(options))


def describe_class(label: str, rng: np.random.Generator) -> list[str]:
    """3-4 descriptions of one class; only the first (primary) names the class.

    Args:
        label: a canonical class name.
        rng: random source of the wording.
    """
    adj = _class_adjective(label, rng)
    article = "An" if adj[0] in "aeiou" else "A"
    comps = characteristic_components(label)
    if not comps:  # neutral: no facial action
        return [f"{article} {adj} face at rest, with no clear movement.", *NEUTRAL_SENTENCES]
    offsets = {c: int(rng.integers(len(PHRASES[c][1]))) for c in comps}
    uses = dict.fromkeys(comps, 0)
    leads = rng.permutation(len(LEADS)).tolist()
    texts = []
    for j, subset in enumerate(_subsets(comps)):
        parts = []
        for comp in subset:
            templates = PHRASES[comp][1]
            parts.append(_phrase(templates[(offsets[comp] + uses[comp]) % len(templates)],
                                 typical_level(label, comp), rng))
            uses[comp] += 1
        if j == 0:
            texts.append(f"{article} {adj} face with {_join(parts)}.")
        else:
            texts.append(LEADS[leads[(j - 1) % len(LEADS)]].format(x=_join(parts)))
    return texts


def class_descriptions(seed: int = 0) -> dict:
    """The descriptions document (schema of data_manifests/class_descriptions.yaml) for the 11 classes.

    Args:
        seed: picks the wording variants; the same seed gives the same document.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"seed={seed!r}: the seed must be a non-negative integer")
    classes = {}
    for k, label in enumerate(CANONICAL_CLASSES):
        rng = np.random.default_rng([seed, 7, k])
        adjs, nouns = CLASS_WORDS[label]
        synonyms = list(dict.fromkeys((label, *adjs, *nouns)))
        classes[label] = {"name": label, "descriptions": describe_class(label, rng), "synonyms": synonyms}
    return {"version": 1, "name_template": NAME_TEMPLATE, "classes": classes}


def write_class_descriptions(path: str | Path, seed: int = 0) -> Path:
    """Write the synthetic world's class descriptions YAML (loadable with `descriptions.load_descriptions`).

    Args:
        path: output file (its folder is created).
        seed: picks the wording variants; the same seed gives byte-identical files.
    Returns:
        the path written.
    """
    out = Path(path)
    text = yaml.safe_dump(class_descriptions(seed), sort_keys=False, allow_unicode=True, width=1000)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(HEADER + text, encoding="utf-8")
    return out
