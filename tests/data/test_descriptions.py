"""Class descriptions YAML: completeness of the shipped file, validation errors, prompt building."""
from __future__ import annotations

from pathlib import Path

import pytest

from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.data.descriptions import (ClassDescription, default_descriptions_path, load_descriptions,
                                      prompts)
from emoclip_lib.errors import UserError
from emoclip_lib.data.tokenizer import get_tokenizer

USER_YAML = """\
name_template: "a face showing {name}."
classes:
  anger:
    name: anger
    descriptions:
      - "Brows pulled down, a glaring stare and tight lips."
      - "Clenched jaw and flared nostrils."
    synonyms: [angry, furious]
  Boredom:
    name: boredom
    name_prompt: "a bored person."
    descriptions: "Heavy eyelids, a slack mouth and the head propped on a hand."
"""


@pytest.fixture(scope="module")
def shipped() -> dict[str, ClassDescription]:
    return load_descriptions()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "desc.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_file_is_complete(shipped: dict[str, ClassDescription]) -> None:
    assert default_descriptions_path().name == "class_descriptions.yaml"
    assert list(shipped) == list(CANONICAL_CLASSES)
    tok = get_tokenizer()
    all_descriptions = []
    for cls, entry in shipped.items():
        assert entry.name == cls
        assert cls in entry.name_prompt and entry.name_prompt.strip()
        assert 3 <= len(entry.descriptions) <= 5
        assert all(len(tok.encode(d)) <= 75 for d in entry.descriptions)
        assert cls in entry.synonyms
        all_descriptions += entry.descriptions
    assert len(set(all_descriptions)) == len(all_descriptions)
    assert shipped["anger"].name_prompt == "a person showing anger."
    assert shipped["neutral"].name_prompt == "a person with a neutral expression."


@pytest.mark.parametrize("cls, words", [
    ("anger", ["angry", "anger"]), ("happiness", ["happy", "happiness"]), ("sadness", ["sad", "sadness"]),
    ("surprise", ["surprised", "surprise"]), ("disgust", ["disgusted"]),
    ("fear", ["afraid", "scared", "fearful"]), ("anxiety", ["anxious"]), ("helplessness", ["helpless"]),
    ("disappointment", ["disappointed"]), ("contempt", ["contemptuous"]),
])
def test_shipped_synonyms_cover_inflections(shipped: dict[str, ClassDescription], cls: str, words: list[str]) -> None:
    assert set(words) <= set(shipped[cls].synonyms)


def test_user_file_subset_and_new_class(tmp_path: Path) -> None:
    table = load_descriptions(write(tmp_path, USER_YAML))
    assert list(table) == ["anger", "boredom"]
    assert table["anger"].name_prompt == "a face showing anger."
    assert table["anger"].synonyms == ("angry", "furious")
    assert table["boredom"].name_prompt == "a bored person."
    assert table["boredom"].descriptions == ("Heavy eyelids, a slack mouth and the head propped on a hand.",)
    assert table["boredom"].synonyms == ()
    with pytest.raises(UserError, match=r"desc\.yaml.*missing class 'fear'"):
        load_descriptions(write(tmp_path, USER_YAML), required=["anger", "fear"])


@pytest.mark.parametrize("text, pattern", [
    ("classes:\n  anger:\n    name: anger\n", r"desc\.yaml:2: class 'anger': missing `descriptions`"),
    ("classes:\n  fear:\n    descriptions: [wide eyes]\n", r"desc\.yaml:2: class 'fear': missing `name`"),
    ("classes:\n  fear:\n    name: fear\n    descriptions: [wide eyes, 3]\n", r"class 'fear'.*non-empty strings"),
    ("classes:\n  fear: wide eyes\n", r"class 'fear': expected a mapping"),
    ("classes:\n  anger+fear:\n    name: x\n    descriptions: [y]\n", r"must not contain '\+'"),
    ("classes: [anger]\n", r"non-empty `classes:` mapping"),
    ("classes:\n  anger:\n    name: [unclosed\n", r"desc\.yaml:\d+: not valid YAML"),
    ("name_template: a person\nclasses:\n  a:\n    name: a\n    descriptions: [b]\n", r"\{name\}"),
    ("name_template: '{name} {x}'\nclasses:\n  a:\n    name: a\n    descriptions: [b]\n", r"only use"),
    ("classes:\n  anger:\n    name: anger\n    descriptions: ['" + "very " * 80 + "angry']\n",
     r"description 1 has \d+ CLIP tokens"),
])
def test_validation_errors_name_file_and_class(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(UserError, match=pattern):
        load_descriptions(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_descriptions(tmp_path / "nope.yaml")


def test_prompt_modes(shipped: dict[str, ClassDescription]) -> None:
    assert prompts(["anger", "fear"], "name", shipped) == [["a person showing anger."], ["a person showing fear."]]
    primary = prompts(["sadness"], "description", shipped)
    assert primary == [[shipped["sadness"].descriptions[0]]]
    ensemble = prompts(["sadness"], "ensemble", shipped)
    assert ensemble == [list(shipped["sadness"].descriptions)]
    compound = prompts(["anger+disgust"], "description", shipped)
    assert compound == [[shipped["anger"].descriptions[0], shipped["disgust"].descriptions[0]]]
    assert prompts(["happiness"], "name") == [["a person showing happiness."]]  # loads the shipped file


def test_prompt_errors(tmp_path: Path, shipped: dict[str, ClassDescription]) -> None:
    with pytest.raises(UserError, match="prompt mode 'names'"):
        prompts(["anger"], "names", shipped)
    user = load_descriptions(write(tmp_path, USER_YAML))
    with pytest.raises(UserError, match="class 'fear' has no description"):
        prompts(["anger", "fear"], "description", user)
    assert prompts(["boredom"], "ensemble", user) == [["Heavy eyelids, a slack mouth and the head propped on a hand."]]


def test_an_unchanged_file_is_parsed_once_and_an_edit_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml
    calls = []
    real = yaml.safe_load
    monkeypatch.setattr(yaml, "safe_load", lambda text: calls.append(1) or real(text))
    path = write(tmp_path, USER_YAML)
    first = load_descriptions(path)
    first.clear()  # the caller's dict is its own
    again = load_descriptions(path)
    assert len(calls) == 1 and again == load_descriptions(path) and again
    path.write_text(USER_YAML.replace("anger", "angst"), encoding="utf-8")  # same size, maybe the same mtime
    edited = load_descriptions(path)
    assert len(calls) == 2 and "angst" in edited and "anger" not in edited
