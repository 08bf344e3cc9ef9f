"""One fitting harness for the sequential recommenders (UniSRec / SASRec in `unisrec`, TIGER in `tiger`).

A recommender is a model file with a config dataclass (with `seed`, `device` and `precision`) and a class that has

    fit(split, *inputs, progress) -> self          # trains through `train_with_early_stopping`
    rank(examples)                -> ranks, gains  # 0-based rank of each target; gains: credit of a hit (or None)
    history, best_epoch                            # what `train_with_early_stopping` returned

and this module gives it the rest, the same for every model (as RecBole's single trainer does):

- `device_of(config)`: the configured device, else CUDA when available, else the CPU;
- `precision_of(config)`: "bf16" or "fp32" (`encoderec.core.precision`: "auto" is bf16 where the device computes it
  natively); the model runs its training steps and its ranking under that autocast, with float32 weights;
- `seeded(seed, device)`: torch's RNG seeded inside a block and restored after it (the caller's RNG untouched);
- `run_epoch`: an optimizer step on the loss of each batch, the epoch's mean loss;
- `validation_scores`: Recall@10 / NDCG@10 of what `rank` returned;
- `train_with_early_stopping`: epochs of training, validation NDCG@10 every `eval_every` epochs, stop after
  `patience` evaluations without a better one (or past a wall-time budget), keep the best evaluation's weights;
- `fit_and_rank`: fit, rank the validation and test examples, cache the result as JSON under
  <cache dir>/<kind>/<key>.json, the key hashing the model's result version (its module's `RESULT_VERSION`), the
  settings without the device (with the precision resolved), the inputs and the split: a re-run is a read, a run
  trained on a GPU is found on a CPU, and a change that moves the results (its version bumped) is a new run.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from encoderec.core import paths
from encoderec.core.io import cached_json, read_json, settings_key, sha256_text
from encoderec.core.precision import default_device, deterministic, resolve_precision
from encoderec.data.dataset import Split
from encoderec.models import metrics


def device_of(config: Any) -> torch.device:
    return torch.device(config.device or default_device())


def precision_of(config: Any) -> str:
    """"bf16" or "fp32": the config's `precision` resolved for its device (`encoderec.core.precision`)."""
    return resolve_precision(config.precision, device_of(config))


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """torch's global RNG (and the device's) seeded with `seed` inside the block, restored after it."""
    cuda = [device.index or torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def run_epoch(batches: Iterable[np.ndarray], loss_of: Callable[[np.ndarray], torch.Tensor],
              optimizer: torch.optim.Optimizer) -> float:
    """One epoch: an optimizer step on the loss of each batch of example indices; the mean loss per example."""
    total, count = 0.0, 0
    for idx in batches:
        loss = loss_of(idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(idx), count + len(idx)
    return total / count


def validation_scores(ranked: tuple[np.ndarray, np.ndarray | None]) -> dict[str, float]:
    """Recall@10 and NDCG@10 of what a recommender's `rank` returned (ranks, gains)."""
    ranks, gains = ranked
    return metrics.summarize(metrics.per_query(ranks, ks=(10,), gains=gains))


def train_with_early_stopping(
    model: torch.nn.Module,
    train_epoch: Callable[[], float],
    validate: Callable[[], dict[str, float]],
    epochs: int,
    patience: int,
    eval_every: int = 1,
    max_minutes: float | None = None,
    desc: str = "training",
    progress: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """Train `epochs` epochs (`train_epoch` runs one and returns its mean loss); after every `eval_every`-th epoch,
    the last one, and the one that passes `max_minutes`, `validate` gives Recall@10 and NDCG@10 on the validation
    examples. Stops after `patience` evaluations without a better NDCG@10, loads the best evaluation's weights and
    leaves the model in eval mode. Returns (history: one dict per epoch with loss, seconds of training, and where
    evaluated the validation scores and their seconds; the best epoch)."""
    best, best_state, best_epoch, since_best, history = -math.inf, None, -1, 0, []
    deadline = time.perf_counter() + 60 * max_minutes if max_minutes else math.inf
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        start = time.perf_counter()
        record = {"epoch": epoch, "loss": train_epoch(), "seconds": time.perf_counter() - start}
        out_of_time = time.perf_counter() >= deadline
        if (epoch + 1) % eval_every == 0 or epoch == epochs - 1 or out_of_time:
            start = time.perf_counter()
            scores = validate()
            record |= {"valid Recall@10": scores["Recall@10"], "valid NDCG@10": scores["NDCG@10"],
                       "valid seconds": time.perf_counter() - start}
            if scores["NDCG@10"] > best:
                best, best_state, best_epoch, since_best = scores["NDCG@10"], copy.deepcopy(model.state_dict()), epoch, 0
            else:
                since_best += 1
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", ndcg=f"{best:.4f}")
        if since_best >= patience or out_of_time:
            break
    model.load_state_dict(best_state)
    model.eval()
    return history, best_epoch


def fit_and_rank(recommender: Any, kind: str, version: int, split: Split, inputs: tuple, inputs_key: str,
                 cache_dir: str | os.PathLike | None = None, progress: bool = True,
                 read_only: bool = False,
                 also: Callable[[Any], dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """Fit `recommender` on `split` with `inputs` (the item count and text embeddings, the semantic IDs, ...;
    `inputs_key` hashes them), then rank the validation and test examples; cached in <cache dir>/<kind>/<key>.json
    (see the module docstring). `kind` names the model and `version` its result version, both part of the key.

    Returns {"config" (with the device it ran on), "best_epoch", "history", "fit_seconds", "rank_seconds",
    "valid_ranks", "test_ranks"} and "valid_gains", "test_gains" when the recommender gives gains, and what
    `also(fitted recommender)` adds (a model's own extra rankings); with
    `read_only`, the cached result or None (nothing is trained)."""
    config = recommender.config
    resolved = dataclasses.replace(config, precision=precision_of(config))  # "auto" is not a setting to key on
    key = sha256_text(f"{kind} result version {version}", settings_key(resolved), inputs_key, repr(split))
    path = Path(cache_dir or paths.cache_dir()) / kind / f"{key}.json"

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        with deterministic():  # the same fit whatever the thread count (core.precision.deterministic)
            recommender.fit(split, *inputs, progress=progress)
        fitted = time.perf_counter()
        result = {"config": {**dataclasses.asdict(resolved), "device": device_of(config).type},
                  "best_epoch": recommender.best_epoch, "history": recommender.history,
                  "fit_seconds": round(fitted - start, 1)}
        for name, examples in (("valid", split.valid), ("test", split.test)):
            ranks, gains = recommender.rank(examples)
            result[f"{name}_ranks"] = ranks.tolist()
            if gains is not None:
                result[f"{name}_gains"] = gains.tolist()
        result |= also(recommender) if also else {}
        result["rank_seconds"] = round(time.perf_counter() - fitted, 2)
        return result

    if read_only:
        return read_json(path) if path.exists() else None
    return cached_json(path, compute)
