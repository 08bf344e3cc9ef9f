"""Plotly figures shared by the notebooks. Every figure renders offline, in JupyterLab and in the HTML report.

Item text reaches plotly as hover labels, which plotly interprets as HTML: it is always escaped here.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio


def setup_notebook() -> None:
    """JupyterLab gets the plotly mimetype; the exported HTML gets plotly.js inlined once (offline)."""
    pio.renderers.default = "plotly_mimetype+notebook"
    pio.templates.default = "plotly_white"


def escape_hover(texts: Iterable[str], width: int = 80) -> list[str]:
    """HTML-escape item text for hover labels and cut it to `width` characters."""
    return [html.escape(t if len(t) <= width else t[: width - 1] + "…") for t in texts]


def distribution(frame: pd.DataFrame, value: str, by: str, title: str, log_y: bool = True,
                 nbins: int = 60) -> go.Figure:
    """Overlaid histograms of `value`, one per `by` group, normalised to a share so groups compare."""
    fig = px.histogram(frame, x=value, color=by, barmode="overlay", histnorm="probability", nbins=nbins,
                       log_y=log_y, title=title, opacity=0.6)
    fig.update_layout(yaxis_title="share", legend_title=by)
    return fig


def rank_curve(series: dict[str, Sequence[float]], title: str, x_title: str, y_title: str) -> go.Figure:
    """Log-log rank/frequency curves (item popularity), one line per dataset."""
    fig = go.Figure()
    for name, values in series.items():
        ordered = np.sort(np.asarray(values))[::-1]
        fig.add_trace(go.Scatter(x=np.arange(1, len(ordered) + 1), y=ordered, mode="lines", name=name))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, xaxis_type="log", yaxis_type="log")
    return fig


def embedding_map(coords: np.ndarray, labels: Sequence[str], hover: Sequence[str], title: str) -> go.Figure:
    """A 2-d map of items (UMAP coordinates), coloured by category, item text on hover (escaped)."""
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "category": list(labels),
                          "item": escape_hover(hover)})
    fig = px.scatter(frame, x="x", y="y", color="category", hover_name="item", title=title, opacity=0.7,
                     category_orders={"category": sorted(set(labels))})
    fig.update_traces(marker={"size": 4})
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, legend={"itemsizing": "constant"})
    return fig


def collision_rates(rows: pd.DataFrame) -> go.Figure:
    """RQ-VAE collision rate at 3 levels per catalogue and backbone: mean over seeds, the std as error bars."""
    rqvae = rows[rows.tokenizer == "rqvae"].groupby(["dataset", "backbone"], sort=False)["collision_rate@3"]
    frame = rqvae.mean().rename("collision rate @3").reset_index().assign(std=rqvae.std().fillna(0).to_numpy())
    fig = px.bar(frame, x="dataset", y="collision rate @3", color="backbone", barmode="group", error_y="std",
                 title="RQ-VAE semantic IDs: share of items without an ID of their own (3 codes)")
    fig.update_layout(yaxis_tickformat=".1%")
    return fig


def relative_changes(frame: pd.DataFrame) -> go.Figure:
    """EncodeRec against its base encoder: relative change of NDCG@10 per experiment and setting, the paper's beside
    ours; hollow markers for our settings without a significant difference (p >= 0.05)."""
    def kind(source: str, p: float | None) -> str:
        if source == "paper":
            return "paper"
        return "ours, p < 0.05" if p is not None and p == p and p < 0.05 else "ours, not significant"

    frame = frame.assign(row=frame.experiment + " · " + frame.setting,
                         result=[kind(s, p) for s, p in zip(frame.source, frame.p)])
    fig = px.scatter(frame, x="relative change", y="row", color="result", symbol="result",
                     symbol_map={"paper": "diamond", "ours, p < 0.05": "circle", "ours, not significant": "circle-open"},
                     category_orders={"row": list(dict.fromkeys(frame.row))}, hover_data=["model", "base", "p"],
                     title="EncodeRec vs its base encoder: relative change of NDCG@10")
    fig.add_vline(x=0, line_dash="dot", line_color="grey")
    fig.update_traces(marker={"size": 11})
    fig.update_layout(xaxis_tickformat="+.0%", yaxis={"title": None}, legend_title=None,
                      height=max(300, 28 * len(frame) + 120))
    return fig
