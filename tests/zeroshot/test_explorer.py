"""The embedding explorer: ranking and its spread, widgets driven without a frontend, static fallback."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from emoclip_lib.data import get_tokenizer
from emoclip_lib.model.checkpoint import build_model
from emoclip_lib.errors import DataError, UserError
from emoclip_lib.zeroshot import chance_level, model_scale, spread
from emoclip_lib.zeroshot.explorer_view import frame_strip, score_figure
from emoclip_lib.zeroshot.explorer import (NAME_TEMPLATE, build_explorer, query_prompts, ranked_table,
                                           show_explorer, token_overflow)
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig
from emoclip_lib.zeroshot.prompts import class_text_embeddings

PROMPTS = {"anger": ["an angry face with a frown"], "happiness": ["a smiling happy face"],
           "sadness": ["a sad face with tears"]}
PLANTED = [7, 2]  # clips made to match "happiness" (7 closest)
N = 12


@pytest.fixture(scope="module")
def data() -> dict:
    model = build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0).eval()
    encode = model.encode_text
    with torch.no_grad():
        happy = class_text_embeddings(encode, {"h": PROMPTS["happiness"]})[0]  # (D,)
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(N, happy.shape[0], generator=gen)  # (N, D)
    emb = emb - (emb @ happy).unsqueeze(1) * happy  # orthogonal to the query: cosine 0
    emb[PLANTED[0]] = 3.0 * happy + 0.1 * emb[PLANTED[0]]
    emb[PLANTED[1]] = 1.0 * happy + 0.5 * emb[PLANTED[1]]
    rows = pd.DataFrame({"path": [f"clip{i}.mp4" for i in range(N)], "labels": ["happiness"] * N,
                         "caption": [f"caption <{i}>" for i in range(N)]})
    rng = np.random.default_rng(0)
    frames = {i: rng.integers(0, 256, (6, 3, 20, 24), dtype=np.uint8) for i in range(N)}
    return {"encode": encode, "emb": emb, "rows": rows, "frame_fn": lambda i: torch.from_numpy(frames[i])}


def test_query_prompts() -> None:
    assert query_prompts("Happiness", PROMPTS) == PROMPTS["happiness"]
    assert query_prompts(" joy ", PROMPTS) == [NAME_TEMPLATE.format("joy")]
    long = "a wide grin with raised cheeks"
    assert query_prompts(long, PROMPTS) == [long]
    with pytest.raises(UserError, match="empty query"):
        query_prompts("  ", PROMPTS)


def test_ranked_table_puts_planted_clips_first(data: dict) -> None:
    table = ranked_table("happiness", data["emb"], data["rows"], data["encode"], PROMPTS, top_k=4)
    assert list(table["index"][:2]) == PLANTED and list(table["rank"]) == [1, 2, 3, 4]
    assert list(table["path"][:2]) == [f"clip{i}.mp4" for i in PLANTED]
    assert table["cosine"].is_monotonic_decreasing and table["cosine"].iloc[0] > 0.9
    assert abs(table["cosine"].iloc[2]) < 1e-4  # the others are orthogonal to the query
    with pytest.raises(UserError, match="rows has 3 rows but video_emb has 12"):
        ranked_table("x", data["emb"], data["rows"].head(3), data["encode"])


def test_frame_strip_shapes() -> None:
    frames = np.zeros((10, 3, 20, 30), dtype=np.uint8)
    assert frame_strip(frames, max_frames=4, height=40).shape == (40, 4 * 60, 3)
    assert frame_strip(np.zeros((10, 50, 3), dtype=np.uint8), height=20).shape == (20, 100, 3)
    with pytest.raises(UserError, match="uint8"):
        frame_strip(np.zeros((2, 3, 4, 4), dtype=np.float32))


def _softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    return [e / sum(exps) for e in exps]


def test_widgets_update_on_query_and_clip_choice(data: dict) -> None:
    explorer = build_explorer(data["emb"], data["rows"], data["encode"], data["frame_fn"], PROMPTS, scale=50.0,
                              top_k=3, initial_query="sadness")
    ws = explorer.widgets
    ws["query"].value = "happiness"  # what typing + Enter does in the browser
    assert len(ws["results"].children) == 3 and "for 'happiness'" in ws["summary"].value
    strip, text = ws["results"].children[0].children
    assert strip.value[:4] == b"\x89PNG" and "clip7.mp4" in text.value and "caption &lt;7&gt;" in text.value
    assert [v for _, v in ws["clip"].options][:2] == PLANTED and ws["clip"].value == PLANTED[0]
    ws["clip"].value = PLANTED[1]
    assert ws["chart"].value[:4] == b"\x89PNG" and "caption &lt;2&gt;" in ws["details"].value
    assert ws["frames"].value == explorer.strip(PLANTED[1])  # the picked clip's frames beside its chart
    scores = explorer.class_scores(PLANTED[0])
    assert list(scores) == list(PROMPTS) and max(scores, key=scores.get) == "happiness"
    assert abs(sum(scores.values()) - 1.0) < 1e-5


def test_opens_on_an_example_query_with_a_picked_clip(data: dict) -> None:
    explorer = build_explorer(data["emb"], data["rows"], data["encode"], data["frame_fn"], PROMPTS, top_k=3,
                              initial_query="happiness")
    ws = explorer.widgets
    assert ws["query"].value == "happiness" and len(ws["results"].children) == 3
    assert ws["clip"].value == PLANTED[0] and [v for _, v in ws["clip"].options][:2] == PLANTED
    assert ws["chart"].value[:4] == b"\x89PNG" and ws["frames"].value[:4] == b"\x89PNG"
    assert "press Enter" in ws["guide"].value and "12 clips" in ws["guide"].value
    first = build_explorer(data["emb"], data["rows"], data["encode"], data["frame_fn"], PROMPTS)
    assert first.widgets["query"].value == "anger" and first.widgets["clip"].value is not None  # default: first class
    assert ws["root"].children[0] is ws["guide"] and "emoclip-explorer-root" in ws["root"]._dom_classes


def test_class_scores_use_the_model_scale_and_mark_the_true_label(data: dict) -> None:
    model = build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0)
    scale = model_scale(model)
    assert 5.0 < scale < 30.0  # a trained EmoCLIP's scale is about 14, not CLIP's 100
    explorer = build_explorer(data["emb"], data["rows"], data["encode"], data["frame_fn"], PROMPTS, scale=scale)
    with torch.no_grad():
        text = torch.nn.functional.normalize(class_text_embeddings(data["encode"], PROMPTS), dim=-1)
    video = torch.nn.functional.normalize(data["emb"][PLANTED[1]], dim=-1)
    expected = _softmax([scale * float(v) for v in text @ video])
    got = explorer.show_clip(PLANTED[1])
    assert list(got.values()) == pytest.approx(expected, abs=1e-5)
    assert f"<b>{scale:.2f}</b> × cosine" in explorer.widgets["details"].value
    fig = score_figure(got, ["happiness"], scale, "clip2.mp4")
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["sadness", "happiness (true)", "anger"]  # first class on top, the true one named
    values = sorted(t.get_text() for t in ax.texts)
    assert values == sorted(f"{v:.2f}" for v in got.values())  # every bar carries its value
    colours = {tick: bar.get_facecolor() for tick, bar in zip(ticks, ax.patches)}
    assert colours["happiness (true)"] != colours["anger"] == colours["sadness"]
    assert f"{scale:.2f}" in ax.get_xlabel()


def test_spread_says_when_the_best_match_is_weak(data: dict) -> None:
    noise = np.random.default_rng(1).normal(0.2, 0.005, 200)  # cosines within +-0.01: no clip stands out
    weak = spread(noise, chance_z=3.0)
    assert not weak["clear"] and weak["note"].startswith("Weak match") and "read this ranking as noise" in weak["note"]
    assert "sd 0.005" in weak["note"] and weak["top_z"] < 3.25
    clear = spread(np.append(noise, 0.3), chance_z=3.0)
    assert clear["clear"] and clear["note"].startswith("Clear match") and clear["top_z"] > 10
    assert not spread(np.append(noise, 0.3), chance_z=clear["top_z"])["clear"]  # no better than unrelated texts
    chance = chance_level(data["emb"], data["encode"])
    assert 0.0 < chance < np.sqrt(N - 1)  # a z-score of a best clip among N
    table = ranked_table("happiness", data["emb"], data["rows"], data["encode"], PROMPTS, top_k=3, chance_z=1.0)
    assert table["z"].is_monotonic_decreasing and table["percentile"].iloc[0] == 100.0
    cos = table["cosine"].to_numpy()
    assert table["z"].iloc[0] == pytest.approx(spread(np.r_[cos, np.zeros(N - 3)], 1.0)["top_z"], abs=1e-3)
    assert set(table["match"]) == {"clear"}
    assert set(ranked_table("happiness", data["emb"], data["rows"], data["encode"], PROMPTS, 3,
                            chance_z=9.0)["match"]) == {"weak"}


def test_widget_says_a_match_is_weak(data: dict) -> None:
    others = [i for i in range(N) if i not in PLANTED]  # clips orthogonal to the query, plus noise
    flat = data["emb"][others] + 0.01 * torch.randn(len(others), data["emb"].shape[1],
                                                    generator=torch.Generator().manual_seed(2))
    explorer = build_explorer(flat, data["rows"].iloc[others], data["encode"], data["frame_fn"], PROMPTS,
                              initial_query="happiness")
    explorer.chance_z = 5.0  # as if unrelated texts reached 5 sd on these clips
    explorer.run_query("happiness")
    assert "Weak match" in explorer.widgets["summary"].value and set(explorer.last_table["match"]) == {"weak"}
    first = explorer.widgets["results"].children[0].children[1].value
    assert re.search(r"z [+-]\d\.\d", first) and "th percentile" in first
    explorer.chance_z = -5.0
    explorer.run_query("happiness")
    assert "Clear match" in explorer.widgets["summary"].value


def test_long_and_blank_queries_are_reported(data: dict) -> None:
    explorer = build_explorer(data["emb"], data["rows"], data["encode"], data["frame_fn"], PROMPTS, top_k=3,
                              initial_query="happiness")
    ws = explorer.widgets
    long = " ".join(["a face with slightly raised eyebrows and a faint smile"] * 12) + " and finally closed eyes"
    ws["query"].value = long
    assert "CLIP reads only 77" in ws["status"].value and "closed eyes" not in ws["status"].value.split("after")[1]
    assert explorer.last_table["query"].iloc[0] == long  # still ranked, on what CLIP reads
    count = len(get_tokenizer().encode(long)) + 2
    assert count > 77 and f"The query is {count} CLIP tokens" in token_overflow(long)
    assert token_overflow("a smiling face") == ""
    ws["query"].value = "   "
    assert "Empty query" in ws["status"].value and "still those for" in ws["status"].value
    assert len(ws["results"].children) == 3 and explorer.last_table["query"].iloc[0] == long
    ws["query"].value = "happiness"
    assert ws["status"].value == "" and "for 'happiness'" in ws["summary"].value


def test_clips_without_caption_say_so(data: dict) -> None:
    rows = data["rows"].copy()
    rows.loc[PLANTED[0], "caption"], rows.loc[PLANTED[1], "caption"] = "", float("nan")
    explorer = build_explorer(data["emb"], rows, data["encode"], data["frame_fn"], PROMPTS, top_k=2,
                              initial_query="happiness")
    ws = explorer.widgets
    assert all("no caption" in item.children[1].value for item in ws["results"].children)
    assert "<b>caption:</b> <i>no caption</i>" in ws["details"].value
    table = show_explorer(data["emb"], rows, data["encode"], data["frame_fn"], PROMPTS, top_k=2,
                          example_queries=["happiness"])
    assert list(table["caption"]) == ["(no caption)"] * 2


def test_show_explorer_static_and_interactive(data: dict) -> None:
    args = (data["emb"], data["rows"], data["encode"], data["frame_fn"], PROMPTS)
    table = show_explorer(*args, interactive=False, example_queries=["happiness", "sadness"], top_k=2)
    assert isinstance(table, pd.DataFrame) and list(table.index.names) == ["query", "rank"]
    assert "index" not in table.columns  # one index: (query, rank)
    assert list(table.index) == [("happiness", 1), ("happiness", 2), ("sadness", 1), ("sadness", 2)]
    assert list(table["path"][:2]) == [f"clip{i}.mp4" for i in PLANTED]
    assert {"cosine", "z", "percentile", "match"} <= set(table.columns)
    default = show_explorer(*args, top_k=1)
    assert len(default) == 4 and list(default.index.get_level_values("query")[:3]) == list(PROMPTS)
    explorer = show_explorer(*args, interactive=True, example_queries=["sadness"])
    assert explorer.root is explorer.widgets["root"] and len(explorer.root.children) == 7
    assert explorer.widgets["query"].value == "sadness"


def test_errors_show_in_the_widget(data: dict) -> None:
    def frames(index: int) -> torch.Tensor:
        if index == PLANTED[1]:
            raise DataError(f"clip{index}.mp4: cannot decode")
        return data["frame_fn"](index)

    explorer = build_explorer(data["emb"], data["rows"], data["encode"], frames, PROMPTS, top_k=1,
                              initial_query="happiness")
    explorer.top_k = 3  # now the unreadable clip is among the results
    explorer.widgets["query"].value = "a smiling happy face"
    status = explorer.widgets["status"].value
    assert "clip2.mp4: cannot decode" in status and "still those for &#x27;happiness&#x27;" in status
