"""The Beauty and Toys campaign's CPU shortcuts against the settings before them: speed on Beauty, quality on Scientific.

    .venv/bin/python bench/speedups.py [--dataset Beauty] [--every 1] [--data-dir DIR]
    .venv/bin/python bench/speedups.py --quality [--profile paper]

Speed, in this process on the dataset's own training batches (fresh models of one seed, bf16 where native):
- UniSRec: one epoch of the paper profile's CPU UniSRec (inductive, all-MiniLM-L6-v2's width) with `fast` off
  (the reference) and on; epochs per second and their ratio;
- TIGER: one epoch of the CPU-size TIGER at batch 256 with lr 1e-3 (the reference) and at 1024 with lr 2e-3 (the
  learning rate scaled by sqrt(4)); training examples per second and their ratio (a candidate measured and not
  used: docs/speed.md).
`--every k` times every k-th batch of the epoch only: a quicker, rougher estimate. First, for each model, the share
of real (not padding) positions in its batches as built (`length_batches`) and with every example sorted by length:
what length-sorted batches could still save.

Quality (`--quality`, reads the archive and trains nothing): the best validation NDCG@10 and the test NDCG@10 of
each seed of the paper profile's `check-*` parts (the shortcut, all-MiniLM-L6-v2 on Scientific) beside the same runs
without it (the Table 2 runs), with their mean and standard deviation over seeds and seconds per epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from steps import tiger_step, unisrec_step  # noqa: E402  (bench/steps.py: a fresh model's batches and loss)

from encoderec.data import dataset as data  # noqa: E402
from encoderec.models.fitting import run_epoch, validation_scores  # noqa: E402

# (what is compared, the reference settings, the shortcut's), each over the profile's CPU size
SPEED = {"UniSRec": ({}, {"fast": True}),
         "TIGER": ({"batch_size": 256, "lr": 1e-3}, {"batch_size": 1024, "lr": 2e-3})}
# (shortcut part, reference part, backbone): the paper profile's check parts and the runs they are checked against
# (TIGER's larger batches have none: they are slower, so they are not used)
QUALITY = (("check-fast-unisrec-Scientific", "unisrec-Scientific-seed{seed}", "all-MiniLM-L6-v2"),)


def epoch_seconds(batches: list, loss_of: callable, optimizer, every: int) -> tuple[float, int]:
    """(seconds, examples) of an optimizer step on every `every`-th batch, after two warm-up steps."""
    timed = batches[::every]
    run_epoch(timed[:2], loss_of, optimizer)
    start = time.perf_counter()
    run_epoch(timed, loss_of, optimizer)
    return time.perf_counter() - start, sum(len(b) for b in timed)


def real_share(batches: list[np.ndarray], lengths: np.ndarray, tokens_per_item: int) -> float:
    """Real positions over padded ones (each batch padded to its longest; TIGER: 4 tokens an item plus 2)."""
    size = lambda n: tokens_per_item * n + (2 if tokens_per_item > 1 else 0)  # noqa: E731
    return sum(size(lengths[b]).sum() for b in batches) / sum(size(lengths[b].max()) * len(b) for b in batches)


def speed(dataset_name: str, data_dir: str | None, every: int) -> None:
    dataset = data.load_dataset(dataset_name, data_dir)
    split = data.split(dataset)
    # the text embeddings' values do not change a step's cost: random unit rows of all-MiniLM-L6-v2's width
    text = np.random.default_rng(0).normal(size=(len(dataset.items), 384)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    print(f"{dataset_name}: {len(dataset.items)} items, {len(data.prefix_examples(split.train))} training prefixes; "
          f"every {every} batch(es) of one epoch")
    train = data.prefix_examples(split.train)
    for name, batch_size, max_len, tokens in (("UniSRec", 2048, 50, 1), ("TIGER", 256, 20, 4)):
        lengths = np.minimum([len(e.history) for e in train], max_len)
        built = data.length_batches(lengths, batch_size, np.random.default_rng(0))
        ordered = np.array_split(np.argsort(lengths, kind="stable"), -(-len(lengths) // batch_size))
        print(f"  {name} batches of {batch_size}: real positions {real_share(built, lengths, tokens):.1%} as built, "
              f"{real_share(ordered, lengths, tokens):.1%} with every example sorted by length")
    for name, (reference, shortcut) in SPEED.items():
        rates = []
        for settings in (reference, shortcut):
            step = unisrec_step(split, text, settings) if name == "UniSRec" else \
                tiger_step(split, len(dataset.items), settings)
            seconds, examples = epoch_seconds(*step, every)
            rates.append(examples / seconds)
            print(f"  {name} {json.dumps(settings)}: {examples / seconds:.0f} training examples/s, an epoch "
                  f"{len(data.prefix_examples(split.train)) / rates[-1]:.0f} s", flush=True)
        print(f"{name}: shortcut / reference = {rates[1] / rates[0]:.2f}x")


def quality(profile: str) -> None:
    from encoderec.pipeline import registry, runs
    from encoderec.pipeline.policy import Policy
    from encoderec.report import runner

    def scores(part: str, backbone: str, seed: int | None = None) -> dict[int, dict[str, float]]:
        """seed -> best validation NDCG@10, test NDCG@10 and seconds per epoch of the part's finished runs."""
        notebook, params = runner.part_parameters(profile, part)
        results = Path(params["output_root"]) / "results" / profile
        backbone_of = registry.of_profile(profile, results, read_only=True).encoder
        found = {}
        for run in runs.plan(notebook, params):
            if run.backbone != backbone or run.variant != "inductive" or (seed is not None and run.seed != seed):
                continue
            result = runs.execute(run, backbone_of, policy=Policy(results / "runs", read_only=True))["result"]
            if result is not None:
                history = result["history"]
                test = validation_scores((np.asarray(result["test_ranks"]), None))["NDCG@10"]
                found[run.seed] = {"valid": max(h.get("valid NDCG@10", -1.0) for h in history), "test": test,
                                   "seconds": float(np.mean([h["seconds"] for h in history]))}
        return found

    for check, reference, backbone in QUALITY:
        shortcut = scores(check, backbone)
        before = {}
        for seed in sorted(shortcut):
            before |= scores(reference.format(seed=seed), backbone, seed)
        for label, found in (("reference", before), (check, shortcut)):
            line = [f"{label} ({backbone}, seeds {sorted(found)}):"]
            for what in ("valid", "test"):
                values = [f[what] for f in found.values()]
                spread = np.std(values, ddof=1) if len(values) > 1 else 0.0
                line.append(f"{what} NDCG@10 " + ", ".join(f"{v:.4f}" for v in values)
                            + f" (mean {np.mean(values):.4f} sd {spread:.4f});")
            line.append(f"{np.mean([f['seconds'] for f in found.values()]):.1f} s an epoch")
            print(" ".join(line))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--data-dir")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--profile", default="paper")
    args = parser.parse_args(argv)
    if args.quality:
        quality(args.profile)
    else:
        speed(args.dataset, args.data_dir, args.every)


if __name__ == "__main__":
    main()
