"""The units of work of the notebooks, each obtained under one compute policy (`policy.Policy`: read the archive,
else the caches, else compute unless the policy reads only), and the recommender runs of 04_unisrec (Table 2) and
05_tiger (Table 3), planned and executed in one place, so that a notebook and `python -m encoderec fit` (several
runs at once on one device: the GPU set) fill the same caches.

    plan = runs.plan("05_tiger", params)                           # one Run per dataset x backbone x seed x IDs
    records = [runs.execute(r, models.encoder, policy=p) for r in plan]   # what the notebook does, one after another
    python -m encoderec fit --profile paper --part gpu-tiger --jobs 10   # the same runs, ten at a time

A run's inputs are the item embeddings of its backbone (`embeddings.encode` of the full item text, or a baseline:
"random", "tfidf-svd"; none for the ID-only SASRec) and, for TIGER, the semantic IDs of an RQ-VAE fitted with the
run's seed on the training items (`semantic_ids.tokenize`, then `semantic_ids.item_ids`). Every step is cached:
after `fit`, `execute` is a read. Under a read-only policy nothing is computed: a run whose inputs or result are
neither archived nor cached comes back with result None, a *pending* run (the paper profile reads the GPU set's
datasets this way, so a report on a machine without a GPU lists those runs as pending instead of training them for
hours).

04_unisrec's `recbole` parameter adds RecBole's SASRec beside our ID-only SASRec (`recbole_plan`): a UniSRec-kind run
without text whose variant is RECBOLE, fitted by `models.recbole_sasrec` and archived and read like any other run.

`backbone_of(name, seed) -> (what to encode with, the EncodeRec model's seed or None)` is `registry.Models.encoder`:
for seed s, an EncodeRec backbone is the model 01_encoderec trained with seed s when there is one.

`fit_all` runs a plan's inputs in this process, in order (encoding and RQ-VAE fits use the whole device and are
shared between runs), then the fits `jobs` at a time in worker processes: small recommenders leave most of a GPU
idle, and several of them fill it.

The run archive (`pipeline.archive`; the paper profile's `archive: true`): every finished unit is also kept in
results/<profile>/runs/, committed, and read from there before anything is computed. A run's `identity`: its fields
and settings, a hash of its split, its encoder with a hash of the item texts it encodes, and the result versions of
the encoding, the semantic IDs (TIGER) and the recommender (`versions`); not the precision a device resolves "auto"
to (the record says where and in which precision the run was trained). The notebooks' other units are archived the
same way: 01_encoderec's `encoderec_model` (a model and its training record), 02_retrieval's `retrieval_ranks`
(Table 1: one encoder on one dataset), and 03_semantic_ids's `tokenization` (one tokenizer fitted on one backbone's
embeddings of a catalogue, a TIGER run's input computed on its own) and `item_map` (a UMAP of those embeddings).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.core.io import read_json, sha256_text
from encoderec.core.precision import check_device
from encoderec.data import dataset as data
from encoderec.models import embeddings, retrieval, semantic_ids, space, trainer
from encoderec.models import recbole_sasrec as peer
from encoderec.models import tiger as tg
from encoderec.models import unisrec as usr
from encoderec.models.fitting import validation_scores
from encoderec.models.rqvae import RQVAEConfig
from encoderec.pipeline import archive as store
from encoderec.pipeline import provenance
from encoderec.pipeline.policy import COMPUTE, Policy
from encoderec.pipeline.registry import ID_ONLY, ID_ONLY_FILE, RECBOLE_SASREC

NOTEBOOKS = {"04_unisrec": "unisrec", "05_tiger": "tiger"}
RECBOLE = "recbole"  # the variant of a UniSRec-kind run without text that RecBole's SASRec trains

BackboneOf = Callable[[str, int], tuple[str, "int | None"]]


@dataclass(frozen=True)
class Run:
    """One recommender run: `settings` are the UniSRecConfig / TigerConfig fields to change, `rqvae` (TIGER) the
    RQVAEConfig ones; `max_items` / `max_users` slice the data (`data.for_recommendation`)."""

    kind: str  # "unisrec" or "tiger"
    dataset: str
    backbone: str | None  # a name from the notebook's parameters; None: no text (the ID-only SASRec)
    variant: str  # UniSRec's mode ("inductive", "transductive", "id") or RECBOLE; TIGER's ID variant ("dedup", ...)
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    rqvae: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    max_items: int | None = None
    max_users: int | None = None

    @property
    def name(self) -> str:
        return f"{self.kind} {self.dataset} {self.backbone or ID_ONLY} {self.variant} seed {self.seed}"

    def config(self, device: str | None = None) -> usr.UniSRecConfig | tg.TigerConfig | peer.RecBoleSASRecConfig:
        fields = {**self.settings, "seed": self.seed, **({"device": device} if device else {})}
        if self.variant == RECBOLE:
            return peer.RecBoleSASRecConfig(**fields)
        if self.kind == "unisrec":
            return usr.UniSRecConfig(**{**fields, "mode": self.variant})
        return tg.TigerConfig(**fields)


# --------------------------------------------------------------------------- plans


def plan(notebook: str, params: dict[str, Any], settings: list[str] | None = None) -> list[Run]:
    """The runs of `notebook` (04_unisrec or 05_tiger) with these parameters, in the order the notebook runs them
    (04's `ablation` runs after its Table 2 runs and 05's `calibration` after its Table 3 runs, each run once).
    With `settings` (labels of 04's ablation settings), only the ablation's runs of those settings: how a session
    with little time picks what to train."""
    if notebook not in NOTEBOOKS:
        raise EncoderecError(f"{notebook}: has no recommender runs; use one of {', '.join(NOTEBOOKS)}")
    if notebook == "05_tiger" and not settings:
        return _unique([*tiger_plan(**_plan_arguments(notebook, params)),
                        *(r for _, r in calibration_plan(params.get("calibration") or {}, params))])
    ablation = params.get("ablation") or {}
    if settings:
        known = list(ablation.get("settings") or {}) if notebook == "04_unisrec" else []
        if unknown := [label for label in settings if label not in known]:
            raise EncoderecError(f"{notebook}: no ablation setting {unknown[0]!r} in this part; its settings: "
                                 f"{', '.join(map(repr, known)) or 'none (only 04_unisrec has an ablation)'}")
        return _unique([r for label, r in ablation_plan(ablation, **_ablation_arguments(params)) if label in settings])
    return _unique([*unisrec_plan(**_plan_arguments(notebook, params)),
                    *(r for _, r in ablation_plan(ablation, **_ablation_arguments(params))),
                    *(r for _, r in recbole_plan(params.get("recbole") or {}, **_ablation_arguments(params)))])


def _unique(runs: list[Run]) -> list[Run]:
    """`runs` without repeats (a Run holds dicts, so it is not hashable), in order."""
    seen: set[str] = set()
    keys = [json.dumps(dataclasses.asdict(r), sort_keys=True) for r in runs]
    return [r for r, key in zip(runs, keys) if not (key in seen or seen.add(key))]


# UniSRecConfig fields that only the text adaptor reads: not a setting of the ID-only SASRec, and an ablation setting
# of these alone has no ID-only run
ADAPTOR_FIELDS = frozenset({"text_norm", "adaptor_dropout", "experts"})


def unisrec_plan(datasets: list[str], backbones: list[str], modes: list[str], id_baseline: bool, seeds: list[int],
                 unisrec: dict[str, Any], dataset_unisrec: dict[str, dict[str, Any]],
                 **data_slice: Any) -> Iterator[Run]:
    """Per dataset and seed: the ID-only SASRec (when `id_baseline`), then every backbone in every mode; the
    settings are `unisrec` with the dataset's `dataset_unisrec` on top."""
    for name in datasets:
        settings = {**unisrec, **(dataset_unisrec or {}).get(name, {})}
        for seed in seeds:
            if id_baseline:
                yield unisrec_run(name, None, "id", seed, settings, **data_slice)
            for backbone in backbones:
                for mode in modes:
                    yield unisrec_run(name, backbone, mode, seed, settings, **data_slice)


def unisrec_run(dataset: str, backbone: str | None, mode: str, seed: int, settings: dict[str, Any],
                **data_slice: Any) -> Run:
    """A UniSRec run whose settings keep only what departs from UniSRecConfig's defaults, and for the ID-only SASRec
    nothing that only the text adaptor reads: the same training is the same run (and archive entry) however it was
    asked for, e.g. an ablation setting that restores a default the profile changed ({text_norm: none})."""
    defaults = usr.UniSRecConfig()
    kept = {k: v for k, v in settings.items() if getattr(defaults, k, object()) != v
            and not (backbone is None and k in ADAPTOR_FIELDS)}
    return Run("unisrec", dataset, backbone, mode, seed, kept, **data_slice)


ABLATION_KEYS = ("datasets", "backbones", "id_baseline", "seeds", "settings")


def ablation_plan(ablation: dict[str, Any], unisrec: dict[str, Any], dataset_unisrec: dict[str, dict[str, Any]],
                  datasets: list[str] | None = None, seeds: list[int] | None = None,
                  **data_slice: Any) -> list[tuple[str, Run]]:
    """04_unisrec's ablation (issue 18): (setting label, run) for every dataset, named setting, seed, the ID-only
    SASRec (when `id_baseline` and the setting changes more than the text adaptor) and backbone, inductive. Only the
    ablation's datasets and seeds that are also the notebook's `datasets` and `seeds` (when given) run, so that a
    part of the profile runs its slice of the ablation. A setting's fields go on top of the notebook's `unisrec` and
    the dataset's `dataset_unisrec`, so the setting {} is Table 2's run itself (one run, cached once)."""
    if not ablation:
        return []
    where = _check_keys(ablation, ABLATION_KEYS, "04_unisrec parameter ablation")
    settings = ablation.get("settings") or {}
    out = []
    for name in [d for d in ablation.get("datasets", []) if datasets is None or d in datasets]:
        base = {**unisrec, **(dataset_unisrec or {}).get(name, {})}
        for label, changes in settings.items():
            usr.UniSRecConfig.from_dict({**base, **(changes or {})}, f"{where}, setting {label!r}")
            changed = set(changes or {})
            with_id = ablation.get("id_baseline", False) and (not changed or not changed <= ADAPTOR_FIELDS)
            for seed in [k for k in ablation.get("seeds", [0]) if seeds is None or k in seeds]:
                for backbone in ([None] if with_id else []) + list(ablation.get("backbones", [])):
                    mode = "id" if backbone is None else "inductive"
                    out.append((label, unisrec_run(name, backbone, mode, seed, {**base, **(changes or {})},
                                                   **data_slice)))
    return out


RECBOLE_KEYS = ("datasets", "seeds", "settings")


def recbole_plan(recbole: dict[str, Any], unisrec: dict[str, Any], dataset_unisrec: dict[str, dict[str, Any]],
                 datasets: list[str] | None = None, seeds: list[int] | None = None,
                 **data_slice: Any) -> list[tuple[str, Run]]:
    """04_unisrec's peer check (`recbole` parameter): ("ours", our ID-only SASRec) and ("RecBole", RecBole's SASRec)
    for each of its datasets and seeds (those also the notebook's, when given), both with its `settings` on top of
    the notebook's `unisrec` and the dataset's `dataset_unisrec`; RecBole's run keeps the fields its config has
    (`recbole_sasrec.RecBoleSASRecConfig`) and drops ours alone (the temperature, `fast`, the text adaptor's)."""
    if not recbole:
        return []
    where = _check_keys(recbole, RECBOLE_KEYS, "04_unisrec parameter recbole")
    peer_fields = {f.name for f in dataclasses.fields(peer.RecBoleSASRecConfig)} - {"seed", "device"}
    defaults = peer.RecBoleSASRecConfig()
    out = []
    for name in [d for d in recbole.get("datasets", []) if datasets is None or d in datasets]:
        settings = {**unisrec, **(dataset_unisrec or {}).get(name, {}), **(recbole.get("settings") or {})}
        kept = {k: v for k, v in settings.items() if k in peer_fields and getattr(defaults, k) != v}
        peer.RecBoleSASRecConfig.from_dict(kept, where)
        for seed in [k for k in recbole.get("seeds", [0]) if seeds is None or k in seeds]:
            out += [("ours", unisrec_run(name, None, "id", seed, settings, **data_slice)),
                    ("RecBole", Run("unisrec", name, None, RECBOLE, seed, kept, **data_slice))]
    return out


def _check_keys(value: Any, keys: tuple[str, ...], where: str) -> str:
    """`where`, once `value` is a mapping with only `keys`; else a one-line error naming the unknown key."""
    if not isinstance(value, dict) or (unknown := set(value) - set(keys)):
        raise EncoderecError(f"{where}: expected a mapping with keys {', '.join(keys)}"
                             + (f"; unknown key {sorted(unknown)[0]!r}" if isinstance(value, dict) else ""))
    return where


def _ablation_arguments(params: dict[str, Any]) -> dict[str, Any]:
    names = ("unisrec", "dataset_unisrec", "datasets", "seeds", "data_dir", "max_items", "max_users")
    return {name: params.get(name) for name in names}


def tiger_plan(datasets: list[str], backbones: list[str], extra_backbones: dict[str, list[str]],
               id_variants: list[str], extra_id_variants: dict[str, dict[str, list[str]]], seeds: list[int],
               rqvae: dict[str, Any], tiger: dict[str, Any], dataset_tiger: dict[str, dict[str, Any]],
               **data_slice: Any) -> Iterator[Run]:
    """Per dataset and seed: every backbone (and the dataset's `extra_backbones`) with every ID variant (and the
    dataset's `extra_id_variants` of the backbone: the ID-variant comparison on the same codes); the settings are
    `tiger` with the dataset's `dataset_tiger` on top."""
    for name in datasets:
        settings = {**tiger, **(dataset_tiger or {}).get(name, {})}
        more_variants = (extra_id_variants or {}).get(name, {})
        for seed in seeds:
            for backbone in backbones + (extra_backbones or {}).get(name, []):
                extra = [v for v in more_variants.get(backbone, []) if v not in id_variants]
                for variant in id_variants + extra:
                    yield Run("tiger", name, backbone, variant, seed, settings, rqvae, **data_slice)


CALIBRATION_KEYS = ("datasets", "backbones", "seeds", "settings")


def calibration_plan(calibration: dict[str, Any], params: dict[str, Any]) -> list[tuple[str, Run]]:
    """05_tiger's calibration: (setting label, run) for each of its datasets, seeds (those also in the notebook's),
    backbones and named settings, with dedup IDs; a setting's TigerConfig fields go on top of the notebook's `tiger`
    and the dataset's `dataset_tiger` (the paper profile: TIGER's own size beside the CPU size)."""
    if not calibration:
        return []
    where = _check_keys(calibration, CALIBRATION_KEYS, "05_tiger parameter calibration")
    arguments = _plan_arguments("05_tiger", params)
    data_slice = {k: arguments[k] for k in ("data_dir", "max_items", "max_users")}
    out = []
    for name in [d for d in calibration.get("datasets", []) if d in arguments["datasets"]]:
        base = {**arguments["tiger"], **(arguments["dataset_tiger"] or {}).get(name, {})}
        for label, changes in (calibration.get("settings") or {}).items():
            settings = {**base, **(changes or {})}
            tg.TigerConfig.from_dict(settings, f"{where}, setting {label!r}")
            for seed in [k for k in calibration.get("seeds", [0]) if k in arguments["seeds"]]:
                for backbone in calibration.get("backbones", []):
                    out.append((label, Run("tiger", name, backbone, "dedup", seed, settings, arguments["rqvae"],
                                           **data_slice)))
    return out


def _plan_arguments(notebook: str, params: dict[str, Any]) -> dict[str, Any]:
    names = {"04_unisrec": ("datasets", "backbones", "modes", "id_baseline", "seeds", "unisrec", "dataset_unisrec"),
             "05_tiger": ("datasets", "backbones", "extra_backbones", "id_variants", "extra_id_variants", "seeds",
                          "rqvae", "tiger", "dataset_tiger")}
    names = (*names[notebook], "data_dir", "max_items", "max_users")
    missing = [name for name in names if name not in params]
    if missing:
        raise EncoderecError(f"{notebook}: parameter {missing[0]!r} is missing")
    return {name: params[name] for name in names}


# --------------------------------------------------------------------------- inputs and fits


@dataclass(frozen=True)
class Prepared:
    """A dataset as its recommender runs see it: the (sliced) catalogue, its split, the item texts, and the items a
    tokenizer may be fitted on (those of the training sequences)."""

    dataset: data.Dataset
    split: data.Split
    texts: list[str]
    fit_items: list[int]


@functools.lru_cache(maxsize=8)
def prepare(name: str, data_dir: str | None = None, max_items: int | None = None,
            max_users: int | None = None) -> Prepared:
    ds, split = data.for_recommendation(name, data_dir, max_items, max_users)
    return Prepared(ds, split, data.TextView().full(ds), data.training_items(ds))


def prepared(run: Run) -> Prepared:
    return prepare(run.dataset, run.data_dir, run.max_items, run.max_users)


@dataclass(frozen=True)
class Catalogue:
    """A catalogue as 03_semantic_ids tokenizes it: the (sampled) items, the positions among them of the items a
    tokenizer may be fitted on (those of the training sequences), and their full texts."""

    dataset: data.Dataset
    items: np.ndarray
    fit_items: np.ndarray
    texts: list[str]

    @property
    def titles(self) -> list[str]:
        return [data.clean_text(self.dataset.items[i]["title"]) for i in self.items]


def catalogue(name: str, data_dir: str | None = None, max_items: int | None = None) -> Catalogue:
    """The catalogue `name`, or a seeded sample of `max_items` of its items."""
    ds = data.load_dataset(name, data_dir)
    items = sample(len(ds.items), max_items)
    texts = data.TextView().full(ds)
    return Catalogue(ds, items, np.flatnonzero(np.isin(items, data.training_items(ds))), [texts[i] for i in items])


def sample(n: int, size: int | None, seed: int = 0) -> np.ndarray:
    """range(n), or a seeded sorted sample of `size` of it when `size` is smaller."""
    items = np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(items, size, replace=False)) if size and size < n else items


