"""encoderec.io: atomic writes, the cache lock, and the code version that keys every cached run."""

import json
import os

from encoderec.io import code_version


def test_outputs_are_written_atomically_with_the_usual_permissions(tmp_path):
    from encoderec.io import write_json

    umask = os.umask(0)
    os.umask(umask)
    write_json(tmp_path / "r.json", {"a": 1})
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def _compute_once(path: str, counter: str) -> None:
    """In a child process: the cached entry, computed slowly; every computation leaves a line in `counter`."""
    import time

    from encoderec.io import cached_json

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


def test_code_version_follows_the_modules_a_computation_imports(tmp_path):
    (tmp_path / "model.py").write_text("from encoderec import data\nfrom encoderec.io import cached_json\n")
    (tmp_path / "data.py").write_text("def f():\n    from encoderec.metrics import g\n")
    (tmp_path / "metrics.py").write_text("x = 1\n")
    (tmp_path / "io.py").write_text("y = 1\n")
    (tmp_path / "plots.py").write_text("z = 1\n")
    version = code_version("model", tmp_path)
    (tmp_path / "plots.py").write_text("z = 2\n")  # not imported by model
    (tmp_path / "io.py").write_text("y = 2\n")  # infrastructure: does not change a result
    assert code_version("model", tmp_path) == version
    (tmp_path / "metrics.py").write_text("x = 2\n")  # imported through data, inside a function
    assert code_version("model", tmp_path) != version


def test_code_version_of_the_real_modules_covers_their_dependencies():
    from encoderec import paths

    assert code_version("tiger") != code_version("unisrec")
    assert code_version("tiger", paths.PACKAGE_DIR) == code_version("tiger")
