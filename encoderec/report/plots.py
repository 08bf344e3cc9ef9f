"""Plotly figures shared by the notebooks. Every figure renders offline, in JupyterLab and in the HTML report.

Item text reaches plotly as hover labels, which plotly interprets as HTML: it is always escaped here.

The summary's two key figures also have a static twin drawn with matplotlib from the same data (`forest_image`,
`collision_rates_image`), saved as PNG for pages that run no JavaScript, such as RESULTS.md: plotly's own image
export (kaleido) drives a system Chrome, which a fresh machine lacks.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter


def setup_notebook() -> None:
    """JupyterLab gets the plotly mimetype; the exported HTML gets plotly.js inlined once (offline)."""
    pio.renderers.default = "plotly_mimetype+notebook"
    pio.templates.default = "plotly_white"


def explorer(show: Callable[[str], None], query: str, interactive: bool) -> None:
    """A text box that calls `show` with its text when it is submitted (ipywidgets, JupyterLab), first with `query`;
    without `interactive` (papermill, a static report), `show(query)` once."""
    if not interactive:
        show(query)
        return
    import ipywidgets as widgets
    from IPython.display import display

    box, out = widgets.Text(value=query, description="title", layout={"width": "70%"}), widgets.Output()

    def on_submit(_: Any) -> None:
        with out:
            out.clear_output()
            show(box.value)

    box.on_submit(on_submit)
    display(box, out)
    on_submit(None)


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
    fig = px.bar(_collision_means(rows), x="dataset", y="collision rate @3", color="backbone", barmode="group",
                 error_y="std", title=COLLISION_TITLE)
    fig.update_layout(yaxis_tickformat=".1%")
    return fig


def collision_rates_image(rows: pd.DataFrame) -> Figure:
    """`collision_rates` as a static matplotlib figure: grouped bars, one group per catalogue."""
    frame = _collision_means(rows)
    datasets, backbones = list(dict.fromkeys(frame.dataset)), list(dict.fromkeys(frame.backbone))
    out, ax = _image(width=10, height=4.8, title=COLLISION_TITLE)
    step = 0.8 / len(backbones)
    for i, (backbone, bars) in enumerate(frame.groupby("backbone", sort=False)):
        x = np.array([datasets.index(d) for d in bars.dataset]) + (i - (len(backbones) - 1) / 2) * step
        ax.bar(x, bars["collision rate @3"], width=step, yerr=bars["std"], capsize=2, label=backbone)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel("collision rate @3")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    out.legend(loc="outside right upper", frameon=False, title="backbone")
    return out


COLLISION_TITLE = "RQ-VAE semantic IDs: share of items without an ID of their own (3 codes)"


def _collision_means(rows: pd.DataFrame) -> pd.DataFrame:
    rqvae = rows[rows.tokenizer == "rqvae"].groupby(["dataset", "backbone"], sort=False)["collision_rate@3"]
    return rqvae.mean().rename("collision rate @3").reset_index().assign(std=rqvae.std().fillna(0).to_numpy())


GRADE_COLORS = {"supports": "#1a9850", "significantly worse": "#d73027", "no gain of the paper's size": "#4575b4",
                "inconclusive": "#f59e0b", "the paper's": "#222222"}


def forest(frame: pd.DataFrame) -> go.Figure:
    """The verdicts' forest plot (`summary.forest_rows`): one labelled row per (claim, setting, model, against), the
    relative change of NDCG@10 as a point coloured by its grade with its 95 % interval over seeds and users as a bar,
    the change the paper reports for that setting as a diamond, and zero (the verdicts' threshold) as a line; then
    the paper's own changes."""
    fig = go.Figure()
    order = list(dict.fromkeys(frame.row))
    for grade, rows, minus, plus in _forest_groups(frame):
        fig.add_trace(go.Scatter(
            x=rows.change, y=rows.row, mode="markers", name=grade,
            marker={"size": 9, "symbol": "diamond-open" if grade == "the paper's" else "circle",
                    "color": GRADE_COLORS.get(grade, "#777777")},
            error_x={"type": "data", "symmetric": False, "array": plus.tolist(), "arrayminus": minus.tolist()}))
    reference = frame[frame["paper's change"].notna()]
    if len(reference):
        fig.add_trace(go.Scatter(x=reference["paper's change"], y=reference.row, mode="markers", name=PAPER_CHANGE,
                                 marker={"size": 8, "symbol": "diamond", "color": PAPER_COLOR}))
    fig.add_vline(x=0, line_dash="dot", line_color="grey")
    fig.update_layout(title=FOREST_TITLE, xaxis_tickformat="+.0%",
                      yaxis={"title": None, "categoryarray": order[::-1], "categoryorder": "array"},
                      legend_title=None, height=max(360, 22 * len(order) + 160), width=1500)
    return fig


def forest_image(frame: pd.DataFrame) -> Figure:
    """`forest` as a static matplotlib figure: the same rows top to bottom, colours, intervals and diamonds."""
    order = list(dict.fromkeys(frame.row))
    position = {row: len(order) - 1 - i for i, row in enumerate(order)}
    out, ax = _image(width=15, height=max(3.6, 0.22 * len(order) + 1.6), title=FOREST_TITLE)
    for grade, rows, minus, plus in _forest_groups(frame):
        color = GRADE_COLORS.get(grade, "#777777")
        y = rows.row.map(position)
        ax.errorbar(rows.change, y, xerr=[minus, plus], fmt="none", ecolor=color, elinewidth=1.5, capsize=2)
        hollow = grade == "the paper's"
        ax.scatter(rows.change, y, s=81, marker="D" if hollow else "o", label=grade,
                   facecolors="none" if hollow else color, edgecolors=color, linewidths=1.5)
    reference = frame[frame["paper's change"].notna()]
    if len(reference):
        ax.scatter(reference["paper's change"], reference.row.map(position), s=64, marker="D", color=PAPER_COLOR,
                   label=PAPER_CHANGE)
    ax.axvline(0, color="grey", linestyle=":", linewidth=1)
    ax.set_yticks(range(len(order)), order[::-1])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:+.0%}"))
    out.legend(loc="outside right upper", frameon=False)
    return out


FOREST_TITLE = "EncodeRec's relative change of NDCG@10, with 95 % intervals over seeds and users"
PAPER_CHANGE, PAPER_COLOR = "the paper's change for the setting", "#7b3294"


def _forest_groups(frame: pd.DataFrame) -> Iterable[tuple[str, pd.DataFrame, pd.Series, pd.Series]]:
    """(grade, its rows, the interval's extent below and above each change; 0 where it has none)."""
    for grade, rows in frame.groupby("grade", sort=False):
        known = rows.low.notna()
        yield grade, rows, (rows.change - rows.low).where(known, 0), (rows.high - rows.change).where(known, 0)


def _image(width: float, height: float, title: str) -> tuple[Figure, Any]:
    """A matplotlib figure (not pyplot: no global backend or state) with one titled, gridded axes."""
    out = Figure(figsize=(width, height), dpi=100, layout="constrained")
    out.suptitle(title, x=0.01, horizontalalignment="left")  # above the legend, which sits beside the axes
    ax = out.add_subplot()
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    return out, ax