def inputs(run: Run, backbone_of: BackboneOf, device: str | None = None, read_only: bool = False,
           progress: bool = True) -> tuple[dict[str, Any], tuple | None]:
    """(labels: the EncodeRec model's seed and, for TIGER, the number of distinct IDs; the inputs of the run's
    `fit_and_rank` after the split: (item count, text embeddings) for UniSRec, (IDs,) for TIGER, or None when
    `read_only` and they are not in the cache)."""
    p = prepared(run)
    if run.backbone is None:
        return {"model seed": None}, (len(p.dataset.items), None)
    encoder, model_seed = backbone_of(run.backbone, run.seed)
    labels = {"model seed": model_seed}
    x = embeddings_of(encoder, model_seed, p.texts, f"{run.dataset}:items", read_only, progress, device)
    if x is None:
        return labels, None
    if run.kind == "unisrec":
        return labels, (len(p.dataset.items), x)
    config = RQVAEConfig(**{**run.rqvae, "seed": run.seed, **({"device": device} if device else {})})
    tokenized = semantic_ids.tokenize(x, p.fit_items, "rqvae", config, progress=progress, read_only=read_only)
    if tokenized is None:
        return labels, None
    ids = semantic_ids.item_ids(tokenized.codes, run.variant, tokenized.unique)
    return labels | {"distinct IDs": len(np.unique(ids, axis=0))}, (ids,)


