"""What a notebook calls: `start` gives a `NotebookRun` that reads the results of earlier notebooks, writes its own
results and figures under the profile's folders, and records the provenance of every results file.

    run = report.start("04_unisrec", dict(profile=profile, ...), output_root)
    models = run.read_results("encoderec_models")     # recorded, so the runner re-runs this notebook when it changes
    run.save("unisrec", rows, comparison=...)           # results/<profile>/unisrec.json, rows + provenance
    run.figure(fig, "unisrec_learning_curves")         # figures/<profile>/<name>.html (and .png with static=True)

Provenance: the git commit (and whether tracked files other than the outputs differ from it), the parameters, the
machine, the versions of the key packages and the hash of the lock file, the start and the wall time.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.metadata
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoderec import paths
from encoderec.errors import EncoderecError
from encoderec.io import atomic_path, read_json, write_json, write_text

PLOTLYJS = "plotly.min.js"
# Distributions whose versions every results file records (the numbers depend on them); the lock pins them all.
KEY_PACKAGES = ("torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy", "scipy", "scikit-learn",
                "pandas")
# Set by the report runner: the file where a notebook lists the results it read, with their hashes (data flow).
READS_LOG = "ENCODEREC_READS_LOG"


def log_read(path: Path, data: bytes | None, root: Path | None = None) -> None:
    """Tell the report runner that runs this notebook, if one does, that it read `path` (`data`: the bytes it found,
    None when the file was absent), so that the notebook re-runs once that file changes, appears or goes. Named
    relative to `root` (the output root) when given, else by its absolute path."""
    log = os.environ.get(READS_LOG)
    if not log:
        return  # run by hand, in JupyterLab: nothing to tell a runner
    reads = read_json(log) if Path(log).is_file() else {}
    reads[os.path.relpath(path, root) if root else str(Path(path).resolve())] = (
        hashlib.sha256(data).hexdigest() if data is not None else None)
    write_json(log, reads)


# --------------------------------------------------------------------------- provenance

def git_commit(root: Path | None = None) -> dict[str, Any]:
    """HEAD and whether tracked files differ from it; the outputs (results/, figures/, the top-level RESULTS.md that
    the paper profile's summary writes) do not count, so the notebooks of one report run, each rewriting its results,
    are not marked dirty by the ones before them."""
    root = root or paths.project_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results",
                                 ":!figures", ":!RESULTS.md"], cwd=root, capture_output=True, text=True, check=True)
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
    lock = (root or paths.project_root()) / "requirements.lock"
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
    output_root: Path = field(default_factory=paths.project_root)
    started: float = field(default_factory=time.time)

    @property
    def profile(self) -> str:
        return self.params.get("profile", "default")

    @property
    def results_dir(self) -> Path:
        return self.output_root / "results" / self.profile

    @property
    def archive(self) -> Path | None:
        """results/<profile>/runs/ when the notebook's parameters say `archive: true` (`encoderec.runs`), else None."""
        return self.results_dir / "runs" if self.params.get("archive") else None

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
        name (a base encoder, a baseline, a folder, a Hugging Face id) is returned as it is. With `archive_only`, a
        model 01_encoderec does not list gives a folder that does not exist: its units are pending."""
        path = self.results_dir / "encoderec_models.json"
        runs = self._trained_runs(name)
        if runs:
            chosen = next((row for row in runs if row["seed"] == seed), runs[0])
            return chosen["path"], chosen["seed"]
        if name.startswith("EncodeRec") and self.params.get("archive_only"):
            # 01 neither trained it nor found it archived: a folder that never exists, so its units are pending
            return str(paths.cache_dir() / "encoderec" / f"{name}-pending" / "final"), seed
        if name.startswith("EncodeRec"):
            missing = "is missing" if not path.exists() else "lists no such model"
            listed = (" (add --from-archive to list, without training, the models already trained by its parts or "
                      "archived)") if self.params.get("archive") else ""
            raise EncoderecError(f"{path} {missing}: train {name} first with python -m encoderec report "
                                 f"--profile {self.profile} --only 01_encoderec{listed}")
        return name, None

    def base_encoder(self, name: str) -> str | None:
        """The encoder a model of 01_encoderec was fine-tuned from; None for any other name."""
        runs = self._trained_runs(name)
        return runs[0]["backbone"] if runs else None

    def _trained_runs(self, name: str) -> list[dict[str, Any]]:
        models = self.read_results("encoderec_models", missing_ok=True)
        return [row for row in models["rows"] if row["name"] == name] if models else []

    def read_results(self, name: str, missing_ok: bool = False) -> dict[str, Any] | None:
        """results/<profile>/<name>.json as written by an earlier notebook (None when absent and `missing_ok`).

        Under the report runner the read is logged with the file's hash (or its absence), so this notebook re-runs
        whenever what it read changes: read earlier results only through here."""
        path = self.results_dir / f"{name}.json"
        data = path.read_bytes() if path.is_file() else None
        log_read(path, data, self.output_root)
        if data is None:
            if missing_ok:
                return None
            raise EncoderecError(f"{path}: no such results; run the notebook that writes {name}.json first "
                                 f"(python -m encoderec report --profile {self.profile})")
        return read_json(path)

    def figure(self, fig: Any, name: str, static: bool = False) -> Any:
        """Save a plotly figure as offline HTML under figures/<profile>/ (and as a PNG with `static`, for pages that
        cannot run JavaScript: RESULTS.md on GitHub) and return it for display."""
        # One shared plotly.min.js per folder keeps each figure small and still offline. It stays out of git (4.7 MB):
        # `make install` writes it beside the committed figures (write_plotly_bundles), a report run beside its own.
        write_plotly_bundle(self.figures_dir)
        with atomic_path(self.figures_dir / f"{name}.html") as tmp:
            fig.write_html(tmp, include_plotlyjs=PLOTLYJS, full_html=True, div_id=name)  # stable across runs
        if static:
            from encoderec.plots import write_png

            with atomic_path(self.figures_dir / f"{name}.png") as tmp:
                write_png(fig, tmp)
        return fig

    def static_figures(self) -> list[tuple[str, str]]:
        """(name, path relative to the output root) of every PNG this profile's notebooks saved."""
        return [(p.stem.replace("_", " "), str(p.relative_to(self.output_root)))
                for p in sorted(self.figures_dir.glob("*.png"))]


@functools.cache
def write_plotly_bundle(folder: Path) -> None:
    """<folder>/plotly.min.js: the bundle of the installed plotly, rewritten when plotly changes (plotly's own
    include_plotlyjs="directory" never replaces an older bundle); checked once per folder and process."""
    from plotly.offline import get_plotlyjs

    bundle, text = folder / PLOTLYJS, get_plotlyjs()
    if not bundle.is_file() or bundle.read_text(encoding="utf-8") != text:
        write_text(bundle, text)


def write_plotly_bundles(root: Path | None = None) -> list[Path]:
    """The bundle beside every folder of figures/ holding interactive figures (the committed ones included), so a
    checkout opens them offline once installed; the folders written."""
    folders = sorted({page.parent for page in ((root or paths.project_root()) / "figures").glob("*/*.html")})
    for folder in folders:
        write_plotly_bundle(folder)
    return folders


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
    root = Path(output_root) if output_root else paths.project_root()
    return NotebookRun(notebook, params, root)


