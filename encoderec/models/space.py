"""The embedding space: category labels, cluster quality, neighbours that change, UMAP coordinates, anisotropy,
and the next-item signal of the geometry alone (a last-item nearest-neighbour recommender).

All functions take L2-normalised item embeddings (rows = item idx), so inner product = cosine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from encoderec.data import dataset as data

# The version of what this module computes: part of the key of every cached or archived result of it. Bump it
# when a change moves its outputs (tests/test_golden.py fails until you do and re-record); a change that
# moves nothing (a refactor, a docstring, a speed-up with the same numbers) keeps it, and the archive with it.
RESULT_VERSION = 1


def category_labels(dataset: data.Dataset, max_labels: int = 12) -> list[str]:
    """Each item's top-level category: the first level of the path that varies across the catalogue.

    The root ("Industrial & Scientific") is shared by every item, so it says nothing; the level below it is the
    department. Labels beyond the `max_labels` most frequent become "other" to keep plots legible.
    """
    paths = [data.category_path(item.get("categories")) for item in dataset.items]
    depth = 0
    while Counter(p[depth] if len(p) > depth else "" for p in paths).most_common(1)[0][1] > 0.9 * len(paths):
        depth += 1
        if not any(len(p) > depth for p in paths):
            depth -= 1
            break
    labels = [p[depth] if len(p) > depth else "(none)" for p in paths]
    keep = {label for label, _ in Counter(labels).most_common(max_labels)}
    return [label if label in keep else "other" for label in labels]


def neighbours(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k neighbours of every item (itself excluded): (indices, cosines), each (n, k)."""
    import faiss

    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    sims, idx = index.search(np.ascontiguousarray(embeddings, dtype=np.float32), k + 1)
    not_self = idx != np.arange(len(embeddings))[:, None]
    # Drop the item itself (normally first; with identical texts it may sit anywhere among equal scores).
    order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(sims, order, axis=1)


def knn_purity(embeddings: np.ndarray, labels: Sequence[str], k: int = 10) -> float:
    """Mean share of each item's k nearest neighbours that carry its category label."""
    idx, _ = neighbours(embeddings, k)
    labels = np.asarray(labels)
    return float((labels[idx] == labels[:, None]).mean())


def silhouette(embeddings: np.ndarray, labels: Sequence[str], sample: int = 4000, seed: int = 0) -> float:
    """Cosine silhouette of the category labels (on a seeded sample for large catalogues)."""
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(embeddings, np.asarray(labels), metric="cosine",
                                  sample_size=min(sample, len(labels)), random_state=seed))


def separated_pairs(before: np.ndarray, after: np.ndarray, texts: Sequence[str], top: int = 10) -> list[dict]:
    """Nearest-neighbour pairs under `before` that `after` pulls furthest apart (identical texts excluded).

    For every item, its nearest neighbour under the base encoder; ranked by how much the cosine drops under the
    fine-tuned encoder, each pair once. This finds the paper's "50-piece vs 1000-piece puzzle" cases in the data
    instead of picking them by hand.
    """
    idx, sims = neighbours(before, 1)
    pairs = {}
    for i, (j, sim) in enumerate(zip(idx[:, 0], sims[:, 0])):
        if texts[i] != texts[j]:
            key = (min(i, j), max(i, j))
            pairs[key] = (float(sim), float(after[i] @ after[j]))
    ranked = sorted(pairs.items(), key=lambda kv: kv[1][1] - kv[1][0])[:top]
    after_rank = _rank_of_pairs(after, [key for key, _ in ranked])
    return [{"item_a": a, "item_b": b, "cos_before": s0, "cos_after": s1, "rank_after": r}
            for ((a, b), (s0, s1)), r in zip(ranked, after_rank)]


