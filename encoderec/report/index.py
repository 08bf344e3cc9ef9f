"""The report's index page: the summary's findings, every notebook with its status and wall time, and links to
the results and figures of the profile."""

from __future__ import annotations

import datetime as dt
import html
import os
from dataclasses import dataclass
from pathlib import Path

from encoderec.core.io import read_json, write_text
from encoderec.core.paths import ReportDirs
from encoderec.pipeline.profiles import Profile
from encoderec.pipeline.provenance import git_commit
from encoderec.report.summary import to_html


@dataclass
class NotebookStatus:
    notebook: str
    status: str  # "ok", "cached", "failed", "not run"
    wall_time_s: float | None = None
    message: str = ""


_INDEX_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;margin:1em 0}th,td{border-bottom:1px solid #ddd;padding:.4em;text-align:left}
figure{margin:1em 0}td{vertical-align:top}
.ok,.cached{color:#1a7f37}.failed{color:#cf222e}.not{color:#777}code{background:#f6f8fa;padding:0 .2em}
"""


def _link(target: Path, base: Path, label: str | None = None) -> str:
    rel = os.path.relpath(target, base)
    return f'<a href="{html.escape(rel)}">{html.escape(label or target.name)}</a>'


def write_index(profile: Profile, statuses: dict[str, NotebookStatus], dirs: ReportDirs) -> Path:
    out = dirs.reports(profile.name)
    rows = []
    for s in statuses.values():
        links = " ".join(_link(out / f"{s.notebook}.{ext}", out, ext) for ext in ("html", "ipynb")
                         if (out / f"{s.notebook}.{ext}").is_file())
        wall = "" if s.wall_time_s is None else f"{s.wall_time_s:.1f} s"
        css = s.status.split()[0]
        rows.append(f"<tr><td>{html.escape(s.notebook)}</td><td class='{css}'>{html.escape(s.status)}</td>"
                    f"<td>{wall}</td><td>{links}</td><td>{html.escape(s.message)}</td></tr>")
    results_dir = dirs.output_root / "results" / profile.name
    figures_dir = dirs.output_root / "figures" / profile.name
    results = [_link(p, out) for p in sorted(results_dir.glob("*.json"))]
    figures = [_link(p, out) for p in sorted(figures_dir.glob("*.html"))]
    commit = git_commit(dirs.output_root)
    summary_path = results_dir / "summary.json"
    if summary_path.is_file():
        findings = to_html(read_json(summary_path)["sections"], out / "index.html", dirs.output_root)
    else:
        findings = "<p>No summary yet: run the notebook 06_summary of this profile.</p>"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>encoderec report: {html.escape(profile.name)}</title>
<style>{_INDEX_STYLE}</style></head><body>
<h1>encoderec report: <code>{html.escape(profile.name)}</code></h1>
<p>{html.escape(profile.description)}</p>
<p>Generated {dt.datetime.now(dt.UTC).isoformat(timespec="seconds")} from commit
<code>{html.escape(str(commit["commit"]))}</code>{" (uncommitted changes)" if commit["dirty"] else ""}
with <code>python -m encoderec report --profile {html.escape(profile.name)}</code>.</p>
<h2>Findings</h2>
{findings}
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>wall time</th><th>outputs</th><th>note</th></tr>
{"".join(rows)}</table>
<h2>Results (JSON with provenance)</h2><p>{" · ".join(results) or "none yet"}</p>
<h2>Figures (interactive, offline)</h2><p>{" · ".join(figures) or "none yet"}</p>
</body></html>
"""
    path = out / "index.html"
    write_text(path, page)
    return path
