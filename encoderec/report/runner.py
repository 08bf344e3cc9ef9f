"""The report runner: execute the notebooks of a profile with papermill, render them as HTML, write the index.

    python -m encoderec report --profile default [--only 02_retrieval] [--part NAME] [--force] [--read-only]

Outputs: reports/P/<nb>.ipynb and .html, reports/P/index.html, and whatever the notebooks write through
`report.NotebookRun`: results/P/<name>.json (rows + provenance) and figures/P/<name>.html.

A notebook is skipped when nothing it depends on changed since its last successful run: its source, its
parameters, the library's source, the data files, and the results of earlier notebooks that it read (each read
through `NotebookRun.read_results` is logged with the file's hash; a changed, new or deleted file re-runs it), and the
entries of the archive it looked up (`archive.read`: a unit archived since, by `fit` or another report, re-runs it). So when
01_encoderec retrains, every notebook that reads its models re-runs, and 06_summary re-runs after any of 02-05.

One run at a time per profile: a second `report` of the same profile and output folder waits for the first (a lock
file in reports/P/), then finds the notebooks the first one ran up to date.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.core.io import file_lock, read_json, sha256_file, sha256_text, write_json, write_text
from encoderec.core.paths import ReportDirs
from encoderec.pipeline import parameters
from encoderec.pipeline.profiles import Profile
from encoderec.pipeline.provenance import READS_LOG
from encoderec.report.index import NotebookStatus, write_index

KERNEL_NAME = "encoderec"


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


def _library_fingerprint() -> str:
    sources = sorted(paths.PACKAGE_DIR.rglob("*.py"))
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
    state_path, reads_log = out_dir / ".state" / f"{nb_name}.json", out_dir / ".state" / f"{nb_name}.reads.json"
    executed, rendered = out_dir / f"{nb_name}.ipynb", out_dir / f"{nb_name}.html"
    if not force and state_path.is_file() and executed.is_file() and rendered.is_file():
        state = read_json(state_path)
        if (state.get("fingerprint") == fingerprint and state.get("status") == "ok"
                and _reads_unchanged(state.get("reads", {}), dirs.output_root)):
            return NotebookStatus(nb_name, "cached", state.get("wall_time_s"), "inputs unchanged")

    started = time.time()
    status = NotebookStatus(nb_name, "ok")
    reads_log.unlink(missing_ok=True)
    os.environ[READS_LOG] = str(reads_log)  # the kernel inherits it
    try:
        papermill.execute_notebook(str(input_nb), str(executed), parameters=params, kernel_name=KERNEL_NAME,
                                   cwd=str(dirs.notebooks), progress_bar=False)
    except papermill.PapermillExecutionError as e:
        status = NotebookStatus(nb_name, "failed", message=f"cell {e.cell_index} (execution count {e.exec_count}): "
                                                            f"{e.ename}: {e.evalue}".strip())
    finally:
        del os.environ[READS_LOG]
    status.wall_time_s = round(time.time() - started, 1)
    _render_html(executed, rendered)
    write_json(state_path, {"fingerprint": fingerprint if status.status == "ok" else None,
                            "reads": read_json(reads_log) if reads_log.is_file() else {},
                            "status": status.status, "wall_time_s": status.wall_time_s, "message": status.message})
    return status


def _reads_unchanged(reads: dict[str, str | None], output_root: Path) -> bool:
    """Whether every results file a notebook read still has the hash it had then (None: it was absent)."""
    return all(_hash_or_none(output_root / relative) == digest for relative, digest in reads.items())


def _hash_or_none(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def _render_html(executed: Path, rendered: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(executed, as_version=4))
    write_text(rendered, body)


def run_report(profile_name: str, only: list[str] | None = None, data_dir: str | None = None, force: bool = False,
               dirs: ReportDirs | None = None, part: str | None = None, read_only: bool = False) -> str:
    """Execute the profile's notebooks in name order (`only` some, or one `part`); stop at the first failing cell.
    With `read_only`, every notebook that declares `read_only` gets it: nothing is trained or encoded."""
    dirs = dirs or ReportDirs.default()
    profile = parameters.load(profile_name, dirs.params)
    overrides: dict[str, Any] = {}
    if part is not None:
        nb_name, overrides = _part(profile, part)
        only = [nb_name]
    for nb_name in [*profile.notebooks, *(only or [])]:
        if not (dirs.notebooks / f"{nb_name}.py").is_file():
            where = f"{profile.path}: notebooks.{nb_name}" if nb_name in profile.notebooks else f"--only {nb_name}"
            raise EncoderecError(f"{where}: there is no notebooks/{nb_name}.py")
    unknown_only = [nb for nb in only or [] if nb not in profile.notebooks]
    if unknown_only:
        raise EncoderecError(f"--only {unknown_only[0]}: not part of profile {profile.path.name}")

    with file_lock(dirs.reports(profile.name) / ".lock",
                   waiting=f"another report of profile {profile.name} is running in {dirs.output_root}; waiting"):
        inputs, own_params, base, shared_fingerprint = _prepare(profile, part, overrides, only, data_dir, dirs,
                                                                read_only)
        statuses = _run_notebooks(profile, inputs, own_params, base, only, dirs, shared_fingerprint, force)
    index = write_index(profile, statuses, dirs)
    return f"report {profile.name}: " + ", ".join(f"{s.notebook} {s.status}" for s in statuses.values()) + f"; {index}"


def part_parameters(profile_name: str, part: str, data_dir: str | None = None,
                    dirs: ReportDirs | None = None) -> tuple[str, dict[str, Any]]:
    """The notebook that a part of a profile runs and the parameters the runner would give it (the notebook's
    defaults, then the profile's, then the part's, with `data_dir` and `output_root`), without running it: what
    `python -m encoderec fit` plans."""
    dirs = dirs or ReportDirs.default()
    profile = parameters.load(profile_name, dirs.params)
    nb_name, overrides = _part(profile, part)
    own = _own_parameters(profile, nb_name, overrides)
    return nb_name, {**own, "data_dir": str(paths.data_dir(data_dir).resolve()), "output_root": str(dirs.output_root)}


def parts_training(profile_name: str, model: str, seed: int, dirs: ReportDirs | None = None) -> list[str]:
    """The parts of a profile whose 01_encoderec trains the fine-tuned `model` with `seed`, fewest models first."""
    dirs = dirs or ReportDirs.default()
    profile = parameters.load(profile_name, dirs.params)
    found = []
    for part, spec in profile.parts.items():
        if spec["notebook"] == "01_encoderec":
            own = _own_parameters(profile, "01_encoderec", _part(profile, part)[1])
            trained = [(m["name"], s) for m in own["models"] for s in m.get("seeds", own["seeds"])]
            if (model, seed) in trained:
                found.append((len(trained), part))
    return [part for _, part in sorted(found)]


def _own_parameters(profile: Profile, nb_name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter of the notebook's schema: its defaults, then the profile's, then `overrides`."""
    values = {**parameters.notebook_parameters(profile, nb_name), **(overrides or {})}
    return dataclasses.asdict(parameters.validate(nb_name, values, f"{profile.path}: notebooks.{nb_name}"))


