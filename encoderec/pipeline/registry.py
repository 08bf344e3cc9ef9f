"""The models of a report: one place that knows each model's name, family, base encoder, larger sibling and how to
load it, so that the notebooks, `fit`, `export` and the tables never guess from a name.

    models = registry.of_profile("paper")
    models.encoder("EncodeRec-22M", seed=1)   # (the folder of its seed-1 run, 1); ("all-MiniLM-L6-v2", None) for a base
    models.family("EncodeRec+-22M")           # "EncodeRec+"
    models.base_encoder("EncodeRec-22M")      # "all-MiniLM-L6-v2"

Families: "base" (a sentence encoder as published: an alias, a folder or a Hugging Face id), "EncodeRec" (fine-tuned
by 01_encoderec with the paper's recipe), "EncodeRec+" (our extension: the recipe with next-item pairs,
`interaction_ratio` > 0) and "baseline" (TF-IDF + SVD, random embeddings, the ID-only SASRec). A fine-tuned model is
one that the profile's 01_encoderec names in its `models` parameter or has recorded in
results/<profile>/encoderec_models.json (the runs it trained or read from the archive, with their folders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.core.io import read_json
from encoderec.pipeline import provenance
from encoderec.pipeline.profiles import load_profile

ID_ONLY = "ID only (SASRec)"  # UniSRec's runs without text, as the tables name them
ID_ONLY_ARGUMENT = "id"  # ... as `fit --backbone` names them
ID_ONLY_FILE = "ID-only"  # ... in archive file names
RECBOLE_SASREC = "SASRec (RecBole)"  # RecBole's SASRec, the peer of our ID-only one, as the tables name it
TEXT_BASELINES = ("tfidf-svd", "random")  # embeddings without a language model (`embeddings.BASELINES`)
# Each fine-tuned model and the smaller one it is compared with for the paper's claim that scale helps.
LARGER_THAN = {"EncodeRec-110M": "EncodeRec-22M"}
# Our extension: the same recipe with interaction pairs, at the chosen ratio and two others, against EncodeRec-22M.
PLUS_OF = {name: "EncodeRec-22M" for name in ("EncodeRec+-22M", "EncodeRec+0.25-22M", "EncodeRec+1.0-22M")}
RESULTS = "encoderec_models"  # results/<profile>/encoderec_models.json: 01_encoderec's runs


@dataclass
class Models:
    """The models of one profile: `recipes` are the fine-tuned models its 01_encoderec trains (name -> the entry of
    its `models` parameter), `runs` the rows of encoderec_models.json (name, backbone, seed, path,
    interaction_ratio, ...). With `read_only` (nothing is computed), a fine-tuned model without a run resolves to a
    folder that does not exist, so that its units are listed as pending instead of failing."""

    profile: str
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    read_only: bool = False
    results: Path | None = None

    def is_fine_tuned(self, name: str) -> bool:
        return name in self.recipes or any(row["name"] == name for row in self.runs)

    def family(self, name: str) -> str:
        if name in TEXT_BASELINES or name == ID_ONLY:
            return "baseline"
        if not self.is_fine_tuned(name):
            return "base"
        recipe = next((row for row in self.runs if row["name"] == name), None) or self.recipes[name]
        return "EncodeRec+" if (recipe.get("interaction_ratio") or 0) > 0 else "EncodeRec"

    def base_encoder(self, name: str) -> str | None:
        """The encoder a fine-tuned model starts from; None for any other model."""
        recipe = next((row for row in self.runs if row["name"] == name), None) or self.recipes.get(name)
        return recipe["backbone"] if recipe else None

    def encoders(self, base_encoders: list[str]) -> dict[str, dict[str, Any]]:
        """Every encoder of a retrieval table by its label: the `base_encoders` as published, then every run of a
        fine-tuned model ("EncodeRec-22M (seed 1)"), each with its name, what to encode with, base and seed."""
        found = {b: {"name": b, "backbone": b, "base": b, "seed": None} for b in base_encoders}
        return found | {f"{row['name']} (seed {row['seed']})": {"name": row["name"], "backbone": row["path"],
                                                                "base": row["backbone"], "seed": row["seed"]}
                        for row in self.runs}

    @staticmethod
    def tuned_pairs(encoders: dict[str, dict[str, Any]], bases: list[str]) -> list[tuple[str, str]]:
        """(base label, label of the first fine-tuned run from it) for every base of `bases` that has one."""
        return [(base, tuned[0]) for base in bases
                if (tuned := [label for label, e in encoders.items() if e["base"] == base and e["seed"] is not None])]

    def encoder(self, name: str, seed: int = 0) -> tuple[str, int | None]:
        """(what to encode with, the fine-tuned model's seed or None): a fine-tuned model's folder of its run with
        `seed` (or of its first seed when it was not trained with that one); any other name as it is."""
        runs = [row for row in self.runs if row["name"] == name]
        if runs:
            chosen = next((row for row in runs if row["seed"] == seed), runs[0])
            return chosen["path"], chosen["seed"]
        if not self.is_fine_tuned(name):
            return name, None
        if self.read_only:  # neither trained nor archived: a folder that never exists, so its units are pending
            return str(paths.cache_dir() / "encoderec" / f"{name}-pending" / "final"), seed
        where = self.results or f"results/{self.profile}/{RESULTS}.json"
        raise EncoderecError(f"{where} lists no run of {name}: train it first with python -m encoderec report "
                             f"--profile {self.profile} --only 01_encoderec (or --read-only to list, without "
                             f"training, the models already trained or archived)")


def of_profile(profile: str, results_dir: Path | None = None, params_dir: Path | None = None,
               read_only: bool = False) -> Models:
    """The models of `profile`: its 01_encoderec's `models` (params/<profile>.yaml, when there is one) and the runs in
    results/<profile>/encoderec_models.json (read through the report runner's log, so a notebook that asked re-runs
    when 01_encoderec changes them)."""
    dirs = paths.ReportDirs.default()
    results = (results_dir or dirs.output_root / "results" / profile) / f"{RESULTS}.json"
    params = (params_dir or dirs.params) / f"{profile}.yaml"
    models = load_profile(profile, params.parent).notebooks.get("01_encoderec", {}).get("models", []) \
        if params.is_file() else []
    stored = results.read_bytes() if results.is_file() else None
    provenance.log_read(results, stored)
    runs = read_json(results)["rows"] if stored is not None else []
    return Models(profile, {m["name"]: m for m in models}, runs, read_only, results)
