"""Interactive embedding explorer for notebooks: text query -> ranked clips; clip -> class scores.

`build_explorer` returns ipywidgets (built and driven without a frontend, so they can be tested);
`show_explorer` returns that widget when `interactive`, else (papermill) a static table of `ranked_table`s.
Ranked clips carry their cosine's z-score and percentile over the corpus; `spread` says whether the best
match stands out beyond what texts unrelated to faces reach on the same clips (`chance_level`).
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..data import COMPOUND_SEPARATOR, get_tokenizer
from ..errors import UserError
from .classify import CLIP_SCALE, zero_shot_predict
from .explorer_view import caption_html, frame_strip, png_bytes, score_figure, warning_html
from .prompts import class_text_embeddings

EncodeTextFn = Callable[[torch.Tensor], torch.Tensor]  # (N, 77) tokens -> (N, D)
FrameFn = Callable[[int], Any]  # clip index -> uint8 frames (T, 3, H, W) or an image strip (H, W, 3)
NAME_TEMPLATE = "a photo of a face showing {}"  # prompt for a bare emotion name without prompts
ROW_COLUMNS: tuple[str, ...] = ("path", "labels", "caption")
CONTEXT_LENGTH = 77  # CLIP's text context, start and end tokens included
CLEAR_MARGIN = 0.25  # a clear best match lies this many sd beyond the chance level
CONTROL_TEXTS: tuple[str, ...] = ("a photo of a red car on a highway", "a bowl of soup on a kitchen table",
                                  "a page of printed text", "a city skyline at night")  # unrelated to faces


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


def token_overflow(text: str, context_length: int = CONTEXT_LENGTH) -> str:
    """A sentence saying that `text` is longer than CLIP's context and where it is cut, or "" if it fits.

    Args:
        text: a prompt text.
        context_length: tokens CLIP reads, start and end tokens included.
    """
    size = lambda part: len(get_tokenizer().encode(part)) + 2  # noqa: E731  (start and end tokens)
    count, words = size(text), text.split()
    if count <= context_length:
        return ""
    kept = next(k for k in range(len(words), -1, -1) if size(" ".join(words[:k])) <= context_length)
    tail = " ".join(words[max(0, kept - 4): kept])
    return (f"The query is {count} CLIP tokens; CLIP reads only {context_length}, so every word after "
            f"'…{tail}' is ignored.")


def _cosines(query: str, video_emb: torch.Tensor, encode_text_fn: EncodeTextFn,
             class_prompts: dict[str, list[str]] | None, device: str | torch.device) -> torch.Tensor:
    """(N,) cosines of every clip with the query's text embedding."""
    text_emb = class_text_embeddings(encode_text_fn, {query: query_prompts(query, class_prompts)}, device=device)
    return F.normalize(video_emb.float().cpu(), dim=-1) @ text_emb[0]


def chance_level(video_emb: torch.Tensor, encode_text_fn: EncodeTextFn, device: str | torch.device = "cpu") -> float:
    """The highest z-score (best clip vs the mean, in sd) that texts unrelated to faces reach on these clips.

    Args:
        video_emb: (N, D) clip embeddings.
        encode_text_fn: (N, 77) tokens -> (N, D).
        device: where the text encoder lives.
    """
    text = class_text_embeddings(encode_text_fn, {t: [t] for t in CONTROL_TEXTS}, device=device)  # (K, D)
    cos = F.normalize(video_emb.float().cpu(), dim=-1) @ text.T  # (N, K)
    return float(((cos.max(0).values - cos.mean(0)) / cos.std(0, unbiased=False).clamp_min(1e-12)).max())


