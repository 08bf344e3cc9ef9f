import numpy as np
import pytest

from encoderec.data import dataset as data
from encoderec.models import metrics, retrieval


def test_ranks_from_top():
    top = np.array([[3, 1, 2], [0, 2, 1], [5, 6, 7]])
    assert retrieval.ranks_from_top(top, np.array([3, 1, 0])).tolist() == [0, 2, metrics.MISSING]


@pytest.mark.parametrize("approximate", [False, True])
def test_dense_search_finds_the_nearest_document(approximate):
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(300, 16)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[:50] + rng.normal(scale=0.05, size=(50, 16)).astype(np.float32)
    targets = np.arange(50)
    ranks = retrieval.dense_ranks(queries, docs, targets, k=10, approximate=approximate)
    assert (ranks == 0).mean() > 0.95
    shuffled = retrieval.dense_ranks(queries, docs, rng.permutation(targets), k=10, approximate=approximate)
    assert (shuffled == 0).mean() < 0.2


def test_bm25_prefers_lexical_match():
    docs = ["glass lab beaker 250 ml", "nitrile gloves box of 100", "anti fog safety goggles"]
    ranks = retrieval.bm25_ranks(["beaker 250ml glass", "box gloves", "goggles"], docs, np.array([0, 1, 2]))
    assert ranks.tolist() == [0, 0, 0]
    summary, per_query = retrieval.evaluate(ranks)
    assert summary == {"Recall@1": 1.0, "Recall@10": 1.0, "NDCG@10": 1.0, "MRR": 1.0}
    assert set(per_query) == {"Recall@1", "Recall@10", "NDCG@10", "MRR"}


def test_task_deduplicates_documents_and_targets_the_own_document(tiny):
    ds = data.load_dataset("Tiny", tiny)
    ds.items.append({"title": "Beaker set", "description": "Borosilicate &amp; glass", "brand": "Pyrex", "categories": "Lab,Glass"})
    fraction = 0.99  # every item with a title is held out
    task = retrieval.build_task(ds, fraction, corpus="held_out")
    documents = data.TextView().documents(ds)
    assert len(task.documents) == len(set(task.documents))
    for item, target in zip(task.items, task.targets):
        assert task.documents[target] == documents[item]
    assert len({data.normalised_title(ds.items[i]["title"]) for i in task.items}) == len(task.items)
    assert task.documents[task.targets[0]] == task.documents[task.targets[-1]]  # identical documents, one entry
    everything = retrieval.build_task(ds, 0.5, corpus="all")
    assert set(everything.documents) == {d for d in documents if d}


def test_held_out_is_consistent_across_datasets_and_roughly_the_fraction():
    titles = [f"Product number {i} with a name" for i in range(5000)]
    held = [data.is_held_out(t, 0.2) for t in titles]
    assert 0.17 < np.mean(held) < 0.23
    assert [data.is_held_out(t.upper() + "!!", 0.2) for t in titles] == held  # normalised title decides
    assert not data.is_held_out("", 0.5)
