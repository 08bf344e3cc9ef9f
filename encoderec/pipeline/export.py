"""The backbone outside the notebooks: a catalogue's item embeddings and semantic-ID table as Parquet files.

    python -m encoderec export embeddings Scientific --model EncodeRec-22M --out scientific_items.parquet
    python -m encoderec export semantic-ids Scientific --model EncodeRec-22M --out scientific_ids.parquet

    import pandas as pd, numpy as np
    items = pd.read_parquet("scientific_items.parquet")      # item, title, [asin,] embedding
    x = np.stack(items["embedding"])                          # (items, dim) float32, unit rows
    ids = pd.read_parquet("scientific_ids.parquet")           # item, title, [asin,] c0 c1 c2, dedup, unique_last
    export.provenance("scientific_ids.parquet")               # what made the file (a dict)

Any catalogue in the data layout works (`python -m encoderec data convert` makes one from Amazon's files). The item
text is `TextView().full`, what UniSRec and TIGER read in the notebooks: title, description, brand and categories.
`--model` is what the notebooks accept: a base encoder's alias, a folder, a Hugging Face id, a baseline
("tfidf-svd", "random"), or the name of a model that 01_encoderec trained for `--profile` (its seed `--seed`).

The embedding table has one row per item: `item` (the layout's index), `title`, `asin` when the catalogue has one,
and `embedding`, a fixed-size list of float32 (pyarrow's FixedSizeList, numpy arrays in pandas): unit length, but
for TF-IDF's zero vector of an empty text. The
semantic-ID table has the tokenizer's codes `c0 ... c{levels-1}`, TIGER's 4th code `dedup` (numbering the items that
share their codes: (c0, ..., dedup) is unique) and `unique_last`, the collision-free last code of the Hungarian
re-assignment (`semantic_ids.collision_free_last_level`: (c0, ..., c{levels-2}, unique_last) is unique; null when a
prefix group outgrows the codebook). The tokenizer is fitted on the items of the training sequences (leave-one-out,
as in 03_semantic_ids) or on every item of a catalogue without interactions.

Both files carry their provenance in the Parquet schema's metadata (key "encoderec", JSON): the dataset and a hash
of its item texts, the model (what was asked for, what it resolved to, its fingerprint), the text view, the
tokenizer and its config, encoderec's version and commit. Written atomically; the encoding and the tokenizer's fit
come from (and go to) the same caches as the notebooks'.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from encoderec.core.errors import EncoderecError
from encoderec.core.io import atomic_path, sha256_text
from encoderec.data import dataset as data
from encoderec.models import embeddings, semantic_ids
from encoderec.models.rqvae import RQVAEConfig
from encoderec.pipeline import registry
from encoderec.pipeline.provenance import git_commit

METADATA_KEY = b"encoderec"
VIEW = "full"


def item_embeddings(dataset: data.Dataset, model: str, profile: str = "default", seed: int = 0,
                    device: str | None = None, progress: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """(the catalogue's item embeddings, their provenance)."""
    if not dataset.items:
        raise EncoderecError(f"{dataset.name}: the catalogue has no items; there is nothing to export")
    encoder, model_seed = registry.of_profile(profile).encoder(model, seed)
    if model_seed is not None and not Path(encoder).is_dir():
        raise EncoderecError(f"--model {model}: results/{profile}/encoderec_models.json names {encoder}, which this "
                             f"machine does not have; train it with python -m encoderec report --profile {profile} "
                             f"--only 01_encoderec, or give a model folder")
    texts = data.TextView().full(dataset)
    x = embeddings.encode(encoder, texts, view=f"{dataset.name}:items", device=device, progress=progress)
    fingerprint = None if encoder in embeddings.BASELINES else embeddings.model_fingerprint(encoder)
    return x, {"dataset": {"name": dataset.name, "items": len(dataset.items), "texts_sha256": sha256_text(*texts),
                           "path": str(dataset.path) if dataset.path else None},
               "model": {"name": model, "resolved": str(encoder), "seed": model_seed, "fingerprint": fingerprint},
               "view": VIEW, "dim": int(x.shape[1])}


def export_embeddings(dataset: data.Dataset, model: str, out: str | os.PathLike, **options: Any) -> Path:
    """Write the embedding table of `dataset` (see the module docstring) to `out`."""
    x, info = item_embeddings(dataset, model, **options)
    column = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).reshape(-1)), x.shape[1])
    return _write(out, {**_item_columns(dataset), "embedding": column}, info)


def export_semantic_ids(dataset: data.Dataset, model: str, out: str | os.PathLike, tokenizer: str = "rqvae",
                        config: RQVAEConfig | None = None, **options: Any) -> Path:
    """Fit `tokenizer` on the item embeddings of `dataset` and write its semantic-ID table to `out`."""
    config = config or RQVAEConfig(seed=options.get("seed", 0))
    x, info = item_embeddings(dataset, model, **options)
    fit_items = data.training_items(dataset) if dataset.has_interactions else list(range(len(dataset.items)))
    tokenized = semantic_ids.tokenize(x, fit_items, tokenizer, config, progress=options.get("progress", True))
    codes = tokenized.codes
    columns = {f"c{level}": pa.array(codes[:, level], pa.int32()) for level in range(codes.shape[1])}
    columns["dedup"] = pa.array(semantic_ids.with_dedup_code(codes)[:, -1], pa.int32())
    unique_last = None if tokenized.unique is None else tokenized.unique[:, -1]
    columns["unique_last"] = pa.array(unique_last if unique_last is not None else [None] * len(codes), pa.int32())
    shared = len(codes) - len(np.unique(codes, axis=0))
    info |= {"tokenizer": {k: v for k, v in tokenized.info.items() if k != "history"},
             "fit_items": "training items (leave-one-out)" if dataset.has_interactions else "all items",
             "items_sharing_an_id": int(shared)}
    return _write(out, {**_item_columns(dataset), **columns}, info)


def provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance an exported file carries."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid) as e:
        raise EncoderecError(f"{path}: not a Parquet file ({e})") from None
    if METADATA_KEY not in metadata:
        raise EncoderecError(f"{path}: no encoderec provenance; was it written by python -m encoderec export?")
    return json.loads(metadata[METADATA_KEY])


def _item_columns(dataset: data.Dataset) -> dict[str, pa.Array]:
    columns = {"item": pa.array(np.arange(len(dataset.items)), pa.int64()),
               "title": pa.array([data.clean_text(item.get("title")) for item in dataset.items], pa.string())}
    if any("asin" in item for item in dataset.items):
        columns["asin"] = pa.array([item.get("asin") for item in dataset.items], pa.string())
    return columns


def _write(out: str | os.PathLike, columns: dict[str, pa.Array], info: dict[str, Any]) -> Path:
    from encoderec import __version__

    info = info | {"encoderec": __version__, "git": git_commit()}
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(info, sort_keys=True)})
    out = Path(out)
    if out.is_dir():
        raise EncoderecError(f"--out {out}: is a folder; give a file name such as {out / 'items.parquet'}")
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return out
