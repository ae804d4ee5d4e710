"""Interactive embedding explorer for notebooks: text query -> ranked clips; clip -> class scores.

`build_explorer` returns ipywidgets (no frontend needed to build or drive them, so they can be
tested); `show_explorer` returns that widget when `interactive` is True, and otherwise (papermill,
headless runs) a static table of `ranked_table` results for a few example queries.
"""
from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import UserError
from .classify import CLIP_SCALE, zero_shot_predict
from .prompts import class_text_embeddings

EncodeTextFn = Callable[[torch.Tensor], torch.Tensor]  # (N, 77) tokens -> (N, D)
FrameFn = Callable[[int], Any]  # clip index -> uint8 frames (T, 3, H, W) or an image strip (H, W, 3)
NAME_TEMPLATE = "a photo of a face showing {}"  # prompt for a bare emotion name without prompts
ROW_COLUMNS: tuple[str, ...] = ("path", "labels", "caption")


def _check_inputs(video_emb: torch.Tensor, rows: pd.DataFrame) -> None:
    if video_emb.dim() != 2:
        raise UserError(f"video_emb must be shaped (N, D), got {tuple(video_emb.shape)}")
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        raise UserError(f"rows lacks the column(s) {', '.join(missing)}: it needs {', '.join(ROW_COLUMNS)}")
    if len(rows) != video_emb.shape[0]:
        raise UserError(f"rows has {len(rows)} rows but video_emb has {video_emb.shape[0]}: one row per clip")


def query_prompts(query: str, class_prompts: dict[str, list[str]] | None = None) -> list[str]:
    """Prompt texts for a query: a known class's prompts, a name template for one or two words, else the text.

    Args:
        query: an emotion name ("anger", "joy") or a free-text description.
        class_prompts: class name -> prompt texts (matched case-insensitively).
    """
    text = " ".join(str(query).split())
    if not text:
        raise UserError("empty query: type an emotion name or a description of a facial expression")
    known = {name.lower(): texts for name, texts in (class_prompts or {}).items()}
    if text.lower() in known:
        return list(known[text.lower()])
    return [NAME_TEMPLATE.format(text)] if len(text.split()) <= 2 else [text]


def ranked_table(query: str, video_emb: torch.Tensor, rows: pd.DataFrame, encode_text_fn: EncodeTextFn,
                 class_prompts: dict[str, list[str]] | None = None, top_k: int = 5,
                 device: str | torch.device = "cpu") -> pd.DataFrame:
    """The `top_k` clips closest to a query by cosine similarity.

    Args:
        query: an emotion name or free-text description (see `query_prompts`).
        video_emb: (N, D) clip embeddings.
        rows: N rows with `path`, `labels`, `caption` (one per clip, in `video_emb` order).
        encode_text_fn: (N, 77) tokens -> (N, D), e.g. `model.encode_text`.
        class_prompts: class name -> prompt texts, used when the query is a class name.
        top_k: clips returned.
        device: where the text encoder lives.
    Returns:
        DataFrame with `query, rank` (1 = closest), `index` (row position), `path, labels, caption, cosine`.
    """
    _check_inputs(video_emb, rows)
    text_emb = class_text_embeddings(encode_text_fn, {query: query_prompts(query, class_prompts)}, device=device)
    cos = F.normalize(video_emb.float().cpu(), dim=-1) @ text_emb[0]  # (N,)
    order = torch.argsort(cos, descending=True, stable=True)[: max(1, int(top_k))].numpy()
    table = rows.iloc[order][list(ROW_COLUMNS)].reset_index(drop=True)
    table.insert(0, "index", order)
    table.insert(0, "rank", np.arange(1, len(order) + 1))
    table.insert(0, "query", query)
    table["cosine"] = cos[order].numpy().astype(np.float64)
    return table


