"""Profiles: the YAML files in params/ that say which notebooks a report runs, with which parameters.

    description: one line shown in the index
    common: {archive: true}              # parameters passed to every notebook that has them (pipeline.parameters)
    notebooks:                           # the notebooks to run, in name order, with their own parameters
      00_data: {datasets: [Scientific]}
    parts:                               # optional: slices of long notebooks, run one at a time with --part
      data-Scientific: {notebook: 00_data, datasets: [Scientific]}

A part runs its notebook with some parameters replaced, to fill the run caches (cache/) in a bounded time; the
notebook's full run afterwards reads every finished run from them. `pipeline.parameters.load` loads a profile and
checks every parameter against the notebooks' schemas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.core.io import read_yaml


@dataclass
class Profile:
    name: str
    path: Path
    description: str
    common: dict[str, Any]
    notebooks: dict[str, dict[str, Any]]
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)  # part -> {notebook: ..., parameters to replace}


def load_profile(name: str, params_dir: Path | None = None) -> Profile:
    params_dir = params_dir or paths.project_root() / "params"
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
