"""The report: execute every notebook of a profile with papermill, render HTML, record provenance.

    python -m encoderec report --profile default [--only 02_retrieval]

A profile is a YAML file in params/:

    description: one line shown in the index
    common: {seed: 0}                    # parameters passed to every notebook
    notebooks:                           # the notebooks to run, in name order, with their own parameters
      00_data: {datasets: [Scientific]}
    parts:                               # optional: slices of long notebooks, run one at a time with --part
      data-Scientific: {notebook: 00_data, datasets: [Scientific]}

A part runs its notebook with some parameters replaced, to fill the run caches (cache/) in a bounded time; the
notebook's full run afterwards reads every finished run from them. A part's results are those of its slice until
that full run rewrites them.

Outputs: reports/P/<nb>.ipynb and .html, reports/P/index.html, and whatever the notebooks write through
`NotebookRun`: results/P/<name>.json (rows + provenance) and figures/P/<name>.html. A notebook whose
source, parameters, library code and data are unchanged since its last successful run is skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoderec import config
from encoderec.errors import EncoderecError
from encoderec.io import atomic_path, read_json, read_yaml, sha256_text, write_json, write_text

KERNEL_NAME = "encoderec"
INJECTED = ("profile", "data_dir", "output_root")  # every notebook's parameters cell declares these
PLOTLYJS = "plotly.min.js"
# Distributions whose versions every results file records (the numbers depend on them); the lock pins them all.
KEY_PACKAGES = ("torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy", "scipy", "scikit-learn",
                "pandas")


# --------------------------------------------------------------------------- provenance

def git_commit(root: Path | None = None) -> dict[str, Any]:
    """HEAD and whether tracked files differ from it; the outputs (results/, figures/) do not count, so the notebooks
    of one report run, each rewriting its results, are not marked dirty by the ones before them."""
    root = root or config.project_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results",
                                 ":!figures"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def machine() -> dict[str, Any]:
    import torch

    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    return info


def environment(root: Path | None = None) -> dict[str, Any]:
    """The versions of KEY_PACKAGES as installed (None where one is not), and the SHA-256 of the lock file the
    environment was installed from (None outside a checkout)."""
    lock = (root or config.project_root()) / "requirements.lock"
    return {"packages": {name: _installed_version(name) for name in KEY_PACKAGES},
            "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None}


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def provenance(params: dict[str, Any], started: float) -> dict[str, Any]:
    from encoderec import __version__

    return {
        "git": git_commit(),
        "encoderec": __version__,
        "parameters": params,
        "machine": machine(),
        "environment": environment(),
        "started_at": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(time.time() - started, 2),
    }


# --------------------------------------------------------------------------- inside a notebook

@dataclass
class NotebookRun:
    """What a notebook uses to write its results and figures under the profile's folders."""

    notebook: str
    params: dict[str, Any]
    output_root: Path = field(default_factory=config.project_root)
    started: float = field(default_factory=time.time)

    @property
    def profile(self) -> str:
        return self.params.get("profile", "default")

    @property
    def results_dir(self) -> Path:
        return self.output_root / "results" / self.profile

    @property
    def figures_dir(self) -> Path:
        return self.output_root / "figures" / self.profile

    def save(self, name: str, rows: Any, **extra: Any) -> Path:
        """Write results/<profile>/<name>.json: the rows (a DataFrame or records), extras, and provenance."""
        if hasattr(rows, "to_dict"):
            rows = rows.to_dict(orient="records")
        path = self.results_dir / f"{name}.json"
        write_json(path, _missing_as_null({"name": name, "notebook": self.notebook, "profile": self.profile,
                                           "rows": rows, **extra, "provenance": provenance(self.params, self.started)}))
        return path

    def backbone(self, name: str, seed: int = 0) -> tuple[str, int | None]:
        """(what to encode with, the trained model's seed or None) for a name in a notebook's parameters.

        A model trained by 01_encoderec ("EncodeRec-22M", listed in results/<profile>/encoderec_models.json) gives
        the folder of its run with `seed`, or of its first seed when it was not trained with that one; any other
        name (a base encoder, a baseline, a folder, a Hugging Face id) is returned as it is."""
        path = self.results_dir / "encoderec_models.json"
        runs = self._trained_runs(name)
        if runs:
            chosen = next((row for row in runs if row["seed"] == seed), runs[0])
            return chosen["path"], chosen["seed"]
        if name.startswith("EncodeRec"):
            missing = "is missing" if not path.exists() else "lists no such model"
            raise EncoderecError(f"{path} {missing}: train {name} first with python -m encoderec report "
                                 f"--profile {self.profile} --only 01_encoderec")
        return name, None

    def base_encoder(self, name: str) -> str | None:
        """The encoder a model of 01_encoderec was fine-tuned from; None for any other name."""
        runs = self._trained_runs(name)
        return runs[0]["backbone"] if runs else None

    def _trained_runs(self, name: str) -> list[dict[str, Any]]:
        path = self.results_dir / "encoderec_models.json"
        return [row for row in read_json(path)["rows"] if row["name"] == name] if path.exists() else []

    def figure(self, fig: Any, name: str, static: bool = False) -> Any:
        """Save a plotly figure as offline HTML under figures/<profile>/ (and as a PNG with `static`, for pages that
        cannot run JavaScript: RESULTS.md on GitHub) and return it for display."""
        # One shared plotly.min.js per folder keeps each figure small and still offline; it is committed with the
        # figures, so a clone opens them without running anything.
        self._write_plotlyjs()
        with atomic_path(self.figures_dir / f"{name}.html") as tmp:
            fig.write_html(tmp, include_plotlyjs=PLOTLYJS, full_html=True, div_id=name)  # stable across runs
        if static:
            from encoderec.plots import write_png

            with atomic_path(self.figures_dir / f"{name}.png") as tmp:
                write_png(fig, tmp)
        return fig

    def _write_plotlyjs(self) -> None:
        """figures/<profile>/plotly.min.js: the bundle of the installed plotly, rewritten when plotly changes
        (plotly's own include_plotlyjs="directory" never replaces an older bundle)."""
        from plotly.offline import get_plotlyjs

        bundle, text = self.figures_dir / PLOTLYJS, get_plotlyjs()
        if not bundle.is_file() or bundle.read_text(encoding="utf-8") != text:
            write_text(bundle, text)

    def static_figures(self) -> list[tuple[str, str]]:
        """(name, path relative to the output root) of every PNG this profile's notebooks saved."""
        return [(p.stem.replace("_", " "), str(p.relative_to(self.output_root)))
                for p in sorted(self.figures_dir.glob("*.png"))]