def text_embeddings(dataset: str, backbone: str, backbone_of: BackboneOf, data_dir: str | None = None,
                    max_items: int | None = None, max_users: int | None = None,
                    policy: Policy = COMPUTE) -> np.ndarray | None:
    """The item embeddings UniSRec's runs of `backbone` on `dataset` start from (seed 0's model for EncodeRec),
    encoded or read from the cache; None for an EncodeRec model that this machine has not trained (or, when the
    policy reads only, embeddings not in the cache)."""
    run = Run("unisrec", dataset, backbone, "inductive", 0, data_dir=data_dir, max_items=max_items,
              max_users=max_users)
    encoder, model_seed = backbone_of(backbone, 0)
    if model_seed is not None and not Path(encoder).exists():
        return None
    found = inputs(run, backbone_of, read_only=policy.reads_only(dataset), progress=False)[1]
    return None if found is None else found[1]


def tokenization(dataset: str, backbone: str, seed: int, kind: str, texts: list[str], fit_items: Any,
                 rqvae: dict[str, Any], backbone_of: BackboneOf, policy: Policy = COMPUTE,
                 progress: bool = True) -> tuple[semantic_ids.Tokenized | None, int | None]:
    """03_semantic_ids's unit of work: the `kind` tokenizer (RQVAEConfig fields `rqvae`, `seed`) fitted on the
    training positions `fit_items` of `backbone`'s embeddings of the catalogue `texts`, and every item's codes
    (`semantic_ids.tokenize`, cached), obtained under `policy`. Returns it (None when pending) with the EncodeRec
    model's seed (None for any other backbone)."""
    encoder, model_seed = backbone_of(backbone, seed)
    fit_items = np.asarray(fit_items, dtype=np.int64)
    identity = {"kind": "semantic_ids", "dataset": dataset, "tokenizer": kind, "seed": seed, "rqvae": rqvae,
                "text": store.text_identity(encoder, texts), "fit_items": sha256_text(repr(fit_items.tolist())),
                "versions": versions("semantic_ids")}

    def compute(read_only: bool) -> dict[str, Any] | None:
        x = embeddings_of(encoder, model_seed, texts, f"{dataset}:items", read_only, progress)
        config = RQVAEConfig(**{**rqvae, "seed": seed})
        found = None if x is None else semantic_ids.tokenize(x, fit_items, kind, config, progress=progress,
                                                             read_only=read_only)
        return None if found is None else {"codes": found.codes.tolist(), "info": found.info,
                                           "unique": None if found.unique is None else found.unique.tolist()}

    record = policy.obtain("semantic_ids", dataset, f"{backbone}-{kind}-seed{seed}", identity, compute)
    if record is None:
        return None, model_seed
    unique = None if record["unique"] is None else np.asarray(record["unique"], dtype=np.int64)
    return semantic_ids.Tokenized(np.asarray(record["codes"], dtype=np.int64), unique, record["info"]), model_seed


