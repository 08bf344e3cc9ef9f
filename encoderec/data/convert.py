"""Convert the official McAuley Lab Amazon releases (2014, 2018, 2023) into the data layout, with timestamps.

The pipeline of `convert_release`:

1. read every review; group them by user and sort each user's interactions by time. The sort is
   stable, so equal timestamps keep the file order; 2023 is sorted on its milliseconds, then stored in
   seconds. A repeated (user, item) pair keeps only its earliest interaction. Deduplicating before the
   k-core makes k count distinct items, so every kept user really has k different ones.
2. drop interactions whose item has no metadata with a non-empty title (the title is the query);
3. apply the iterative k-core filter (`k_core`) on users and items.

Numbering: users in order of their first line in the reviews file; items in order of first appearance
when reading those users' chronological sequences one after another (user 0's items, then the items
user 1 adds, ...). Ids thus depend only on the reviews file, not on the order of the meta file.

Item fields are kept raw (HTML entities included): cleaning is the text view's job. `categories` is one
path joined with ", ". 2014 lists several paths per item: the deepest is kept (the first of equal
depth), as the most specific; 2018 and 2023 give a single path (2023: `main_category` when empty).
"""

from __future__ import annotations

import ast
import csv
import gzip
import http.client
import json
import os
import re
import shutil
import urllib.error
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from encoderec.core.errors import EncoderecError
from encoderec.core.io import atomic_path
from encoderec.data.dataset import MIN_SEQUENCE_LENGTH, Dataset, dataset_files, load_dataset, save_dataset

BASE_URLS = {
    "2014": "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/",
    "2018": "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/",
    "2023": "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/",
}
DOWNLOAD_FILES = {  # (reviews, meta), relative to the base URL
    "2014": ("reviews_{cat}_5.json.gz", "meta_{cat}.json.gz"),
    "2018": ("categoryFilesSmall/{cat}_5.json.gz", "metaFiles2/meta_{cat}.json.gz"),
    "2023": ("review_categories/{cat}.jsonl.gz", "meta_categories/meta_{cat}.jsonl.gz"),
}
DOWNLOAD_URL_ENV = "ENCODEREC_DOWNLOAD_URL"

Row = TypeVar("Row", bound=tuple)


class Interaction(NamedTuple):
    user: str
    item: str
    time: int  # in the release's unit (2023: milliseconds) until it is saved


# --------------------------------------------------------------------------- the pipeline


def k_core(interactions: Iterable[Row], k: int) -> list[Row]:
    """The rows whose user and item both occur in at least k rows, filtered again until that holds.

    Each row is a tuple starting with (user, item); the order of the rows is kept. Removing a user can
    push one of its items below k and the reverse, hence the loop; it ends as every pass removes rows.
    """
    rows = list(interactions)
    while True:
        users = Counter(row[0] for row in rows)
        items = Counter(row[1] for row in rows)
        kept = [row for row in rows if users[row[0]] >= k and items[row[1]] >= k]
        if len(kept) == len(rows):
            return kept
        rows = kept


def convert_release(
    release: str, reviews: str | Path, meta: str | Path, name: str, data_dir: str | Path, min_count: int = 5
) -> Dataset:
    """Convert one category of an official release into `<data_dir>/<name>/` and return it, validated.

    Nothing is written before both files are parsed and filtered, so bad input leaves no files behind.
    """
    spec = _release(release)
    reviews, meta = Path(reviews), Path(meta)
    _check_inputs(min_count, reviews, meta)
    interactions = _chronological(_read_reviews(reviews, spec))
    items = _read_meta(meta, spec, {row.item for row in interactions})
    titled = [row for row in interactions if row.item in items]
    core = k_core(titled, min_count)
    _check_not_empty(reviews, meta, min_count, interactions, titled, core)
    save_dataset(_number(name, core, items, spec.time_unit), data_dir)
    return load_dataset(name, data_dir)


