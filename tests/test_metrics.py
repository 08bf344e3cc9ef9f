import math

import numpy as np
import pytest

from encoderec import metrics


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
    noise = metrics.paired_test(a, a + rng.normal(0, 0.01, 500), test="ttest")
    assert noise["p_value"] > 0.01 and noise["n"] == 500
    with pytest.raises(ValueError, match="same queries"):
        metrics.paired_test(a, a[:10])
