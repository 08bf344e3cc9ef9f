"""Atomic writes and strict JSON reading.

Every file encoderec produces is written to a temporary sibling and renamed into place, so an
interrupted run never leaves a half-written file behind. JSON input is read strictly: invalid
UTF-8, syntax errors and duplicate keys all raise an EncoderecError naming the file and position.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from encoderec.core.errors import EncoderecError

_UMASK = os.umask(0)
os.umask(_UMASK)  # reading the umask means setting it: put it straight back


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    tmp.chmod(0o666 & ~_UMASK)  # mkstemp makes the file private (0600); outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block; another process asking for the same lock
    waits until this one is released. `waiting` is printed to stderr when it has to wait. The lock goes with the
    process, so a run that is killed never leaves a stale lock behind."""
    import fcntl
    import sys

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=_json_default, allow_nan=False)
    write_text(path, text + "\n")


def _json_default(obj: Any) -> Any:
    """numpy scalars and arrays, paths and sets, so results can be dumped without casting by hand."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (Path, set, frozenset)):
        return str(obj) if isinstance(obj, Path) else sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _reject_duplicate_keys(path: Path):
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise EncoderecError(f"{path}: key {key!r} appears twice; each id must be unique")
            seen[key] = value
        return seen

    return hook


def decode_utf8(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise EncoderecError(
            f"{path}: line {line}: byte 0x{data[e.start]:02x} is not valid UTF-8; re-encode the file as UTF-8"
        ) from None


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file, naming the file, line and column on any error."""
    path = Path(path)
    if not path.is_file():
        raise EncoderecError(f"{path}: file not found")
    text = decode_utf8(path, path.read_bytes())
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise EncoderecError(f"{path}: line {e.lineno} column {e.colno}: invalid JSON ({e.msg})") from None


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file (safe loader), naming the file and line on a syntax error."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(decode_utf8(path, path.read_bytes()))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise EncoderecError(f"{path}: {where}invalid YAML ({problem})") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def sha256_array(array: Any) -> str:
    """A key for an array's exact contents: dtype, shape and bytes."""
    import numpy as np

    array = np.ascontiguousarray(array)
    return sha256_text(str(array.dtype), str(array.shape), hashlib.sha256(array.tobytes()).hexdigest())


def cached_json(path: str | os.PathLike, compute: Any, indent: int | None = None) -> Any:
    """The JSON at `path` when it exists, else compute(), written there atomically (a long run done once).

    Two processes asking for the same missing entry do not both compute it: the second waits on a lock beside the
    entry (<path>.lock) and then reads what the first wrote."""
    path = Path(path)
    if path.exists():
        return read_json(path)
    with file_lock(path.with_name(path.name + ".lock"), waiting=f"{path.name}: another run is computing it; waiting"):
        if path.exists():
            return read_json(path)
        result = compute()
        write_json(path, result, indent=indent)
    return result


# The metadata of a config field added after results were keyed: at its default it stays out of every key, so the
# results computed before it existed (which ran what its default runs) keep their keys
KEYED_WHEN_SET = {"keyed": "when set"}


def settings_key(config: Any, ignore: tuple[str, ...] = ("device",)) -> str:
    """A key for a config dataclass's settings; `ignore` lists those that change where a run happens, not what
    it computes (so a run trained on a borrowed GPU is found again on a CPU, its device recorded in the result),
    and a field with KEYED_WHEN_SET metadata counts only when it differs from its default."""
    import dataclasses

    unset = {f.name for f in dataclasses.fields(config)
             if f.metadata.get("keyed") == KEYED_WHEN_SET["keyed"] and getattr(config, f.name) == f.default}
    return sha256_text(repr(sorted((k, v) for k, v in dataclasses.asdict(config).items()
                                   if k not in ignore and k not in unset)))
