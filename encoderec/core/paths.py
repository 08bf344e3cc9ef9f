"""Where things live: the data directory, the cache, and the report's folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # encoderec/


def project_root() -> Path:
    """The checkout holding pyproject.toml when running from source, else the working directory."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $ENCODEREC_DATA, else ../shared/data when it exists, else ./data."""
    if override:
        return Path(override).expanduser()
    if env := os.environ.get("ENCODEREC_DATA"):
        return Path(env).expanduser()
    shared = project_root().parent / "shared" / "data"
    return shared if shared.is_dir() else project_root() / "data"


def cache_dir() -> Path:
    """$ENCODEREC_CACHE, else ./cache in the project: embeddings, joined model weights, checkpoints."""
    env = os.environ.get("ENCODEREC_CACHE")
    return Path(env).expanduser() if env else project_root() / "cache"


@dataclass
class ReportDirs:
    """The folders of a report: the notebooks' sources, the profiles, and the root of results/, figures/, reports/."""

    notebooks: Path
    params: Path
    output_root: Path

    @classmethod
    def default(cls) -> ReportDirs:
        root = project_root()
        return cls(root / "notebooks", root / "params", root)

    def reports(self, profile: str) -> Path:
        return self.output_root / "reports" / profile
