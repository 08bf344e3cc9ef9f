"""Plotly figures shared by the notebooks. Every figure renders offline, in JupyterLab and in the HTML report.

Item text reaches plotly as hover labels, which plotly interprets as HTML: it is always escaped here.

Static PNGs (for pages that run no JavaScript, such as RESULTS.md) are drawn by `write_png` with matplotlib from the
same plotly figure: plotly's own image export (kaleido) drives a system Chrome, which a fresh machine lacks.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio

from encoderec.errors import EncoderecError


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


GRADE_COLORS = {"supports": "#1a9850", "significantly worse": "#d73027", "no gain of the paper's size": "#4575b4",
                "inconclusive": "#f59e0b", "the paper's": "#222222"}


def forest(frame: pd.DataFrame) -> go.Figure:
    """The verdicts' forest plot (`summary.forest_rows`): one labelled row per (claim, setting, model, against), the
    relative change of NDCG@10 as a point coloured by its grade with its 95 % interval over seeds and users as a bar,
    the change the paper reports for that setting as a diamond, and zero (the verdicts' threshold) as a line; then
    the paper's own changes."""
    fig = go.Figure()
    order = list(dict.fromkeys(frame.row))
    for grade, rows in frame.groupby("grade", sort=False):
        known = rows.low.notna()
        fig.add_trace(go.Scatter(
            x=rows.change, y=rows.row, mode="markers", name=grade,
            marker={"size": 9, "symbol": "diamond-open" if grade == "the paper's" else "circle",
                    "color": GRADE_COLORS.get(grade, "#777777")},
            error_x={"type": "data", "symmetric": False,
                     "array": (rows.high - rows.change).where(known, 0).tolist(),
                     "arrayminus": (rows.change - rows.low).where(known, 0).tolist()}))
    reference = frame[frame["paper's change"].notna()]
    if len(reference):
        fig.add_trace(go.Scatter(x=reference["paper's change"], y=reference.row, mode="markers",
                                 name="the paper's change for the setting",
                                 marker={"size": 8, "symbol": "diamond", "color": "#7b3294"}))
    fig.add_vline(x=0, line_dash="dot", line_color="grey")
    fig.update_layout(title="EncodeRec's relative change of NDCG@10, with 95 % intervals over seeds and users",
                      xaxis_tickformat="+.0%", yaxis={"title": None, "categoryarray": order[::-1],
                                                      "categoryorder": "array"},
                      legend_title=None, height=max(360, 22 * len(order) + 160), width=1500)
    return fig


# --------------------------------------------------------------------------- static PNG without a browser

_MARKERS = {"circle": "o", "diamond": "D", "square": "s", "triangle-up": "^", "triangle-down": "v", "cross": "P",
            "x": "X", "star": "*"}
_DASHES = {None: "-", "solid": "-", "dot": ":", "dash": "--", "dashdot": "-."}


def write_png(fig: go.Figure, path: str | os.PathLike, width: int = 1000, dpi: int = 100) -> None:
    """Draw a plotly figure as a PNG with matplotlib (no browser): its bar and scatter traces, title, axis titles,
    category orders, percentage tick formats, legend and vertical or horizontal reference lines.

    Bars are vertical and grouped side by side with their `error_y` arrays; scatter traces draw their markers
    (plotly symbols, "-open" ones hollow) and lines. Any other trace type raises an EncoderecError naming it, so a
    figure is never exported with a trace silently missing. The size is the figure's layout width and height, else
    `width` and 480 px.
    """
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure state

    unsupported = sorted({t.type for t in fig.data} - {"bar", "scatter"})
    if unsupported:
        raise EncoderecError(f"{os.fspath(path)}: write_png draws bar and scatter traces, not {', '.join(unsupported)}; "
                             "save this figure as HTML only (static=False)")
    width = fig.layout.width or width
    out = Figure(figsize=(width / dpi, (fig.layout.height or 480) / dpi), dpi=dpi, layout="constrained")
    ax = out.add_subplot()
    positions = {axis: _category_positions(fig, axis) for axis in ("x", "y")}
    bars = [t for t in fig.data if t.type == "bar"]
    for trace in fig.data:
        x, y = (_coordinates(trace[axis], positions[axis]) for axis in ("x", "y"))
        color = _trace_color(trace)
        if trace.type == "bar":
            if trace.orientation == "h":
                raise EncoderecError(f"{os.fspath(path)}: write_png draws vertical bars only")
            step = 0.8 / len(bars)
            offset = (bars.index(trace) - (len(bars) - 1) / 2) * step
            errors = trace.error_y.array if trace.error_y and trace.error_y.array is not None else None
            ax.bar(x + offset, y, width=step, yerr=errors, color=color, label=trace.name, capsize=2)
        else:
            _draw_scatter(ax, trace, x, y, color)
    for shape in fig.layout.shapes:
        _draw_reference_line(ax, shape)
    for axis, set_ticks, set_label, formatter in (("x", ax.set_xticks, ax.set_xlabel, ax.xaxis),
                                                  ("y", ax.set_yticks, ax.set_ylabel, ax.yaxis)):
        layout_axis = fig.layout[f"{axis}axis"]
        if positions[axis]:
            set_ticks(range(len(positions[axis])), list(positions[axis]))
        if layout_axis.title.text:
            set_label(layout_axis.title.text)
        if layout_axis.tickformat:
            formatter.set_major_formatter(_tick_formatter(layout_axis.tickformat))
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    if fig.layout.title.text:
        ax.set_title(fig.layout.title.text, loc="left")
    if any(t.name for t in fig.data):  # beside the plot, inside the image (the constrained layout makes room)
        out.legend(*ax.get_legend_handles_labels(), loc="outside right upper", frameon=False,
                   title=fig.layout.legend.title.text)
    out.savefig(path, format="png")


def _category_positions(fig: go.Figure, axis: str) -> dict[str, int]:
    """Category -> position along an axis whose values are strings ({} for a numeric axis): the layout's
    categoryarray first, then the order of first appearance over the traces (plotly's default)."""
    values = [v for t in fig.data if t[axis] is not None for v in t[axis]]
    if not values or not all(isinstance(v, str) for v in values):
        return {}
    ordered = list(fig.layout[f"{axis}axis"].categoryarray or ())
    return {c: i for i, c in enumerate(dict.fromkeys([*ordered, *values]))}


def _coordinates(values: Sequence | None, categories: dict[str, int]) -> np.ndarray:
    if values is None:
        return np.array([])
    return np.array([categories[v] for v in values] if categories else values, dtype=float)


def _trace_color(trace: go.Bar | go.Scatter) -> str | None:
    color = trace.marker.color if trace.marker else None
    return color if isinstance(color, str) else None


def _draw_scatter(ax, trace: go.Scatter, x: np.ndarray, y: np.ndarray, color: str | None) -> None:
    mode = trace.mode or "markers"
    if "lines" in mode:
        ax.plot(x, y, color=color, linestyle=_DASHES.get(trace.line.dash, "-"), label=trace.name)
    errors = trace.error_x if trace.error_x and trace.error_x.array is not None else None
    if errors is not None and len(x):
        minus = errors.arrayminus if errors.arrayminus is not None else errors.array
        ax.errorbar(x, y, xerr=[np.asarray(minus, dtype=float), np.asarray(errors.array, dtype=float)],
                    fmt="none", ecolor=color, elinewidth=1.5, capsize=2)
    if "markers" in mode:
        symbol = str(trace.marker.symbol or "circle")
        hollow = symbol.endswith("-open")
        marker = _MARKERS.get(symbol.removesuffix("-open"), "o")
        size = (trace.marker.size if isinstance(trace.marker.size, (int, float)) else 6) ** 2
        ax.scatter(x, y, s=size, marker=marker, label=None if "lines" in mode else trace.name,
                   facecolors="none" if hollow else color, edgecolors=color, linewidths=1.5 if hollow else 0.5)


def _draw_reference_line(ax, shape) -> None:
    """add_vline / add_hline shapes: a line across the whole plot at one x (or y)."""
    style = {"color": shape.line.color or "grey", "linestyle": _DASHES.get(shape.line.dash, "-"), "linewidth": 1}
    if shape.type == "line" and shape.x0 == shape.x1 and str(shape.yref).endswith("domain"):
        ax.axvline(shape.x0, **style)
    elif shape.type == "line" and shape.y0 == shape.y1 and str(shape.xref).endswith("domain"):
        ax.axhline(shape.y0, **style)


def _tick_formatter(tickformat: str):
    """A plotly (d3) tick format such as ".1%" or "+.0%" as a matplotlib formatter: for these the d3 and Python
    format specifications agree."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: format(value, tickformat))
