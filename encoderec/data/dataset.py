"""Amazon review datasets in the LC-Rec layout: loading, validation, statistics, splits, text views.

A dataset NAME lives in `<data dir>/NAME/`:

    NAME.item.json   {"<item idx>": {"title": str, "description": str, "brand": str, "categories": str, ...}}
    NAME.inter.json  {"<user idx>": [item idx, ...]}          (chronological; absent for metadata-only sets)
    NAME.time.json   {"<user idx>": [unix seconds, ...]}      (optional, parallel to NAME.inter.json)

Indices are consecutive integers from 0, stored as strings. Every check below raises an
EncoderecError that names the file, the key and what to do about it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.core.io import read_json, write_json

MIN_SEQUENCE_LENGTH = 3  # leave-one-out needs one training item, one validation and one test item


@dataclass
class Dataset:
    name: str
    items: list[dict[str, Any]]
    sequences: list[list[int]] | None = None
    timestamps: list[list[int]] | None = None
    path: Path | None = field(default=None, repr=False)

    @property
    def has_interactions(self) -> bool:
        return self.sequences is not None

    def texts(self, fields: Sequence[str], separator: str = " | ") -> list[str]:
        return [item_text(item, fields, separator) for item in self.items]


# --------------------------------------------------------------------------- text views

_WHITESPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]{0,200}>")


def clean_text(value: Any) -> str:
    """Unescape HTML entities (twice: the data holds `&amp;#x2019;`), drop tags, normalise whitespace."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(filter(None, (clean_text(v) for v in value)))
    text = html.unescape(html.unescape(str(value)))
    return _WHITESPACE.sub(" ", _TAG.sub(" ", text)).strip()


def item_text(item: dict[str, Any], fields: Sequence[str], separator: str = " | ") -> str:
    """The fields of one item, cleaned, empty ones skipped, joined in the order given."""
    return separator.join(filter(None, (clean_text(item.get(f)) for f in fields)))


@dataclass(frozen=True)
class TextView:
    """Which item fields form the query (title) and the document (description and attributes)."""

    query_fields: tuple[str, ...] = ("title",)
    document_fields: tuple[str, ...] = ("description", "features", "brand", "categories")
    separator: str = " | "

    def queries(self, dataset: Dataset) -> list[str]:
        return dataset.texts(self.query_fields, self.separator)

    def documents(self, dataset: Dataset) -> list[str]:
        return dataset.texts(self.document_fields, self.separator)

    def full(self, dataset: Dataset) -> list[str]:
        """Title followed by the document: the text an item embedding is computed from."""
        return dataset.texts(self.query_fields + self.document_fields, self.separator)


# --------------------------------------------------------------------------- loading

