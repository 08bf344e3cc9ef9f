"""The summary's figures: plotly for the report, and their static matplotlib twins, drawn with no browser anywhere
on the machine."""

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from matplotlib.image import imread

from encoderec.core import paths
from encoderec.report import plots

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


@pytest.mark.parametrize("draw", [lambda: plots.collision_rates_image(collision_rows()),
                                  lambda: plots.forest_image(forest_rows())], ids=["bars", "forest"])
def test_the_static_twins_draw_the_summary_figures(draw, tmp_path):
    draw().savefig(tmp_path / "f.png", format="png")
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG_MAGIC
    assert imread(tmp_path / "f.png")[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_the_static_forest_has_the_rows_of_the_interactive_one_in_its_order():
    image, interactive = plots.forest_image(forest_rows()), plots.forest(forest_rows())
    ax = image.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == list(interactive.layout.yaxis.categoryarray)  # bottom to top, as plotly draws them
    legend = [t.get_text() for t in image.legends[0].get_texts()]
    assert legend == [t.name for t in interactive.data]


def test_the_static_collision_bars_show_each_backbones_mean_and_spread():
    ax = plots.collision_rates_image(collision_rows()).axes[0]
    heights = sorted(round(p.get_height(), 4) for p in ax.patches)
    assert heights == sorted([0.075] * 2 + [0.025] * 2)  # the mean of seeds 0 and 1 per (dataset, backbone)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Scientific", "Office"]


def test_static_figures_need_no_browser(tmp_path):
    """The notebooks' static-figure path in a process that cannot find any browser: PATH is empty and the
    variables browser lookups read point nowhere, so a renderer that needs Chrome would fail here."""
    script = textwrap.dedent(f"""
        import pandas as pd, plotly.graph_objects as go, shutil
        from encoderec.report import notebook as report, plots
        assert shutil.which("chromium") is None and shutil.which("google-chrome") is None
        run = report.start("06_summary", {{"profile": "t"}}, {str(tmp_path)!r})
        rows = pd.DataFrame({json.dumps(collision_rows().to_dict(orient="records"))})
        run.figure(plots.collision_rates(rows), "summary_collision_rate", image=plots.collision_rates_image(rows))
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

    from encoderec.report import notebook as report

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
