import math

import numpy as np
import pytest

from encoderec.models import metrics


def test_metrics_from_ranks():
    ranks = [0, 1, 9, 10, metrics.MISSING]
    v = metrics.summarize(metrics.per_query(ranks, ks=(1, 10), mrr=True))
    assert v["Recall@1"] == pytest.approx(1 / 5)
    assert v["Recall@10"] == pytest.approx(3 / 5)
    assert v["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5)
    assert v["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 10 + 1 / 11) / 5)


def test_gains_scale_credit():
    v = metrics.per_query([0, 0], ks=(10,), gains=[1.0, 0.25])
    assert v["Recall@10"].tolist() == [1.0, 0.25]


def test_bad_ranks_rejected():
    with pytest.raises(ValueError, match="0-based"):
        metrics.recall_at_k([-1, 0], 10)


def test_paired_test_detects_a_real_difference_and_not_noise():
    rng = np.random.default_rng(0)
    a = rng.random(500)
    assert metrics.paired_test(a, a + 0.05)["p_value"] < 1e-6
    assert metrics.paired_test(a, a)["p_value"] == 1.0
    noise = rng.normal(0, 0.01, 250)
    symmetric = np.concatenate([noise, -noise])  # differences that cancel exactly: no effect by construction
    for test in ("wilcoxon", "ttest"):
        result = metrics.paired_test(np.zeros(500), symmetric, test=test)
        assert result["p_value"] > 0.99 and result["n"] == 500
    with pytest.raises(ValueError, match="same queries"):
        metrics.paired_test(a, a[:10])


def test_compare_over_seeds_averages_each_query_before_the_paired_test():
    base = [{"NDCG@10": np.array([0.0, 0.5, 1.0, 0.0]), "Recall@10": np.array([0.0, 1.0, 1.0, 0.0])}]
    model = [{"NDCG@10": np.array([1.0, 0.5, 1.0, 1.0]), "Recall@10": np.array([1.0, 1.0, 1.0, 1.0])},
             {"NDCG@10": np.array([0.0, 0.5, 1.0, 1.0]), "Recall@10": np.array([0.0, 1.0, 1.0, 1.0])}]
    result = metrics.compare_over_seeds(base, model)
    assert result["base NDCG@10"] == pytest.approx(0.375) and result["model NDCG@10"] == pytest.approx(0.75)
    assert result["model Recall@10"] == pytest.approx(0.875)
    expected = metrics.paired_test(base[0]["NDCG@10"], np.array([0.5, 0.5, 1.0, 1.0]))["p_value"]
    assert result["p (wilcoxon, NDCG@10)"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="at least one run"):
        metrics.compare_over_seeds([], model)


def test_against_base_pairs_each_model_with_its_base_per_dataset_and_variant():
    values = {(d, m, "v", s): {"NDCG@10": np.array([0.1, 0.2]) * (2 if m == "tuned" else 1)}
              for d in ("A", "B") for m in ("base", "tuned", "other") for s in (0, 1)}
    del values[("B", "base", "v", 0)], values[("B", "base", "v", 1)]  # no base run on B
    rows = metrics.against_base(values, {"tuned": "base", "other": "missing"})
    assert [(r["dataset"], r["model"], r["base"], r["seeds"]) for r in rows] == [("A", "tuned", "base", 2)]
    assert rows[0]["base NDCG@10"] == pytest.approx(0.15) and rows[0]["model NDCG@10"] == pytest.approx(0.3)


def test_against_base_averages_each_side_over_its_own_runs():
    values = {("A", "frozen", "all", None): {"NDCG@10": np.array([0.1, 0.3])},
              ("A", "tuned", "all", 0): {"NDCG@10": np.array([0.2, 0.4])},
              ("A", "tuned", "all", 1): {"NDCG@10": np.array([0.4, 0.6])}}
    (row,) = metrics.against_base(values, {"tuned": "frozen"})
    assert row["seeds"] == 2
    assert row["base NDCG@10"] == pytest.approx(0.2) and row["model NDCG@10"] == pytest.approx(0.4)