def _missing_as_null(obj: Any) -> Any:
    """NaN (pandas' missing value, or a std over one seed) becomes null: JSON has no NaN."""
    if isinstance(obj, dict):
        return {k: _missing_as_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_missing_as_null(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy scalars
        return _missing_as_null(obj.item())
    return obj


def start(notebook: str, params: dict[str, Any], output_root: str | os.PathLike | None = None) -> NotebookRun:
    """Call at the top of a notebook, after the parameters cell."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(output_root) if output_root else config.project_root()
    return NotebookRun(notebook, params, root)


def seed_summary(table: Any, by: list[str], columns: dict[str, str], digits: int | dict[str, int] = 4) -> Any:
    """One row per `by` group of a results table (one row per seed), in order of appearance: each of `columns`
    (name -> label) as "mean ± std" over the group's rows, or the value alone for a group of one row."""
    grouped = table.groupby(by, sort=False)[list(columns)]
    means, stds, sizes = grouped.mean(), grouped.std(), grouped.size()
    out = means.index.to_frame(index=False)
    for name, label in columns.items():
        d = digits.get(name, 4) if isinstance(digits, dict) else digits
        out[label] = [f"{m:.{d}f}" + (f" ± {s:.{d}f}" if n > 1 else "")
                      for m, s, n in zip(means[name], stds[name], sizes)]
    return out


# --------------------------------------------------------------------------- profiles

@dataclass
class Profile:
    name: str
    path: Path
    description: str
    common: dict[str, Any]
    notebooks: dict[str, dict[str, Any]]
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)  # part -> {notebook: ..., parameters to replace}


def load_profile(name: str, params_dir: Path | None = None) -> Profile:
    params_dir = params_dir or config.project_root() / "params"
    path = params_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in params_dir.glob("*.yaml"))) or "none"
        raise EncoderecError(f"{path}: no such profile; profiles in {params_dir}: {known}")
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise EncoderecError(f"{path}: expected a mapping with keys description, common, notebooks")
    unknown = set(raw) - {"description", "common", "notebooks", "parts"}
    if unknown:
        raise EncoderecError(f"{path}: unknown key {sorted(unknown)[0]!r}; allowed: description, common, notebooks, "
                             "parts")
    notebooks, common, parts = raw.get("notebooks") or {}, raw.get("common") or {}, raw.get("parts") or {}
    for key, value in (("common", common), ("notebooks", notebooks), ("parts", parts)):
        _require_mapping(path, key, value)
    for nb_name, nb_params in notebooks.items():
        _require_mapping(path, f"notebooks.{nb_name}", nb_params or {})
    if not notebooks:
        raise EncoderecError(f"{path}: 'notebooks' is empty; list the notebooks this profile runs")
    for part, spec in parts.items():
        _require_mapping(path, f"parts.{part}", spec or {})
        if (spec or {}).get("notebook") not in notebooks:
            raise EncoderecError(f"{path}: parts.{part}.notebook must name a notebook of this profile "
                                 f"({', '.join(notebooks)})")
    return Profile(name, path, str(raw.get("description", "")), common,
                   {nb: dict(p or {}) for nb, p in notebooks.items()}, {part: dict(s) for part, s in parts.items()})