def dataset_files(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    folder = paths.data_dir(data_dir) / name
    return {kind: folder / f"{name}.{kind}.json" for kind in ("item", "inter", "time")}


def available_datasets(data_dir: str | os.PathLike | None = None) -> list[str]:
    root = paths.data_dir(data_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}.item.json").is_file())


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Read and validate dataset `name` from the data directory (see encoderec.core.paths.data_dir)."""
    files = dataset_files(name, data_dir)
    if not files["item"].is_file():
        known = ", ".join(available_datasets(data_dir)) or "none"
        raise EncoderecError(
            f"{files['item']}: file not found; datasets in {files['item'].parent.parent}: {known} "
            "(set --data-dir or ENCODEREC_DATA, or create it with `python -m encoderec data convert`)"
        )
    items = _parse_items(files["item"], read_json(files["item"]))
    sequences = timestamps = None
    if files["inter"].is_file():
        sequences = _parse_sequences(files["inter"], read_json(files["inter"]), len(items))
    if files["time"].is_file():
        if sequences is None:
            raise EncoderecError(f"{files['time']}: timestamps without {files['inter'].name}; add the interactions or remove this file")
        timestamps = _parse_timestamps(files["time"], read_json(files["time"]), sequences)
    return Dataset(name, items, sequences, timestamps, path=files["item"].parent)


def _consecutive_ids(path: Path, obj: Any, what: str) -> list[Any]:
    if not isinstance(obj, dict):
        raise EncoderecError(f"{path}: expected a JSON object mapping {what} idx to values, got {type(obj).__name__}")
    values: list[Any] = [None] * len(obj)
    for key, value in obj.items():
        if not key.isdigit() or int(key) >= len(obj):
            raise EncoderecError(f"{path}: key {key!r} is not a {what} idx; ids must be the integers 0..{len(obj) - 1} as strings")
        values[int(key)] = value
    return values


def _parse_items(path: Path, obj: Any) -> list[dict[str, Any]]:
    items = _consecutive_ids(path, obj, "item")
    for idx, item in enumerate(items):
        if not isinstance(item, dict):
            raise EncoderecError(f"{path}: item {str(idx)!r} is {type(item).__name__}, expected an object with a 'title'")
        if "title" not in item:
            raise EncoderecError(f"{path}: item {str(idx)!r} has no 'title'; every item needs one (it is the retrieval query)")
    return items


def _parse_sequences(path: Path, obj: Any, n_items: int) -> list[list[int]]:
    sequences = _consecutive_ids(path, obj, "user")
    for user, seq in enumerate(sequences):
        if not isinstance(seq, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in seq):
            raise EncoderecError(f"{path}: user {str(user)!r} must map to a list of integer item ids")
        if len(seq) < MIN_SEQUENCE_LENGTH:
            raise EncoderecError(
                f"{path}: user {str(user)!r} has {len(seq)} interactions; at least {MIN_SEQUENCE_LENGTH} are needed "
                "(drop short users, e.g. with `data convert --min-count 5`)"
            )
        bad = next((i for i in seq if not 0 <= i < n_items), None)
        if bad is not None:
            raise EncoderecError(
                f"{path}: user {str(user)!r} refers to item {bad}, which is not in the item file "
                f"(ids 0..{n_items - 1}); regenerate both files together"
            )
    return sequences


def _parse_timestamps(path: Path, obj: Any, sequences: list[list[int]]) -> list[list[int]]:
    timestamps = _consecutive_ids(path, obj, "user")
    if len(timestamps) != len(sequences):
        raise EncoderecError(f"{path}: {len(timestamps)} users but the interaction file has {len(sequences)}")
    for user, (ts, seq) in enumerate(zip(timestamps, sequences)):
        if not isinstance(ts, list) or len(ts) != len(seq):
            raise EncoderecError(f"{path}: user {str(user)!r} needs one timestamp per interaction ({len(seq)})")
        if any(b < a for a, b in zip(ts, ts[1:])):
            raise EncoderecError(f"{path}: user {str(user)!r} has timestamps out of order; sequences must be chronological")
    return timestamps


def save_dataset(dataset: Dataset, data_dir: str | os.PathLike) -> Path:
    """Write `dataset` in the layout above (each file atomically); returns its folder."""
    files = dataset_files(dataset.name, data_dir)
    write_json(files["item"], {str(i): item for i, item in enumerate(dataset.items)})
    for kind, rows in (("inter", dataset.sequences), ("time", dataset.timestamps)):
        if rows is not None:
            write_json(files[kind], {str(u): row for u, row in enumerate(rows)}, indent=None)
    return files["item"].parent


# --------------------------------------------------------------------------- statistics

def stats(dataset: Dataset) -> dict[str, Any]:
    """The numbers of the data README's table, computed."""
    seqs = dataset.sequences or []
    interactions = sum(map(len, seqs))
    pairs = {(clean_text(i.get("title")), clean_text(i.get("description"))) for i in dataset.items}
    raw_pairs = {(i.get("title", ""), i.get("description", "")) for i in dataset.items}
    return {
        "dataset": dataset.name,
        "items": len(dataset.items),
        "users": len(seqs) if dataset.has_interactions else None,
        "interactions": interactions if dataset.has_interactions else None,
        "mean_seq_len": round(interactions / len(seqs), 2) if seqs else None,
        "items_with_description": sum(1 for i in dataset.items if clean_text(i.get("description"))),
        "duplicate_texts": len(dataset.items) - len(raw_pairs),
        "duplicate_texts_normalised": len(dataset.items) - len(pairs),
        "has_timestamps": dataset.timestamps is not None,
    }


# --------------------------------------------------------------------------- splits

class Example(NamedTuple):
    """One evaluation case: the user's history (oldest first) and the item to predict."""

    user: int
    history: list[int]
    target: int


class Split(NamedTuple):
    train: list[list[int]]  # per user, the training part of the sequence (users without any are dropped)
    valid: list[Example]
    test: list[Example]


def leave_one_out(sequences: Sequence[Sequence[int]]) -> Split:
    """Last item = test, second to last = validation, the rest = training. An item may occur more than once in a
    sequence (a repeat purchase): it stays where it is, and may be a target that also stands in its history."""
    train, valid, test = [], [], []
    for user, seq in enumerate(sequences):
        seq = list(seq)
        if len(seq) < MIN_SEQUENCE_LENGTH:
            raise EncoderecError(f"user {user} has {len(seq)} interactions; leave-one-out needs at least {MIN_SEQUENCE_LENGTH}")
        train.append(seq[:-2])
        valid.append(Example(user, seq[:-2], seq[-2]))
        test.append(Example(user, seq[:-1], seq[-1]))
    return Split(train, valid, test)


BLAIR_VALID_START = "2021-08-11"
BLAIR_TEST_START = "2022-07-16"


def _unix(date: str | int) -> int:
    if isinstance(date, int):
        return date
    return int(dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC).timestamp())


