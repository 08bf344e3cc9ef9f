"""Throughput of encoderec.models.embeddings.encode against plain SentenceTransformer.encode: torch and ONNX Runtime.

    .venv/bin/python bench/encode.py [--dataset Scientific] [--data-dir DIR] [--limit N] [--backbone NAME]

Encodes the dataset's documents (TextView().documents) with all-MiniLM-L6-v2 in one process:
(a) plain `SentenceTransformer.encode(texts, batch_size=64, normalize_embeddings=True)`, model already loaded;
(b) our `encode()` in torch fp32 into a fresh temporary cache, which also loads the model, fingerprints it, dedupes
and saves: (b)/(a) is the cost of caching alone; (c) the same again, answered from the cache; (d) torch under bf16
autocast, the default where the CPU computes bf16 natively (skipped where it does not: emulated bf16 measures
nothing a user would run); (e) ONNX Runtime's fp32 graph (`encoderec.models.runtime`)
and (f) its int8-quantised graph, each timed after the one-off export
(timed apart: "export"). Prints items/s, wall time and RSS after each stage, the ratios against (a), plain
sentence-transformers in fp32, and each runtime's agreement with torch fp32: the smallest cosine of an embedding
and Table 1's NDCG@10 (the held-out titles against the catalogue's documents, `retrieval.build_task`), which
int8 must keep within 0.005 to be used by default.
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
from encoderec.models import embeddings, metrics, retrieval  # noqa: E402

BF16 = precision.native_bf16("cpu")
# label: (precision, runtime, the timed stage that encodes with it)
RUNTIMES = {"torch fp32": ("fp32", "torch", "(b) torch fp32, cold"), "torch bf16": ("bf16", "torch", "(d) torch bf16, cold"),
            "onnx": ("fp32", "onnx", "(e) onnx, cold"), "onnx-int8": ("fp32", "onnx-int8", "(f) onnx-int8, cold")}


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

        def ours(precision: str, runtime: str, what: list[str] = texts, view: str = "documents"):
            return lambda: embeddings.encode(args.backbone, what, view=view, batch_size=args.batch_size,
                                             device="cpu", cache_dir=cache, precision=precision, runtime=runtime)

        out = {"torch fp32": timed(RUNTIMES["torch fp32"][2], rows, n, ours("fp32", "torch"))}
        cached = timed("(c) torch fp32, cached", rows, n, ours("fp32", "torch"))
        for label in [label for label in RUNTIMES if label != "torch fp32" and (BF16 or label != "torch bf16")]:
            precision_, runtime, stage = RUNTIMES[label]
            if runtime != "torch":
                timed(f"{runtime}: export", rows, None, ours(precision_, runtime, ["export"], "export"))
            out[label] = timed(stage, rows, n, ours(precision_, runtime))
        quality = table1(args, cache, list(out))

    print_table(rows, start_rss)
    seconds = {r["stage"]: r["seconds"] for r in rows}
    plain_s = seconds["(a) plain ST.encode"]
    print(f"\n{'runtime':<12} {'vs plain':>9} {'min cosine':>11} {'Table 1 NDCG@10':>16}")
    for label, x in out.items():
        stage = RUNTIMES[label][2]
        print(f"{label:<12} {plain_s / seconds[stage]:>8.2f}x {(x * out['torch fp32']).sum(1).min():>11.5f} "
              f"{quality[label]:>16.4f}")
    print(f"\nnative bf16 on this CPU: {BF16}; cold / cached wall time: "
          f"{seconds[RUNTIMES['torch fp32'][2]] / seconds['(c) torch fp32, cached']:.0f}x; max |torch fp32 - plain|: "
          f"{np.abs(out['torch fp32'] - plain).max():.2e} (cached identical: {np.array_equal(out['torch fp32'], cached)})")


def table1(args: argparse.Namespace, cache: str, labels: list[str]) -> dict[str, float]:
    """Table 1's NDCG@10 on the dataset (held-out titles against every document) in each runtime of `labels`
    (RUNTIMES' keys); the documents' embeddings come from the cache the timed stages filled."""
    task = retrieval.build_task(load_dataset(args.dataset, args.data_dir), 0.2)
    found = {}
    for label in labels:
        precision_, runtime, _ = RUNTIMES[label]
        q, d = (embeddings.encode(args.backbone, texts, view=view, device="cpu", cache_dir=cache, progress=False,
                                  precision=precision_, runtime=runtime)
                for texts, view in ((task.queries, "titles"), (task.documents, "table 1 documents")))
        found[label] = float(metrics.ndcg_at_k(retrieval.dense_ranks(q, d, task.targets), 10).mean())
    return found


if __name__ == "__main__":
    main()