def item_map(dataset: str, backbone: str, seed: int, texts: list[str], backbone_of: BackboneOf,
             policy: Policy = COMPUTE) -> np.ndarray | None:
    """(items, 2) UMAP coordinates of `backbone`'s embeddings of the catalogue `texts` (seed `seed`'s model for
    EncodeRec; `space.umap_coordinates`, rounded to 4 decimals), obtained under `policy` like a tokenization (None
    when pending)."""
    encoder, model_seed = backbone_of(backbone, seed)
    identity = {"kind": "umap", "dataset": dataset, "seed": seed, "text": store.text_identity(encoder, texts),
                "versions": versions("umap")}

    def compute(read_only: bool) -> list[list[float]] | None:
        x = embeddings_of(encoder, model_seed, texts, f"{dataset}:items", read_only, progress=False)
        return None if x is None else np.round(space.umap_coordinates(x), 4).tolist()

    found = policy.obtain("umap", dataset, f"{backbone}-seed{seed}", identity, compute)
    return None if found is None else np.asarray(found)


def retrieval_ranks(task: retrieval.RetrievalTask, encoder: str, model_seed: int | None, label: str,
                    policy: Policy = COMPUTE) -> np.ndarray | None:
    """02_retrieval's unit of work (Table 1): the rank of each query's document when `encoder` (an EncodeRec model
    of seed `model_seed`, or None) embeds the task's titles and documents (`retrieval.dense_ranks`), obtained under
    `policy` like a tokenization (`label` names the archive entry: the encoder as the notebook shows it; None when
    pending)."""
    identity = {"kind": "retrieval", "dataset": task.dataset, "encoder": store.portable_encoder(encoder),
                "queries": sha256_text(*task.queries), "documents": sha256_text(*task.documents),
                "targets": sha256_text(repr(np.asarray(task.targets).tolist())),
                "versions": versions("retrieval")}

    def compute(read_only: bool) -> list[int] | None:
        q = embeddings_of(encoder, model_seed, task.queries, f"{task.dataset}:titles", read_only)
        d = embeddings_of(encoder, model_seed, task.documents, f"{task.dataset}:documents", read_only)
        return None if q is None or d is None else retrieval.dense_ranks(q, d, task.targets).tolist()

    found = policy.obtain("retrieval", task.dataset, label, identity, compute)
    return None if found is None else np.asarray(found, dtype=np.int64)


