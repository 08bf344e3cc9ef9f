import json
import re

import numpy as np
import pytest

from encoderec.core.errors import EncoderecError
from encoderec.data import dataset as data
from tests.conftest import write_dataset


def test_load_and_stats(tiny):
    ds = data.load_dataset("Tiny", tiny)
    assert ds.has_interactions and ds.timestamps[2] == [5, 6, 50]
    s = data.stats(ds)
    assert s == {
        "dataset": "Tiny", "items": 4, "users": 3, "interactions": 10, "mean_seq_len": 3.33,
        "items_with_description": 3, "duplicate_texts": 1, "duplicate_texts_normalised": 1, "has_timestamps": True,
    }


def test_text_views_clean_and_skip_empty_fields(tiny):
    ds = data.load_dataset("Tiny", tiny)
    view = data.TextView()
    assert view.queries(ds)[0] == "Lab beaker 250 ml"
    assert view.documents(ds)[0] == "Borosilicate & glass | Pyrex | Lab,Glass"
    assert view.documents(ds)[1] == "Lab,Safety"
    assert view.documents(ds)[3] == "Anti-fog lenses | 3M | Lab,Safety"
    assert data.TextView(document_fields=("brand", "description"), separator=". ").documents(ds)[0] == "Pyrex. Borosilicate & glass"


def test_clean_text_handles_double_escaping_tags_and_lists():
    assert data.clean_text("Kid&amp;#x2019;s <b>toy</b>") == "Kid\u2019s toy"
    assert data.clean_text(["a  b", "", "c"]) == "a b c"
    assert data.clean_text(None) == ""


def test_leave_one_out():
    split = data.leave_one_out([[1, 2, 3, 4], [5, 6, 7]])
    assert split.train == [[1, 2], [5]]
    assert split.valid == [data.Example(0, [1, 2], 3), data.Example(1, [5], 6)]
    assert split.test == [data.Example(0, [1, 2, 3], 4), data.Example(1, [5, 6], 7)]


def test_training_items_are_those_of_the_training_sequences(tiny):
    ds = data.load_dataset("Tiny", tiny)
    assert data.training_items(ds) == [0, 1, 3]  # item 2 is only ever a validation or test target
    assert data.training_items(ds, "timestamp") == [0, 1, 2, 3]


def test_sample_users_keeps_their_items_renumbered(tiny):
    ds = data.load_dataset("Tiny", tiny)
    sample = data.sample_users(ds, 1, seed=0)
    assert len(sample.sequences) == 1 and len(sample.timestamps) == 1
    user = next(u for u, seq in enumerate(ds.sequences) if len(seq) == len(sample.sequences[0])
                and [ds.items[i] for i in seq] == [sample.items[i] for i in sample.sequences[0]])
    assert len(sample.items) == len(set(ds.sequences[user]))
    assert sorted({i for seq in sample.sequences for i in seq}) == list(range(len(sample.items)))
    assert data.sample_users(ds, 3) is ds
    assert data.sample_users(ds, 2, seed=0).sequences == data.sample_users(ds, 2, seed=0).sequences


def test_timestamp_split(tiny):
    ds = data.load_dataset("Tiny", tiny)
    split = data.split(ds, "timestamp", valid_start=30, test_start=40)
    assert split.train == [[0, 1], [1, 3], [3, 2]]
    assert split.valid == [data.Example(0, [0, 1], 2), data.Example(1, [1, 3], 0)]
    assert split.test == [data.Example(0, [0, 1, 2], 3), data.Example(2, [3, 2], 1)]


def test_timestamp_split_needs_timestamps(tiny):
    ds = data.load_dataset("Tiny", tiny)
    ds.timestamps = None
    with pytest.raises(EncoderecError, match="time.json"):
        data.split(ds, "timestamp")


def test_blair_dates_are_parsed():
    split = data.timestamp_split([[0, 1, 2]], [[1_600_000_000, 1_640_000_000, 1_660_000_000]])
    assert split.valid == [data.Example(0, [0], 1)] and split.test == [data.Example(0, [0, 1], 2)]


def test_save_roundtrip(tiny, tmp_path):
    ds = data.load_dataset("Tiny", tiny)
    out = tmp_path / "out"
    data.save_dataset(ds, out)
    again = data.load_dataset("Tiny", out)
    assert (again.items, again.sequences, again.timestamps) == (ds.items, ds.sequences, ds.timestamps)
    assert not list(out.rglob("*.tmp"))


ITEMS = {"0": {"title": "a"}, "1": {"title": "b"}, "2": {"title": "c"}}


@pytest.mark.parametrize(
    ("raw_items", "raw_inter", "pattern"),
    [
        ('{"0": {"title": "a"},\n "1": {"title": "b"', None, r"Bad\.item\.json: line 2 column \d+: invalid JSON"),
        ('{"0": {"title": "a"}, "0": {"title": "b"}}', None, r"Bad\.item\.json: key '0' appears twice"),
        ('{"0": {"description": "x"}}', None, r"Bad\.item\.json: item '0' has no 'title'"),
        ('{"0": {"title": "a"}, "5": {"title": "b"}}', None, r"key '5' is not a item idx"),
        (json.dumps(ITEMS), '{"0": [0, 1, 7]}', r"Bad\.inter\.json: user '0' refers to item 7"),
        (json.dumps(ITEMS), '{"0": [0, 1]}', r"Bad\.inter\.json: user '0' has 2 interactions"),
        (json.dumps(ITEMS), '{"0": []}', r"user '0' has 0 interactions"),
        (json.dumps(ITEMS), '{"0": [0, 1, 2], "0": [1, 2, 0]}', r"Bad\.inter\.json: key '0' appears twice"),
        (json.dumps(ITEMS), '{"0": "0 1 2"}', r"user '0' must map to a list of integer item ids"),
    ],
)
def test_bad_input_names_file_and_key(tmp_path, raw_items, raw_inter, pattern):
    folder = tmp_path / "Bad"
    folder.mkdir()
    (folder / "Bad.item.json").write_text(raw_items)
    if raw_inter is not None:
        (folder / "Bad.inter.json").write_text(raw_inter)
    with pytest.raises(EncoderecError, match=pattern) as err:
        data.load_dataset("Bad", tmp_path)
    assert "\n" not in str(err.value)


