"""ONNX Runtime's int8 and fusion options for the encoder, against plain SentenceTransformer.encode in fp32.

    .venv/bin/python bench/quantize.py [--limit 512] [--dataset Scientific] [--data-dir DIR]

What would have to hold for an int8 graph to become a default (docs/speed.md: at least 2x plain sentence-transformers
on a CPU without bf16, every embedding within cosine 0.99 of fp32): encodes the dataset's first `--limit` documents
with all-MiniLM-L6-v2 in one process, plain `SentenceTransformer.encode` first, then `encoderec.models.runtime`'s
fp32 graph and variants of it: dynamic int8 quantisation per tensor (the `onnx-int8` runtime), per output channel,
per channel with reduced range (the setting ONNX Runtime advises for CPUs without VNNI), unsigned weights per channel,
and ONNX Runtime's transformer optimiser (`onnxruntime.transformers.optimizer`, BERT fusions) before per-channel
int8. Prints each one's speed against plain and its smallest and mean cosine to plain's embeddings, and the fusions
the optimiser found.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402
from onnxruntime.transformers import optimizer  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from encoderec.data.dataset import TextView, load_dataset  # noqa: E402
from encoderec.models import embeddings  # noqa: E402
from encoderec.models.runtime import OnnxEncoder  # noqa: E402


def variants(fp32: Path, heads: int, width: int) -> dict[str, Path]:
    """{label: path} of every graph to time, written next to the fp32 one."""
    found = {"onnx fp32": fp32}
    for label, options in {"int8 per tensor (onnx-int8)": {}, "int8 per channel": {"per_channel": True},
                           "int8 per channel, reduced range": {"per_channel": True, "reduce_range": True},
                           "uint8 per channel": {"per_channel": True, "weight_type": QuantType.QUInt8}}.items():
        found[label] = fp32.with_name(f"{len(found)}.onnx")
        quantize_dynamic(fp32, found[label], **{"weight_type": QuantType.QInt8, **options})
    fused = optimizer.optimize_model(str(fp32), model_type="bert", num_heads=heads, hidden_size=width, opt_level=1)
    print("fusions found:", {k: v for k, v in fused.get_fused_operator_statistics().items() if v}, flush=True)
    found["onnx fused"] = fp32.with_name("fused.onnx")
    fused.save_model_to_file(str(found["onnx fused"]))
    found["fused, int8 per channel"] = fp32.with_name("fused-int8.onnx")
    quantize_dynamic(found["onnx fused"], found["fused, int8 per channel"], weight_type=QuantType.QInt8,
                     per_channel=True)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--data-dir")
    parser.add_argument("--limit", type=int, default=512)
    args = parser.parse_args(argv)
    texts = TextView().documents(load_dataset(args.dataset, args.data_dir))[: args.limit]
    model = SentenceTransformer(str(embeddings.resolve_backbone("all-MiniLM-L6-v2")), device="cpu")
    model.encode(texts[:64], batch_size=64)  # warm-up, untimed
    start = time.perf_counter()
    plain = model.encode(texts, batch_size=64, normalize_embeddings=True)
    plain_s = time.perf_counter() - start
    print(f"{args.dataset}: {len(texts)} documents on {torch.get_num_threads()} threads; plain ST fp32 "
          f"{len(texts) / plain_s:.1f} items/s", flush=True)
    encoder = OnnxEncoder(model, "bench", "onnx", cache_dir=tempfile.mkdtemp(prefix="encoderec-quantize-"))
    config = model[0].auto_model.config
    print(f"\n{'graph':<32} {'vs plain':>9} {'min cosine':>11} {'mean cosine':>12}")
    for label, path in variants(encoder.path, config.num_attention_heads, config.hidden_size).items():
        encoder.load(path)
        encoder.encode(texts[:64])  # warm-up, untimed
        start = time.perf_counter()
        cosine = (encoder.encode(texts) * plain).sum(1)
        print(f"{label:<32} {plain_s / (time.perf_counter() - start):>8.2f}x {cosine.min():>11.5f} "
              f"{cosine.mean():>12.5f}", flush=True)


if __name__ == "__main__":
    main()
