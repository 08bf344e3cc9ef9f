"""The archive: results that outlive the machine that computed them.

The caches live on one machine, and the paper profile's work takes longer than any one machine is kept (hours of
2-core CPUs, a GPU borrowed for minutes). With an `archive` folder (the paper profile's `archive: true`:
results/<profile>/runs/, committed with the results), every finished unit of work is also written there as one
gzip-compressed JSON file, and read from there before anything is computed (no encoder, embedding or model is needed
for it). The units (all in `runs.py`): 01_encoderec's models, as their training records (`encoderec_model`),
02_retrieval's Table 1 ranks of one encoder on one dataset (`retrieval_ranks`), 03_semantic_ids's tokenizations and
maps (`tokenization`, `item_map`), and the recommender runs of 04_unisrec and 05_tiger (`execute`, `fit_all`).
Every unit is obtained through `policy.Policy.obtain`: read from the archive, else from the caches or computed;
`report --read-only` computes none of them and lists what neither holds as pending.

    path = archive.path(folder, "tiger", "Scientific", "EncodeRec-22M-dedup-seed0", identity)
    record = archive.read(folder, "tiger", "Scientific", "EncodeRec-22M-dedup-seed0", identity)  # or None
    archive.write(folder, "tiger", "Scientific", "EncodeRec-22M-dedup-seed0", identity, record)

An entry is found by its `identity`, what makes it the same unit of work on another machine: its settings, hashes
of its data, its encoder (`portable_encoder`: a base encoder's name, or the recipe folder of an EncodeRec model,
named by the fingerprint of its fine-tuning config) with a hash of the texts it encodes, and the result versions
of what computes it (`runs.versions`: each computing module's RESULT_VERSION, bumped only when its outputs change,
which the golden tests in tests/test_golden.py enforce; so moving a file or a speed-up that changes no number keeps
every entry). Like the embedding cache, it names an encoder by what it is, not by the
code that runs it; unlike the caches, it is not keyed on the bytes of the embeddings nor on the device or precision:
the archive holds the result as it was computed, where it was computed (its provenance says on what), for every
machine to read. The file name, <folder>/<kind>/<dataset>/<name>-<key>.json.gz, is one a person can read, and the key
(a hash of the identity) tells apart two entries that differ in their settings or result versions.

Under the report runner each lookup is logged as a read of the entry (its hash, or its absence), like a results
file: a notebook that found an entry missing re-runs once another process archives it, and one that archived it
does not.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from pathlib import Path
from typing import Any

from encoderec.core.errors import EncoderecError
from encoderec.core.io import sha256_text, write_bytes
from encoderec.pipeline import provenance


def key(identity: dict[str, Any]) -> str:
    return sha256_text(json.dumps(identity, sort_keys=True))


def path(folder: str | Path, kind: str, dataset: str, name: str, identity: dict[str, Any]) -> Path:
    """<folder>/<kind>/<dataset>/<name>-<first 16 hex digits of the identity's key>.json.gz."""
    return Path(folder) / kind / _safe(dataset) / f"{_safe(name)}-{key(identity)[:16]}.json.gz"


def _safe(name: str) -> str:
    # "+" kept: EncodeRec+-22M and EncodeRec-22M are two models, and a person reading the folder must tell them apart
    return re.sub(r"[^A-Za-z0-9.+]+", "-", name).strip("-")


def read(folder: str | Path, kind: str, dataset: str, name: str, identity: dict[str, Any]) -> Any | None:
    """The archived record of the unit `identity`, or None when the archive does not hold it."""
    where = path(folder, kind, dataset, name, identity)
    stored = where.read_bytes() if where.is_file() else None
    provenance.log_read(where, stored)  # a notebook that found it missing re-runs once another process archives it
    if stored is None:
        return None
    entry = _entry(where, stored)
    return entry["record"] if entry.get("identity") == identity else None


def write(folder: str | Path, kind: str, dataset: str, name: str, identity: dict[str, Any], record: Any,
          code: dict[str, Any] | None = None) -> Path:
    """Write a finished unit's record atomically, with the commit that computed it (`code`, as `provenance.git_commit`
    gave it when the work started; by default HEAD now), where and when it was archived."""
    where = path(folder, kind, dataset, name, identity)
    entry = {"identity": identity, "record": record,
             "provenance": {"git": code or provenance.git_commit(), "machine": provenance.machine(),
                            "archived_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}}
    # keys in the record's own order: a notebook's table takes its columns from it, archived or not
    stored = gzip.compress(json.dumps(entry).encode("utf-8"), mtime=0)
    write_bytes(where, stored)
    provenance.log_read(where, stored)  # written by this notebook: no reason to run it again
    return where


def entries(folder: str | Path, kind: str, dataset: str, name: str) -> list[tuple[dict[str, Any], Any]]:
    """(identity, record) of every entry named `name` (any key) under <folder>/<kind>/<dataset>/, in file name order:
    for a lookup by part of an identity (an EncodeRec model of the same recipe, trained in another precision)."""
    found = []
    for where in sorted((Path(folder) / kind / _safe(dataset)).glob(f"{_safe(name)}-" + "[0-9a-f]" * 16 + ".json.gz")):
        stored = where.read_bytes()
        provenance.log_read(where, stored)
        entry = _entry(where, stored)
        found.append((entry["identity"], entry["record"]))
    return found


def _entry(where: Path, stored: bytes) -> dict[str, Any]:
    try:
        return json.loads(gzip.decompress(stored))
    except (OSError, EOFError, ValueError) as e:
        raise EncoderecError(f"{where}: not a gzip-compressed JSON archive entry ({e}); delete it and compute it "
                             f"again (python -m encoderec report or fit)") from None


def portable_encoder(encoder: str) -> str:
    """An encoder as every machine names it: a model that 01_encoderec fine-tuned (<cache>/encoderec/<name>-<config
    fingerprint>/final) by its path from "encoderec/" on, wherever the cache is; any other name as it is."""
    parts = Path(encoder).parts
    folders = [i for i, part in enumerate(parts[:-2]) if part == "encoderec"]
    return "/".join(parts[folders[-1]:]) if folders else encoder  # the last: a clone may be named encoderec too


def text_identity(encoder: str, texts: list[str]) -> dict[str, str]:
    """The part of an identity that says which embeddings a unit starts from: the encoder and the texts it encodes."""
    return {"encoder": portable_encoder(encoder), "texts": sha256_text(*texts)}
