"""UniSRec on a dataset (Beauty by default): epoch time, evaluation time and peak memory, against ID-only SASRec.

    .venv/bin/python bench/unisrec.py [--dataset Beauty] [--backbone all-MiniLM-L6-v2] [--epochs 2] [--full]
        [--data-dir DIR]

Trains inductive UniSRec (MoE adaptor over the backbone's cached item embeddings) in fp32 and under bf16 autocast,
and, as the baseline in the same process, ID-only SASRec (fp32) with the same trainer, each for --epochs epochs (no
early stopping), and prints per epoch the training seconds and the validation seconds (full ranking of every
validation user over all items), the ratios UniSRec / SASRec and bf16 / fp32, the test-ranking time and the peak RSS. With --full, UniSRec trains with UniSRec's early stopping
(patience 10, up to 300 epochs) and the whole run is timed: the issue's target is under 20 minutes on Beauty.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


import numpy as np  # noqa: E402
import torch  # noqa: E402

from encoderec.data import dataset as data
from encoderec.models import (
    embeddings,
    metrics,  # noqa: E402
)
from encoderec.models.unisrec import SequentialRecommender, UniSRecConfig  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed_fit(config: UniSRecConfig, split: data.Split, n_items: int, text: np.ndarray | None):
    start = time.perf_counter()
    model = SequentialRecommender(config).fit(split, n_items, text)
    total = time.perf_counter() - start
    train = float(np.mean([h["seconds"] for h in model.history]))
    start = time.perf_counter()
    model.rank(split.valid)
    valid = time.perf_counter() - start
    return model, total, train, valid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--data-dir")
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="train UniSRec to early stopping and time the run")
    args = parser.parse_args(argv)

    dataset = data.load_dataset(args.dataset, args.data_dir)
    split, n_items = data.split(dataset), len(dataset.items)
    text = embeddings.encode(args.backbone, data.TextView().full(dataset), view=f"{args.dataset}:items")
    print(f"{args.dataset}: {n_items} items, {len(split.test)} users, {len(data.prefix_examples(split.train))} "
          f"training prefixes; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    fixed = {"epochs": args.epochs, "patience": 10**6, "precision": "fp32"}
    _, _, sas_train, sas_valid = timed_fit(UniSRecConfig(mode="id", **fixed), split, n_items, None)
    print(f"SASRec (ID only, fp32): {sas_train:.1f} s per epoch, {sas_valid:.1f} s per validation", flush=True)
    _, _, fp32_train, fp32_valid = timed_fit(UniSRecConfig(mode="inductive", **fixed), split, n_items, text)
    print(f"UniSRec (inductive, fp32): {fp32_train:.1f} s per epoch, {fp32_valid:.1f} s per validation; ratio to "
          f"SASRec {fp32_train / sas_train:.2f}x per epoch, {fp32_valid / sas_valid:.2f}x validation", flush=True)
    uni, _, uni_train, uni_valid = timed_fit(UniSRecConfig(mode="inductive", **{**fixed, "precision": "bf16"}),
                                             split, n_items, text)
    print(f"UniSRec (inductive, bf16 autocast): {uni_train:.1f} s per epoch, {uni_valid:.1f} s per validation; "
          f"bf16 / fp32 speed-up {fp32_train / uni_train:.2f}x training, {fp32_valid / uni_valid:.2f}x validation",
          flush=True)
    start = time.perf_counter()
    uni.rank(split.test)
    print(f"ranking all {len(split.test)} test users over {n_items} items: {time.perf_counter() - start:.1f} s")

    if args.full:
        model, total, _, _ = timed_fit(UniSRecConfig(mode="inductive"), split, n_items, text)
        scores = metrics.summarize(metrics.per_query(model.rank(split.test)[0], ks=(10, 50)))
        print(f"full UniSRec run: {total / 60:.1f} min, {len(model.history)} epochs (best {model.best_epoch}); test "
              + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
