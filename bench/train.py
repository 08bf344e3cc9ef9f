"""Training throughput and peak memory: GradCache at batch 512 against the whole batch in one pass, fp32 and bf16.

    .venv/bin/python bench/train.py [--dataset Scientific] [--data-dir DIR] [--limit N] [--max-seq-length 128]
                                    [--variants gradcache-bf16,whole-bf16]

Runs one epoch of encoderec.models.trainer's training loop (all-MiniLM-L6-v2, the dataset's training pairs,
no held-out evaluation, no checkpoints) twice, each in its own subprocess so that the peak RSS
(getrusage ru_maxrss) belongs to that variant alone:

    gradcache       batch 512 of in-batch negatives through CachedMultipleNegativesRankingLoss, mini-batch 32, fp32
    gradcache-bf16  the same under bf16 autocast (TrainConfig.precision="bf16", the default where it is native)
    whole           batch 512 through InfoNCELoss (= MultipleNegativesRankingLoss) in one forward pass: the same
                    loss and gradients as GradCache without its extra forward pass, if the activations fit, fp32
    whole-bf16      the same under bf16 autocast
    plain           batch 64 through InfoNCELoss, fp32

pairs/s counts the pairs the epoch trained on (full batches only) over the wall time of `trainer.train()`.
--limit N trains on a seeded subset of N pairs (TrainConfig.max_pairs) for a quick measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the backbone resolves to a local folder; never wait on the hub


import torch  # noqa: E402

from encoderec.models.trainer import TrainConfig, build_trainer, training_pairs  # noqa: E402

VARIANTS = {
    "gradcache": {"batch_size": 512, "mini_batch_size": 32, "precision": "fp32"},
    "gradcache-bf16": {"batch_size": 512, "mini_batch_size": 32, "precision": "bf16"},
    "whole": {"batch_size": 512, "mini_batch_size": None, "precision": "fp32"},
    "whole-bf16": {"batch_size": 512, "mini_batch_size": None, "precision": "bf16"},
    "plain": {"batch_size": 64, "mini_batch_size": None, "precision": "fp32"},
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_variant(args: argparse.Namespace) -> dict:
    """One epoch of one variant in this process; returns its measurements."""
    cfg = TrainConfig(
        datasets=(args.dataset,),
        max_seq_length=args.max_seq_length,
        max_pairs=args.limit,
        eval_at_end=False,
        save_steps=10**9,  # no checkpoint inside the measured epoch
        **{**VARIANTS[args.variant], **({"mini_batch_size": args.mini_batch_size}
                                        if args.mini_batch_size and VARIANTS[args.variant]["mini_batch_size"] else {})},
    )
    pairs, _ = training_pairs(cfg, args.data_dir)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        trainer = build_trainer(cfg, pairs, Path(out), args.data_dir, progress=False)
        rss_before = peak_rss_mib()
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    trained = trainer.state.global_step * trainer.args.per_device_train_batch_size
    return {
        "variant": args.variant,
        "batch": cfg.batch_size,
        "mini_batch": cfg.mini_batch_size,
        "steps": trainer.state.global_step,
        "pairs": trained,
        "seconds": seconds,
        "pairs_s": trained / seconds,
        "peak_before_mib": rss_before,
        "peak_mib": peak_rss_mib(),
    }


def run_in_subprocess(args: argparse.Namespace, variant: str) -> dict:
    command = [sys.executable, __file__, "--variant", variant, "--dataset", args.dataset]
    command += ["--max-seq-length", str(args.max_seq_length)]
    command += ["--limit", str(args.limit)] if args.limit else []
    command += ["--data-dir", args.data_dir] if args.data_dir else []
    command += ["--mini-batch-size", str(args.mini_batch_size)] if args.mini_batch_size else []
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"bench/train.py: variant {variant} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'variant':<15} {'batch':>6} {'mini':>5} {'steps':>6} {'pairs':>6} {'seconds':>8} {'pairs/s':>8} "
        f"{'peak MiB before train':>22} {'peak MiB':>9}"
    )
    for r in rows:
        mini = r["mini_batch"] or "-"
        print(
            f"{r['variant']:<15} {r['batch']:>6} {mini:>5} {r['steps']:>6} {r['pairs']:>6} {r['seconds']:>8.1f} "
            f"{r['pairs_s']:>8.2f} {r['peak_before_mib']:>22.0f} {r['peak_mib']:>9.0f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--data-dir")
    parser.add_argument("--limit", type=int, help="train on a seeded subset of N pairs")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--mini-batch-size", type=int, help="GradCache's mini-batch (default 32; same gradients)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; default: all")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # internal: run one variant here
    args = parser.parse_args(argv)

    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    print(
        f"{args.dataset}: all-MiniLM-L6-v2, max_seq_length {args.max_seq_length}, "
        f"{f'{args.limit} pairs' if args.limit else 'all training pairs'}, one epoch per variant; "
        f"torch {torch.__version__} on {torch.get_num_threads()} threads, "
        f"{'CUDA' if torch.cuda.is_available() else 'CPU'}",
        flush=True,
    )
    rows = {variant: run_in_subprocess(args, variant) for variant in args.variants.split(",")}
    print_table(list(rows.values()))
    for a, b, what in (("gradcache-bf16", "gradcache", "GradCache bf16 / fp32"),
                       ("whole", "gradcache", "whole batch / GradCache, fp32"),
                       ("whole-bf16", "gradcache-bf16", "whole batch / GradCache, bf16"),
                       ("gradcache", "plain", "GradCache at batch 512 / plain at batch 64")):
        if a in rows and b in rows:
            print(f"{what}: {rows[a]['pairs_s'] / rows[b]['pairs_s']:.2f}x the throughput, "
                  f"{rows[a]['peak_mib'] / rows[b]['peak_mib']:.2f}x the peak RSS")

if __name__ == "__main__":
    main()