def embeddings_of(encoder: str, model_seed: int | None, texts: list[str], view: str, read_only: bool = False,
                  progress: bool = True, device: str | None = None) -> np.ndarray | None:
    """`embeddings.encode`; with `read_only`, None for an EncodeRec model (`model_seed` not None) that this machine
    has not trained: nothing of it can be in the cache."""
    if read_only and model_seed is not None and not Path(encoder).exists():
        return None
    return embeddings.encode(encoder, texts, view=view, device=device, progress=progress, read_only=read_only)


def encoderec_model(cfg: trainer.TrainConfig, data_dir: str | None = None,
                    policy: Policy = COMPUTE) -> tuple[str, dict[str, Any]] | None:
    """01_encoderec's unit of work: (the folder of the model `cfg` describes, its training record
    `encoderec_config.json`: corpus, loss history, held-out metrics), trained by `trainer.train` (cached and
    resumable) and archived when the policy has an archive. When the policy reads only, nothing is trained: the
    model in this machine's cache, else the archived record of the same recipe (trained in any precision; the
    folder is where that model would lie in this cache, for the notebooks after 01 to find its archived units by),
    else None."""
    identity = {"kind": "encoderec", "recipe": cfg.to_dict()}
    folder = trainer.default_output_dir(cfg) / "final"
    read_only, archive = policy.reads_only(), policy.archive
    if read_only and not (folder / "encoderec_config.json").is_file():
        chosen = None if archive is None else (
            store.read(archive, "encoderec", cfg.name, f"seed{cfg.seed}", identity)
            or next((record for found, record in store.entries(archive, "encoderec", cfg.name, f"seed{cfg.seed}")
                     if _recipe(found["recipe"]) == _recipe(identity["recipe"])), None))
        return None if chosen is None else (str(paths.cache_dir() / chosen["model"]), chosen["info"])
    path = folder if read_only else trainer.train(cfg, data_dir)
    info = read_json(path / "encoderec_config.json")
    if archive is not None and not read_only:
        store.write(archive, "encoderec", cfg.name, f"seed{cfg.seed}", identity,
                    {"model": store.portable_encoder(str(path)), "info": info})
    return str(path), info