def timestamp_split(
    sequences: Sequence[Sequence[int]],
    timestamps: Sequence[Sequence[int]] | None,
    valid_start: str | int = BLAIR_VALID_START,
    test_start: str | int = BLAIR_TEST_START,
) -> Split:
    """BLaIR's global split: interactions before `valid_start` train, then validation, from `test_start` test.

    Every validation or test interaction is one example whose history is all of the user's earlier items.
    """
    if timestamps is None:
        raise EncoderecError("the timestamp split needs NAME.time.json; this dataset has none, use leave-one-out")
    t_valid, t_test = _unix(valid_start), _unix(test_start)
    if t_test < t_valid:
        raise EncoderecError(f"timestamp split: test start {test_start} is before validation start {valid_start}")
    train, valid, test = [], [], []
    for user, (seq, ts) in enumerate(zip(sequences, timestamps)):
        train_part = [i for i, t in zip(seq, ts) if t < t_valid]
        if train_part:
            train.append(train_part)
        for pos, (item, t) in enumerate(zip(seq, ts)):
            if pos and t >= t_valid:
                (test if t >= t_test else valid).append(Example(user, list(seq[:pos]), item))
    return Split(train, valid, test)


def split(dataset: Dataset, how: str = "leave_one_out", **kwargs: Any) -> Split:
    if not dataset.has_interactions:
        raise EncoderecError(f"{dataset.name} is metadata only (no {dataset.name}.inter.json): it cannot be split")
    if how == "leave_one_out":
        return leave_one_out(dataset.sequences)
    if how == "timestamp":
        return timestamp_split(dataset.sequences, dataset.timestamps, **kwargs)
    raise EncoderecError(f"unknown split {how!r}; use 'leave_one_out' or 'timestamp'")


def prefix_examples(train: Sequence[Sequence[int]]) -> list[Example]:
    """Every prefix of every training sequence: (the items before position t, the item at t), t >= 1."""
    return [Example(user, list(seq[:t]), seq[t]) for user, seq in enumerate(train) for t in range(1, len(seq))]