def frame_strip(frames: Any, max_frames: int = 8, height: int = 96) -> np.ndarray:
    """A horizontal strip of evenly spaced frames (or an image passed through), height `height`.

    Args:
        frames: uint8 (T, 3, H, W) frames, or an (H, W, 3) image such as a ready-made strip.
        max_frames: frames shown at most.
        height: strip height in pixels.
    Returns:
        (height, W', 3) uint8 RGB array.
    """
    from PIL import Image

    arr = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.ndim == 4 and arr.shape[1] == 3:
        pick = np.unique(np.linspace(0, len(arr) - 1, min(max_frames, len(arr))).round().astype(int))
        arr = np.concatenate(list(arr[pick].transpose(0, 2, 3, 1)), axis=1)  # (H, k*W, 3)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise UserError(f"frame_fn must return uint8 frames (T, 3, H, W) or an image (H, W, 3), "
                        f"got {arr.dtype} {arr.shape}")
    width = max(1, round(arr.shape[1] * height / arr.shape[0]))
    return np.asarray(Image.fromarray(np.ascontiguousarray(arr)).resize((width, height), Image.BILINEAR))


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of an (H, W, 3) uint8 image.

    Args:
        image: RGB array.
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def score_chart(scores: dict[str, float], title: str = "") -> bytes:
    """PNG bytes of a horizontal bar chart of class scores (highest on top).

    Args:
        scores: class -> probability.
        title: chart title.
    """
    from matplotlib.figure import Figure

    names = list(scores)[::-1]
    fig = Figure(figsize=(5, 0.3 * len(names) + 0.8), layout="constrained")
    ax = fig.subplots()
    ax.barh(names, [scores[n] for n in names], color="tab:blue")
    ax.set(xlim=(0, 1), xlabel="probability", title=title[:60])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


@dataclass(eq=False)
class Explorer:
    """The explorer's state and widgets (`root` is the box to display)."""

    video_emb: torch.Tensor  # (N, D)
    rows: pd.DataFrame
    encode_text_fn: EncodeTextFn
    frame_fn: FrameFn
    class_prompts: dict[str, list[str]]
    class_emb: torch.Tensor  # (C, D)
    scale: float
    top_k: int
    device: str | torch.device
    widgets: dict[str, Any] = field(default_factory=dict)
    last_table: pd.DataFrame | None = None

    @property
    def root(self) -> Any:
        """The top-level widget."""
        return self.widgets["root"]

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.root)

    def class_scores(self, index: int) -> dict[str, float]:
        """Class probabilities of one clip (softmax of the scaled cosines).

        Args:
            index: row position of the clip.
        """
        probs, _ = zero_shot_predict(self.video_emb[index: index + 1].float().cpu(), self.class_emb, self.scale)
        return dict(zip(self.class_prompts, probs[0].tolist()))

    def run_query(self, query: str) -> pd.DataFrame:
        """Rank clips for `query` and refresh the result list and the clip selector.

        Args:
            query: emotion name or description.
        """
        import ipywidgets as w

        table = ranked_table(query, self.video_emb, self.rows, self.encode_text_fn, self.class_prompts,
                             self.top_k, self.device)
        items = []
        for rec in table.itertuples(index=False):
            strip = w.Image(value=png_bytes(frame_strip(self.frame_fn(int(rec.index)))), format="png")
            text = (f"<b>#{rec.rank}</b> cos {rec.cosine:.3f} &middot; <b>{html.escape(str(rec.labels))}</b>"
                    f"<br><code>{html.escape(str(rec.path))}</code><br>{html.escape(str(rec.caption))}")
            items.append(w.HBox([strip, w.HTML(text, layout=w.Layout(width="40%"))]))
        self.widgets["results"].children = tuple(items)
        self.widgets["clip"].options = [(f"#{r.rank} {r.path}", int(r.index)) for r in table.itertuples()]
        self.widgets["clip"].value = int(table["index"].iloc[0])  # shows the best match's class scores
        self.last_table = table
        return table

    def show_clip(self, index: int) -> dict[str, float]:
        """Draw the class-score chart and caption of one clip.

        Args:
            index: row position of the clip.
        """
        scores = self.class_scores(index)
        row = self.rows.iloc[index]
        self.widgets["chart"].value = score_chart(scores, title=str(row["path"]))
        self.widgets["details"].value = (f"<b>labels:</b> {html.escape(str(row['labels']))}<br>"
                                         f"<b>caption:</b> {html.escape(str(row['caption']))}")
        return scores


