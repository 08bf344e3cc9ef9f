"""Semantic IDs for a dataset's items: RQ-VAE against residual k-means, time and collisions, in one process.

    nice -n 19 .venv/bin/python bench/rqvae.py [--dataset Beauty] [--backbone all-MiniLM-L6-v2] [--epochs N]
        [--threads 1] [--data-dir DIR]

Embeds every item's full text (TextView().full: title, then description, features, brand, categories) with the
backbone, from the embedding cache after the first run, then times (a) RQVAE(RQVAEConfig()).fit + transform and
(b) ResidualKMeans().fit + transform, both on all items with TIGER's 3 levels x 256 codes. Prints, per tokenizer,
seconds, collision rates at 1-3 levels, the largest group, per-level codebook usage and the reconstruction error
(mean squared error summed over dimensions, and relative to the embeddings' total variance), the ratio of the two
times, and whether collision_free_last_level can make the RQ-VAE's IDs unique without a fourth code.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the backbones resolve to local folders; never wait on the hub


import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from encoderec.core import precision  # noqa: E402
from encoderec.core.errors import EncoderecError  # noqa: E402
from encoderec.data.dataset import TextView, load_dataset  # noqa: E402
from encoderec.models import embeddings
from encoderec.models.collisions import collision_report  # noqa: E402
from encoderec.models.rqvae import RQVAE, ResidualKMeans, RQVAEConfig  # noqa: E402
from encoderec.models.semantic_ids import collision_free_last_level, with_dedup_code  # noqa: E402


def timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def row(name: str, seconds: float, report: dict, absolute: float) -> str:
    usage = "/".join(f"{report[f'usage@{level}']:.2f}" for level in (1, 2, 3))
    rates = " ".join(f"{report[f'collision_rate@{level}']:>7.4f}" for level in (1, 2, 3))
    return (
        f"{name:<22} {seconds:>8.1f} {rates} {report['max_group']:>5} {usage:>14} "
        f"{absolute:>8.4f} {report['reconstruction_error']:>8.4f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--data-dir")
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2")
    parser.add_argument("--epochs", type=int, help=f"RQ-VAE epochs (default {RQVAEConfig().epochs})")
    # niced on a busy 2-core machine, a second thread mostly waits for the first at every barrier: 100 epochs took
    # over 6 minutes on 2 threads and 1.5 minutes on 1; pass --threads 0 for torch's default on an idle machine
    parser.add_argument("--threads", type=int, default=1, help="torch and faiss threads; 0: torch's default (1)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)

    texts = TextView().full(load_dataset(args.dataset, args.data_dir))
    x, seconds = timed(lambda: embeddings.encode(args.backbone, texts, view=f"{args.dataset}:items"))
    config = RQVAEConfig() if args.epochs is None else RQVAEConfig(epochs=args.epochs)
    print(
        f"{args.dataset}: {len(texts)} items ({len(set(texts))} distinct texts), {args.backbone} embeddings "
        f"{x.shape} in {seconds:.1f}s; torch {torch.__version__} on {torch.get_num_threads()} threads, "
        f"device {config.device or precision.default_device()}",
        flush=True,
    )
    print(f"RQ-VAE: {config}", flush=True)

    rqvae, rq_fit = timed(lambda: RQVAE(config).fit(x))
    rq_codes, rq_assign = timed(lambda: rqvae.transform(x))
    kmeans, km_fit = timed(lambda: ResidualKMeans(levels=config.levels, codebook_size=config.codebook_size).fit(x))
    km_codes, km_assign = timed(lambda: kmeans.transform(x))

    print(
        f"\n{'tokenizer':<22} {'seconds':>8} {'coll@1':>7} {'coll@2':>7} {'coll@3':>7} {'max g':>5} "
        f"{'usage 1/2/3':>14} {'mse':>8} {'rel mse':>8}"
    )
    results = {}
    tokenizers = (
        ("RQ-VAE", rqvae, rq_codes, rq_fit, rq_assign),
        ("residual k-means", kmeans, km_codes, km_fit, km_assign),
    )
    for name, tok, codes, fit_s, assign_s in tokenizers:
        relative = tok.reconstruction_error(x, relative=True)
        results[name] = collision_report(
            codes, texts, codebook_size=config.codebook_size, reconstruction_error=relative
        )
        print(row(name, fit_s + assign_s, results[name], tok.reconstruction_error(x)))
    print(
        f"\nfit + assign: RQ-VAE {rq_fit:.1f}s + {rq_assign:.2f}s, residual k-means {km_fit:.1f}s + {km_assign:.2f}s; "
        f"ratio RQ-VAE / residual k-means = {(rq_fit + rq_assign) / (km_fit + km_assign):.1f}x"
    )
    last = rqvae.history[-1]
    resets = np.sum([h["reset"] for h in rqvae.history], axis=0).tolist()
    print(
        f"RQ-VAE last epoch: loss {last['loss']:.4f} recon {last['recon']:.4f} commit {last['commit']:.4f}, "
        f"usage {[round(u, 3) for u in last['usage']]}; dead codes reset over the fit, per level: {resets}"
    )

    for name, tok, codes, _, _ in tokenizers:
        report = results[name]
        print(
            f"\n{name}: colliding items with identical text {report['colliding_identical_text']}, with different "
            f"text {report['colliding_different_text']}; avoidable collision rate "
            f"{report['avoidable_collision_rate']:.4f}; 4th code non-zero for {report['share_extra_code']:.2%} of "
            f"items (largest 4th code {with_dedup_code(codes)[:, -1].max()})"
        )
        try:
            distances, seconds = timed(lambda t=tok: t.last_level_distances(x))
            unique, hungarian = timed(lambda c=codes, d=distances: collision_free_last_level(c, d))
            moved = int((unique[:, -1] != codes[:, -1]).sum())
            print(
                f"{name} + Hungarian last level: {len(np.unique(unique, axis=0))} distinct IDs for {len(x)} items, "
                f"{moved} last codes changed, {seconds + hungarian:.2f}s"
            )
        except EncoderecError as e:
            print(f"{name} + Hungarian last level: impossible ({e})")


if __name__ == "__main__":
    main()