def test_non_utf8_bytes_name_the_line(tmp_path):
    folder = tmp_path / "Bad"
    folder.mkdir()
    (folder / "Bad.item.json").write_bytes(b'{"0":\n {"title": "caf\xe9"}}')
    with pytest.raises(EncoderecError, match=r"Bad\.item\.json: line 2: byte 0xe9 is not valid UTF-8"):
        data.load_dataset("Bad", tmp_path)


def test_missing_dataset_lists_known_ones(tiny):
    with pytest.raises(EncoderecError, match=r"Nope\.item\.json: file not found; datasets in .*: Tiny"):
        data.load_dataset("Nope", tiny)


def test_timestamps_must_match_sequences(tmp_path):
    write_dataset(tmp_path, "T", ITEMS, {"0": [0, 1, 2]}, {"0": [3, 2, 1]})
    with pytest.raises(EncoderecError, match=r"T\.time\.json: user '0' has timestamps out of order"):
        data.load_dataset("T", tmp_path)


def test_gini_and_popularity(tiny):
    ds = data.load_dataset("Tiny", tiny)
    assert data.item_popularity(ds) == [2, 3, 2, 3]
    assert data.gini([1, 1, 1, 1]) == pytest.approx(0.0)
    assert data.gini([0, 0, 0, 10]) == pytest.approx(0.75)
    assert data.duplicate_text_groups(ds) == [[0, 2]]
    assert data.normalised_title(" Kid&amp;s  TOY, 50-Piece! ") == "kid s toy 50 piece"


def _readme_table(readme: str) -> dict[str, dict[str, float | None]]:
    """The mirror README's dataset table: NAME -> the numeric columns."""
    rows = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and re.fullmatch(r"[0-9,]+", cells[2]):
            num = lambda c: None if c == "-" else float(c.replace(",", ""))  # noqa: E731
            rows[cells[0]] = dict(zip(["items", "items_with_description", "users", "interactions", "mean_seq_len"],
                                      map(num, cells[2:7])))
    return rows


@pytest.mark.mirror
def test_every_mirrored_dataset_matches_its_readme(mirror):
    table = _readme_table((mirror / "README.md").read_text())
    assert len(table) >= 6, "the README's dataset table was not found"
    duplicates = dict(re.findall(r"(\w+) (\d+)[,.]", (mirror / "README.md").read_text().split("Exact duplicate")[1][:300]))
    for name, expected in table.items():
        s = data.stats(data.load_dataset(name, mirror))
        for key, value in expected.items():
            assert s[key] == value, f"{name}.{key}: computed {s[key]}, README says {value}"
        assert s["duplicate_texts"] == int(duplicates[name]), name


def test_category_paths_of_both_conventions():
    assert data.category_path("Industrial & Scientific,Test, Measure & Inspect,Gauges") == [
        "Industrial & Scientific", "Test, Measure & Inspect", "Gauges"]
    assert data.category_path("Beauty, Makeup, Nails") == ["Beauty", "Makeup", "Nails"]
    assert data.category_path("") == []


def test_popular_items_only_keeps_the_densest_part():
    items = [{"title": f"item {i}"} for i in range(5)]
    sequences = [[0, 1, 2, 4], [0, 1, 3], [1, 2, 0, 0], [2, 4, 3]]  # items 3 and 4 are the least popular
    ds = data.Dataset("D", items, sequences, [[10 * t for t in range(len(s))] for s in sequences])
    dense = data.popular_items_only(ds, 3)  # items 0, 1, 2: users 1 and 3 keep fewer than 3 and go
    assert [it["title"] for it in dense.items] == ["item 0", "item 1", "item 2"]
    assert dense.sequences == [[0, 1, 2], [1, 2, 0, 0]]  # repeats stay
    assert dense.timestamps == [[0, 10, 20], [0, 10, 20, 30]]
    assert data.popular_items_only(ds, 5) is ds
    with pytest.raises(EncoderecError, match="no user has 3 interactions with the 1 most popular items"):
        data.popular_items_only(ds, 1)


def test_for_recommendation_slices_then_splits(tiny):
    ds, split = data.for_recommendation("Tiny", tiny, max_users=2)
    assert len(ds.sequences) == 2 and len(split.test) == 2
    whole, _ = data.for_recommendation("Tiny", tiny)
    assert whole.sequences == data.load_dataset("Tiny", tiny).sequences


def test_right_padded_left_aligns_each_row_and_fills_the_rest():
    assert data.right_padded([[1, 2, 3], [4], []], -1).tolist() == [[1, 2, 3], [4, -1, -1], [-1, -1, -1]]
    assert data.right_padded([np.array([7, 8])], 0).dtype == np.int64
    assert data.right_padded([], 0).shape == (0, 0)
