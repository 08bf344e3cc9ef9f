"""Semantic IDs as arrays of codes: making them unique, and saving them with where they came from.

`codes` is an (items, levels) integer array, row i the semantic ID of item i (from encoderec.models.rqvae). Two ways to
give items that share an ID distinct ones:

- `with_dedup_code` (TIGER): append a code numbering the items that share the same codes, 0, 1, 2, ... in item
  order. Every ID becomes unique at the price of one more level, and the first item of every group keeps code 0.
- `collision_free_last_level`: keep `levels` codes and instead re-assign the last code inside each group of items
  sharing the first levels - 1 codes, so that they differ (a balanced assignment, below).

`save_ids` / `load_ids` keep a table of IDs as JSON: {"columns": ["item", "c0", ...], "rows": [[item, c0, ...]],
"provenance": {...}}, written atomically.

`tokenize(embeddings, fit_items, "rqvae" | "rkmeans", config)` is the whole pipeline for one catalogue: fit the
tokenizer on the training items' embeddings, assign every item its codes, try the collision-free last level, and
keep the result in `<cache dir>/semantic_ids/` so a re-run (or the TIGER notebook) reuses it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.core.io import file_lock, read_json, sha256_array, sha256_text, write_json
from encoderec.core.precision import default_device
from encoderec.models.rqvae import RQVAE, ResidualKMeans, RQVAEConfig, check_embeddings


def check_codes(codes: Any, what: str = "codes") -> np.ndarray:
    """`codes` as an (n, levels) int64 array of non-negative codes, or an EncoderecError."""
    array = np.asarray(codes)
    if array.ndim != 2 or array.shape[1] == 0:
        raise EncoderecError(f"{what}: expected an (items, levels) array of codes, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise EncoderecError(f"{what}: expected integer codes, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise EncoderecError(f"{what}: codes must be >= 0, found {array.min()}")
    return array


def group_ids(codes: np.ndarray) -> np.ndarray:
    """For every row, the index of its distinct row in np.unique order (rows equal <=> same group)."""
    if codes.shape[0] == 0 or codes.shape[1] == 0:  # no items, or no codes: everything in one group
        return np.zeros(len(codes), dtype=np.int64)
    return np.unique(codes, axis=0, return_inverse=True)[1].reshape(-1)


def with_dedup_code(codes: Any) -> np.ndarray:
    """(n, levels + 1): `codes` with a last column numbering the items of each ID 0, 1, 2, ... in item order."""
    codes = check_codes(codes)
    if len(codes) == 0:
        return np.zeros((0, codes.shape[1] + 1), dtype=np.int64)
    groups = group_ids(codes)
    order = np.argsort(groups, kind="stable")  # each group's items together, in item order
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    position = np.arange(len(codes)) - np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    extra = np.empty(len(codes), dtype=np.int64)
    extra[order] = position
    return np.column_stack([codes, extra])


def collision_free_last_level(codes: Any, distances: Any) -> np.ndarray:
    """`codes` with the last level re-assigned inside every prefix group that holds a collision, so IDs are unique.

    A prefix group is the set of items sharing the first levels - 1 codes. Within a group of g items that holds two
    equal IDs, the items get g distinct last-level codes minimising sum_i distances[i, code_i] (the Hungarian
    algorithm on the g x codebook_size block of `distances`); groups without a collision are left as they are, as
    are the first levels - 1 codes of every item. `distances[i, k]` is item i's distance to last-level code k,
    e.g. RQVAE.last_level_distances(embeddings), which gives the argmin assignment `codes` was made with.
    A group larger than codebook_size cannot be made distinct: that raises an EncoderecError.
    """
    codes = check_codes(codes)
    distances = np.asarray(distances, dtype=np.float64)
    if distances.ndim != 2 or len(distances) != len(codes):
        raise EncoderecError(
            f"distances: expected one row per item ({len(codes)} x codebook_size), got shape {distances.shape}"
        )
    codebook_size = distances.shape[1]
    if codes.size and codes[:, -1].max() >= codebook_size:
        raise EncoderecError(
            f"codes: last-level code {codes[:, -1].max()} is outside the {codebook_size} distance columns"
        )
    out = codes.copy()
    prefix_groups = group_ids(codes[:, :-1])
    full_groups = group_ids(codes)
    order = np.argsort(prefix_groups, kind="stable")
    for members in np.split(order, np.flatnonzero(np.diff(prefix_groups[order])) + 1):
        if len(np.unique(full_groups[members])) == len(members):
            continue  # no two items of this prefix share a last code
        if len(members) > codebook_size:
            prefix = codes[members[0], :-1].tolist()
            raise EncoderecError(
                f"{len(members)} items share the prefix {prefix}, more than the {codebook_size} last-level codes: "
                "they cannot all get distinct IDs at this depth; use with_dedup_code or a larger codebook"
            )
        rows, columns = linear_sum_assignment(distances[members])
        out[members[rows], -1] = columns
    return out


# The version of what this module computes: part of the key of every cached or archived result of it. Bump it
# when a change moves its outputs (tests/test_golden.py fails until you do and re-record); a change that
# moves nothing (a refactor, a docstring, a speed-up with the same numbers) keeps it, and the archive with it.
RESULT_VERSION = 1

ID_VARIANTS = ("dedup", "unique", "shared")


def item_ids(codes: Any, variant: str, unique: Any = None) -> np.ndarray:
    """The IDs TIGER generates, from an RQ-VAE's codes: "dedup", TIGER's own (a 4th code numbering the items that
    share their codes, `with_dedup_code`); "unique", the codes with `unique`'s collision-free last level
    (`collision_free_last_level`: as many levels, no collision, the last code of some colliding items moved to a
    free one); or "shared" (the codes as they are; items that collide share an ID)."""
    if variant == "dedup":
        return with_dedup_code(codes)
    if variant == "unique":
        if unique is None:
            raise EncoderecError("id_variants: 'unique' needs the collision-free last level, which this tokenization "
                                 "does not have (a prefix group holds more items than the codebook has codes); use "
                                 "dedup, or a larger codebook_size")
        return check_codes(unique)
    if variant == "shared":
        return check_codes(codes)
    raise EncoderecError(f"id_variants: unknown {variant!r}; use one of {', '.join(ID_VARIANTS)}")


# --------------------------------------------------------------------------- files


class SemanticIDs(NamedTuple):
    codes: np.ndarray  # (items, levels), row i = item i
    provenance: dict[str, Any]


def save_ids(path: str | os.PathLike, codes: Any, provenance: dict[str, Any]) -> None:
    """Write the ID table of items 0..n-1 atomically, with `provenance` (what produced it: model, data, config)."""
    codes = check_codes(codes)
    if not isinstance(provenance, dict):
        raise EncoderecError(f"provenance: expected a dict, got {type(provenance).__name__}")
    columns = ["item", *(f"c{level}" for level in range(codes.shape[1]))]
    rows = np.column_stack([np.arange(len(codes)), codes]).tolist()
    write_json(path, {"columns": columns, "rows": rows, "provenance": provenance}, indent=None)


def load_ids(path: str | os.PathLike) -> SemanticIDs:
    """The table save_ids wrote; errors name the file and what is wrong."""
    table = read_json(path)
    if not isinstance(table, dict) or not {"columns", "rows", "provenance"} <= set(table):
        raise EncoderecError(f"{path}: expected an object with 'columns', 'rows' and 'provenance' (see save_ids)")
    columns, rows = table["columns"], table["rows"]
    if not isinstance(columns, list) or len(columns) < 2 or columns[0] != "item":
        raise EncoderecError(f"{path}: 'columns' must be ['item', 'c0', ...], got {columns!r}")
    try:
        array = np.array(rows, dtype=np.int64).reshape(len(rows), len(columns))
    except (TypeError, ValueError):
        raise EncoderecError(f"{path}: every row must hold {len(columns)} integers ({', '.join(columns)})") from None
    if not np.array_equal(array[:, 0], np.arange(len(array))):
        raise EncoderecError(f"{path}: rows must list items 0..{len(array) - 1} in order")
    return SemanticIDs(check_codes(array[:, 1:], what=str(path)), table["provenance"])


# --------------------------------------------------------------------------- the pipeline for one catalogue

TOKENIZERS = ("rqvae", "rkmeans")


def make_tokenizer(kind: str, config: RQVAEConfig) -> RQVAE | ResidualKMeans:
    """An unfitted tokenizer: the RQ-VAE, or residual k-means with the same levels, codebook size and seed."""
    if kind == "rqvae":
        return RQVAE(config)
    if kind == "rkmeans":
        return ResidualKMeans(levels=config.levels, codebook_size=config.codebook_size, seed=config.seed)
    raise EncoderecError(f"tokenizer {kind!r}: expected one of {', '.join(TOKENIZERS)}")


class Tokenized(NamedTuple):
    codes: np.ndarray  # (items, levels): each item's nearest codes
    unique: np.ndarray | None  # collision_free_last_level(codes); None when a prefix group outgrows the codebook
    info: dict[str, Any]  # tokenizer, config, fit items, seconds, reconstruction error, training history


def tokenize(
    embeddings: Any,
    fit_items: Any,
    kind: str = "rqvae",
    config: RQVAEConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    read_only: bool = False,
) -> Tokenized | None:
    """Fit a `kind` tokenizer on embeddings[fit_items], then give every row of `embeddings` its semantic ID
    (with `read_only`, only read it: None when it is not in the cache).

    Cached in <cache dir>/semantic_ids/<key>.json (codes) and <key>.unique.json (collision-free last level), the
    key hashing RESULT_VERSION, the embeddings, the fit items, the tokenizer, its
    config and the device, so a re-run is a read and a change to the code a new fit.
    """
    config = config or RQVAEConfig()
    x = check_embeddings(embeddings, what="tokenize embeddings")
    fit_items = np.asarray(fit_items, dtype=np.int64)
    if fit_items.ndim != 1 or not len(fit_items) or fit_items.min() < 0 or fit_items.max() >= len(x):
        raise EncoderecError(f"fit_items: expected item indices in [0, {len(x)}), got {len(fit_items)} of them")
    settings_key = {**dataclasses.asdict(config), "hidden_dims": list(config.hidden_dims),
                    "device": config.device or default_device()}  # as it reads back from JSON
    key = sha256_text(f"semantic_ids result version {RESULT_VERSION}", kind, repr(sorted(settings_key.items())),
                      sha256_array(x), sha256_array(fit_items))
    folder = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    path, unique_path = folder / "semantic_ids" / f"{key}.json", folder / "semantic_ids" / f"{key}.unique.json"
    if path.exists():
        return _load_tokenized(path, unique_path)
    if read_only:
        return None
    with file_lock(path.with_name(f"{key}.lock"), waiting=f"{path.name}: another run is fitting it; waiting"):
        if path.exists():
            return _load_tokenized(path, unique_path)
        return _fit_tokenizer(x, fit_items, kind, config, settings_key, path, unique_path, progress)


def _fit_tokenizer(x: np.ndarray, fit_items: np.ndarray, kind: str, config: RQVAEConfig, settings_key: dict,
                   path: Path, unique_path: Path, progress: bool) -> Tokenized:
    tokenizer = make_tokenizer(kind, config)
    start = time.perf_counter()
    tokenizer.fit(x[fit_items], progress=progress)
    fitted = time.perf_counter()
    codes = tokenizer.transform(x)
    assigned = time.perf_counter()
    unique, hungarian = _collision_free(codes, tokenizer, x)
    info = {
        "tokenizer": kind,
        "config": settings_key,
        "items": len(x),
        "fit_items": len(fit_items),
        "fit_seconds": round(fitted - start, 2),
        "assign_seconds": round(assigned - fitted, 3),
        "reconstruction_error": tokenizer.reconstruction_error(x),
        "relative_reconstruction_error": tokenizer.reconstruction_error(x, relative=True),
        "hungarian": hungarian,
        "history": tokenizer.history,
    }
    if unique is not None:
        save_ids(unique_path, unique, info)
    save_ids(path, codes, info)  # last: its presence marks a complete entry
    return Tokenized(codes, unique, info)


def _collision_free(codes: np.ndarray, tokenizer: RQVAE | ResidualKMeans, x: np.ndarray) -> tuple[Any, dict]:
    """(collision-free codes or None, what it took: seconds, last codes changed, or why it is impossible)."""
    start = time.perf_counter()
    try:
        unique = collision_free_last_level(codes, tokenizer.last_level_distances(x))
    except EncoderecError as e:
        return None, {"possible": False, "why": str(e)}
    seconds = round(time.perf_counter() - start, 3)
    return unique, {"possible": True, "changed": int((unique != codes).any(1).sum()), "seconds": seconds}


def _load_tokenized(path: Path, unique_path: Path) -> Tokenized:
    codes, info = load_ids(path)
    unique = load_ids(unique_path).codes if info["hungarian"]["possible"] else None
    return Tokenized(codes, unique, info)
