"""TIGER on a dataset (Beauty by default): training throughput, decoding speed, memory, quality after a time budget.

    .venv/bin/python bench/tiger.py [--dataset Beauty] [--backbone all-MiniLM-L6-v2] [--minutes 10]
        [--decode-users 2000] [--eval-users N] [--max-users N] [--data-dir DIR]
    .venv/bin/python bench/tiger.py --precision-only [--settings '{"layers": 2}'] [--dataset Scientific]

Semantic IDs: the backbone's item embeddings (cached), RQ-VAE fitted on the training items (cached by
encoderec.models.semantic_ids.tokenize) plus TIGER's 4th code. Then, in this process:

1. training: TigerConfig() (4 + 4 layers, d_model 128) on every training prefix for --minutes of wall time
   (TigerConfig.max_minutes: whole epochs, at least one), reporting training examples per second;
2. decoding: --decode-users test users with our batched beam search over the ID trie (beam 20, top 10) against the
   baseline in the same process, Hugging Face `generate` with the same beam width and no constraint (which may
   return IDs that do not exist): users per second for both, the ratio, the share of invalid IDs the baseline
   returned, and the time all test users would take at our speed;
3. quality: Recall@10 / NDCG@10 of the trained model on the test users (all, or a seeded sample of --eval-users,
   with the standard error; the model after --minutes of training, no early stopping), next to the published
   TIGER Beauty numbers (R@10 0.0648, N@10 0.0384);
4. peak RSS of the process.

With --precision-only, instead: one epoch of training and the decoding of --decode-users test users in fp32 and
under bf16 autocast, each with a fresh model of the same seed (TigerConfig with --settings, a JSON object of
fields, e.g. the default profile's `tiger:`), and the bf16 / fp32 ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


import numpy as np  # noqa: E402
import torch  # noqa: E402

from encoderec.data import dataset as data
from encoderec.models import (
    embeddings,
    metrics,
    semantic_ids,  # noqa: E402
)
from encoderec.models.tiger import Tiger, TigerConfig  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def semantic_ids_of(dataset: data.Dataset, backbone: str) -> np.ndarray:
    x = embeddings.encode(backbone, data.TextView().full(dataset), view=f"{dataset.name}:items")
    codes = semantic_ids.tokenize(x, data.training_items(dataset), "rqvae").codes
    return semantic_ids.with_dedup_code(codes)


def hf_generate(tiger: Tiger, examples: list[data.Example], beam: int) -> np.ndarray:
    """Unconstrained beam search with transformers' generate: (users, beam, depth) generated tokens."""
    out = []
    for idx in data.length_batches(tiger._input_lengths(examples), tiger.config.eval_batch_size):
        inputs, mask = tiger.encode_inputs([examples[i] for i in idx])
        generated = tiger.model.generate(input_ids=inputs.to(tiger.device), attention_mask=mask.to(tiger.device),
                                         num_beams=beam, num_return_sequences=beam, max_new_tokens=tiger.trie.depth,
                                         min_new_tokens=tiger.trie.depth, do_sample=False, early_stopping=True)
        out.append(generated[:, 1:].view(len(idx), beam, -1).cpu().numpy())
    return np.concatenate(out)