def spread(cosines: Any, chance_z: float) -> dict[str, Any]:
    """How far a query's best clip stands out from its cosines over the corpus, against a chance level.

    Args:
        cosines: (N,) cosines of every clip with the query.
        chance_z: the z-score unrelated texts reach on the same clips (`chance_level`); the match is clear
            when the best clip lies `CLEAR_MARGIN` sd beyond it.
    Returns:
        n, mean, sd, lo, hi, top_z, chance_z, clear (bool) and note (two sentences).
    """
    cos = np.asarray(cosines, dtype=np.float64)
    n, mean, sd = len(cos), float(cos.mean()), float(cos.std())
    top_z = (float(cos.max()) - mean) / sd if sd > 0 else 0.0
    clear = n > 1 and top_z >= chance_z + CLEAR_MARGIN
    head = f"the best clip is {top_z:.1f} sd above the mean cosine of the {n} clips"
    note = (f"Clear match: {head}; texts unrelated to faces reach at most {chance_z:.1f} sd on them." if clear else
            f"Weak match: {head}, not clearly beyond the {chance_z:.1f} sd that texts unrelated to faces reach on "
            "them; read this ranking as noise.")
    note += f" Cosines span {cos.min():.3f} to {cos.max():.3f} (sd {sd:.3f})."
    return {"n": n, "mean": mean, "sd": sd, "lo": float(cos.min()), "hi": float(cos.max()), "top_z": top_z,
            "chance_z": float(chance_z), "clear": clear, "note": note}


def _rank(query: str, cosines: torch.Tensor, rows: pd.DataFrame, top_k: int, chance_z: float) -> pd.DataFrame:
    cos = cosines.numpy().astype(np.float64)
    order = torch.argsort(cosines, descending=True, stable=True)[: max(1, int(top_k))].numpy()
    info = spread(cos, chance_z)
    table = rows.iloc[order][list(ROW_COLUMNS)].reset_index(drop=True)
    table.insert(0, "index", order)
    table.insert(0, "rank", np.arange(1, len(order) + 1))
    table.insert(0, "query", query)
    table["cosine"] = cos[order]
    table["z"] = (cos[order] - info["mean"]) / info["sd"] if info["sd"] > 0 else 0.0
    table["percentile"] = [100.0 * (cos < c).sum() / max(1, len(cos) - 1) for c in cos[order]]
    table["match"] = "clear" if info["clear"] else "weak"
    return table