def model_configs(models: list[dict[str, Any]], seeds: list[int], training: dict[str, Any],
                  held_out_fraction: float, source: str) -> list[trainer.TrainConfig]:
    """01_encoderec's models, one TrainConfig per model and seed (a model's own `seeds`, else `seeds`), with the
    `training` settings under each model's own; `source` names where they came from in any error."""
    return [trainer.TrainConfig.from_dict({**training, **{k: v for k, v in m.items() if k != "seeds"}, "seed": seed,
                                           "held_out_fraction": held_out_fraction}, source=source)
            for m in models for seed in m.get("seeds", seeds)]


def encoderec_models(configs: list[trainer.TrainConfig], data_dir: str | None = None, policy: Policy = COMPUTE
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Every model of `configs` (`encoderec_model`): a row per trained or archived one (name, backbone, seed, folder,
    corpus, wall times, final loss, held-out metrics: registry.RESULTS's rows), the pending ones, and each one's loss
    history by "name (seed s)"."""
    trained, pending, histories = [], [], {}
    for cfg in configs:
        started = time.time()
        found = encoderec_model(cfg, data_dir, policy)
        if found is None:
            pending.append({"name": cfg.name, "seed": cfg.seed, "pending": "neither trained here nor archived"})
            continue
        path, info = found
        histories[f"{cfg.name} (seed {cfg.seed})"] = info["loss_history"]
        trained.append({"name": cfg.name, "backbone": cfg.backbone, "seed": cfg.seed, "path": path,
                        "pairs": info["corpus"]["pairs"], "interaction_ratio": cfg.interaction_ratio,
                        "interaction pairs": info["corpus"].get("interactions", {}).get("pairs", 0),
                        "train_wall_time_s": info["wall_seconds"], "this_run_s": round(time.time() - started, 1),
                        "final_loss": info["loss_history"][-1]["loss"] if info["loss_history"] else None,
                        **{f"held-out {k.replace('_cosine_', ' ')}": v for k, v in info["held_out_metrics"].items()
                           if k.endswith(("ndcg@10", "recall@10"))}})
    return trained, pending, histories


def _recipe(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k != "precision"}


def fit(run: Run, run_inputs: tuple, device: str | None = None, read_only: bool = False,
        progress: bool = True) -> dict[str, Any] | None:
    """The run's cached `fit_and_rank` result (None when `read_only` and it is not in the cache)."""
    if run.variant == RECBOLE:
        return peer.fit_and_rank(prepared(run).split, run_inputs[0], run.config(device), progress=progress,
                                 read_only=read_only)
    model = usr if run.kind == "unisrec" else tg
    return model.fit_and_rank(prepared(run).split, *run_inputs, run.config(device), progress=progress,
                              read_only=read_only)


def execute(run: Run, backbone_of: BackboneOf, device: str | None = None, policy: Policy = COMPUTE,
            progress: bool = True) -> dict[str, Any]:
    """The run as a notebook row: its labels and "result" (`fit_and_rank`'s, or None for a pending run), obtained
    under `policy`."""
    labels: dict[str, Any] = {}

    def compute(read_only: bool) -> dict[str, Any] | None:
        found, run_inputs = inputs(run, backbone_of, device, read_only, progress)
        labels.update(found)
        result = None if run_inputs is None else fit(run, run_inputs, device, read_only, progress)
        return None if result is None else record(run, labels, result)

    return policy.obtain(*_entry(run), identity(run, backbone_of), compute) or record(run, labels, None)


def execute_labelled(plan: list[tuple[str, Run]], key: str, backbone_of: BackboneOf,
                     policy: Policy = COMPUTE) -> list[dict[str, Any]]:
    """`execute` every run of a plan of (label, run) pairs (`ablation_plan`, `recbole_plan`, `calibration_plan`),
    each record with its label under `key`."""
    return [{key: label} | execute(r, backbone_of, policy=policy) for label, r in plan]


def record(run: Run, labels: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    if run.kind == "unisrec":
        model = RECBOLE_SASREC if run.variant == RECBOLE else run.backbone or ID_ONLY
        head = {"dataset": run.dataset, "model": model, "mode": run.variant, "seed": run.seed}
    else:
        head = {"dataset": run.dataset, "backbone": run.backbone, "ids": run.variant, "seed": run.seed}
    return head | labels | {"result": result}


def describe(record: dict[str, Any]) -> str:
    """One line on a run: its test Recall@10 and NDCG@10 (the notebooks' metric code), where its best epoch was, how
    long it took and on what; or that it is pending."""
    result = record["result"]
    what = " ".join(str(v) for k, v in record.items() if k in ("dataset", "model", "backbone", "mode", "ids"))
    if result is None:
        return f"{what} seed {record['seed']}: pending (neither archived nor in the run cache)"
    test = validation_scores((np.asarray(result["test_ranks"]), _array(result.get("test_gains"))))
    return (f"{what} seed {record['seed']}: test Recall@10 {test['Recall@10']:.4f} NDCG@10 {test['NDCG@10']:.4f}, "
            f"best epoch {result['best_epoch']} of {len(result['history'])}, fit {result['fit_seconds']:.0f} s, "
            f"ranking {result['rank_seconds']:.0f} s on {result['config']['device']} "
            f"({result['config'].get('precision', 'fp32')})")


def _array(values: list | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values)


# --------------------------------------------------------------------------- several runs at once


def fit_all(runs: list[Run], backbone_of: BackboneOf, jobs: int = 1, device: str | None = None,
            threads: int | None = None, progress: bool = True, archive: Path | None = None) -> list[dict[str, Any]]:
    """Execute `runs`: those in the `archive` are read from it; the inputs of the others here, in order, then their
    fits `jobs` at a time (worker processes on the same device, each with `threads` CPU threads: by default the
    machine's cores shared out), each archived as soon as it finishes; a run already in the cache is a read. Returns
    the records in the order of `runs`, a fitted one with "wall seconds" (of its fit, as its worker saw it)."""
    if jobs < 1:
        raise EncoderecError(f"--jobs {jobs}: must be at least 1")
    check_device(device)
    code = provenance.git_commit()  # the code the fits run, whatever HEAD is when each of them finishes
    records = [archived(run, backbone_of, archive) if archive is not None else None for run in runs]
    todo = {i: inputs(runs[i], backbone_of, device, progress=progress)
            for i in tqdm([i for i, found in enumerate(records) if found is None], desc="inputs",
                          disable=not progress)}
    for i, (result, seconds) in _fits({i: (runs[i], run_inputs) for i, (_, run_inputs) in todo.items()}, jobs,
                                      device, threads, progress):
        records[i] = record(runs[i], todo[i][0], result)
        if archive is not None:
            archive_run(records[i], runs[i], backbone_of, archive, code)
        records[i] |= {"wall seconds": seconds}
    return records


def _fits(todo: dict[int, tuple[Run, tuple]], jobs: int, device: str | None, threads: int | None,
          progress: bool) -> Iterator[tuple[int, tuple[dict[str, Any], float]]]:
    """(index, (result, wall seconds)) of each fit, as they finish."""
    if jobs == 1 or len(todo) < 2:
        for i, (run, run_inputs) in tqdm(todo.items(), desc="fits", disable=not progress):
            yield i, _timed_fit(run, run_inputs, device, threads)
        return
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)  # 12 workers x all cores would oversubscribe
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=context, initializer=stop_with_parent) as pool:
        futures = {pool.submit(_timed_fit, run, run_inputs, device, threads): i
                   for i, (run, run_inputs) in todo.items()}
        for future in tqdm(as_completed(futures), total=len(futures), desc="fits", disable=not progress):
            yield futures[future], future.result()


def stop_with_parent() -> None:
    """Make this worker process receive SIGTERM when the process that started it dies (Linux's PR_SET_PDEATHSIG):
    killing `fit` must not leave its fits running for an hour. Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _timed_fit(run: Run, run_inputs: tuple, device: str | None, threads: int | None) -> tuple[dict[str, Any], float]:
    if threads:
        import torch

        torch.set_num_threads(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    result = fit(run, run_inputs, device, progress=False)
    return result, round(time.perf_counter() - start, 1)


# --------------------------------------------------------------------------- the archive


# What each kind of archived unit computes: the result versions in its identity (the encoding only where it has text)
COMPUTES = {"retrieval": ("encoding", "retrieval"), "semantic_ids": ("encoding", "semantic_ids"),
            "umap": ("encoding", "space"), "unisrec": ("encoding", "unisrec"),
            "tiger": ("encoding", "semantic_ids", "tiger"), RECBOLE: ("recbole_sasrec",)}


def versions(kind: str, encoded: bool = True) -> dict[str, int]:
    """The result versions (each computing module's RESULT_VERSION) of what a unit of `kind` computes, for its
    identity; without the encoding's for a unit with no text (the ID-only SASRec)."""
    modules = {"encoding": embeddings, "semantic_ids": semantic_ids, "retrieval": retrieval, "space": space,
               "unisrec": usr, "tiger": tg, "recbole_sasrec": peer}
    return {name: modules[name].RESULT_VERSION for name in COMPUTES[kind] if encoded or name != "encoding"}


def computed_by(kind: str, variant: str | None) -> str:
    """The COMPUTES entry of a recommender unit: its kind's, or RecBole's for a RECBOLE run."""
    return RECBOLE if variant == RECBOLE else kind


def identity(run: Run, backbone_of: BackboneOf) -> dict[str, Any]:
    """What makes `run` the same run on any machine (see the module docstring)."""
    p = prepared(run)
    text = None if run.backbone is None else store.text_identity(backbone_of(run.backbone, run.seed)[0], p.texts)
    return ({k: v for k, v in dataclasses.asdict(run).items() if k != "data_dir"}
            | {"text": text, "split": sha256_text(repr(p.split)),
               "versions": versions(computed_by(run.kind, run.variant), encoded=bool(text))})


def _entry(run: Run) -> tuple[str, str, str]:
    """(kind, dataset, name) of a run's archive entry: <archive>/<kind>/<dataset>/<backbone>-<variant>-seed<k>-<key>."""
    return run.kind, run.dataset, f"{run.backbone or ID_ONLY_FILE}-{run.variant}-seed{run.seed}"


def archived(run: Run, backbone_of: BackboneOf, folder: Path) -> dict[str, Any] | None:
    """The archived record of `run` (as `execute` returns it), or None when the archive does not hold it."""
    return store.read(folder, *_entry(run), identity(run, backbone_of))


def archive_run(finished: dict[str, Any], run: Run, backbone_of: BackboneOf, folder: Path,
                code: dict[str, Any] | None = None) -> Path:
    """Archive a finished run's record (`archive.write`; `code`: the commit that ran it)."""
    return store.write(folder, *_entry(run), identity(run, backbone_of), finished, code)


def archive_path(folder: Path, run: Run, backbone_of: BackboneOf) -> Path:
    return store.path(folder, *_entry(run), identity(run, backbone_of))
