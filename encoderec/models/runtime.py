"""ONNX Runtime for the sentence encoders: the same embeddings as torch, from a runtime made for CPUs.

`OnnxEncoder(model)` exports a SentenceTransformer's transformer with its pooling (mean or CLS) to an ONNX graph
once per model and variant, cached under <cache>/onnx/<model fingerprint>/<variant>.onnx (written atomically), and
encodes with ONNX Runtime on the CPU: texts sorted by length so a batch pads to its own longest, the model's own
tokenizer and truncation, unit rows. Variants:

- "onnx": fp32, with ONNX Runtime's graph optimisations (constant folding, fused layer norms, GELU and attention
  where its patterns match). Equal to torch fp32 up to the summation order (max |difference| about 1e-6).
- "onnx-int8": the fp32 graph with its matrix products' weights quantised to int8 and the activations quantised
  per batch on the fly (`onnxruntime.quantization.quantize_dynamic`): not equal to torch.

Neither is a default: `bench/encode.py` measured both slower than torch fp32 on Scientific's documents (0.60x and
0.91x) and int8 outside the bound it would need (Table 1 NDCG@10 0.6204 against 0.6326, minimum cosine 0.869
against 0.99 asked); `resolve_runtime`'s "auto" is torch. They stay as options to measure on other CPUs.

Deviation from the issue's wording: sentence-transformers' own `backend="onnx"` / `"openvino"` need optimum-onnx
(transformers < 4.58) or optimum-intel (transformers < 5.6), which cannot be installed beside the locked transformers
5; the export here uses torch.onnx and ONNX Runtime directly, the same runtime those backends run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.core.io import atomic_path

VARIANTS = ("onnx", "onnx-int8")
RUNTIMES = ("torch", *VARIANTS)


def resolve_runtime(runtime: str | None, precision: str, device: str | None) -> str:
    """"torch", "onnx" or "onnx-int8": `runtime`, else $ENCODEREC_RUNTIME, else "auto": torch, the faster where
    measured (bench/encode.py, docs/speed.md: ONNX Runtime's fp32 graph encoded at 0.60x torch fp32's speed on 2
    cores of a Xeon with AMX); `precision` and `device` are where a measured gain would choose ONNX."""
    chosen = runtime or os.environ.get("ENCODEREC_RUNTIME") or "auto"
    if chosen == "auto":
        return "torch"
    if chosen not in RUNTIMES:
        raise EncoderecError(f"runtime {chosen!r} (argument or $ENCODEREC_RUNTIME): expected auto or one of "
                             f"{', '.join(RUNTIMES)}")
    return chosen


class Pooled(torch.nn.Module):
    """The transformer and its pooling, as one graph: (inputs) -> (batch, dim) sentence embeddings, not normalised."""

    def __init__(self, transformer: torch.nn.Module, mode: str) -> None:
        super().__init__()
        self.transformer, self.mode = transformer, mode

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if self.mode == "cls":
            return hidden[:, 0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def pooling_mode(model: SentenceTransformer) -> str:
    """"mean" or "cls": the model's Pooling module's mode; anything else cannot be exported here."""
    pooling = next((m for m in model if type(m).__name__ == "Pooling"), None)
    mode = getattr(pooling, "pooling_mode", None) or (
        "cls" if getattr(pooling, "pooling_mode_cls_token", False) else
        "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else None)
    if mode not in ("mean", "cls"):
        raise EncoderecError(f"runtime onnx: the model's pooling is {mode!r}; only mean and CLS pooling export here "
                             "(use runtime torch: ENCODEREC_RUNTIME=torch)")
    return mode


class OnnxEncoder:
    """`encode(texts)` -> float32 unit rows, from `model`'s graph in ONNX Runtime (`variant`: see VARIANTS)."""

    def __init__(self, model: SentenceTransformer, fingerprint: str, variant: str = "onnx",
                 cache_dir: str | os.PathLike | None = None, threads: int | None = None) -> None:
        if variant not in VARIANTS:
            raise EncoderecError(f"runtime {variant!r}: expected one of {', '.join(VARIANTS)}")
        self.model, self.variant, self.threads = model, variant, threads
        folder = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
        self.path = folder / "onnx" / fingerprint / f"{variant}.onnx"
        if not self.path.is_file():
            self._export()
        self.load(self.path)

    def load(self, graph: Path) -> None:
        """Encode with the ONNX graph at `graph` from now on: the variant's own on construction, or another form of
        the same graph (bench/quantize.py times quantised and fused ones)."""
        import onnxruntime as ort  # here: torch encodes where ONNX Runtime is not installed

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def _export(self) -> None:
        fp32 = self.path.with_name("onnx.onnx")
        if not fp32.is_file():
            with atomic_path(fp32) as out:
                self._export_fp32(out)
        if self.variant == "onnx-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with atomic_path(self.path) as out:
                quantize_dynamic(fp32, out, weight_type=QuantType.QInt8)

    def _export_fp32(self, out: Path) -> None:
        features = self.model.tokenize(["an example title", "a longer example document to export the graph with"])
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in features]
        batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
        module = Pooled(self.model[0].auto_model.float().eval(), pooling_mode(self.model))
        torch.onnx.export(module, (), str(out), kwargs={n: features[n] for n in names}, input_names=names,
                          output_names=["sentence_embedding"], dynamic_shapes={n: {0: batch, 1: tokens} for n in names},
                          dynamo=True, external_data=False, verbose=False)

    def get_embedding_dimension(self) -> int:
        return self.model.get_embedding_dimension()

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # as sentence-transformers: longest first
        out = np.empty((len(texts), self.get_embedding_dimension()), dtype=np.float32)
        for start in tqdm(range(0, len(texts), batch_size), desc="encode (onnx)", disable=not progress, leave=False):
            idx = order[start:start + batch_size]
            features = self.model.tokenize([texts[i] for i in idx])
            feeds = {name: features[name].numpy().astype(np.int64) for name in self.inputs}
            out[idx] = self.session.run(None, feeds)[0]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
