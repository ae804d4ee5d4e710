"""The embedding explorer: ranking, widgets driven without a frontend, static fallback."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from emoclip_lib.model.checkpoint import build_model
from emoclip_lib.errors import UserError
from emoclip_lib.zeroshot.explorer import (NAME_TEMPLATE, build_explorer, frame_strip, query_prompts, ranked_table,
                                  show_explorer)
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


def test_widgets_update_on_query_and_clip_choice(data: dict) -> None:
    explorer = build_explorer(data["emb"], data["rows"], data["encode"], data["frame_fn"], PROMPTS, scale=50.0,
                              top_k=3)
    ws = explorer.widgets
    assert ws["results"].children == () and ws["clip"].value is None
    ws["query"].value = "happiness"  # what typing + Enter does in the browser
    assert len(ws["results"].children) == 3
    strip, text = ws["results"].children[0].children
    assert strip.value[:4] == b"\x89PNG" and "clip7.mp4" in text.value and "caption &lt;7&gt;" in text.value
    assert [v for _, v in ws["clip"].options][:2] == PLANTED and ws["clip"].value == PLANTED[0]
    ws["clip"].value = PLANTED[1]
    assert ws["chart"].value[:4] == b"\x89PNG" and "caption &lt;2&gt;" in ws["details"].value
    scores = explorer.class_scores(PLANTED[0])
    assert list(scores) == list(PROMPTS) and max(scores, key=scores.get) == "happiness"
    assert abs(sum(scores.values()) - 1.0) < 1e-5
    ws["query"].value = "  "  # ignored: the previous results stay
    assert len(ws["results"].children) == 3


def test_show_explorer_static_and_interactive(data: dict) -> None:
    args = (data["emb"], data["rows"], data["encode"], data["frame_fn"], PROMPTS)
    table = show_explorer(*args, interactive=False, example_queries=["happiness", "sadness"], top_k=2)
    assert isinstance(table, pd.DataFrame) and list(table["query"]) == ["happiness"] * 2 + ["sadness"] * 2
    assert list(table["index"][:2]) == PLANTED
    default = show_explorer(*args, top_k=1)
    assert len(default) == 4 and list(default["query"][:3]) == list(PROMPTS)
    explorer = show_explorer(*args, interactive=True)
    assert explorer.root is explorer.widgets["root"] and len(explorer.root.children) == 5
