import json
import subprocess
import sys

import pytest

from tests.conftest import write_dataset


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "encoderec", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.mirror
def test_stats_on_the_mirror(mirror):
    out = cli("data", "stats", "Scientific", "--data-dir", str(mirror))
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert {k: stats[k] for k in ("items", "users", "interactions")} == {"items": 4344, "users": 8317, "interactions": 58492}
    assert set(stats) >= {"dataset", "items", "users", "interactions", "mean_seq_len", "items_with_description", "duplicate_texts"}


def test_stats_respects_env_data_dir(tiny, monkeypatch):
    monkeypatch.setenv("ENCODEREC_DATA", str(tiny))
    out = cli("data", "stats", "Tiny")
    assert out.returncode == 0 and json.loads(out.stdout)["items"] == 4


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b'{"0": {"title": "a"}, ', b"invalid JSON"), (b'{"0": {"title": "\xff"}}', b"not valid UTF-8"), (b"[1, 2]", b"expected a JSON object")],
)
def test_corrupt_item_file_gives_one_line_and_nonzero_exit(tmp_path, content, needle):
    folder = write_dataset(tmp_path, "Bad", {})
    (folder / "Bad.item.json").write_bytes(content)
    out = cli("data", "stats", "Bad", "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Bad.item.json" in lines[0] and needle.decode() in lines[0]


def test_report_with_unknown_profile_fails_cleanly(tmp_path):
    out = cli("report", "--profile", "no-such-profile")
    assert out.returncode == 2 and "no such profile" in out.stderr and "Traceback" not in out.stderr