def _require_mapping(path: Path, key: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise EncoderecError(f"{path}: {key} must be a mapping, got {type(value).__name__}")


# --------------------------------------------------------------------------- running

@dataclass
class NotebookStatus:
    notebook: str
    status: str  # "ok", "cached", "failed", "not run"
    wall_time_s: float | None = None
    message: str = ""


@dataclass
class ReportDirs:
    notebooks: Path
    params: Path
    output_root: Path

    @classmethod
    def default(cls) -> ReportDirs:
        root = config.project_root()
        return cls(root / "notebooks", root / "params", root)

    def reports(self, profile: str) -> Path:
        return self.output_root / "reports" / profile


def ensure_kernel() -> None:
    """Register this interpreter as the Jupyter kernel 'encoderec' in its own environment (idempotent), and put that
    environment first on JUPYTER_PATH for this process: a kernel of the same name elsewhere (another clone's in
    ~/.local/share/jupyter, which Jupyter would otherwise prefer) never runs the notebooks."""
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    own = str(Path(sys.prefix) / "share" / "jupyter")
    others = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p and p != own]
    os.environ["JUPYTER_PATH"] = os.pathsep.join([own, *others])
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return
    except NoSuchKernel:
        pass
    install(kernel_name=KERNEL_NAME, display_name="Python (encoderec)", prefix=sys.prefix)


def _to_ipynb(source: Path, target: Path) -> None:
    import jupytext

    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python (encoderec)", "language": "python"}
    target.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, target, fmt="ipynb")


def _declared_parameters(ipynb: Path) -> set[str]:
    import papermill

    declared = papermill.inspect_notebook(str(ipynb))
    if not declared:
        raise EncoderecError(f"{ipynb.name}: no cell tagged 'parameters'; add `# %% tags=[\"parameters\"]`")
    missing = [name for name in INJECTED if name not in declared]
    if missing:
        raise EncoderecError(f"{ipynb.name}: the parameters cell must declare {', '.join(INJECTED)} "
                             f"(missing: {', '.join(missing)}); the runner sets them")
    return set(declared)


def notebook_parameters(profile: Profile, declared: dict[str, set[str]]) -> dict[str, dict[str, Any]]:
    """Each notebook's own parameters plus the common ones it declares; any unknown name is an error."""
    for key in profile.common:
        if not any(key in names for names in declared.values()):
            raise EncoderecError(f"{profile.path}: common.{key} is not a parameter of any notebook of this profile")
    params = {}
    for nb_name, names in declared.items():
        unknown = sorted(set(profile.notebooks[nb_name]) - names)
        if unknown:
            raise EncoderecError(f"{profile.path}: notebooks.{nb_name}.{unknown[0]} is not a parameter of {nb_name} "
                                 f"(known: {', '.join(sorted(names))})")
        params[nb_name] = {**{k: v for k, v in profile.common.items() if k in names}, **profile.notebooks[nb_name]}
    return params


def _library_fingerprint() -> str:
    sources = sorted(config.PACKAGE_DIR.glob("*.py"))
    return sha256_text(*(p.read_text(encoding="utf-8") for p in sources))


def _data_fingerprint(data_dir: Path) -> str:
    if not data_dir.is_dir():
        return "absent"
    stamps = [f"{p.relative_to(data_dir)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
              for p in sorted(data_dir.rglob("*.json"))]
    return sha256_text(*stamps)


def _run_one(nb_name: str, input_nb: Path, params: dict[str, Any], dirs: ReportDirs, profile: Profile,
             fingerprint: str, force: bool) -> NotebookStatus:
    import papermill

    out_dir = dirs.reports(profile.name)
    state_path = out_dir / ".state" / f"{nb_name}.json"
    executed, rendered = out_dir / f"{nb_name}.ipynb", out_dir / f"{nb_name}.html"
    if not force and state_path.is_file() and executed.is_file() and rendered.is_file():
        state = read_json(state_path)
        if state.get("fingerprint") == fingerprint and state.get("status") == "ok":
            return NotebookStatus(nb_name, "cached", state.get("wall_time_s"), "inputs unchanged")

    started = time.time()
    status = NotebookStatus(nb_name, "ok")
    try:
        papermill.execute_notebook(str(input_nb), str(executed), parameters=params, kernel_name=KERNEL_NAME,
                                   cwd=str(dirs.notebooks), progress_bar=False)
    except papermill.PapermillExecutionError as e:
        status = NotebookStatus(nb_name, "failed", message=f"cell {e.cell_index} (execution count {e.exec_count}): "
                                                            f"{e.ename}: {e.evalue}".strip())
    status.wall_time_s = round(time.time() - started, 1)
    _render_html(executed, rendered)
    write_json(state_path, {"fingerprint": fingerprint if status.status == "ok" else None,
                            "status": status.status, "wall_time_s": status.wall_time_s, "message": status.message})
    return status


