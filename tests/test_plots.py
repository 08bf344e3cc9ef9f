"""Static figures: drawn by matplotlib from the plotly figure, with no browser anywhere on the machine."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from matplotlib.image import imread

from encoderec import paths, plots
from encoderec.errors import EncoderecError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def collision_rows() -> pd.DataFrame:
    return pd.DataFrame([{"dataset": d, "backbone": b, "tokenizer": "rqvae", "seed": s, "collision_rate@3": r + s / 100}
                         for d, r in (("Scientific", 0.07), ("Office", 0.02)) for b in ("MiniLM", "EncodeRec")
                         for s in (0, 1)])


def forest_rows() -> pd.DataFrame:
    return pd.DataFrame([
        {"row": "Table 1 · Scientific · EncodeRec-22M vs all-MiniLM-L6-v2", "source": "ours", "change": 0.25,
         "low": 0.2, "high": 0.3, "grade": "supports", "paper's change": 0.024},
        {"row": "Table 3 · Beauty · EncodeRec-22M vs all-MiniLM-L6-v2", "source": "ours", "change": 0.01,
         "low": -0.04, "high": 0.06, "grade": "inconclusive", "paper's change": 0.057},
        {"row": "Table 2 · Office · EncodeRec-22M vs all-MiniLM-L6-v2", "source": "ours", "change": 0.02,
         "low": None, "high": None, "grade": "inconclusive", "paper's change": 0.09},
        {"row": "paper Table 3 · Beauty · EncodeRec-22M vs all-MiniLM-L6-v2", "source": "paper", "change": 0.057,
         "low": None, "high": None, "grade": "the paper's", "paper's change": None},
    ])


def test_the_forest_plot_has_a_labelled_row_an_interval_and_the_papers_change_for_each_setting():
    fig = plots.forest(forest_rows())
    labelled = {y for trace in fig.data for y in trace.y}
    assert labelled == set(forest_rows().row)
    supports = next(t for t in fig.data if t.name == "supports")
    assert list(supports.error_x.arrayminus) == pytest.approx([0.05]) and list(supports.error_x.array) == pytest.approx([0.05])
    paper = next(t for t in fig.data if t.name == "the paper's change for the setting")
    assert len(paper.x) == 3
    assert any(shape.x0 == 0 for shape in fig.layout.shapes)  # the verdicts' threshold


@pytest.mark.parametrize("figure", [lambda: plots.collision_rates(collision_rows()),
                                    lambda: plots.forest(forest_rows())], ids=["bars", "forest"])
def test_write_png_draws_the_summary_figures(figure, tmp_path):
    fig = figure()
    plots.write_png(fig, tmp_path / "f.png", width=800)
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG_MAGIC
    pixels = imread(tmp_path / "f.png")
    assert pixels.shape[:2] == (fig.layout.height or 480, fig.layout.width or 800)
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_write_png_places_categories_in_the_layout_order(tmp_path):
    fig = go.Figure(go.Scatter(x=[1.0, 2.0], y=["b", "a"], mode="markers"))
    fig.update_layout(yaxis={"categoryorder": "array", "categoryarray": ["a", "b"]})
    assert plots._category_positions(fig, "y") == {"a": 0, "b": 1}
    assert plots._category_positions(fig, "x") == {}  # numeric axis
    plots.write_png(fig, tmp_path / "f.png")


def test_write_png_refuses_traces_it_cannot_draw(tmp_path):
    fig = go.Figure([go.Bar(x=["a"], y=[1]), go.Heatmap(z=np.eye(2))])
    with pytest.raises(EncoderecError, match=r"f\.png: write_png draws bar and scatter traces, not heatmap"):
        plots.write_png(fig, tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()


def test_static_figures_need_no_browser(tmp_path):
    """The notebooks' static-figure path in a process that cannot find any browser: PATH is empty and the
    variables browser lookups read point nowhere, so a renderer that needs Chrome would fail here."""
    script = textwrap.dedent(f"""
        import pandas as pd, plotly.graph_objects as go, shutil
        from encoderec import plots, report
        assert shutil.which("chromium") is None and shutil.which("google-chrome") is None
        run = report.start("06_summary", {{"profile": "t"}}, {str(tmp_path)!r})
        rows = pd.DataFrame({json.dumps(collision_rows().to_dict(orient="records"))})
        run.figure(plots.collision_rates(rows), "summary_collision_rate", static=True)
        print(run.static_figures())
    """)
    env = {"PATH": "", "HOME": str(tmp_path), "BROWSER_PATH": "/nonexistent", "CHROME_BIN": "/nonexistent",
           "BROWSER": "/nonexistent", "MPLCONFIGDIR": str(tmp_path / "mpl"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(paths.project_root())}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    png = tmp_path / "figures" / "t" / "summary_collision_rate.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "figures/t/summary_collision_rate.png" in done.stdout


def test_install_gives_every_committed_figure_its_plotly_bundle(tmp_path):
    """Every committed interactive figure loads plotly.min.js from its own folder, and the install step
    (report.write_plotly_bundles, run by `make install`) writes that bundle there: a checkout opens them offline."""
    from plotly.offline import get_plotlyjs

    from encoderec import report

    root = paths.project_root()
    listed = subprocess.run(["git", "ls-files", "figures"], cwd=root, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    pages = [p for p in listed.stdout.split() if p.endswith(".html")]
    assert pages, "no committed interactive figures"
    for page in pages:  # the committed pages, copied into an empty tree as a clone would have them
        assert 'src="plotly.min.js"' in (root / page).read_text(encoding="utf-8")[:5000], page
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text("<html></html>")
    folders = report.write_plotly_bundles(tmp_path)
    assert {str(f.relative_to(tmp_path)) for f in folders} == {os.path.dirname(p) for p in pages}
    for folder in folders:
        assert (folder / "plotly.min.js").read_text(encoding="utf-8") == get_plotlyjs()
