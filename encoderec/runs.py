"""The recommender runs of 04_unisrec (Table 2) and 05_tiger (Table 3), planned and executed in one place, so that a
notebook and `python -m encoderec fit` (several runs at once on one device: the GPU set) fill the same caches.

    plan = runs.plan("05_tiger", params)                    # one Run per dataset × backbone × seed × ID variant
    records = [runs.execute(r, run.backbone) for r in plan]   # what the notebook does, one run after another
    python -m encoderec fit --profile paper --part gpu-tiger --jobs 10   # the same runs, ten at a time

A run's inputs are the item embeddings of its backbone (`embeddings.encode` of the full item text, or a baseline:
"random", "tfidf-svd"; none for the ID-only SASRec) and, for TIGER, the semantic IDs of an RQ-VAE fitted with the
run's seed on the training items (`semantic_ids.tokenize`, then `semantic_ids.item_ids`). Every step is cached:
after `fit`, `execute` is a read. With `cached_only`, `execute` computes nothing: a run whose inputs or result are
not in the cache comes back with result None, a *pending* run (the notebooks read the GPU set's datasets this way,
so a report on a machine without a GPU lists those runs as pending instead of training them for hours).

`backbone_of(name, seed) -> (what to encode with, the EncodeRec model's seed or None)` is
`report.NotebookRun.backbone`: for seed s, an EncodeRec backbone is the model 01_encoderec trained with seed s when
there is one.

`fit_all` runs a plan's inputs in this process, in order (encoding and RQ-VAE fits use the whole device and are
shared between runs), then the fits `jobs` at a time in worker processes: small recommenders leave most of a GPU
idle, and several of them fill it.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from encoderec import data, embeddings, semantic_ids
from encoderec import tiger as tg
from encoderec import unisrec as usr
from encoderec.errors import EncoderecError
from encoderec.precision import check_device
from encoderec.rqvae import RQVAEConfig

NOTEBOOKS = {"04_unisrec": "unisrec", "05_tiger": "tiger"}
ID_ONLY = "ID only (SASRec)"

BackboneOf = Callable[[str, int], tuple[str, "int | None"]]


@dataclass(frozen=True)
class Run:
    """One recommender run: `settings` are the UniSRecConfig / TigerConfig fields to change, `rqvae` (TIGER) the
    RQVAEConfig ones; `max_items` / `max_users` slice the data (`data.for_recommendation`)."""

    kind: str  # "unisrec" or "tiger"
    dataset: str
    backbone: str | None  # a name from the notebook's parameters; None: no text (the ID-only SASRec)
    variant: str  # UniSRec's mode ("inductive", "transductive", "id"); TIGER's ID variant ("dedup", "shared")
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    rqvae: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    max_items: int | None = None
    max_users: int | None = None

    @property
    def name(self) -> str:
        return f"{self.kind} {self.dataset} {self.backbone or ID_ONLY} {self.variant} seed {self.seed}"

    def config(self, device: str | None = None) -> usr.UniSRecConfig | tg.TigerConfig:
        fields = {**self.settings, "seed": self.seed, **({"device": device} if device else {})}
        if self.kind == "unisrec":
            return usr.UniSRecConfig(**{**fields, "mode": self.variant})
        return tg.TigerConfig(**fields)


# --------------------------------------------------------------------------- plans


def plan(notebook: str, params: dict[str, Any]) -> list[Run]:
    """The runs of `notebook` (04_unisrec or 05_tiger) with these parameters, in the order the notebook runs them."""
    if notebook not in NOTEBOOKS:
        raise EncoderecError(f"{notebook}: has no recommender runs; use one of {', '.join(NOTEBOOKS)}")
    return list((unisrec_plan if notebook == "04_unisrec" else tiger_plan)(**_plan_arguments(notebook, params)))


def unisrec_plan(datasets: list[str], backbones: list[str], modes: list[str], id_baseline: bool, seeds: list[int],
                 unisrec: dict[str, Any], dataset_unisrec: dict[str, dict[str, Any]],
                 **data_slice: Any) -> Iterator[Run]:
    """Per dataset and seed: the ID-only SASRec (when `id_baseline`), then every backbone in every mode; the
    settings are `unisrec` with the dataset's `dataset_unisrec` on top."""
    for name in datasets:
        settings = {**unisrec, **(dataset_unisrec or {}).get(name, {})}
        for seed in seeds:
            if id_baseline:
                yield Run("unisrec", name, None, "id", seed, settings, **data_slice)
            for backbone in backbones:
                for mode in modes:
                    yield Run("unisrec", name, backbone, mode, seed, settings, **data_slice)


def tiger_plan(datasets: list[str], backbones: list[str], extra_backbones: dict[str, list[str]],
               id_variants: list[str], seeds: list[int], rqvae: dict[str, Any], tiger: dict[str, Any],
               dataset_tiger: dict[str, dict[str, Any]], **data_slice: Any) -> Iterator[Run]:
    """Per dataset and seed: every backbone (and the dataset's `extra_backbones`) with every ID variant; the
    settings are `tiger` with the dataset's `dataset_tiger` on top."""
    for name in datasets:
        settings = {**tiger, **(dataset_tiger or {}).get(name, {})}
        for seed in seeds:
            for backbone in backbones + (extra_backbones or {}).get(name, []):
                for variant in id_variants:
                    yield Run("tiger", name, backbone, variant, seed, settings, rqvae, **data_slice)


