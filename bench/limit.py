"""This machine's limit, and how close each notebook of a profile comes to it.

    .venv/bin/python bench/limit.py [--profile default] [--walls 01_encoderec=420,...] [--seconds 1.0]

1. **The ceiling**: the sustained (median) GFLOP/s of one matrix product at the shapes each model multiplies (one linear layer at
   its training batch), in fp32 and in bf16, on the threads torch uses (2 cores: 2). bf16 only where the CPU computes
   it natively (AVX512-BF16 or AMX): emulated, it would be a floor, not a ceiling, measuring it takes minutes, and
   encoderec runs fp32 there anyway.
2. **The work**: each notebook's matrix-product FLOPs (`encoderec.models.flops`, checked against torch's own count
   in tests/test_flops.py), from the profile's settings and the data: the texts each encoder encodes (distinct,
   truncated as the encoder truncates, each encoding counted once, as the embedding cache does), EncodeRec's
   training pairs, the RQ-VAE fits, and every recommender run's training, validation and test ranking with the
   epochs its results recorded (results/<profile>/unisrec.json, tiger.json; the configured epochs where the
   results have none). Left out: TF-IDF, k-means, UMAP, BM25 and metrics, which are not matrix products on the
   encoders' scale.
3. **The achieved fraction**: the time the work would take at the ceiling of its own shapes, in the precision it
   runs in (`ENCODEREC_PRECISION`, else bf16 where native; the RQ-VAE always fp32), over the notebook's wall time:
   from --walls (seconds, e.g. a `make timed-report` run's) or else the runner's records of the last run
   (reports/<profile>/.state/, meaningless when that run read caches).

`ENCODEREC_PRECISION=fp32` on a bf16 machine is the proxy for a machine without bf16: its fraction is of the fp32
ceiling. Needs the data, the backbones and, for the fine-tuned encoders' own truncation, 01_encoderec's models.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoConfig, AutoTokenizer  # noqa: E402

from encoderec.core import paths, precision  # noqa: E402
from encoderec.core.io import read_json  # noqa: E402
from encoderec.data import dataset as data  # noqa: E402
from encoderec.models import embeddings, flops, retrieval, trainer  # noqa: E402
from encoderec.models.rqvae import RQVAEConfig  # noqa: E402
from encoderec.pipeline import parameters, registry, runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# (the model, the shape of its largest product at a training batch: m rows x k inner x n columns); the ceiling of a
# model's work is the GFLOP/s of its shape
SHAPES = {
    "all-MiniLM-L6-v2": (64 * 128, 384, 1536),
    "all-mpnet-base-v2": (64 * 128, 768, 3072),
    "RQ-VAE": (1024, 384, 512),
    "UniSRec": (2048 * 50, 300, 256),
    "TIGER": (256 * 24, 128, 512),
    "square 2048": (2048, 2048, 2048),  # what the cores reach at all
}


# --------------------------------------------------------------------------- the ceiling


def gflops(m: int, k: int, n: int, dtype: torch.dtype, seconds: float) -> float:
    """GFLOP/s of `a @ b`, its median time over repeats that together take about `seconds` (the best single call
    overstates what the cores sustain: on AMX machines it ran 3-4x the median)."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b  # the first call allocates and picks the kernel
    times: list[float] = []
    while sum(times) < seconds or len(times) < 5:
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / float(np.median(times)) / 1e9


def ceiling(seconds: float, bf16: bool) -> dict[str, dict[str, float]]:
    """{model: {"fp32": GFLOP/s, "bf16": GFLOP/s (with `bf16`, else NaN)}} at each model's shape."""
    return {model: {"fp32": gflops(*shape, torch.float32, seconds),
                    "bf16": gflops(*shape, torch.bfloat16, seconds) if bf16 else float("nan")}
            for model, shape in SHAPES.items()}


# --------------------------------------------------------------------------- the work


@dataclasses.dataclass
class Encoder:
    """What a text encoder's FLOPs need: its shape and its tokenizer, truncating as the encoder does."""

    family: str  # the base encoder, whose ceiling its work is measured against
    layers: int
    width: int
    feed_forward: int
    max_length: int
    tokenizer: object

    def forward(self, texts: list[str]) -> float:
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]
        return sum(flops.encoder_forward(s, self.layers, self.width, self.feed_forward) for s in lengths)


def encoder(name: str, base: str, max_length: int | None = None) -> Encoder:
    """The encoder `name` (an alias or a fine-tuned model's folder) of base encoder `base`."""
    folder = Path(embeddings.resolve_backbone(name if Path(name).is_dir() or name in embeddings.BACKBONES else base))
    config = AutoConfig.from_pretrained(folder)
    length = max_length or embeddings.configured_max_seq_length(folder) or config.max_position_embeddings
    return Encoder(base, config.num_hidden_layers, config.hidden_size, config.intermediate_size, length,
                   AutoTokenizer.from_pretrained(folder))


