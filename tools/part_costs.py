"""The measured cost of each part of a profile, as the Markdown table of docs/profiles.md.

For the recommender parts (04_unisrec, 05_tiger): the runs `fit` would train, read from the archive and the run
caches (nothing is computed), with the training and ranking seconds each recorded, where and in which precision. For
the 01_encoderec parts: the wall seconds in each archived model's training record. The parts of 02 and 03 record no
per-unit wall time (their cost is encoding); they are listed without one.

    python tools/part_costs.py --profile paper > /tmp/parts.md
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

from encoderec.core import paths
from encoderec.pipeline import parameters, registry, runs
from encoderec.pipeline.policy import Policy
from encoderec.report import runner


def recommender_cost(profile: str, part: str) -> tuple[int, int, float, Counter]:
    """(runs, pending, seconds trained and ranked, runs per device and precision) of one part."""
    notebook, params = runner.part_parameters(profile, part)
    results = Path(params["output_root"]) / "results" / profile
    backbone_of = registry.of_profile(profile, results, read_only=True).encoder
    policy = Policy(results / "runs" if params.get("archive") else None, read_only=True)
    planned = runs.plan(notebook, params)
    seconds, pending, where = 0.0, 0, Counter()
    for run in planned:
        result = runs.execute(run, backbone_of, policy=policy, progress=False)["result"]
        if result is None:
            pending += 1
            continue
        seconds += result["fit_seconds"] + result["rank_seconds"]
        where[f"{result['config']['device']} {result['config'].get('precision', 'fp32')}"] += 1
    return len(planned), pending, seconds, where


def model_cost(profile: str, spec: dict) -> tuple[int, int, float, Counter]:
    """(models, pending, training seconds, models per precision) of a 01_encoderec part, from the archive."""
    archive = paths.project_root() / "results" / profile / "runs" / "encoderec"
    count, pending, seconds, where = 0, 0, 0.0, Counter()
    seeds = spec.get("seeds", [0, 1, 2])
    for model in spec["models"]:
        for seed in model.get("seeds", seeds):
            count += 1
            found = sorted((archive / model["name"]).glob(f"seed{seed}-*.json.gz"))
            if not found:
                pending += 1
                continue
            info = json.loads(gzip.decompress(found[-1].read_bytes()))["record"]["info"]
            seconds += info["wall_seconds"]
            where[f"cpu {info['config'].get('precision', 'fp32')}"] += 1
    return count, pending, seconds, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="paper")
    profile = parameters.load(parser.parse_args().profile)
    print("| part | notebook | units | pending | measured (sum of units) | trained on |")
    print("|---|---|---|---|---|---|")
    for part, spec in profile.parts.items():
        notebook = spec["notebook"]
        if notebook in runs.NOTEBOOKS:
            count, pending, seconds, where = recommender_cost(profile.name, part)
        elif notebook == "01_encoderec":
            count, pending, seconds, where = model_cost(profile.name, spec)
        else:
            print(f"| `{part}` | {notebook} | | | encoding-bound, not recorded per unit | |")
            continue
        trained = ", ".join(f"{n} x {w}" for w, n in where.most_common())
        measured = f"{seconds / 60:.0f} min" if count > pending else "none yet"
        print(f"| `{part}` | {notebook} | {count} | {pending} | {measured} | {trained} |")


if __name__ == "__main__":
    main()