def precision_ratios(split: data.Split, ids: np.ndarray, settings: dict, decode_users: int) -> None:
    """Training examples/s and decoded users/s in fp32 and bf16 for the same config and seed, and their ratios."""
    speeds = {}
    for precision in ("fp32", "bf16"):
        tiger = Tiger(TigerConfig(**{**settings, "epochs": 1, "eval_every": 10**6, "valid_users": 100,
                                     "precision": precision})).fit(split, ids, progress=False)
        train = len(data.prefix_examples(split.train)) / tiger.history[0]["seconds"]
        start = time.perf_counter()
        tiger.beam_search(split.test[:decode_users])
        decode = decode_users / (time.perf_counter() - start)
        speeds[precision] = train, decode
        print(f"{precision}: training {train:.0f} examples/s (loss {tiger.history[0]['loss']:.3f}), decoding "
              f"{decode:.0f} users/s", flush=True)
    (train32, decode32), (train16, decode16) = speeds["fp32"], speeds["bf16"]
    print(f"bf16 / fp32: training {train16 / train32:.2f}x, decoding {decode16 / decode32:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--data-dir")
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2")
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall-time budget")
    parser.add_argument("--decode-users", type=int, default=2000)
    parser.add_argument("--eval-users", type=int, help="score a seeded sample of test users (default: all)")
    parser.add_argument("--max-users", type=int, help="a seeded sample of users (a quick check of the script)")
    parser.add_argument("--precision-only", action="store_true", help="only compare bf16 with fp32 (see above)")
    parser.add_argument("--settings", type=json.loads, default={}, help="TigerConfig fields as JSON")
    args = parser.parse_args(argv)

    dataset = data.load_dataset(args.dataset, args.data_dir)
    if args.max_users:
        dataset = data.sample_users(dataset, args.max_users)
    split = data.split(dataset)
    ids = semantic_ids_of(dataset, args.backbone)
    if args.precision_only:
        print(f"{args.dataset}: TigerConfig({args.settings}), torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads", flush=True)
        precision_ratios(split, ids, args.settings, args.decode_users)
        return
    # no early stopping: train until the time budget, one cheap evaluation at the end
    tiger = Tiger(TigerConfig(epochs=10**6, max_minutes=args.minutes, eval_every=10**6, valid_users=100))
    print(f"{args.dataset}: {len(dataset.items)} items, {len(split.test)} users, "
          f"{len(data.prefix_examples(split.train))} training prefixes; {len(np.unique(ids, axis=0))} IDs of depth "
          f"{ids.shape[1]}; torch {torch.__version__}, {torch.get_num_threads()} threads, device {tiger.device}",
          flush=True)

    tiger.fit(split, ids)
    epochs, seconds = len(tiger.history), sum(h["seconds"] for h in tiger.history)
    examples = epochs * len(data.prefix_examples(split.train))
    print(f"training: {epochs} epochs in {seconds:.0f} s (validation excluded), {examples / seconds:.0f} "
          f"examples/s; last loss {tiger.history[-1]['loss']:.3f}", flush=True)

    users = split.test[: args.decode_users]
    start = time.perf_counter()
    leaves, _ = tiger.beam_search(users)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    generated = hf_generate(tiger, users, tiger.config.beam_size)
    theirs = time.perf_counter() - start
    valid_tokens = {tuple(row) for row in tiger.item_tokens.tolist()}
    invalid = np.mean([tuple(seq) not in valid_tokens for seq in generated.reshape(-1, generated.shape[-1]).tolist()])
    print(f"decoding {len(users)} users, beam {tiger.config.beam_size}: constrained trie search "
          f"{len(users) / ours:.0f} users/s, transformers generate {len(users) / theirs:.0f} users/s "
          f"(ratio {theirs / ours:.2f}x); invalid IDs from generate: {invalid:.1%}, from ours: "
          f"{np.mean(leaves < 0):.1%}; all {len(split.test)} test users at our speed: "
          f"{len(split.test) / (len(users) / ours) / 60:.1f} min", flush=True)

    test = split.test
    if args.eval_users and args.eval_users < len(test):
        test = [test[i] for i in np.sort(np.random.default_rng(0).choice(len(test), args.eval_users, replace=False))]
    start = time.perf_counter()
    ranks, gains = tiger.rank(test, progress=True)
    values = metrics.per_query(ranks, ks=(5, 10), gains=gains)
    print(f"test ({len(test)} of {len(split.test)} users) after {args.minutes:g} min of training "
          f"({time.perf_counter() - start:.0f} s to decode; mean ± standard error): "
          + ", ".join(f"{k} {v.mean():.4f} ± {v.std(ddof=1) / np.sqrt(len(v)):.4f}" for k, v in values.items())
          + "; published TIGER on Beauty (Amazon 2014 P5 split): R@10 0.0648, N@10 0.0384")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