class Work:
    """FLOPs by notebook and by the model family whose ceiling they are measured against; encodings counted once."""

    def __init__(self) -> None:
        self.flops: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.encoded: set[tuple[str, str]] = set()

    def add(self, notebook: str, family: str, amount: float) -> None:
        self.flops[notebook][family] += amount

    def encode(self, notebook: str, enc: Encoder, label: str, view: str, texts: list[str]) -> None:
        if (label, view) not in self.encoded:  # the embedding cache answers the second time
            self.encoded.add((label, view))
            self.add(notebook, enc.family, enc.forward(sorted(set(texts))))


def encoderec_training(work: Work, profile: str, data_dir: str | None) -> None:
    p = parameters.of("01_encoderec", profile)
    for cfg in runs.model_configs(p.models, p.seeds, p.training, p.held_out_fraction, f"params/{profile}.yaml"):
        enc = encoder(cfg.backbone, cfg.backbone, cfg.max_seq_length)
        pairs, _ = trainer.training_pairs(cfg, data_dir)
        passes = flops.GRADCACHE_TRAINING if cfg.mini_batch_size else flops.TRAINING
        work.add("01_encoderec", enc.family,
                 cfg.epochs * passes * (enc.forward(list(pairs["query"])) + enc.forward(list(pairs["document"]))))
        view = cfg.view()
        for name in cfg.datasets:  # the held-out evaluation: titles against documents of the held-out items
            ds = data.load_dataset(name, data_dir)
            chosen = data.held_out_items(ds, cfg.held_out_fraction, view)
            queries, documents = view.queries(ds), view.documents(ds)
            work.add("01_encoderec", enc.family, enc.forward([queries[i] for i in chosen])
                     + enc.forward([documents[i] for i in chosen]))


def text_encoders(profile: str, bases: list[str], results: Path) -> dict[str, tuple[Encoder, str]]:
    """{label: (its Encoder, the name encoding runs know it by)} for the bases and every fine-tuned run."""
    models = registry.of_profile(profile, results, read_only=True)
    return {label: (encoder(e["backbone"], e["base"]), e["backbone"]) for label, e in models.encoders(bases).items()}


def retrieval_and_space(work: Work, profile: str, data_dir: str | None, results: Path) -> None:
    p = parameters.of("02_retrieval", profile)
    encoders = text_encoders(profile, p.base_backbones, results)
    for name in p.datasets:
        task = retrieval.build_task(data.load_dataset(name, data_dir), p.held_out_fraction, corpus=p.corpus)
        for enc, label in encoders.values():
            work.encode("02_retrieval", enc, label, f"{name}:titles", task.queries)
            work.encode("02_retrieval", enc, label, f"{name}:documents", task.documents)
    texts = data.TextView().full(data.load_dataset(p.space_dataset, data_dir))
    for enc, label in encoders.values():
        work.encode("02_retrieval", enc, label, f"{p.space_dataset}:items", texts)


def semantic_ids(work: Work, profile: str, data_dir: str | None, results: Path) -> None:
    p = parameters.of("03_semantic_ids", profile)
    cfg = RQVAEConfig(**p.rqvae)
    for name in p.datasets:
        cat = runs.catalogue(name, data_dir, p.max_items)
        for backbone in p.backbones:
            width = embeddings.BASELINE_DIM
            if backbone not in embeddings.BASELINES:
                path, base = _path_and_base(backbone, results, profile)
                enc = encoder(path, base)
                work.encode("03_semantic_ids", enc, path, f"{name}:items", cat.texts)
                width = enc.width
            if "rqvae" in p.tokenizers:
                step = flops.rqvae_training_step(len(cat.fit_items), width, list(cfg.hidden_dims), cfg.latent_dim,
                                                 cfg.levels, cfg.codebook_size)
                work.add("03_semantic_ids", "RQ-VAE", len(p.seeds) * cfg.epochs * step)


def _path_and_base(name: str, results: Path, profile: str) -> tuple[str, str]:
    models = registry.of_profile(profile, results, read_only=True)
    path, _ = models.encoder(name, 0)
    return path, models.base_encoder(name) or name


def recommenders(work: Work, profile: str, data_dir: str | None, results: Path) -> None:
    models = registry.of_profile(profile, results, read_only=True)
    for notebook in ("04_unisrec", "05_tiger"):
        params = dataclasses.asdict(parameters.of(notebook, profile)) | {"data_dir": data_dir}
        path = results / f"{'unisrec' if notebook == '04_unisrec' else 'tiger'}.json"
        recorded = read_json(path)["rows"] if path.is_file() else []
        for run in runs.plan(notebook, params):
            prepared = runs.prepared(run)
            split, n_items = prepared.split, len(prepared.dataset.items)
            cfg = run.config()
            epochs = _epochs_run(run, recorded) or cfg.epochs
            base = models.base_encoder(run.backbone) or run.backbone if run.backbone else None
            text_dim = encoder(base, base).width if base in embeddings.BACKBONES else (
                embeddings.BASELINE_DIM if run.backbone else None)
            if run.kind == "unisrec":
                work.add(notebook, "UniSRec", _unisrec(split, n_items, cfg, epochs, text_dim))
            else:
                work.add(notebook, "TIGER", _tiger(split, cfg, epochs, run.variant == "dedup"))


