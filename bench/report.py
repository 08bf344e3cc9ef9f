"""Time the main job as a researcher meets it: `make report` in a fresh clone, install included, per notebook.

    python3 bench/report.py [--profile default] [--keep DIR] [--budget-minutes 45]

Clones the repository's HEAD into a new folder (next to a link to the shared data, as the README's layout has it),
runs `make report PROFILE=<profile>` there (a new virtual environment from the lock, an empty cache: every model
is trained and every text encoded on this machine), and prints the wall time of the install and of every notebook
(from the runner's records in reports/<profile>/.state/) against --budget-minutes. The clone is kept with --keep,
so its results/<profile>/ and figures/<profile>/ can be committed: they come from that one timed run.
Needs nothing but git, make and python3; run nothing else heavy meanwhile (2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fresh_clone(target: Path) -> Path:
    """A clone of HEAD at <target>/main, with <target>/shared linked to the data beside this checkout."""
    target.mkdir(parents=True, exist_ok=True)
    clone = target / "main"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    shared = ROOT.parent / "shared"
    if shared.is_dir() and not (target / "shared").exists():
        (target / "shared").symlink_to(shared)
    return clone


def notebook_times(clone: Path, profile: str) -> list[tuple[str, str, float]]:
    """(notebook, status, wall seconds) from the runner's state files, in notebook order."""
    states = sorted((clone / "reports" / profile / ".state").glob("[0-9]*_*.json"))
    return [(p.stem, (s := json.loads(p.read_text()))["status"], s["wall_time_s"] or 0.0)
            for p in states if not p.stem.endswith(".reads")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--keep", type=Path, help="clone into this folder and keep it (default: a temporary one)")
    parser.add_argument("--budget-minutes", type=float, default=45.0)
    args = parser.parse_args(argv)

    target = args.keep or Path(tempfile.mkdtemp(prefix="encoderec-timed-"))
    clone = fresh_clone(target)
    env = {k: v for k, v in os.environ.items() if k not in ("ENCODEREC_CACHE", "VIRTUAL_ENV")}
    head = subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], text=True).strip()
    print(f"fresh clone of {head} in {clone}", flush=True)
    start = time.perf_counter()
    subprocess.run(["make", "install"], cwd=clone, env=env, check=True)
    installed = time.perf_counter()
    report = subprocess.run(["make", "report", f"PROFILE={args.profile}"], cwd=clone, env=env)
    finished = time.perf_counter()

    rows = [("install (make install)", "ok", installed - start), *notebook_times(clone, args.profile)]
    print(f"\n{'step':<24} {'status':<8} {'minutes':>8}")
    for name, status, seconds in rows:
        print(f"{name:<24} {status:<8} {seconds / 60:>8.1f}")
    notebooks = sum(seconds for _, _, seconds in rows[1:])
    total = finished - start
    print(f"{'notebooks':<24} {'':<8} {notebooks / 60:>8.1f}")
    print(f"{'make install + report':<24} {'':<8} {total / 60:>8.1f}   (budget {args.budget_minutes:g} min: "
          f"{total / 60 / args.budget_minutes:.2f}x of it)")
    if not args.keep:
        print(f"(clone left in {clone}; remove it when done)")
    return report.returncode


if __name__ == "__main__":
    sys.exit(main())
