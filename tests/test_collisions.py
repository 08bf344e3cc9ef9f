import json
import math

import numpy as np
import pytest

from encoderec.core.errors import EncoderecError
from encoderec.models.collisions import collision_report, group_sizes, normalised_entropy
from encoderec.models.semantic_ids import collision_free_last_level, load_ids, save_ids, with_dedup_code

# 8 items, codebook of 4: IDs 000 (items 0, 1) and 100 (items 4, 5, 6) collide
CODES = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [2, 3, 1]])
TEXTS = ["a", "a", "b", "c", "d", "d", "e", "f"]


def test_collision_report_on_a_hand_made_example():
    report = collision_report(CODES, TEXTS, codebook_size=4, reconstruction_error=0.25)
    assert report["items"] == 8 and report["depth"] == 3 and report["codebook_size"] == 4
    assert report["collision_rate@1"] == 5 / 8  # first codes {0, 1, 2}
    assert report["collision_rate@2"] == 4 / 8  # (0,0) (0,1) (1,0) (2,3)
    assert report["collision_rate@3"] == 3 / 8  # 000 001 010 100 231
    assert report["distinct_ids"] == 5 and report["max_group"] == 3
    assert report["share_extra_code"] == 3 / 8  # items 1, 5 and 6 get a non-zero 4th code
    assert report["share_in_collisions"] == 5 / 8
    assert [report[f"usage@{level}"] for level in (1, 2, 3)] == [3 / 4, 3 / 4, 2 / 4]
    p = np.array([4, 3, 1]) / 8
    assert report["entropy@1"] == pytest.approx(-(p * np.log(p)).sum() / math.log(4))
    assert report["entropy@3"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(4))
    assert report["reconstruction_error"] == 0.25
    # 000: items 0, 1 share text "a"; 100: items 4, 5 share "d", item 6 ("e") differs
    assert report["colliding_identical_text"] == 4 and report["colliding_different_text"] == 1
    assert report["avoidable_collision_rate"] == 1 / 8  # only item 6 would still need its own code
    json.dumps(report)  # JSON-ready


def test_collision_report_options():
    report = collision_report(CODES, levels_used=(1, 2))
    assert report["depth"] == 2 and report["codebook_size"] == 4  # largest code + 1
    assert "collision_rate@3" not in report and "usage@3" not in report
    assert report["max_group"] == 3 and report["share_extra_code"] == report["collision_rate@2"]
    assert "colliding_identical_text" not in report
    unique = collision_report(with_dedup_code(CODES), levels_used=(1, 2, 3, 4), codebook_size=4)
    assert unique["collision_rate@4"] == 0 and unique["max_group"] == 1 and unique["share_in_collisions"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(codes=CODES, levels_used=(1, 4)), "levels_used"),
        (dict(codes=CODES, codebook_size=2), "code 3 occurs"),
        (dict(codes=CODES, texts=["a"]), "1 texts for 8 items"),
        (dict(codes=np.zeros((0, 3), dtype=int)), "no items"),
        (dict(codes=CODES.astype(float)), "integer codes"),
        (dict(codes=[1, 2, 3]), r"\(items, levels\)"),
    ],
)
def test_collision_report_rejects_bad_input(kwargs, message):
    with pytest.raises(EncoderecError, match=message):
        collision_report(**kwargs)


def test_entropy_is_one_when_uniform_and_zero_for_one_code():
    assert normalised_entropy(np.array([5, 5, 5, 5])) == pytest.approx(1.0)
    assert normalised_entropy(np.array([0, 9, 0, 0])) == 0.0


def test_group_sizes():
    assert group_sizes(CODES).tolist() == [3, 2, 1, 1, 1]
    assert group_sizes(CODES[:, :1]).tolist() == [4, 3, 1]
    assert group_sizes(CODES).sum() == len(CODES)


def test_with_dedup_code_numbers_items_sharing_an_id_in_order():
    out = with_dedup_code(CODES)
    assert out.shape == (8, 4)
    assert np.array_equal(out[:, :3], CODES)
    assert out[:, 3].tolist() == [0, 1, 0, 0, 0, 1, 2, 0]
    assert len(np.unique(out, axis=0)) == 8
    shuffled = with_dedup_code(CODES[::-1])  # order is item order, whatever the codes' order
    assert shuffled[:, 3].tolist() == [0, 0, 1, 2, 0, 0, 0, 1]
    assert with_dedup_code(np.zeros((0, 3), dtype=int)).shape == (0, 4)


def test_collision_free_last_level_is_the_optimal_balanced_assignment():
    codes = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 2], [1, 0, 1]])
    distances = np.array(
        [
            [3.0, 0.0, 1.0, 9.0],  # item 0 prefers 1, then 2
            [4.0, 0.0, 2.0, 9.0],  # item 1 prefers 1 as well
            [9.0, 9.0, 0.0, 9.0],  # item 2 needs 2
            [0.0, 5.0, 5.0, 5.0],  # item 3 is alone in its prefix group: kept even though 0 is nearer
        ]
    )
    out = collision_free_last_level(codes, distances)
    # costs: (0->1, 1->0, 2->2) = 4; (0->0, 1->1, 2->2) = 3 is the optimum, although item 0 did not collide
    assert out[:, -1].tolist() == [0, 1, 2, 1]
    assert np.array_equal(out[:, :-1], codes[:, :-1])
    assert len(np.unique(out, axis=0)) == len(out)
    assert np.array_equal(codes[:, -1], [1, 1, 2, 1])  # the input is not modified


