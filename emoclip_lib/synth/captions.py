"""English sample-level captions for synthetic clips, written from the components actually drawn.

A caption describes the person and setting, then each visible facial action with an intensity
word; only a minority of captions also names the emotion (as human annotators sometimes do).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .people import Person, Scene

# Intensity levels: <0.35, <0.7, else. "pre" adverbs go before a verb, "post" after its object.
ADV_PRE = (("slightly", "faintly", "subtly"), ("clearly", "noticeably", "visibly"),
           ("strongly", "sharply", "markedly"))
ADV_POST = (("slightly", "a little", "a bit"), ("noticeably", "clearly", "visibly"),
            ("strongly", "a lot", "sharply"))
ADJ = (("slight", "faint", "subtle"), ("clear", "noticeable", "moderate"), ("strong", "pronounced", "intense"))

# component -> (verb phrases after the subject, noun phrases after "with").
PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "brow_raise": (("{adv} raises {p} eyebrows", "lifts {p} eyebrows {advp}", "{adv} arches {p} brows"),
                   ("{adj} raised eyebrows", "eyebrows lifted {advp}", "{a_adj} lift of the brows")),
    "inner_brow_raise": (("{adv} raises the inner ends of {p} eyebrows", "draws the inner brows upward {advp}"),
                         ("inner brows raised {advp}", "{a_adj} upward slant of the inner eyebrows")),
    "brow_lower": (("{adv} lowers {p} eyebrows", "pulls {p} brows down {advp}", "{adv} frowns"),
                   ("{adj} lowered brows", "brows pulled down {advp}", "{a_adj} frown")),
    "brow_knit": (("{adv} knits {p} brows together", "draws {p} eyebrows together {advp}", "{adv} furrows {p} brow"),
                  ("{adj} knitted brows", "{a_adj} furrow between the eyebrows", "brows drawn together {advp}")),
    "eyes_wide": (("{adv} widens {p} eyes", "opens {p} eyes wider {advp}"),
                  ("{adj} widened eyes", "eyes opened {advp} wider")),
    "eyes_narrow": (("{adv} narrows {p} eyes", "squints {advp}", "{adv} tightens {p} eyelids"),
                    ("{adj} narrowed eyes", "eyes squeezed {advp}", "{a_adj} squint")),
    "eyes_closed": (("{adv} closes {p} eyes", "lets {p} eyelids drop {advp}"),
                    ("eyes closed {advp}", "{adj} shut eyelids")),
    "lip_corner_up": (("{adv} smiles", "pulls the corners of {p} mouth up {advp}", "{adv} turns up {p} lip corners"),
                      ("{a_adj} smile", "lip corners raised {advp}", "mouth corners turned up {advp}")),
    "lip_corner_down": (("{adv} pulls the corners of {p} mouth down", "turns {p} lip corners down {advp}"),
                        ("mouth corners turned down {advp}", "{a_adj} downturn of the lips")),
    "lip_corner_one_side": (("{adv} raises one corner of {p} mouth", "pulls up the {side} corner of {p} lips {advp}"),
                            ("{a_adj} lopsided smirk", "one lip corner raised {advp}", "{a_adj} one-sided half-smile")),
    "lips_press": (("{adv} presses {p} lips together", "tightens {p} lips {advp}", "{adv} compresses {p} lips"),
                   ("{adj} pressed lips", "lips pressed together {advp}", "{a_adj} tight line of the lips")),
    "mouth_open": (("{adv} opens {p} mouth", "lets {p} jaw drop {advp}", "parts {p} lips {advp}"),
                   ("{adj} parted lips", "mouth opened {advp}", "{a_adj} drop of the jaw")),
    "nose_wrinkle": (("{adv} wrinkles {p} nose", "scrunches up {p} nose {advp}"),
                     ("{a_adj} wrinkle across the nose", "nose wrinkled {advp}", "{adj} creases on the nose")),
    "gaze_down": (("looks down {advp}", "{adv} lowers {p} gaze", "casts {p} eyes down {advp}"),
                  ("eyes cast down {advp}", "{a_adj} downward gaze", "gaze lowered {advp}")),
    "gaze_away": (("looks away {advp}", "{adv} avoids the camera", "turns {p} eyes to the {side} {advp}"),
                  ("{a_adj} sideways glance", "eyes turned away {advp}", "gaze averted {advp}")),
    "head_tilt": (("{adv} tilts {p} head", "leans {p} head to one side {advp}", "tilts {p} head to the {side} {advp}"),
                  ("{a_adj} head tilt", "head tilted {advp}", "{a_adj} tilt of the head")),
}
# class -> (adjectives, nouns); used only in the class sentence of a minority of captions.
CLASS_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "anger": (("angry", "furious", "irritated", "annoyed"), ("anger", "irritation", "rage")),
    "disgust": (("disgusted", "repulsed"), ("disgust", "revulsion")),
    "fear": (("afraid", "scared", "frightened", "fearful"), ("fear", "fright")),
    "happiness": (("happy", "cheerful", "joyful", "pleased"), ("happiness", "joy")),
    "neutral": (("neutral", "expressionless", "impassive"), ("neutral", "blank")),
    "sadness": (("sad", "unhappy", "sorrowful", "downcast"), ("sadness", "sorrow")),
    "surprise": (("surprised", "astonished", "startled", "amazed"), ("surprise", "astonishment")),
    "contempt": (("contemptuous", "scornful", "disdainful"), ("contempt", "scorn", "disdain")),
    "anxiety": (("anxious", "worried", "nervous", "uneasy"), ("anxiety", "worry", "nervousness")),
    "helplessness": (("helpless", "powerless", "resigned"), ("helplessness", "resignation")),
    "disappointment": (("disappointed", "let down", "discouraged"), ("disappointment",)),
}
SETTING_PHRASES: dict[str, tuple[str, ...]] = {
    "office": ("in an office", "at a desk in an office"), "dim room": ("in a dim room", "in a poorly lit room"),
    "outdoors": ("outdoors", "outside in the open air"), "kitchen": ("in a kitchen", "in a small kitchen"),
    "car": ("in a car", "inside a parked car"), "living room": ("in a living room", "at home in a living room"),
    "studio": ("in front of a plain backdrop", "against a plain wall"), "clinic": ("in a consulting room",),
}
STILL_SENTENCES = ("{S} keeps {p} face still.", "{P} face stays at rest, with no clear movement.",
                   "Nothing much moves on {p} face.", "{S} looks at the camera without moving {p} features much.")
EXTRA_SENTENCES = ("The camera stays steady throughout the short clip.", "The background is slightly out of focus.",
                   "{S} sits upright and does not move {p} shoulders.", "The framing shows the head and the shoulders.",
                   "Apart from the face, nothing else in the scene changes.", "{S} wears a {shirt} top.")


MAX_MENTIONED = 4  # at most this many (the strongest) components are described


@dataclass(frozen=True)
class Caption:
    """A caption and what it says: component -> phrase used, and whether a class word was added."""

    text: str
    mentioned: dict[str, str]
    names_class: bool


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _level(value: float) -> int:
    return 0 if value < 0.35 else (1 if value < 0.7 else 2)


def _fill(template: str, value: float, person: Person, scene: Scene, rng: np.random.Generator) -> str:
    lvl = _level(value)
    adj = _pick(rng, ADJ[lvl])
    words = {"adv": _pick(rng, ADV_PRE[lvl]), "advp": _pick(rng, ADV_POST[lvl]), "adj": adj,
             "a_adj": ("an " if adj[0] in "aeiou" else "a ") + adj, "p": _pronouns(person)[1],
             "side": "left" if scene.side < 0 else "right"}
    return template.format(**words)


def _pronouns(person: Person) -> tuple[str, str]:
    return ("he", "his") if person.gender == "man" else ("she", "her")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe_person(person: Person, rng: np.random.Generator) -> str:
    """A short noun phrase such as "a young man with short dark brown hair and glasses".

    Args:
        person: the identity.
        rng: random source of the wording.
    """
    age = {"young": ("young",), "middle-aged": ("middle-aged",), "older": ("older", "elderly")}[person.age]
    noun = ("man", "guy") if person.gender == "man" else ("woman", "lady")
    colour = person.hair_colour
    hair = {"short": f"short {colour} hair", "long": f"long {colour} hair", "bald": "a shaved head",
            "curly": f"curly {colour} hair", "bun": f"{colour} hair tied in a bun"}[person.hair_style]
    extras = ([hair] if rng.random() < 0.75 else []) + (["a beard"] if person.beard else [])
    extras += ["glasses"] if person.glasses else []
    age_word = _pick(rng, age)
    text = f"{'an' if age_word[0] in 'aeiou' else 'a'} {age_word} {_pick(rng, noun)}"
    return f"{text} with {_join(extras)}" if extras else text


def _light_phrase(scene: Scene, rng: np.random.Generator) -> str:
    if scene.light_strength < 0.12:
        return _pick(rng, ("in even light", "under soft, even light"))
    direction = ("the right", "below", "the left", "above")[int(((scene.light_angle + 45) % 360) // 90)]
    if scene.light_strength > 0.3:
        return f"with harsh light from {direction}"
    return _pick(rng, (f"lit from {direction}", f"with light coming from {direction}"))


def _opening(person: Person, scene: Scene, rng: np.random.Generator) -> str:
    who, where, light = describe_person(person, rng), _pick(rng, SETTING_PHRASES[scene.setting]), _light_phrase(scene, rng)
    patterns = ("{who} sits {where}, {light}.", "{where}, {who} faces the camera.", "The clip shows {who} {where}.",
                "{who} is filmed {where}, {light}.", "We see {who} {where}.")
    return _pick(rng, patterns).format(who=who, where=where, light=light)


def _expression_sentences(visible: dict[str, float], person: Person, scene: Scene,
                          rng: np.random.Generator) -> tuple[list[str], dict[str, str]]:
    subj, poss = _pronouns(person)
    verbs, nouns, mentioned = [], [], {}
    strongest = sorted(visible, key=lambda c: (-visible[c], c))[:MAX_MENTIONED]
    for comp in rng.permutation(sorted(strongest)).tolist():
        form = int(rng.integers(2))
        phrase = _fill(_pick(rng, PHRASES[comp][form]), visible[comp], person, scene, rng)
        (nouns if form else verbs).append(phrase)
        mentioned[comp] = phrase
    sentences = []
    if verbs:
        sentences.append(f"{subj} {_join(verbs)}.")
    if nouns:
        lead = _pick(rng, ("{P} face shows {x}.", "{S} is seen with {x}.", "{S} looks at the camera with {x}."))
        sentences.append(lead.format(S=subj, P=poss, p=poss, x=_join(nouns)))
    if not visible:
        sentences.append(_pick(rng, STILL_SENTENCES).format(S=subj, P=poss, p=poss))
    return sentences, mentioned


def _dynamics_sentence(onset: float, release: float, rng: np.random.Generator) -> str:
    speed = _pick(rng, ("appears quickly", "comes on fast")) if onset < 0.2 else _pick(
        rng, ("builds up slowly", "develops gradually"))
    end = _pick(rng, ("then fades", "then mostly relaxes")) if release < 0.45 else _pick(
        rng, ("then softens only a little", "is partly held until the end"))
    return f"The expression {speed} and {end}."


def _capitalised(sentences: list[str]) -> str:
    """The sentences joined by spaces, each starting with a capital letter."""
    return " ".join(s[0].upper() + s[1:] for s in sentences)


def _class_sentence(labels: tuple[str, ...], person: Person, rng: np.random.Generator) -> str:
    subj, poss = _pronouns(person)
    adjs = [_pick(rng, CLASS_WORDS[c][0]) for c in labels]
    nouns = [_pick(rng, CLASS_WORDS[c][1]) for c in labels]
    noun = nouns[0] if len(nouns) == 1 else f"a mix of {_join(nouns)}"
    patterns = (f"{subj} seems {_join(adjs)}.", f"{subj} looks {_join(adjs)}.",
                f"Overall, {poss} expression reads as {noun}.", f"The emotion shown is {noun}.")
    return _pick(rng, patterns)


def _context_sentences(person: Person, scene: Scene, rng: np.random.Generator, long: bool) -> list[str]:
    subj, poss = _pronouns(person)
    out = []
    if scene.occluder == "hand_mouth":
        out.append(f"{poss} hand partly covers {poss} mouth.")
    elif scene.occluder == "hand_chin":
        out.append(f"{subj} rests {poss} chin on {poss} hand.")
    elif scene.occluder == "bar":
        out.append(f"A dark object blocks the {'left' if scene.side < 0 else 'right'} edge of the frame.")
    if scene.noise_sigma > 6.0:
        out.append(_pick(rng, ("The footage is grainy.", "The picture is a little noisy.")))
    if long:
        picks = rng.choice(len(EXTRA_SENTENCES), size=3, replace=False)
        out += [EXTRA_SENTENCES[k].format(S=subj, p=poss, shirt=person.shirt_colour) for k in sorted(picks)]
    return out


def make_caption(person: Person, scene: Scene, visible: dict[str, float], labels: tuple[str, ...],
                 onset: float, release: float, rng: np.random.Generator, p_class: float = 0.25) -> Caption:
    """Write the caption of one clip.

    Args:
        person: the identity.
        scene: the filming conditions.
        visible: component -> apex intensity of what is actually drawn and not hidden.
        labels: the clip's classes.
        onset: onset duration as a fraction of the clip.
        release: the level kept after the offset (0..1).
        rng: random source of the wording.
        p_class: probability of adding a sentence that names the emotion.
    """
    sentences = [_opening(person, scene, rng)]
    body, mentioned = _expression_sentences(visible, person, scene, rng)
    sentences += body
    if visible and rng.random() < 0.3:
        sentences.append(_dynamics_sentence(onset, release, rng))
    sentences += _context_sentences(person, scene, rng, long=rng.random() < 0.05)
    names_class = bool(rng.random() < p_class)
    if names_class:
        sentences.insert(len(sentences) - int(rng.integers(0, 2)), _class_sentence(labels, person, rng))
    text = _capitalised(sentences)
    return Caption(text=re.sub(r"\s+", " ", text).strip(), mentioned=mentioned, names_class=names_class)


def still_caption(person: Person, scene: Scene, visible: dict[str, float], labels: tuple[str, ...],
                  rng: np.random.Generator, p_class: float = 0.25) -> str:
    """Caption of a single picture: only what the face does (no person, room or light), as in alt-text.

    Args:
        person: the identity (for pronouns).
        scene: the filming conditions.
        visible: component -> intensity of what is drawn.
        labels: the picture's classes.
        rng: random source of the wording.
        p_class: probability of adding a sentence that names the emotion.
    """
    sentences, _ = _expression_sentences(visible, person, scene, rng)
    if rng.random() < p_class:
        sentences.append(_class_sentence(labels, person, rng))
    return _capitalised(sentences)


def class_word_pattern(label: str) -> re.Pattern[str]:
    """Regex matching any adjective or noun used for a class in captions.

    Args:
        label: a canonical class name.
    """
    adjs, nouns = CLASS_WORDS[label]
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in adjs + nouns) + r")\b", re.IGNORECASE)