def _epochs_run(run: runs.Run, rows: list[dict]) -> int | None:
    for row in rows:
        if (row.get("dataset"), row.get("seed"), row.get("backbone", row.get("model"))) == (
                run.dataset, run.seed, run.backbone or registry.ID_ONLY) and row.get("epochs run"):
            return int(row["epochs run"])
    return None


def _histories(examples: list, cap: int) -> tuple[float, float]:
    lengths = np.minimum([len(e.history) for e in examples], cap).astype(float)
    return lengths.sum(), (lengths ** 2).sum()


def _unisrec(split: data.Split, n_items: int, cfg, epochs: int, text_dim: int | None) -> float:
    train = data.prefix_examples(split.train)
    shape = {"layers": cfg.layers, "hidden": cfg.hidden_size, "inner": cfg.inner_size, "n_items": n_items,
             "text_dim": text_dim, "experts": cfg.experts}
    adaptor = flops.sasrec_forward(0, 0, 0, **shape)
    batches = -(-len(train) // cfg.batch_size)
    epoch = flops.TRAINING * (flops.sasrec_forward(*_histories(train, cfg.max_len), len(train), **shape)
                              + (batches - 1) * adaptor)
    ranking = [flops.sasrec_forward(*_histories(list(examples), cfg.max_len), len(examples), **shape)
               for examples in (split.valid, split.test)]
    return epochs * (epoch + ranking[0]) + ranking[1]


def _tiger(split: data.Split, cfg, epochs: int, dedup: bool) -> float:
    depth = RQVAEConfig().levels + int(dedup)
    vocab = 3 + RQVAEConfig().levels * RQVAEConfig().codebook_size + cfg.user_buckets  # the dedup level's few left out
    shape = {"layers": cfg.layers, "d_model": cfg.d_model, "attention": cfg.heads * cfg.d_kv, "d_ff": cfg.d_ff,
             "vocab": vocab}

    def inputs(examples: list) -> tuple[float, float]:
        lengths = 2 + depth * np.minimum([len(e.history) for e in examples], cfg.max_history).astype(float)
        return lengths.sum(), (lengths ** 2).sum()

    train = data.prefix_examples(split.train)
    epoch = flops.TRAINING * flops.t5_forward(*inputs(train), len(train), depth, **shape)
    valid = list(split.valid)[: cfg.valid_users or None]
    decode = [flops.t5_beam_search(*inputs(examples), len(examples), depth, cfg.beam_size, **shape)
              for examples in (valid, list(split.test))]
    return epochs * epoch + epochs // cfg.eval_every * decode[0] + decode[1]


# --------------------------------------------------------------------------- the table


def walls(profile: str, given: str | None) -> dict[str, float]:
    if given:
        return {k: float(v) for k, v in (pair.split("=") for pair in given.split(","))}
    states = (ROOT / "reports" / profile / ".state").glob("[0-9]*_*.json")
    return {p.stem: json.loads(p.read_text())["wall_time_s"] or 0.0 for p in states if not p.stem.endswith(".reads")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--walls", help="notebook=seconds,... (default: reports/<profile>/.state of the last run)")
    parser.add_argument("--seconds", type=float, default=1.0, help="time spent on each shape and precision")
    args = parser.parse_args(argv)
    data_dir = str(paths.data_dir(args.data_dir))
    native, used = precision.native_bf16("cpu"), precision.resolve_precision(None, "cpu")
    print(f"{torch.get_num_threads()} threads, bf16 {'native' if native else 'not native (not measured)'}, runs in "
          f"{used}", flush=True)

    peak = ceiling(args.seconds, native)
    print(f"\n{'model':<20} {'m x k x n':<22} {'fp32 GFLOP/s':>13} {'bf16 GFLOP/s':>13}")
    for model, (m, k, n) in SHAPES.items():
        print(f"{model:<20} {f'{m} x {k} x {n}':<22} {peak[model]['fp32']:>13.1f} {peak[model]['bf16']:>13.1f}")

    results = ROOT / "results" / args.profile
    work = Work()
    encoderec_training(work, args.profile, data_dir)
    for step in (retrieval_and_space, semantic_ids, recommenders):
        step(work, args.profile, data_dir, results)
    wall = walls(args.profile, args.walls)
    print(f"\n{'notebook':<16} {'TFLOP':>8} {'at the ceiling s':>17} {'wall s':>8} {'achieved':>9}  work by model")
    for notebook, families in sorted(work.flops.items()):
        total = sum(families.values())
        ideal = sum(f / (peak[family]["fp32" if family == "RQ-VAE" else used] * 1e9) for family, f in families.items())
        seconds = wall.get(notebook)
        achieved = f"{ideal / seconds:>8.1%}" if seconds else f"{'':>9}"
        parts = ", ".join(f"{family} {f / 1e12:.1f}" for family, f in families.items())
        print(f"{notebook:<16} {total / 1e12:>8.1f} {ideal:>17.0f} {seconds or 0:>8.0f} {achieved}  {parts}")


if __name__ == "__main__":
    sys.exit(main())