def test_collision_free_last_level_leaves_unique_ids_alone_and_handles_one_level():
    codes = np.array([[0, 1], [0, 2], [1, 1]])
    assert np.array_equal(collision_free_last_level(codes, np.zeros((3, 4))), codes)
    one_level = collision_free_last_level(np.array([[2], [2], [0]]), np.array([[1, 2, 0], [0, 2, 1], [0, 1, 2]]))
    assert sorted(one_level[:, 0].tolist()) == [0, 1, 2] and one_level[0, 0] == 2


def test_collision_free_last_level_errors():
    codes = np.array([[5, 0], [5, 0], [5, 1]])
    with pytest.raises(EncoderecError, match=r"3 items share the prefix \[5\], more than the 2 last-level codes"):
        collision_free_last_level(codes, np.zeros((3, 2)))
    with pytest.raises(EncoderecError, match="one row per item"):
        collision_free_last_level(codes, np.zeros((2, 2)))
    with pytest.raises(EncoderecError, match="outside the 1 distance columns"):
        collision_free_last_level(codes, np.zeros((3, 1)))


def test_save_and_load_ids_round_trip(tmp_path):
    codes = with_dedup_code(CODES)
    provenance = {"tokenizer": "RQVAE", "config": {"levels": 3, "hidden_dims": [512, 256, 128]}, "items": 8}
    path = tmp_path / "ids" / "Beauty.json"
    save_ids(path, codes, provenance)
    loaded = load_ids(path)
    assert np.array_equal(loaded.codes, codes) and loaded.codes.dtype == np.int64
    assert loaded.provenance == provenance
    table = json.loads(path.read_text())
    assert table["columns"] == ["item", "c0", "c1", "c2", "c3"] and table["rows"][1] == [1, 0, 0, 0, 1]
    assert [p.name for p in path.parent.iterdir()] == ["Beauty.json"]  # no temporary file left behind


def test_load_ids_names_the_problem(tmp_path):
    path = tmp_path / "ids.json"
    path.write_text(json.dumps({"columns": ["item", "c0"], "rows": [[1, 3]], "provenance": {}}))
    with pytest.raises(EncoderecError, match="items 0..0 in order"):
        load_ids(path)
    path.write_text(json.dumps({"columns": ["item", "c0"], "rows": [[0, "x"]], "provenance": {}}))
    with pytest.raises(EncoderecError, match="2 integers"):
        load_ids(path)
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(EncoderecError, match="'columns', 'rows' and 'provenance'"):
        load_ids(path)
    with pytest.raises(EncoderecError, match="provenance: expected a dict"):
        save_ids(path, CODES, provenance=None)


def test_elimination_compares_each_fine_tuned_model_with_its_base():
    import pandas as pd

    from encoderec.models.collisions import elimination

    rows = [{"dataset": d, "backbone": b, "tokenizer": t, "seed": s, "collision_rate@3": rate,
             "avoidable_collision_rate": rate / 2}
            for d, base_rate, ours_rate in (("A", 0.1, 0.0), ("B", 0.1, 0.2))
            for b, rate in (("base", base_rate), ("tuned", ours_rate), ("other", 0.1)) for t in ("rqvae", "rkmeans")
            for s in (0, 1)]
    out = elimination(pd.DataFrame(rows), {"tuned": "base", "base": None, "other": "missing", "pending": "base"})
    by = {(r["dataset"], r["model"]): r for r in out}
    # "pending" has no tokenization: no row, never an "eliminated" from all() of no seeds
    assert set(by) == {("A", "tuned"), ("B", "tuned"), ("A", "other"), ("B", "other")}
    assert by["A", "tuned"]["eliminated (all seeds)"] and by["A", "tuned"]["fewer than base (seeds)"] == "2/2"
    assert not by["B", "tuned"]["eliminated (all seeds)"] and by["B", "tuned"]["fewer than base (seeds)"] == "0/2"
    assert by["A", "other"]["base coll@3"] is None  # its base was not run


def test_item_ids_for_tiger():
    from encoderec.models.semantic_ids import item_ids

    codes = np.array([[0, 1], [0, 1], [2, 3]])
    assert item_ids(codes, "dedup").tolist() == [[0, 1, 0], [0, 1, 1], [2, 3, 0]]
    assert item_ids(codes, "shared").tolist() == codes.tolist()
    with pytest.raises(EncoderecError, match="id_variants: unknown 'x'; use one of dedup, unique, shared"):
        item_ids(codes, "x")
    unique = [[0, 1], [0, 2], [2, 3]]
    assert item_ids(codes, "unique", unique).tolist() == unique
    with pytest.raises(EncoderecError, match="'unique' needs the collision-free last level"):
        item_ids(codes, "unique")