def _render_html(executed: Path, rendered: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(executed, as_version=4))
    write_text(rendered, body)


def run_report(profile_name: str, only: list[str] | None = None, data_dir: str | None = None, force: bool = False,
               dirs: ReportDirs | None = None, part: str | None = None) -> str:
    """Execute the profile's notebooks in name order (`only` some, or one `part`); stop at the first failing cell."""
    dirs = dirs or ReportDirs.default()
    profile = load_profile(profile_name, dirs.params)
    overrides: dict[str, Any] = {}
    if part is not None:
        if part not in profile.parts:
            raise EncoderecError(f"--part {part}: not a part of profile {profile.path.name} (parts: "
                                 f"{', '.join(profile.parts) or 'none'})")
        overrides = {k: v for k, v in profile.parts[part].items() if k != "notebook"}
        only = [profile.parts[part]["notebook"]]
    for nb_name in [*profile.notebooks, *(only or [])]:
        if not (dirs.notebooks / f"{nb_name}.py").is_file():
            where = f"{profile.path}: notebooks.{nb_name}" if nb_name in profile.notebooks else f"--only {nb_name}"
            raise EncoderecError(f"{where}: there is no notebooks/{nb_name}.py")
    unknown_only = [nb for nb in only or [] if nb not in profile.notebooks]
    if unknown_only:
        raise EncoderecError(f"--only {unknown_only[0]}: not part of profile {profile.path.name}")

    os.environ["HF_HUB_OFFLINE"] = "1"
    resolved_data = config.data_dir(data_dir).resolve()
    ensure_kernel()
    base = {"profile": profile.name, "data_dir": str(resolved_data), "output_root": str(dirs.output_root)}
    inputs = {nb: dirs.reports(profile.name) / ".input" / f"{nb}.ipynb" for nb in sorted(profile.notebooks)}
    for nb_name, input_nb in inputs.items():
        _to_ipynb(dirs.notebooks / f"{nb_name}.py", input_nb)
    declared = {nb: _declared_parameters(path) for nb, path in inputs.items()}
    own_params = notebook_parameters(profile, declared)
    if part is not None:
        unknown = sorted(set(overrides) - declared[only[0]])
        if unknown:
            raise EncoderecError(f"{profile.path}: parts.{part}.{unknown[0]} is not a parameter of {only[0]}")
        own_params[only[0]] = {**own_params[only[0]], **overrides}
    shared_fingerprint = (_library_fingerprint(), _data_fingerprint(resolved_data))

    statuses: dict[str, NotebookStatus] = {}
    for nb_name, input_nb in inputs.items():
        if only and nb_name not in only:
            statuses[nb_name] = _previous_status(dirs, profile.name, nb_name)
            continue
        params = {**own_params[nb_name], **base}
        source = (dirs.notebooks / f"{nb_name}.py").read_text(encoding="utf-8")
        fingerprint = sha256_text(source, json.dumps(params, sort_keys=True, default=str), *shared_fingerprint)
        print(f"[{profile.name}] {nb_name} ...", file=sys.stderr, flush=True)
        status = _run_one(nb_name, input_nb, params, dirs, profile, fingerprint, force)
        statuses[nb_name] = status
        print(f"[{profile.name}] {nb_name}: {status.status} ({status.wall_time_s} s)", file=sys.stderr, flush=True)
        if status.status == "failed":
            write_index(profile, statuses, dirs)
            raise EncoderecError(f"notebooks/{nb_name}.py failed at {status.message}; "
                                 f"see {dirs.reports(profile.name) / (nb_name + '.html')}")
    index = write_index(profile, statuses, dirs)
    return f"report {profile.name}: " + ", ".join(f"{s.notebook} {s.status}" for s in statuses.values()) + f"; {index}"


def _previous_status(dirs: ReportDirs, profile: str, nb_name: str) -> NotebookStatus:
    state_path = dirs.reports(profile) / ".state" / f"{nb_name}.json"
    if not state_path.is_file():
        return NotebookStatus(nb_name, "not run")
    state = read_json(state_path)
    return NotebookStatus(nb_name, state.get("status", "not run"), state.get("wall_time_s"), state.get("message", ""))


# --------------------------------------------------------------------------- the index page

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
        from encoderec.summary import to_html  # summary builds on this module

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
