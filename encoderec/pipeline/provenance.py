"""Provenance: what every results file and archive entry records about where and how it was computed (the git
commit and whether tracked files differ from it, the machine, the versions of the key packages and the hash of the
lock file), and the log through which a notebook tells the report runner which files it read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from encoderec.core import paths
from encoderec.core.io import read_json, write_json

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

    from encoderec.core import precision
    from encoderec.models import runtime

    device = precision.default_device()

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
        # what runs by default here: each run records its own precision, each cached embedding its runtime
        "precision": precision.resolve_precision(None, device),
        "encoding runtime": runtime.resolve_runtime(None, precision.resolve_precision(None, device), device),
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