def _part(profile: Profile, part: str) -> tuple[str, dict[str, Any]]:
    """(the notebook of `part`, the parameters it replaces)."""
    if part not in profile.parts:
        raise EncoderecError(f"--part {part}: not a part of profile {profile.path.name} (parts: "
                             f"{', '.join(profile.parts) or 'none'})")
    return profile.parts[part]["notebook"], {k: v for k, v in profile.parts[part].items() if k != "notebook"}


def _injected(profile: Profile, data_dir: Path, dirs: ReportDirs) -> dict[str, Any]:
    """The parameters the runner sets in every notebook besides its `parameters`."""
    return {"profile": profile.name, "data_dir": str(data_dir), "output_root": str(dirs.output_root)}


def _prepare(profile: Profile, part: str | None, overrides: dict[str, Any], only: list[str] | None,
             data_dir: str | None, dirs: ReportDirs, read_only: bool = False
             ) -> tuple[dict[str, Path], dict[str, dict[str, Any]], dict[str, Any], tuple[str, str]]:
    """The notebooks as .ipynb inputs, each one's parameters, the injected ones, and the library and data
    fingerprints."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    resolved_data = paths.data_dir(data_dir).resolve()
    ensure_kernel()
    base = _injected(profile, resolved_data, dirs)
    inputs = {nb: dirs.reports(profile.name) / ".input" / f"{nb}.ipynb" for nb in sorted(profile.notebooks)}
    for nb_name, input_nb in inputs.items():
        _to_ipynb(dirs.notebooks / f"{nb_name}.py", input_nb)
    own_params = {nb: _own_parameters(profile, nb, overrides if nb == (only or [None])[0] and part else None)
                  for nb in inputs}
    if read_only:
        own_params = {nb: {**params, "read_only": True} if "read_only" in params else params
                      for nb, params in own_params.items()}
    return inputs, own_params, base, (_library_fingerprint(), _data_fingerprint(resolved_data))


def _run_notebooks(profile: Profile, inputs: dict[str, Path], own_params: dict[str, dict[str, Any]],
                   base: dict[str, Any], only: list[str] | None, dirs: ReportDirs, shared_fingerprint: tuple[str, str],
                   force: bool) -> dict[str, NotebookStatus]:
    statuses: dict[str, NotebookStatus] = {}
    for nb_name, input_nb in inputs.items():
        if only and nb_name not in only:
            statuses[nb_name] = _previous_status(dirs, profile.name, nb_name)
            continue
        params = {"parameters": own_params[nb_name], **base}
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
    return statuses


def _previous_status(dirs: ReportDirs, profile: str, nb_name: str) -> NotebookStatus:
    state_path = dirs.reports(profile) / ".state" / f"{nb_name}.json"
    if not state_path.is_file():
        return NotebookStatus(nb_name, "not run")
    state = read_json(state_path)
    return NotebookStatus(nb_name, state.get("status", "not run"), state.get("wall_time_s"), state.get("message", ""))
