"""What a notebook calls: `start` gives a `NotebookRun` that reads the results of earlier notebooks, writes its own
results and figures under the profile's folders, and records the provenance of every results file.

    run = report.start("04_unisrec", dict(profile=profile, ...), output_root)
    models = run.read_results("encoderec_models")     # recorded, so the runner re-runs this notebook when it changes
    run.save("unisrec", rows, comparison=...)           # results/<profile>/unisrec.json, rows + provenance
    run.figure(fig, "unisrec_learning_curves")         # figures/<profile>/<name>.html (and .png with image=)

Every results file records its provenance (`pipeline.provenance`): the git commit (and whether tracked files other
than the outputs differ from it), the parameters, the machine, the versions of the key packages and the hash of the
lock file, the start and the wall time.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.core.io import atomic_path, read_json, write_json, write_text
from encoderec.pipeline import registry
from encoderec.pipeline.policy import Policy
from encoderec.pipeline.provenance import log_read, provenance

PLOTLYJS = "plotly.min.js"
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
        """results/<profile>/runs/ when the notebook's parameters say `archive: true` (`encoderec.pipeline.runs`), else None."""
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

    @property
    def policy(self) -> Policy:
        """How the notebook's units are obtained: its `archive` folder and its `read_only` parameter (True, or the
        datasets whose units are read only)."""
        return Policy.of(self.archive, self.params.get("read_only", False))

    @functools.cached_property
    def models(self) -> registry.Models:
        """The profile's models (`registry.of_profile`); read only when the notebook computes nothing."""
        return registry.of_profile(self.profile, self.results_dir, read_only=self.policy.read_only is True)

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

    def figure(self, fig: Any, name: str, image: Any = None) -> Any:
        """Save a plotly figure as offline HTML under figures/<profile>/ (and its matplotlib twin `image` as a PNG,
        for pages that cannot run JavaScript: RESULTS.md on GitHub) and return it for display."""
        # One shared plotly.min.js per folder keeps each figure small and still offline. It stays out of git (4.7 MB):
        # `make install` writes it beside the committed figures (write_plotly_bundles), a report run beside its own.
        write_plotly_bundle(self.figures_dir)
        with atomic_path(self.figures_dir / f"{name}.html") as tmp:
            fig.write_html(tmp, include_plotlyjs=PLOTLYJS, full_html=True, div_id=name)  # stable across runs
        if image is not None:
            with atomic_path(self.figures_dir / f"{name}.png") as tmp:
                image.savefig(tmp, format="png")
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


def start(notebook: str, params: Any, output_root: str | os.PathLike | None = None,
          profile: str | None = None) -> NotebookRun:
    """Call at the top of a notebook, after the parameters cell: `params` is the notebook's parameters
    (`pipeline.parameters.of`, or a mapping), recorded in the provenance of everything it saves with `profile`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(output_root) if output_root else paths.project_root()
    values = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)
    return NotebookRun(notebook, {**values, **({"profile": profile} if profile else {})}, root)


