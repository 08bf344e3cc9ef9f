import numpy as np
import pytest

from encoderec.data import dataset as data
from encoderec.models import space


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_category_labels_skip_the_shared_root():
    items = [{"title": str(i), "categories": c} for i, c in enumerate(
        ["Lab,Glass,Beakers", "Lab,Glass,Flasks", "Lab,Safety,Gloves", "Lab,Safety, Eyes & Face,Goggles", "Lab"])]
    labels = space.category_labels(data.Dataset("T", items))
    assert labels == ["Glass", "Glass", "Safety", "Safety, Eyes & Face", "(none)"]
    assert space.category_labels(data.Dataset("T", items), max_labels=1) == ["Glass", "Glass", "other", "other", "other"]


def test_neighbours_exclude_self_even_with_identical_vectors():
    emb = unit([[1, 0], [1, 0], [0, 1], [0.1, 1]])
    idx, sims = space.neighbours(emb, 1)
    assert idx[:, 0].tolist() == [1, 0, 3, 2]
    assert sims[0, 0] == pytest.approx(1.0)


def test_knn_purity_and_silhouette_reward_category_clusters():
    rng = np.random.default_rng(0)
    centres = unit(rng.normal(size=(3, 8)))
    labels = np.repeat(["a", "b", "c"], 30)
    clustered = unit(np.repeat(centres, 30, axis=0) + rng.normal(scale=0.05, size=(90, 8)))
    scattered = unit(rng.normal(size=(90, 8)))
    assert space.knn_purity(clustered, labels, k=5) > 0.95 > space.knn_purity(scattered, labels, k=5)
    assert space.silhouette(clustered, labels) > 0.5 > space.silhouette(scattered, labels)


def test_separated_pairs_finds_the_pair_pulled_apart():
    before = unit([[1, 0, 0], [1, 0.05, 0], [0, 1, 0], [0, 1, 0.05]])
    after = unit([[1, 0, 0], [-0.2, 0, 1], [0.3, 1, 0], [0, 1, 0.05]])  # items 0 and 1 pulled apart
    pairs = space.separated_pairs(before, after, ["a", "b", "c", "d"], top=1)
    assert (pairs[0]["item_a"], pairs[0]["item_b"]) == (0, 1)
    assert pairs[0]["cos_before"] > 0.99 and pairs[0]["cos_after"] < 0
    assert pairs[0]["rank_after"] == 3
    assert space.separated_pairs(before, after, ["a", "a", "c", "d"], top=1)[0]["item_a"] == 2  # identical texts skipped


def test_anisotropy_tells_spread_directions_from_a_shared_one():
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(2000, 16))
    shared = spread * 0.3 + np.r_[4.0, np.zeros(15)]  # a large common direction, as sentence embeddings have
    even, cone = space.anisotropy(spread), space.anisotropy(shared)
    assert abs(even["mean cosine"]) < 0.01 and even["participation ratio"] > 14
    assert cone["mean cosine"] > 0.8 and cone["participation ratio"] < even["participation ratio"]
    # the mean cosine is exact: the average over distinct pairs
    x = unit(rng.normal(size=(5, 3)))
    pairs = [x[i] @ x[j] for i in range(5) for j in range(5) if i != j]
    assert space.anisotropy(x)["mean cosine"] == pytest.approx(np.mean(pairs))
    assert space.anisotropy(np.eye(4))["variance in top 5 directions"] == pytest.approx(1.0)


def test_last_item_ranks_score_by_the_cosine_to_the_last_item_without_the_history():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.6, 0.8], [2.0, 0.1]])  # item 4: near item 0, longer
    examples = [data.Example(0, [2, 0], 3), data.Example(1, [0, 4], 4), data.Example(2, [3], 0)]
    ranks = space.last_item_ranks(x, examples, batch_size=2)
    # last item 0: items 4 and 1 score above 3 (0 and 2 are history); item 4 repeats its history: still ranked, first;
    # last item 3: items 2 (cosine 0.8), 1 (0.68) and 4 (0.64) score above 0 (0.6)
    assert ranks.tolist() == [2, 0, 3]


def test_a_seeded_map_repeats_itself_on_this_machine():
    """What `umap_coordinates` guarantees: a seed gives the same picture on the same machine (on another CPU the
    picture differs, its shape does not: tests/test_golden.py)."""
    x = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    first = space.umap_coordinates(x, seed=3)
    assert first.shape == (40, 2) and np.array_equal(first, space.umap_coordinates(x, seed=3))
