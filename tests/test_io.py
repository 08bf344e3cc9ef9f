"""encoderec.core.io: atomic writes, strict JSON and YAML, and the cache lock."""

import json
import os


def test_outputs_are_written_atomically_with_the_usual_permissions(tmp_path):
    from encoderec.core.io import write_json

    umask = os.umask(0)
    os.umask(umask)
    write_json(tmp_path / "r.json", {"a": 1})
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def _compute_once(path: str, counter: str) -> None:
    """In a child process: the cached entry, computed slowly; every computation leaves a line in `counter`."""
    import time

    from encoderec.core.io import cached_json

    def compute():
        with open(counter, "a") as f:
            f.write("computed\n")
        time.sleep(1.0)
        return {"value": 7}

    assert cached_json(path, compute) == {"value": 7}


def test_concurrent_runs_compute_a_cache_entry_once(tmp_path):
    import multiprocessing

    path, counter = tmp_path / "cache" / "entry.json", tmp_path / "counter.txt"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_compute_once, args=(str(path), str(counter))) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert counter.read_text() == "computed\n" and json.loads(path.read_text()) == {"value": 7}