def _check_inputs(min_count: int, *paths: Path) -> None:
    if min_count < MIN_SEQUENCE_LENGTH:
        raise EncoderecError(
            f"--min-count {min_count} is too small: every user needs at least {MIN_SEQUENCE_LENGTH} interactions "
            f"(training, validation, test); use --min-count {MIN_SEQUENCE_LENGTH} or more"
        )
    for path in paths:
        if not path.is_file():
            raise EncoderecError(f"{path}: file not found; check the --reviews and --meta paths")


def _chronological(interactions: Iterable[Interaction]) -> list[Interaction]:
    """Users in order of first appearance, each one's interactions oldest first, repeated items dropped."""
    by_user: dict[str, list[Interaction]] = {}
    for row in interactions:
        by_user.setdefault(row.user, []).append(row)
    ordered = []
    for rows in by_user.values():
        seen = set()
        for row in sorted(rows, key=lambda r: r.time):
            if row.item not in seen:
                seen.add(row.item)
                ordered.append(row)
    return ordered


def _check_not_empty(reviews: Path, meta: Path, k: int, interactions: list, titled: list, core: list) -> None:
    if not interactions:
        raise EncoderecError(f"{reviews}: no reviews in the file; is it empty?")
    if not titled:
        raise EncoderecError(
            f"{meta}: none of the {len({r.item for r in interactions})} reviewed items has a title here; "
            "is it the meta file of the same category and release?"
        )
    if not core:
        raise EncoderecError(
            f"{reviews}: no interactions left after the {k}-core filter ({len(titled)} interactions had an item with a title); "
            "try a smaller --min-count"
        )


