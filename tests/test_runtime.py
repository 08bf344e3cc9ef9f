"""ONNX Runtime against torch on the same sentence encoder (`encoderec.models.runtime`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from encoderec.core.errors import EncoderecError
from encoderec.models import embeddings, runtime
from tests.conftest import WORDS

TEXTS = [" ".join(WORDS[(i * 7) % len(WORDS):][: 1 + i % 9]) or "a" for i in range(40)] + ["", "w3 w4 " * 40]


@pytest.fixture(scope="module")
def model(tiny_st_model):
    return SentenceTransformer(str(tiny_st_model), device="cpu")


def test_fp32_graph_gives_torchs_embeddings_and_is_cached(model, tmp_path):
    expected = model.encode(TEXTS, batch_size=8, normalize_embeddings=True)
    encoder = runtime.OnnxEncoder(model, "fingerprint", "onnx", cache_dir=tmp_path)
    got = encoder.encode(TEXTS, batch_size=8)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)  # the same products in another summation order
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)
    assert encoder.path == tmp_path / "onnx" / "fingerprint" / "onnx.onnx"
    stamp = encoder.path.stat().st_mtime_ns
    again = runtime.OnnxEncoder(model, "fingerprint", "onnx", cache_dir=tmp_path).encode(TEXTS[:5], batch_size=2)
    assert encoder.path.stat().st_mtime_ns == stamp  # read, not exported again
    np.testing.assert_allclose(again, got[:5], atol=1e-6)  # batches of other sizes pad differently: same rows
    assert sorted(p.name for p in encoder.path.parent.iterdir()) == ["onnx.onnx"]  # no temporary file left


def test_int8_graph_is_close_not_equal(model, tmp_path):
    expected = model.encode(TEXTS, normalize_embeddings=True)
    got = runtime.OnnxEncoder(model, "f", "onnx-int8", cache_dir=tmp_path).encode(TEXTS)
    cosine = (got * expected).sum(1)
    assert cosine.min() > 0.9 and not np.allclose(got, expected, atol=1e-5)


def test_bad_variant_and_pooling(model, tmp_path):
    with pytest.raises(EncoderecError, match="runtime 'onnx-fp16': expected one of onnx, onnx-int8"):
        runtime.OnnxEncoder(model, "f", "onnx-fp16", cache_dir=tmp_path)
    model[1].pooling_mode = "max"
    try:
        with pytest.raises(EncoderecError, match="pooling is 'max'; only mean and CLS pooling export here"):
            runtime.OnnxEncoder(model, "g", "onnx", cache_dir=tmp_path)
    finally:
        model[1].pooling_mode = "mean"


def test_encode_chooses_the_runtime_caches_it_apart_and_records_it(tiny_st_model, tmp_path, monkeypatch):
    monkeypatch.delenv("ENCODEREC_RUNTIME", raising=False)
    texts = TEXTS[:12] + TEXTS[:3]  # repeated texts are encoded once
    options = {"view": "documents", "cache_dir": tmp_path, "progress": False, "device": "cpu"}
    torch_fp32 = embeddings.encode(tiny_st_model, texts, precision="fp32", runtime="torch", **options)
    onnx = embeddings.encode(tiny_st_model, texts, precision="fp32", runtime="onnx", **options)
    np.testing.assert_allclose(onnx, torch_fp32, atol=1e-5)
    records = sorted(json.loads(p.read_text())["runtime"] for p in (tmp_path / "embeddings").glob("*.json"))
    assert records == ["onnx", "torch"]  # two entries: each runtime its own
    assert embeddings.encode(tiny_st_model, texts, precision="bf16", **options) is not None  # auto: torch
    assert sorted(json.loads(p.read_text())["runtime"] for p in (tmp_path / "embeddings").glob("*.json")) == [
        "onnx", "torch", "torch"]
    monkeypatch.setenv("ENCODEREC_RUNTIME", "onnx-int8")
    embeddings.encode(tiny_st_model, texts, precision="bf16", **options)  # a runtime asked for runs fp32
    assert len(list((tmp_path / "embeddings").glob("*.json"))) == 4
    monkeypatch.setenv("ENCODEREC_RUNTIME", "tensorrt")
    with pytest.raises(EncoderecError, match=r"runtime 'tensorrt' \(argument or \$ENCODEREC_RUNTIME\): expected auto "
                                             "or one of torch, onnx, onnx-int8"):
        embeddings.encode(tiny_st_model, ["new"], **options)


def test_auto_is_torch_the_faster_where_measured(monkeypatch):
    monkeypatch.delenv("ENCODEREC_RUNTIME", raising=False)
    assert {runtime.resolve_runtime(None, p, d) for p in ("fp32", "bf16") for d in ("cpu", "cuda:0")} == {"torch"}
    assert runtime.resolve_runtime("onnx", "bf16", "cpu") == "onnx"
    monkeypatch.setenv("ENCODEREC_RUNTIME", "onnx-int8")
    assert runtime.resolve_runtime(None, "fp32", "cpu") == "onnx-int8"
