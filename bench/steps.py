"""Where a training step's time goes: TIGER's and UniSRec's, on one dataset, by torch operator.

    .venv/bin/python bench/steps.py [--dataset Beauty] [--steps 30] [--precision auto|bf16|fp32]
        [--tiger '{"layers": 2, ...}'] [--unisrec '{...}'] [--data-dir DIR]

For each model: a fresh model of the profile's CPU size (the default and paper profiles' `tiger:` and `unisrec:`
settings unless given), `--steps` training steps of its own batches (after 5 warm-up steps) timed in this process,
then the same steps under torch.profiler. It prints the training examples per second, the share of the steps' time in
matrix products and attention (the work itself) against everything else (copies and casts, element-wise ops, the
optimizer, batch building in Python: the per-step overhead a faster loop could remove), and the top operators.
TIGER's semantic IDs are random codes of the right shape: the cost of a step does not depend on which codes they are.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from encoderec.data import dataset as data  # noqa: E402
from encoderec.models.fitting import run_epoch  # noqa: E402
from encoderec.models.tiger import Tiger, TigerConfig  # noqa: E402
from encoderec.models.unisrec import SequentialRecommender, UniSRec, UniSRecConfig, _lengths  # noqa: E402

WORK = ("aten::mm", "aten::bmm", "aten::addmm", "aten::linear", "aten::matmul", "scaled_dot_product",
        "flash_attention")
TIGER_CPU = {"layers": 2, "heads": 4, "d_kv": 32, "d_ff": 512, "dropout": 0.0}
UNISREC_CPU = {"text_norm": "scaled"}


def tiger_step(split: data.Split, n_items: int, settings: dict) -> tuple[list, callable, torch.optim.Optimizer]:
    """(batches of example indices, loss of a batch, optimizer) of a fresh TIGER."""
    rng = np.random.default_rng(0)
    ids = np.stack([*(rng.integers(0, 256, n_items) for _ in range(3)), np.zeros(n_items, dtype=int)], axis=1)
    model = Tiger(TigerConfig(**{**TIGER_CPU, **settings, "device": "cpu"}))
    model._setup(ids)
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(0)
    model.model = T5ForConditionalGeneration(model._t5_config()).train()
    train = data.prefix_examples(split.train)
    targets = torch.from_numpy(model.item_tokens)
    batches = data.length_batches(model._input_lengths(train), model.config.batch_size, rng)
    optimizer = torch.optim.AdamW(model.model.parameters(), lr=model.config.lr)
    return batches, lambda idx: model._loss([train[i] for i in idx], targets), optimizer


def unisrec_step(split: data.Split, text: np.ndarray, settings: dict) -> tuple[list, callable, torch.optim.Optimizer]:
    """(batches of example indices, loss of a batch, optimizer) of a fresh inductive UniSRec."""
    recommender = SequentialRecommender(UniSRecConfig(**{**UNISREC_CPU, **settings, "device": "cpu"}))
    torch.manual_seed(0)
    recommender.model = UniSRec(recommender.config, len(text), recommender._text(text, len(text))).train()
    train = data.prefix_examples(split.train)
    batches = data.length_batches(_lengths(train, recommender.config.max_len), recommender.config.batch_size,
                                  np.random.default_rng(0))
    optimizer = torch.optim.Adam(recommender.model.parameters(), lr=recommender.config.lr)
    return batches, lambda idx: recommender._loss([train[i] for i in idx]), optimizer


def report(name: str, batches: list, loss_of: callable, optimizer: torch.optim.Optimizer, steps: int) -> None:
    run_epoch(batches[:5], loss_of, optimizer)  # warm-up: first-call allocations and kernel choices
    timed = batches[5:5 + steps]
    start = time.perf_counter()
    run_epoch(timed, loss_of, optimizer)
    seconds = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_epoch(timed, loss_of, optimizer)
    ops = prof.key_averages()
    total = sum(op.self_cpu_time_total for op in ops)
    work = sum(op.self_cpu_time_total for op in ops if any(w in op.key for w in WORK))
    examples = sum(len(b) for b in timed)
    print(f"\n{name}: {examples / seconds:.0f} training examples/s ({len(timed)} steps of {len(timed[0])}, "
          f"{seconds / len(timed) * 1000:.0f} ms a step); operator time in matrix products and attention "
          f"{work / total:.0%}, everything else {1 - work / total:.0%}")
    for op in sorted(ops, key=lambda o: -o.self_cpu_time_total)[:8]:
        print(f"  {op.self_cpu_time_total / total:6.1%}  {op.count:6d} calls  {op.key}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--data-dir")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--tiger", type=json.loads, default={}, help="TigerConfig fields as JSON")
    parser.add_argument("--unisrec", type=json.loads, default={}, help="UniSRecConfig fields as JSON")
    args = parser.parse_args(argv)
    dataset = data.load_dataset(args.dataset, args.data_dir)
    split = data.split(dataset)
    print(f"{args.dataset}: {len(dataset.items)} items, {len(data.prefix_examples(split.train))} training prefixes; "
          f"{torch.get_num_threads()} threads, precision {args.precision}")
    precision = {"precision": args.precision}
    report("TIGER", *tiger_step(split, len(dataset.items), {**precision, **args.tiger}), args.steps)
    # the text embeddings' values do not change a step's cost: random unit rows of all-MiniLM-L6-v2's width
    text = np.random.default_rng(0).normal(size=(len(dataset.items), 384)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    report("UniSRec", *unisrec_step(split, text, {**precision, **args.unisrec}), args.steps)


if __name__ == "__main__":
    main()