def _number(name: str, interactions: list[Interaction], items: dict[str, dict], time_unit: int) -> Dataset:
    """Ids as documented in the module docstring; `interactions` is grouped by user, oldest first."""
    item_ids: dict[str, int] = {}
    sequences, timestamps = [], []
    for _, group in groupby(interactions, key=lambda r: r.user):
        rows = list(group)
        sequences.append([item_ids.setdefault(r.item, len(item_ids)) for r in rows])
        timestamps.append([r.time // time_unit for r in rows])
    return Dataset(name, [items[asin] for asin in item_ids], sequences, timestamps)


# --------------------------------------------------------------------------- reading files


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines with their numbers (from 1) of a plain or gzipped file, strictly UTF-8."""
    try:
        with _open(path) as f:
            for number, raw in enumerate(f, 1):
                text = _decode(path, number, raw).strip()
                if text:
                    yield number, text
    except (OSError, EOFError, zlib.error) as e:
        raise EncoderecError(
            f"{path}: cannot read it ({e}); download it again (a truncated .gz looks like this)"
        ) from None


def _open(path: Path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped or path.suffix == ".gz" else open(path, "rb")


def _decode(path: Path, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EncoderecError(
            f"{path}: line {number}: byte 0x{raw[e.start]:02x} is not valid UTF-8; re-encode the file as UTF-8"
        ) from None


def _json_dict(path: Path, number: int, text: str, hint: str) -> dict:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise EncoderecError(
            f"{path}: line {number}: not a JSON object ({e.msg} at column {e.colno}); {hint}"
        ) from None
    return _as_dict(path, number, record, hint)


def _literal_dict(path: Path, number: int, text: str, hint: str) -> dict:
    """2014 meta lines are Python reprs (single quotes); literal_eval reads them without running any code."""
    try:
        record = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            raise EncoderecError(
                f"{path}: line {number}: not a Python or JSON dict literal ({text[:40]!r}...); {hint}"
            ) from None
    return _as_dict(path, number, record, hint)


def _as_dict(path: Path, number: int, record: Any, hint: str) -> dict:
    if not isinstance(record, dict):
        raise EncoderecError(f"{path}: line {number}: a {type(record).__name__}, expected one object per line; {hint}")
    return record


def _field(path: Path, number: int, record: dict, key: str, hint: str) -> Any:
    if key not in record:
        raise EncoderecError(f"{path}: line {number}: missing key {key!r}; {hint}")
    return record[key]


def _string(path: Path, number: int, key: str, value: Any, hint: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise EncoderecError(f"{path}: line {number}: {key} is {value!r:.40}, expected a non-empty string; {hint}")


def _integer(path: Path, number: int, key: str, value: Any, hint: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise EncoderecError(f"{path}: line {number}: {key} is {value!r:.40}, expected an integer timestamp; {hint}")


# --------------------------------------------------------------------------- the releases


def _text(value: Any) -> str:
    """Strings as they are, lists (2018/2023 descriptions and features) joined with spaces."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(filter(None, map(_text, value)))
    return str(value)


def _path(names: Any) -> str:
    return ", ".join(filter(None, map(_text, names))) if isinstance(names, (list, tuple)) else _text(names)


def _deepest_path(paths: Any) -> str:
    paths = [p for p in paths or () if isinstance(p, (list, tuple))]
    return _path(max(paths, key=len)) if paths else ""


def _item(record: dict, key: str, description: Any, features: Any, brand: Any, categories: str) -> dict[str, str]:
    return {
        "title": record["title"],
        "description": _text(description),
        "brand": _text(brand),
        "categories": categories,
        "features": _text(features),
        "asin": record[key],
    }


def _item_2014(r: dict) -> dict[str, str]:
    return _item(r, "asin", r.get("description"), None, r.get("brand"), _deepest_path(r.get("categories")))


def _item_2018(r: dict) -> dict[str, str]:
    return _item(r, "asin", r.get("description"), r.get("feature"), r.get("brand"), _path(r.get("category")))


def _item_2023(r: dict) -> dict[str, str]:
    details = r.get("details") if isinstance(r.get("details"), dict) else {}
    brand = r.get("store") or details.get("Brand")
    categories = _path(r.get("categories")) or _text(r.get("main_category"))
    return _item(r, "parent_asin", r.get("description"), r.get("features"), brand, categories)


class _Release(NamedTuple):
    name: str
    review_keys: tuple[str, str, str]  # user, item, time
    time_unit: int  # timestamp units per second
    meta_key: str
    parse_meta: Callable[[Path, int, str, str], dict]
    item: Callable[[dict], dict[str, str]]
    reviews_hint: str
    meta_hint: str


_RELEASES = {
    "2014": _Release(
        "2014", ("reviewerID", "asin", "unixReviewTime"), 1, "asin", _literal_dict, _item_2014,
        "is this the 2014 reviews file (reviews_<Cat>_5.json.gz or ratings_<Cat>.csv)?",
        "is this the 2014 meta file (meta_<Cat>.json.gz, one Python dict per line)?",
    ),
    "2018": _Release(
        "2018", ("reviewerID", "asin", "unixReviewTime"), 1, "asin", _json_dict, _item_2018,
        "is this the 2018 reviews file (<Cat>_5.json.gz)?",
        "is this the 2018 meta file (meta_<Cat>.json.gz)?",
    ),
    "2023": _Release(
        "2023", ("user_id", "parent_asin", "timestamp"), 1000, "parent_asin", _json_dict, _item_2023,
        "is this the 2023 reviews file (<Cat>.jsonl.gz)?",
        "is this the 2023 meta file (meta_<Cat>.jsonl.gz)?",
    ),
}  # fmt: skip


def _release(release: str) -> _Release:
    if str(release) not in _RELEASES:
        raise EncoderecError(f"unknown release {release!r}; use one of {', '.join(_RELEASES)}")
    return _RELEASES[str(release)]


def _read_reviews(path: Path, spec: _Release) -> Iterator[Interaction]:
    if path.name.removesuffix(".gz").endswith(".csv"):
        if spec.name != "2014":
            raise EncoderecError(
                f"{path}: ratings CSVs are read for --release 2014 only (other releases order the columns "
                "differently); pass the JSON reviews file"
            )
        return _csv_ratings(path, spec.reviews_hint)
    return _json_reviews(path, spec)


def _json_reviews(path: Path, spec: _Release) -> Iterator[Interaction]:
    user_key, item_key, time_key = spec.review_keys
    hint = spec.reviews_hint
    for number, text in _lines(path):
        record = _json_dict(path, number, text, hint)
        user, item, time = (_field(path, number, record, key, hint) for key in spec.review_keys)
        yield Interaction(
            _string(path, number, user_key, user, hint),
            _string(path, number, item_key, item, hint),
            _integer(path, number, time_key, time, hint),
        )


def _csv_ratings(path: Path, hint: str) -> Iterator[Interaction]:
    """The 2014 ratings_<Cat>.csv: no header, user,item,rating,timestamp."""
    for number, text in _lines(path):
        fields = next(csv.reader([text]))
        if len(fields) != 4:
            raise EncoderecError(
                f"{path}: line {number}: {len(fields)} fields, expected user,item,rating,timestamp; {hint}"
            )
        user, item, _, time = fields
        yield Interaction(
            _string(path, number, "user", user, hint),
            _string(path, number, "item", item, hint),
            _integer(path, number, "timestamp", time, hint),
        )


def _read_meta(path: Path, spec: _Release, wanted: set[str]) -> dict[str, dict[str, str]]:
    """Items of `wanted` whose meta has a non-empty title; the first line wins for an item listed twice."""
    key, hint = spec.meta_key, spec.meta_hint
    items: dict[str, dict[str, str]] = {}
    for number, text in _lines(path):
        record = spec.parse_meta(path, number, text, hint)
        asin = _string(path, number, key, _field(path, number, record, key, hint), hint)
        title = record.get("title")
        if asin in wanted and asin not in items and isinstance(title, str) and title.strip():
            items[asin] = spec.item(record)
    return items


# --------------------------------------------------------------------------- downloading


def download(
    category: str,
    release: str,
    data_dir: str | Path,
    name: str | None = None,
    base_url: str | None = None,
    min_count: int = 5,
    timeout: float = 30,
) -> Dataset:
    """Fetch a category's reviews and meta files into `<data_dir>/<name>/raw/`, then convert them.

    Files already in raw/ are not fetched again. The base URL is `base_url`, else $ENCODEREC_DOWNLOAD_URL,
    else the release's entry in BASE_URLS; the relative paths of DOWNLOAD_FILES are appended to it.
    """
    spec = _release(release)
    if not re.fullmatch(r"\w+", category, re.ASCII):
        raise EncoderecError(f"category {category!r} is not a McAuley Lab category name (e.g. Beauty, All_Beauty)")
    name = name or category
    base = (base_url or os.environ.get(DOWNLOAD_URL_ENV) or BASE_URLS[spec.name]).rstrip("/") + "/"
    raw = dataset_files(name, data_dir)["item"].parent / "raw"
    relative = [f.format(cat=category) for f in DOWNLOAD_FILES[spec.name]]
    reviews, meta = (raw / r.rsplit("/", 1)[-1] for r in relative)
    offline_fix = (
        "no network? Download the files elsewhere and run `python -m encoderec data convert "
        f"--release {spec.name} --reviews {reviews} --meta {meta} --name {name}`, "
        f"or point --data-dir at a folder that already holds {name}/"
    )
    for path, target in zip(relative, (reviews, meta), strict=True):
        if not target.is_file():
            _fetch(base + path, target, timeout, offline_fix)
    return convert_release(spec.name, reviews, meta, name, data_dir, min_count)


def _fetch(url: str, target: Path, timeout: float, offline_fix: str) -> None:
    """Download to a temporary sibling of `target`, renamed onto it only once complete."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                shutil.copyfileobj(response, f, 1 << 20)
            _check_length(url, response, tmp)
    except urllib.error.HTTPError as e:
        raise EncoderecError(
            f"could not download {url} (HTTP {e.code} {e.reason}); check the category (case matters) and --release"
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise EncoderecError(f"could not download {url} ({getattr(e, 'reason', e)}); {offline_fix}") from None
    except OSError as e:
        raise EncoderecError(f"{target}: cannot write it ({e.strerror}); choose a writable --data-dir") from None


def _check_length(url: str, response: http.client.HTTPResponse, tmp: Path) -> None:
    # urllib does not notice a connection closed early; a truncated file kept in raw/ would never be refetched
    expected = response.headers.get("Content-Length", "")
    size = tmp.stat().st_size
    if expected.isdigit() and size != int(expected):
        raise EncoderecError(f"could not download {url} (got {size} of {expected} bytes); run the command again")