def ranked_table(query: str, video_emb: torch.Tensor, rows: pd.DataFrame, encode_text_fn: EncodeTextFn,
                 class_prompts: dict[str, list[str]] | None = None, top_k: int = 5,
                 device: str | torch.device = "cpu", chance_z: float | None = None) -> pd.DataFrame:
    """The `top_k` clips closest to a query by cosine similarity, with the cosine's place in the corpus.

    Args:
        query: an emotion name or free-text description (see `query_prompts`).
        video_emb: (N, D) clip embeddings.
        rows: N rows with `path`, `labels`, `caption` (one per clip, in `video_emb` order).
        encode_text_fn: (N, 77) tokens -> (N, D), e.g. `model.encode_text`.
        class_prompts: class name -> prompt texts, used when the query is a class name.
        top_k: clips returned.
        device: where the text encoder lives.
        chance_z: `chance_level(video_emb, encode_text_fn)`, computed when not given.
    Returns:
        DataFrame with `query, rank` (1 = closest), `index` (row position), `path, labels, caption, cosine`,
        `z` (cosine in sd of the query's cosines over all clips), `percentile` (share of the other clips
        with a lower cosine, %) and `match` ("clear" or "weak", see `spread`).
    """
    _check_inputs(video_emb, rows)
    chance = chance_level(video_emb, encode_text_fn, device) if chance_z is None else chance_z
    return _rank(query, _cosines(query, video_emb, encode_text_fn, class_prompts, device), rows, top_k, chance)


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
    chance_z: float  # what texts unrelated to faces reach (`chance_level`)
    widgets: dict[str, Any] = field(default_factory=dict)
    last_table: pd.DataFrame | None = None
    strips: dict[int, bytes] = field(default_factory=dict)  # clip index -> PNG frame strip

    @property
    def root(self) -> Any:
        """The top-level widget."""
        return self.widgets["root"]

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.root)

    def strip(self, index: int) -> bytes:
        """PNG frame strip of one clip (read once).

        Args:
            index: row position of the clip.
        """
        if index not in self.strips:
            self.strips[index] = png_bytes(frame_strip(self.frame_fn(index), max_frames=6, height=64))
        return self.strips[index]

    def class_scores(self, index: int) -> dict[str, float]:
        """Class probabilities of one clip (softmax of the cosines times the explorer's scale).

        Args:
            index: row position of the clip.
        """
        probs, _ = zero_shot_predict(self.video_emb[index: index + 1].float().cpu(), self.class_emb, self.scale)
        return dict(zip(self.class_prompts, probs[0].tolist()))

    def run_query(self, query: str) -> pd.DataFrame:
        """Rank clips for `query`; refresh the summary, the result list and the clip selector.

        Args:
            query: emotion name or description.
        """
        import ipywidgets as w

        cos = _cosines(query, self.video_emb, self.encode_text_fn, self.class_prompts, self.device)
        table, info = _rank(query, cos, self.rows, self.top_k, self.chance_z), spread(cos, self.chance_z)
        items = []
        for rec in table.itertuples(index=False):
            text = (f"<b>#{rec.rank}</b> cos {rec.cosine:.3f} &middot; z {rec.z:+.1f} &middot; "
                    f"{rec.percentile:.0f}th percentile &middot; <b>{html.escape(str(rec.labels))}</b>"
                    f"<br><code>{html.escape(str(rec.path))}</code><br>{caption_html(rec.caption)}")
            image = w.Image(value=self.strip(int(rec.index)), format="png", layout=w.Layout(flex="0 0 auto"))
            items.append(w.HBox([image, w.HTML(text, layout=w.Layout(flex="1 1 auto", margin="0 0 0 8px"))]))
        colour = "#070" if info["clear"] else "#a60"
        self.widgets["summary"].value = (f"<b>Top {len(table)} of {info['n']} clips for "
                                         f"'{html.escape(query)}'</b><br>{warning_html(info['note'], colour)}")
        self.widgets["results"].children = tuple(items)
        self.widgets["clip"].options = [(f"#{r.rank} {r.path}", int(r.index)) for r in table.itertuples()]
        self.widgets["clip"].value = int(table["index"].iloc[0])  # shows the best match's class scores
        self.last_table = table
        return table

    def show_clip(self, index: int) -> dict[str, float]:
        """Draw one clip's frames, class-score chart (true classes marked) and caption.

        Args:
            index: row position of the clip.
        """
        scores, row = self.class_scores(index), self.rows.iloc[index]
        true = [p.strip().lower() for p in str(row["labels"]).split(COMPOUND_SEPARATOR)]
        self.widgets["chart"].value = png_bytes(score_figure(scores, true, self.scale, title=str(row["path"])))
        self.widgets["frames"].value = self.strip(index)
        best = max(scores, key=scores.get)
        self.widgets["details"].value = (
            f"<code>{html.escape(str(row['path']))}</code><br><b>labels:</b> {html.escape(str(row['labels']))}"
            f"<br><b>caption:</b> {caption_html(row['caption'])}<br><b>predicted:</b> {html.escape(best)} "
            f"({'right' if best.lower() in true else 'wrong'})<br>class scores: softmax over {len(scores)} "
            f"classes of <b>{self.scale:.2f}</b> × cosine (the model's scale)")
        return scores


def _on_query(explorer: Explorer, change: dict[str, Any]) -> None:
    text, status = str(change["new"]).strip(), explorer.widgets["status"]
    shown = explorer.last_table["query"].iloc[0] if explorer.last_table is not None else None
    stale = f" The clips below are still those for '{shown}'." if shown is not None else ""
    if not text:
        status.value = warning_html("Empty query: type an emotion name or a description and press Enter." + stale)
        return
    try:
        explorer.run_query(text)
        notes = [token_overflow(t) for t in query_prompts(text, explorer.class_prompts)]
        status.value = "<br>".join(warning_html(n) for n in notes if n)
    except Exception as err:  # noqa: BLE001  (shown in the widget: an observer's traceback would go unseen)
        message = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
        status.value = warning_html(f"{message.rstrip('.')}.{stale}", "#b00")


def _on_clip(explorer: Explorer, change: dict[str, Any]) -> None:
    if change["new"] is None:
        return
    try:
        explorer.show_clip(int(change["new"]))
    except Exception as err:  # noqa: BLE001
        explorer.widgets["status"].value = warning_html(f"clip {change['new']}: {type(err).__name__}: {err}", "#b00")


