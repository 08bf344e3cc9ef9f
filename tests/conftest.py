import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from encoderec import config  # noqa: E402


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The real data mirror; tests that need it skip with the reason when it is absent."""
    root = config.data_dir()
    if not (root / "README.md").is_file() or not (root / "Scientific" / "Scientific.item.json").is_file():
        pytest.skip(f"data mirror not found at {root} (set ENCODEREC_DATA to run the tests on real data)")
    return root


def write_dataset(root: Path, name: str, items, sequences=None, timestamps=None) -> Path:
    """A small dataset in the mirror's layout, written as raw JSON so tests can also corrupt it."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.item.json").write_text(json.dumps(items))
    if sequences is not None:
        (folder / f"{name}.inter.json").write_text(json.dumps(sequences))
    if timestamps is not None:
        (folder / f"{name}.time.json").write_text(json.dumps(timestamps))
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    items = {
        "0": {"title": "Lab beaker 250 ml", "description": "Borosilicate &amp; glass", "brand": "Pyrex", "categories": "Lab,Glass"},
        "1": {"title": "Nitrile gloves", "description": "", "brand": "", "categories": "Lab,Safety"},
        "2": {"title": "Lab beaker 250 ml", "description": "Borosilicate &amp; glass", "brand": "Other", "categories": "Lab"},
        "3": {"title": "Safety goggles", "description": "Anti-fog   lenses\n", "brand": "3M", "categories": "Lab,Safety"},
    }
    sequences = {"0": [0, 1, 2, 3], "1": [1, 3, 0], "2": [3, 2, 1]}
    timestamps = {"0": [10, 20, 30, 40], "1": [15, 25, 35], "2": [5, 6, 50]}
    write_dataset(tmp_path, "Tiny", items, sequences, timestamps)
    return tmp_path