def check_example_items(examples: Sequence[Example], n_items: int, what: str = "items") -> None:
    """An EncoderecError naming the first example (user) whose history or target is not an item 0..n_items-1."""
    for e in examples:
        if not 0 <= e.target < n_items or any(not 0 <= i < n_items for i in e.history):
            raise EncoderecError(
                f"user {e.user}: an item id outside the {n_items} {what}, i.e. outside 0..{n_items - 1}"
            )


def right_padded(rows: Sequence[Sequence[int]], fill: int) -> np.ndarray:
    """(len(rows), longest row) int64 array: each row left-aligned, the rest `fill` (the batches of UniSRec and
    TIGER), in one vectorised copy."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    out = np.full((len(rows), int(lengths.max(initial=0))), fill, dtype=np.int64)
    out[np.arange(out.shape[1]) < lengths[:, None]] = np.fromiter(itertools.chain.from_iterable(rows), np.int64,
                                                                  count=int(lengths.sum()))
    return out


def length_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Index batches of examples of similar length, so a batch is padded to its own longest example.

    With `rng`: shuffled, sorted by length inside windows of 32 batches, and the batches shuffled (training);
    without: in length order (evaluation)."""
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    window = 32 * batch_size
    order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                            for chunk in np.split(order, range(window, len(order), window))])
    parts = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [parts[i] for i in rng.permutation(len(parts))]


def sample_users(dataset: Dataset, users: int, seed: int = 0) -> Dataset:
    """A seeded sample of `users` users with only the items they interacted with, renumbered 0..n-1 in their
    original order (a smaller catalogue for quick runs); the whole dataset when it has no more users."""
    if not dataset.has_interactions:
        raise EncoderecError(f"{dataset.name} is metadata only: it has no users to sample")
    if users >= len(dataset.sequences):
        return dataset
    chosen = np.sort(np.random.default_rng(seed).choice(len(dataset.sequences), users, replace=False))
    kept = sorted({item for u in chosen for item in dataset.sequences[u]})
    new_id = {item: i for i, item in enumerate(kept)}
    return Dataset(
        dataset.name,
        [dataset.items[i] for i in kept],
        [[new_id[i] for i in dataset.sequences[u]] for u in chosen],
        None if dataset.timestamps is None else [dataset.timestamps[u] for u in chosen],
    )


def popular_items_only(dataset: Dataset, items: int) -> Dataset:
    """The `items` most interacted-with items (ties by id) and the users who keep at least MIN_SEQUENCE_LENGTH
    interactions with them, renumbered in their original order: a small, dense catalogue on which a recommender
    learns something measurable in a few epochs (smoke tests); the whole dataset when it has no more items."""
    if not dataset.has_interactions:
        raise EncoderecError(f"{dataset.name} is metadata only: it has no interactions to rank items by")
    if items >= len(dataset.items):
        return dataset
    counts = np.bincount([i for seq in dataset.sequences for i in seq], minlength=len(dataset.items))
    kept = np.sort(np.argsort(-counts, kind="stable")[:items])
    new_id = {int(item): n for n, item in enumerate(kept)}
    users = [[p for p, i in enumerate(seq) if i in new_id] for seq in dataset.sequences]
    users = [(u, positions) for u, positions in enumerate(users) if len(positions) >= MIN_SEQUENCE_LENGTH]
    if not users:
        raise EncoderecError(f"{dataset.name}: no user has {MIN_SEQUENCE_LENGTH} interactions with the {items} most "
                             "popular items; keep more items")
    return Dataset(
        dataset.name,
        [dataset.items[i] for i in kept],
        [[new_id[dataset.sequences[u][p]] for p in positions] for u, positions in users],
        None if dataset.timestamps is None else [[dataset.timestamps[u][p] for p in positions] for u, positions in users],
    )


