"""Our ID-only SASRec against RecBole's SASRec (the peer implementation, `make recbole`): epochs per second.

    .venv/bin/python bench/peer_sasrec.py [--dataset Scientific] [--epochs 2] [--settings '{"hidden_size": 64}']
        [--data-dir DIR]

Both train the same split with the same hyperparameters (UniSRecConfig's defaults for the ID-only SASRec: hidden
300, 2 layers, 2 heads, batch 2,048, max_len 50) for --epochs epochs in this process, one after another: RecBole's
(fp32, its trainer and data loaders, every batch padded to max_len), then ours in fp32 and, where the CPU computes
bf16 natively, under bf16 autocast (our batches padded to their longest history). --settings changes fields both
configs have (a JSON object of RecBoleSASRecConfig fields). Prints per implementation the mean
training seconds per epoch, the mean seconds of one validation pass (every validation user ranked over all items,
the history kept), and our epochs per second as a multiple of RecBole's.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from encoderec.core.precision import default_device, resolve_precision  # noqa: E402
from encoderec.data import dataset as data  # noqa: E402
from encoderec.models.recbole_sasrec import RecBoleSASRec, RecBoleSASRecConfig  # noqa: E402
from encoderec.models.unisrec import SequentialRecommender, UniSRecConfig  # noqa: E402


def epoch_seconds(model) -> tuple[float, float]:
    """(mean training seconds per epoch, mean seconds of a validation pass) of a fitted model's history."""
    return (float(np.mean([h["seconds"] for h in model.history])),
            float(np.mean([h["valid seconds"] for h in model.history if "valid seconds" in h])))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--settings", type=json.loads, default={}, help="RecBoleSASRecConfig fields, as JSON")
    args = parser.parse_args(argv)

    dataset = data.load_dataset(args.dataset, args.data_dir)
    split, n_items = data.split(dataset), len(dataset.items)
    budget = {**args.settings, "epochs": args.epochs, "patience": args.epochs, "device": "cpu"}
    print(f"{args.dataset}: {len(split.test):,} users, {n_items:,} items, "
          f"{len(data.prefix_examples(split.train)):,} training prefixes; {args.epochs} epochs each; {args.settings}")

    results = {"RecBole (fp32)": epoch_seconds(RecBoleSASRec(RecBoleSASRecConfig(**budget)).fit(split, n_items))}
    precisions = dict.fromkeys(["fp32", resolve_precision("auto", default_device())])
    for precision in precisions:
        config = UniSRecConfig(mode="id", exclude_history=False, precision=precision, **budget)
        results[f"ours ({precision})"] = epoch_seconds(SequentialRecommender(config).fit(split, n_items))

    reference = results["RecBole (fp32)"][0]
    print(f"{'implementation':<16} {'train s/epoch':>14} {'valid s':>9} {'epochs/s vs RecBole':>20}")
    for name, (train, valid) in results.items():
        print(f"{name:<16} {train:>14.1f} {valid:>9.1f} {reference / train:>19.2f}x")


if __name__ == "__main__":
    main()