def _on_query(explorer: Explorer, change: dict[str, Any]) -> None:
    text = str(change["new"]).strip()
    if not text:
        return
    try:
        explorer.run_query(text)
        explorer.widgets["status"].value = ""
    except UserError as err:
        explorer.widgets["status"].value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"


def _on_clip(explorer: Explorer, change: dict[str, Any]) -> None:
    if change["new"] is not None:
        explorer.show_clip(int(change["new"]))


def build_explorer(video_emb: torch.Tensor, rows: pd.DataFrame, encode_text_fn: EncodeTextFn, frame_fn: FrameFn,
                   class_prompts: dict[str, list[str]], scale: float = CLIP_SCALE, top_k: int = 5,
                   device: str | torch.device = "cpu") -> Explorer:
    """Build the explorer widgets (a query box, ranked clips with frame strips, a clip selector and chart).

    Args:
        video_emb: (N, D) clip embeddings.
        rows: N rows with `path`, `labels`, `caption`.
        encode_text_fn: (N, 77) tokens -> (N, D), e.g. `model.encode_text`.
        frame_fn: clip index -> uint8 frames (T, 3, H, W) or an (H, W, 3) thumbnail strip.
        class_prompts: class name -> prompt texts, for the class-score chart and class-name queries.
        scale: softmax scale of the cosines (`zeroshot.model_scale(model)` for a trained model).
        top_k: clips listed per query.
        device: where the text encoder lives.
    """
    import ipywidgets as w

    _check_inputs(video_emb, rows)
    class_emb = class_text_embeddings(encode_text_fn, class_prompts, device=device)  # (C, D)
    explorer = Explorer(video_emb.detach().float().cpu(), rows.reset_index(drop=True), encode_text_fn, frame_fn,
                        dict(class_prompts), class_emb, float(scale), int(top_k), device)
    query = w.Text(placeholder="emotion name or description, e.g. 'a frown with narrowed eyes'",
                   description="Query:", continuous_update=False, layout=w.Layout(width="90%"))
    first = [(f"{r.path}", i) for i, r in enumerate(explorer.rows.head(50).itertuples())]
    clip = w.Dropdown(options=first, value=None, description="Clip:", layout=w.Layout(width="90%"))
    explorer.widgets.update(query=query, clip=clip, status=w.HTML(), results=w.VBox(),
                            chart=w.Image(format="png"), details=w.HTML())
    query.observe(lambda change: _on_query(explorer, change), names="value")
    clip.observe(lambda change: _on_clip(explorer, change), names="value")
    ws = explorer.widgets
    ws["root"] = w.VBox([query, ws["status"], ws["results"], clip, w.HBox([ws["chart"], ws["details"]])])
    return explorer


def show_explorer(video_emb: torch.Tensor, rows: pd.DataFrame, encode_text_fn: EncodeTextFn, frame_fn: FrameFn,
                  class_prompts: dict[str, list[str]], scale: float = CLIP_SCALE, interactive: bool = False,
                  example_queries: Sequence[str] | None = None, top_k: int = 5,
                  device: str | torch.device = "cpu") -> Explorer | pd.DataFrame:
    """The explorer to show as a cell's result: the widget when interactive, else a static table.

    Args:
        video_emb: (N, D) clip embeddings.
        rows: N rows with `path`, `labels`, `caption`.
        encode_text_fn: (N, 77) tokens -> (N, D).
        frame_fn: clip index -> uint8 frames (T, 3, H, W) or an (H, W, 3) strip.
        class_prompts: class name -> prompt texts.
        scale: softmax scale of the cosines.
        interactive: True in JupyterLab; False (the default) for papermill and other headless runs,
            where widgets would not render.
        example_queries: queries of the static table (default: the first three classes and a description).
        top_k: clips per query.
        device: where the text encoder lives.
    Returns:
        the `Explorer` (displays as its widget), or the concatenated `ranked_table`s.
    """
    if interactive:
        return build_explorer(video_emb, rows, encode_text_fn, frame_fn, class_prompts, scale, top_k, device)
    queries = list(example_queries or [*list(class_prompts)[:3], "a person smiling broadly with raised cheeks"])
    tables = [ranked_table(q, video_emb, rows, encode_text_fn, class_prompts, top_k, device) for q in queries]
    return pd.concat(tables, ignore_index=True)