def _plan_arguments(notebook: str, params: dict[str, Any]) -> dict[str, Any]:
    names = {"04_unisrec": ("datasets", "backbones", "modes", "id_baseline", "seeds", "unisrec", "dataset_unisrec"),
             "05_tiger": ("datasets", "backbones", "extra_backbones", "id_variants", "seeds", "rqvae", "tiger",
                          "dataset_tiger")}
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


def inputs(run: Run, backbone_of: BackboneOf, device: str | None = None, cached_only: bool = False,
           progress: bool = True) -> tuple[dict[str, Any], tuple | None]:
    """(labels: the EncodeRec model's seed and, for TIGER, the number of distinct IDs; the inputs of the run's
    `fit_and_rank` after the split: (item count, text embeddings) for UniSRec, (IDs,) for TIGER, or None when
    `cached_only` and they are not in the cache)."""
    p = prepared(run)
    if run.backbone is None:
        return {"model seed": None}, (len(p.dataset.items), None)
    encoder, model_seed = backbone_of(run.backbone, run.seed)
    labels = {"model seed": model_seed}
    x = embeddings.encode(encoder, p.texts, view=f"{run.dataset}:items", device=device, progress=progress,
                          cached_only=cached_only)
    if x is None:
        return labels, None
    if run.kind == "unisrec":
        return labels, (len(p.dataset.items), x)
    config = RQVAEConfig(**{**run.rqvae, "seed": run.seed, **({"device": device} if device else {})})
    tokenized = semantic_ids.tokenize(x, p.fit_items, "rqvae", config, progress=progress, cached_only=cached_only)
    if tokenized is None:
        return labels, None
    ids = semantic_ids.item_ids(tokenized.codes, run.variant)
    return labels | {"distinct IDs": len(np.unique(ids, axis=0))}, (ids,)


def fit(run: Run, run_inputs: tuple, device: str | None = None, cached_only: bool = False,
        progress: bool = True) -> dict[str, Any] | None:
    """The run's cached `fit_and_rank` result (None when `cached_only` and it is not in the cache)."""
    model = usr if run.kind == "unisrec" else tg
    return model.fit_and_rank(prepared(run).split, *run_inputs, run.config(device), progress=progress,
                              cached_only=cached_only)


def execute(run: Run, backbone_of: BackboneOf, device: str | None = None, cached_only: bool = False,
            progress: bool = True) -> dict[str, Any]:
    """The run as a notebook row: its labels and "result" (`fit_and_rank`'s, or None for a pending run)."""
    labels, run_inputs = inputs(run, backbone_of, device, cached_only, progress)
    result = None if run_inputs is None else fit(run, run_inputs, device, cached_only, progress)
    return record(run, labels, result)


def record(run: Run, labels: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    if run.kind == "unisrec":
        head = {"dataset": run.dataset, "model": run.backbone or ID_ONLY, "mode": run.variant, "seed": run.seed}
    else:
        head = {"dataset": run.dataset, "backbone": run.backbone, "ids": run.variant, "seed": run.seed}
    return head | labels | {"result": result}


def describe(record: dict[str, Any]) -> str:
    """One line on a finished run: where its best epoch was, how long it took and on what."""
    result = record["result"]
    what = " ".join(str(v) for k, v in record.items() if k in ("dataset", "model", "backbone", "mode", "ids"))
    if result is None:
        return f"{what} seed {record['seed']}: pending (not in the run cache)"
    return (f"{what} seed {record['seed']}: best epoch {result['best_epoch']} of {len(result['history'])}, fit "
            f"{result['fit_seconds']:.0f} s, ranking {result['rank_seconds']:.0f} s on {result['config']['device']} "
            f"({result['config'].get('precision', 'fp32')})")


# --------------------------------------------------------------------------- several runs at once


def fit_all(runs: list[Run], backbone_of: BackboneOf, jobs: int = 1, device: str | None = None,
            threads: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Execute `runs`: their inputs here, in order, then the fits `jobs` at a time (worker processes on the same
    device, each with `threads` CPU threads: by default the machine's cores shared out); a run already in the cache is
    a read. Returns the records in the order of `runs`, each with "wall seconds" (of its fit, as its worker saw it)."""
    if jobs < 1:
        raise EncoderecError(f"--jobs {jobs}: must be at least 1")
    check_device(device)
    prepared_runs = [(run, *inputs(run, backbone_of, device, progress=progress))
                     for run in tqdm(runs, desc="inputs", disable=not progress)]
    if jobs == 1:
        results = [_timed_fit(run, run_inputs, device, threads) for run, _, run_inputs in prepared_runs]
    else:
        threads = threads or max(1, (os.cpu_count() or 1) // jobs)  # 12 workers x all cores would oversubscribe
        results = [None] * len(runs)
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        with ProcessPoolExecutor(min(jobs, len(runs)), mp_context=context) as pool:
            futures = {pool.submit(_timed_fit, run, run_inputs, device, threads): i
                       for i, (run, _, run_inputs) in enumerate(prepared_runs)}
            for future in tqdm(as_completed(futures), total=len(futures), desc="fits", disable=not progress):
                results[futures[future]] = future.result()
    return [record(run, labels, result) | {"wall seconds": seconds}
            for (run, labels, _), (result, seconds) in zip(prepared_runs, results, strict=True)]


def _timed_fit(run: Run, run_inputs: tuple, device: str | None, threads: int | None) -> tuple[dict[str, Any], float]:
    if threads:
        import torch

        torch.set_num_threads(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    result = fit(run, run_inputs, device, progress=False)
    return result, round(time.perf_counter() - start, 1)
