"""Ranking metrics shared by every model (retrieval, UniSRec, TIGER), and paired significance tests.

Everything starts from `ranks`: for each query (or user), the 0-based position of its one relevant item in the
model's ranking, `MISSING` when the item is not in the returned list. With one relevant item per query,

    Recall@K = 1[rank < K]            NDCG@K = 1[rank < K] / log2(rank + 2)            RR = 1 / (rank + 1)

and the reported value is the mean over queries. `gains` scales a query's credit, e.g. 1/g for a hit on a
semantic ID shared by g items. Per-query values are kept so that two models can be compared with a paired test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MISSING = np.iinfo(np.int64).max


def _ranks(ranks: Sequence[float] | np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.ndim != 1:
        raise ValueError(f"ranks must be one value per query, got shape {ranks.shape}")
    if np.any(ranks < 0) or np.any(np.isnan(ranks)):
        raise ValueError("ranks are 0-based positions: negative or NaN values are not allowed")
    return ranks


def recall_at_k(ranks: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    return (_ranks(ranks) < k).astype(np.float64)


def ndcg_at_k(ranks: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    r = _ranks(ranks)
    hit = r < k
    out = np.zeros_like(r)
    out[hit] = 1.0 / np.log2(r[hit] + 2.0)
    return out


def reciprocal_rank(ranks: Sequence[float] | np.ndarray) -> np.ndarray:
    r = _ranks(ranks)
    return np.where(np.isfinite(r) & (r < MISSING), 1.0 / (r + 1.0), 0.0)


def per_query(ranks: Sequence[float] | np.ndarray, ks: Sequence[int] = (10,), mrr: bool = False,
              gains: Sequence[float] | np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-query Recall@K and NDCG@K for every K (and reciprocal rank), each scaled by `gains` when given."""
    scale = np.ones(len(ranks)) if gains is None else np.asarray(gains, dtype=np.float64)
    values = {}
    for k in ks:
        values[f"Recall@{k}"] = recall_at_k(ranks, k) * scale
        values[f"NDCG@{k}"] = ndcg_at_k(ranks, k) * scale
    if mrr:
        values["MRR"] = reciprocal_rank(ranks) * scale
    return values


def summarize(values: dict[str, np.ndarray]) -> dict[str, float]:
    """Means of per-query values."""
    return {name: float(np.mean(v)) if len(v) else float("nan") for name, v in values.items()}


def paired_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                test: str = "wilcoxon") -> dict[str, float | str]:
    """Is b different from a on the same queries? Wilcoxon signed-rank (default) or paired t-test, two-sided."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs values for the same queries: {a.shape} vs {b.shape}")
    diff = b - a
    if not np.any(diff):
        p = 1.0
    elif test == "wilcoxon":
        p = float(stats.wilcoxon(a, b, zero_method="zsplit").pvalue)
    elif test == "ttest":
        p = float(stats.ttest_rel(b, a).pvalue)
    else:
        raise ValueError(f"unknown test {test!r}; use 'wilcoxon' or 'ttest'")
    return {"test": test, "n": int(len(a)), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
            "mean_diff": float(diff.mean()), "p_value": p}


def compare_over_seeds(base: Sequence[dict[str, np.ndarray]], model: Sequence[dict[str, np.ndarray]],
                       metric: str = "NDCG@10", test: str = "wilcoxon") -> dict[str, float | str]:
    """A model against its base on the same queries (users), each run a dict of per-query values (per_query).

    Every query's values are averaged over the runs (seeds) of each side; returns the mean of every metric for both
    sides ("base Recall@10", "model Recall@10", ...) and the p-value of the paired test on `metric`.
    """
    if not base or not model:
        raise ValueError("compare_over_seeds needs at least one run of each side")
    sides = {"base": base, "model": model}
    averaged = {side: {k: np.mean([run[k] for run in runs], axis=0) for k in runs[0]} for side, runs in sides.items()}
    result: dict[str, float | str] = {f"{side} {k}": float(v.mean()) for side, values in averaged.items()
                                      for k, v in values.items()}
    result[f"p ({test}, {metric})"] = paired_test(averaged["base"][metric], averaged["model"][metric], test)["p_value"]
    return result


def against_base(per_query_values: dict[tuple, dict[str, np.ndarray]], base_of: dict[str, str],
                 metric: str = "NDCG@10") -> list[dict]:
    """Every model against its base encoder, per dataset and variant: compare_over_seeds rows.

    `per_query_values` maps (dataset, model, variant, seed) to per-query values; `base_of` maps a model to its base
    (pairs whose base was not run are skipped). Each side is averaged over its own seeds (a frozen base encoder may
    have one run, seed None). Each row: dataset, variant, model, base, seeds (of the model), then the comparison.
    """
    runs: dict[tuple, list[dict[str, np.ndarray]]] = {}
    for (dataset, model, variant, _), values in per_query_values.items():
        runs.setdefault((dataset, model, variant), []).append(values)
    rows = []
    for dataset, model, variant in runs:
        base = base_of.get(model)
        if (dataset, base, variant) not in runs:
            continue
        model_runs = runs[(dataset, model, variant)]
        rows.append({"dataset": dataset, "variant": variant, "model": model, "base": base, "seeds": len(model_runs),
                     **compare_over_seeds(runs[(dataset, base, variant)], model_runs, metric=metric)})
    return rows