def for_recommendation(name: str, data_dir: str | os.PathLike | None = None, max_items: int | None = None,
                       max_users: int | None = None) -> tuple[Dataset, Split]:
    """The dataset a recommender notebook runs on and its leave-one-out split: the whole catalogue, or for quick runs
    (smoke tests) its `max_items` most popular items (`popular_items_only`) and then a seeded sample of `max_users`
    users (`sample_users`)."""
    dataset = load_dataset(name, data_dir)
    if max_items:
        dataset = popular_items_only(dataset, max_items)
    if max_users:
        dataset = sample_users(dataset, max_users)
    return dataset, split(dataset)


def training_items(dataset: Dataset, how: str = "leave_one_out") -> list[int]:
    """The items of the split's training sequences, sorted: what a tokenizer or an item model may be fitted on
    (an item seen only as a validation or test target stays unseen)."""
    return sorted({item for seq in split(dataset, how).train for item in seq})


# --------------------------------------------------------------------------- descriptive statistics

def normalised_title(title: Any) -> str:
    """Lower-cased, cleaned, alphanumerics only: the key that finds the same product across releases."""
    return " ".join(re.findall(r"[a-z0-9]+", clean_text(title).lower()))


def category_path(value: Any) -> list[str]:
    """The levels of a comma-separated category path.

    Releases differ: Scientific writes "A,Test, Measure & Inspect,B" (levels joined by a bare comma, names holding
    ", "), Beauty writes "Beauty, Makeup, Nails". A bare comma anywhere means it is the separator.
    """
    text = clean_text(value)
    parts = re.split(r",(?=\S)", text) if re.search(r",\S", text) else text.split(", ")
    return [p.strip() for p in parts if p.strip()]


def item_popularity(dataset: Dataset) -> list[int]:
    """Interactions per item (index = item idx)."""
    counts = [0] * len(dataset.items)
    for seq in dataset.sequences or []:
        for item in seq:
            counts[item] += 1
    return counts


def gini(counts: Sequence[float]) -> float:
    """Gini coefficient of a popularity distribution: 0 = every item equally popular, 1 = one item has all."""
    values = sorted(counts)
    n, total = len(values), sum(values)
    if n == 0 or total == 0:
        return 0.0
    weighted = sum((i + 1) * v for i, v in enumerate(values))
    return (2 * weighted) / (n * total) - (n + 1) / n


def duplicate_text_groups(dataset: Dataset) -> list[list[int]]:
    """Groups of items with identical raw (title, description): no encoder can tell them apart."""
    groups: dict[tuple[str, str], list[int]] = {}
    for idx, item in enumerate(dataset.items):
        groups.setdefault((item.get("title", ""), item.get("description", "")), []).append(idx)
    return [g for g in groups.values() if len(g) > 1]


# --------------------------------------------------------------------------- held-out items

HELD_OUT_SALT = "encoderec-held-out-v1"


def is_held_out(title: Any, fraction: float, salt: str = HELD_OUT_SALT) -> bool:
    """Whether an item is held out of training, decided by a hash of its normalised title.

    The same product has the same normalised title in every dataset and release, so it is held out everywhere
    (Industrial2018 repeats many Scientific products): no held-out text can leak into training through a copy.
    Items without a usable title are never held out.
    """
    if not 0 <= fraction < 1:
        raise EncoderecError(f"held-out fraction must be in [0, 1), got {fraction}")
    key = normalised_title(title)
    if not key:
        return False
    digest = hashlib.sha256(f"{salt}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def held_out_items(dataset: Dataset, fraction: float, view: TextView | None = None) -> list[int]:
    """The dataset's held-out items usable as retrieval queries: a non-empty document, one item per title."""
    view = view or TextView()
    documents = view.documents(dataset)
    chosen, seen = [], set()
    for idx, item in enumerate(dataset.items):
        key = normalised_title(item["title"])
        if documents[idx] and key not in seen and is_held_out(item["title"], fraction):
            seen.add(key)
            chosen.append(idx)
    return chosen