def build_explorer(video_emb: torch.Tensor, rows: pd.DataFrame, encode_text_fn: EncodeTextFn, frame_fn: FrameFn,
                   class_prompts: dict[str, list[str]], scale: float = CLIP_SCALE, top_k: int = 5,
                   device: str | torch.device = "cpu", initial_query: str | None = None) -> Explorer:
    """Build the explorer widgets (a query box, ranked clips with frame strips, a clip selector and chart).

    Args:
        video_emb: (N, D) clip embeddings.
        rows: N rows with `path`, `labels`, `caption`.
        encode_text_fn: (N, 77) tokens -> (N, D), e.g. `model.encode_text`.
        frame_fn: clip index -> uint8 frames (T, 3, H, W) or an (H, W, 3) thumbnail strip.
        class_prompts: class name -> prompt texts, for the class-score chart and class-name queries.
        scale: softmax scale of the cosines (`zeroshot.model_scale(model)` for a trained model; 100 is CLIP's).
        top_k: clips listed per query.
        device: where the text encoder lives.
        initial_query: the query shown on opening (default: the first class), with its best clip picked.
    """
    import ipywidgets as w

    _check_inputs(video_emb, rows)
    emb = video_emb.detach().float().cpu()
    class_emb = class_text_embeddings(encode_text_fn, class_prompts, device=device)  # (C, D)
    explorer = Explorer(emb, rows.reset_index(drop=True), encode_text_fn, frame_fn, dict(class_prompts), class_emb,
                        float(scale), int(top_k), device, chance_level(emb, encode_text_fn, device))
    guide = (f"Type an emotion name ({html.escape(', '.join(list(class_prompts)[:4]))}, …) or a description of a "
             f"face and press Enter: the {len(rows)} clips are ranked by the cosine of their embedding with the "
             "query's; <i>z</i> and the percentile place it among all clips' cosines. Pick a clip to see its class "
             "scores.")
    query = w.Text(placeholder="emotion name or description, e.g. 'a frown with narrowed eyes'",
                   description="Query:", continuous_update=False, layout=w.Layout(width="90%"))
    clip = w.Dropdown(options=[], description="Clip:", layout=w.Layout(width="90%"))
    ws = explorer.widgets
    ws.update(query=query, clip=clip, status=w.HTML(), summary=w.HTML(), results=w.VBox(), details=w.HTML(),
              chart=w.Image(format="png"), frames=w.Image(format="png"), guide=w.HTML(guide))
    query.observe(lambda change: _on_query(explorer, change), names="value")
    clip.observe(lambda change: _on_clip(explorer, change), names="value")
    pane = w.HBox([ws["chart"], w.VBox([ws["frames"], ws["details"]])])
    ws["root"] = w.VBox([ws["guide"], query, ws["status"], ws["summary"], ws["results"], clip, pane])
    for name in ("root", "query", "status", "summary", "results", "clip", "chart", "frames", "details"):
        ws[name].add_class(f"emoclip-explorer-{name}")  # stable hooks for browser tests
    query.value = initial_query or next(iter(explorer.class_prompts))
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
        example_queries: queries of the static table (default: the first three classes and a description);
            the widget opens on the first.
        top_k: clips per query.
        device: where the text encoder lives.
    Returns:
        the `Explorer` (displays as its widget), or the `ranked_table`s indexed by (query, rank).
    """
    queries = list(example_queries or [*list(class_prompts)[:3], "a person smiling broadly with raised cheeks"])
    if interactive:
        return build_explorer(video_emb, rows, encode_text_fn, frame_fn, class_prompts, scale, top_k, device,
                              initial_query=queries[0])
    chance = chance_level(video_emb, encode_text_fn, device)
    tables = [ranked_table(q, video_emb, rows, encode_text_fn, class_prompts, top_k, device, chance) for q in queries]
    table = pd.concat(tables, ignore_index=True).drop(columns="index").set_index(["query", "rank"])
    table["caption"] = [c if isinstance(c, str) and c.strip() else "(no caption)" for c in table["caption"]]
    return table