def _rank_of_pairs(embeddings: np.ndarray, pairs: list[tuple[int, int]]) -> list[int]:
    """Where item b ranks among item a's neighbours (1 = nearest)."""
    ranks = []
    for a, b in pairs:
        sims = embeddings @ embeddings[a]
        sims[a] = -np.inf
        ranks.append(int((sims > sims[b]).sum()) + 1)
    return ranks


def umap_coordinates(embeddings: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-d UMAP (cosine metric), seeded so a fixed seed gives the same picture."""
    import warnings

    import umap

    reducer = umap.UMAP(n_components=2, metric="cosine", n_neighbors=n_neighbors, min_dist=0.1, random_state=seed,
                        n_jobs=1)
    with warnings.catch_warnings():  # a seeded UMAP is single-threaded by design; it warns about that every time
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        return reducer.fit_transform(embeddings)


def anisotropy(embeddings: np.ndarray, top: int = 5) -> dict[str, float]:
    """How unevenly a set of embeddings fills its space (Ethayarajh 2019; Su et al. 2021), rows normalised first:
    "mean cosine", the average cosine of two distinct items (0 for directions spread evenly); "participation
    ratio", (sum lambda)^2 / sum lambda^2 of the covariance's eigenvalues, the number of directions that effectively
    carry the variance (the dimension for isotropic data); and the share of the variance in the `top` directions."""
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    n = len(x)
    if n < 2:
        raise ValueError(f"anisotropy needs at least 2 embeddings, got {n}")
    total = x.sum(0)
    mean_cosine = (total @ total - (x * x).sum()) / (n * (n - 1))
    eigenvalues = np.clip(np.linalg.eigvalsh(np.cov(x.T)), 0, None)[::-1]
    return {"mean cosine": float(mean_cosine),
            "participation ratio": float(eigenvalues.sum() ** 2 / (eigenvalues ** 2).sum()),
            f"variance in top {top} directions": float(eigenvalues[:top].sum() / eigenvalues.sum())}


def last_item_ranks(embeddings: np.ndarray, examples: Sequence[data.Example], batch_size: int = 1024) -> np.ndarray:
    """A recommender without training, to measure how much next-item signal an embedding space carries by itself:
    every item scores its cosine to the user's last history item (rows normalised here), and the 0-based rank of
    the target is the number of items scoring above it among all items but the user's history, the target always
    ranked (UniSRec's protocol, `unisrec.SequentialRecommender.rank`)."""
    x = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    ranks = np.empty(len(examples), dtype=np.int64)
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        scores = x[[e.history[-1] for e in batch]] @ x.T
        target = scores[np.arange(len(batch)), [e.target for e in batch]].copy()
        rows = np.repeat(np.arange(len(batch)), [len(e.history) for e in batch])
        scores[rows, np.concatenate([e.history for e in batch])] = -np.inf
        ranks[start:start + len(batch)] = (scores > target[:, None]).sum(1)
    return ranks


def separated_rows(before: np.ndarray, after: np.ndarray, texts: Sequence[str], titles: Sequence[str],
                   items: Sequence[int], top: int = 10) -> list[dict]:
    """`separated_pairs` as table rows: both titles (80 characters), both cosines, the rank of B for A afterwards and
    the catalogue positions `items` of A and B."""
    return [{"title A": titles[p["item_a"]][:80], "title B": titles[p["item_b"]][:80],
             "cos base": p["cos_before"], "cos EncodeRec": p["cos_after"], "rank of B for A after": p["rank_after"],
             "item A": int(items[p["item_a"]]), "item B": int(items[p["item_b"]])}
            for p in separated_pairs(before, after, texts, top=top)]


def top_items(embeddings: np.ndarray, query: np.ndarray, titles: Sequence[str], k: int = 10) -> list[str]:
    """The `k` items nearest to the `query` embedding (inner product), each as "title (score)"."""
    scores = embeddings @ query
    return [f"{titles[i][:70]} ({scores[i]:.2f})" for i in np.argsort(-scores)[:k]]
