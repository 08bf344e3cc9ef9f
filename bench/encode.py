"""Throughput of encoderec.models.embeddings.encode against plain SentenceTransformer.encode, cold and cached.

    .venv/bin/python bench/encode.py [--dataset Scientific] [--data-dir DIR] [--limit N] [--backbone NAME]

Encodes the dataset's documents (TextView().documents) with all-MiniLM-L6-v2 three ways in one process:
(a) plain `SentenceTransformer.encode(texts, batch_size=64, normalize_embeddings=True)`, model already loaded;
(b) our `encode()` into a fresh temporary cache, which also loads the model, fingerprints it, dedupes and saves;
(c) our `encode()` again, answered from the cache; (d) our `encode()` cold under bf16 autocast, the default where
the CPU computes bf16 natively. (b) is forced to fp32 so (b)/(a) is the cost of caching alone. Prints items/s, wall
time and RSS after each stage, and the ratios against (a), plain sentence-transformers in fp32.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the backbones resolve to local folders; never wait on the hub


import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from encoderec.core import precision  # noqa: E402
from encoderec.data.dataset import TextView, load_dataset  # noqa: E402
from encoderec.models import embeddings


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size in MiB; ru_maxrss is in KiB on Linux."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    current = pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(stage: str, rows: list[dict], n: int | None, run):
    """Run `run()`, appending its wall time, throughput over `n` items (if any) and the RSS after it to `rows`."""
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    current, peak = rss_mib()
    items_s = f"{n / seconds:.1f}" if n else ""
    rows.append({"stage": stage, "seconds": seconds, "items_s": items_s, "rss": current, "peak": peak})
    return result


def print_table(rows: list[dict], start_rss: tuple[float, float]) -> None:
    print(f"\n{'stage':<22} {'seconds':>9} {'items/s':>10} {'RSS MiB':>9} {'peak MiB':>9}")
    print(f"{'start':<22} {'':>9} {'':>10} {start_rss[0]:>9.0f} {start_rss[1]:>9.0f}")
    for r in rows:
        print(f"{r['stage']:<22} {r['seconds']:>9.3f} {r['items_s']:>10} {r['rss']:>9.0f} {r['peak']:>9.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--data-dir")
    parser.add_argument("--limit", type=int, help="encode only the first N documents")
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    texts = TextView().documents(load_dataset(args.dataset, args.data_dir))[: args.limit]
    n = len(texts)
    print(
        f"{args.dataset}: {n} documents ({len(set(texts))} distinct), backbone {args.backbone}, "
        f"torch {torch.__version__} on {torch.get_num_threads()} threads",
        flush=True,
    )
    start_rss = rss_mib()
    rows: list[dict] = []

    folder = str(embeddings.resolve_backbone(args.backbone))
    model = timed("plain: load model", rows, None, lambda: SentenceTransformer(folder, device="cpu"))
    model.encode(texts[: args.batch_size], batch_size=args.batch_size, show_progress_bar=False)  # warm-up, untimed
    plain = timed(
        "(a) plain ST.encode",
        rows,
        n,
        lambda: model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=True),
    )
    model = None  # stage (b) loads its own copy, as a fresh process would

    with tempfile.TemporaryDirectory(prefix="encoderec-bench-") as cache:

        def ours(precision: str):
            return lambda: embeddings.encode(args.backbone, texts, view="documents", batch_size=args.batch_size,
                                             device="cpu", cache_dir=cache, precision=precision)

        cold = timed("(b) ours fp32, cold cache", rows, n, ours("fp32"))
        cached = timed("(c) ours fp32, cached", rows, n, ours("fp32"))
        bf16 = timed("(d) ours bf16, cold cache", rows, n, ours("bf16"))

    print_table(rows, start_rss)
    plain_row, cold_row, cached_row, bf16_row = rows[1:]
    print(f"\nours fp32 cold / plain throughput: {plain_row['seconds'] / cold_row['seconds']:.2f}x")
    print(f"ours bf16 cold / plain fp32:       {plain_row['seconds'] / bf16_row['seconds']:.2f}x "
          f"(native bf16 on this CPU: {precision.native_bf16('cpu')})")
    print(f"cold / cached wall time:           {cold_row['seconds'] / cached_row['seconds']:.0f}x")
    print(f"max |ours fp32 - plain|:           {np.abs(cold - plain).max():.2e} "
          f"(cached identical: {np.array_equal(cold, cached)})")
    print(f"min cosine(bf16, fp32):            {(bf16 * cold).sum(1).min():.5f}")


if __name__ == "__main__":
    main()
