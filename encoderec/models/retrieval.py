"""Title-to-document retrieval over held-out items (the paper's Table 1), dense (faiss) and BM25.

A task holds the held-out items of one dataset: each title is a query. The corpus is the set of distinct
documents of the whole catalogue (`corpus="all"`, the paper's setting: its Table 1 searches 50K items) or of the
held-out items alone (`corpus="held_out"`: nothing in it was seen in training). Documents are deduplicated because identical documents cannot be told apart by any
retriever: on Beauty and Toys, whose only document is the category path, the task becomes "find the item's
category path from its title" and its corpus is the distinct paths. The query's one relevant document is its
own; ranks feed the shared metric code (`encoderec.models.metrics`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from encoderec.data import dataset as data
from encoderec.models import metrics

# The version of what this module computes: part of the key of every cached or archived result of it. Bump it
# when a change moves its outputs (tests/test_golden.py fails until you do and re-record); a change that
# moves nothing (a refactor, a docstring, a speed-up with the same numbers) keeps it, and the archive with it.
RESULT_VERSION = 1

APPROXIMATE_ABOVE = 100_000  # corpus size from which an HNSW index is used unless exact search is asked for
TOP_K = 100


@dataclass
class RetrievalTask:
    dataset: str
    items: list[int]  # held-out item idx, one per query
    queries: list[str]
    documents: list[str]  # distinct documents
    targets: np.ndarray  # for each query, the index of its document in `documents`

    @property
    def size(self) -> dict[str, int]:
        return {"queries": len(self.queries), "documents": len(self.documents)}


def build_task(dataset: data.Dataset, fraction: float, view: data.TextView | None = None,
               corpus: str = "all") -> RetrievalTask:
    if corpus not in ("all", "held_out"):
        raise ValueError(f"corpus must be 'all' or 'held_out', got {corpus!r}")
    view = view or data.TextView()
    items = data.held_out_items(dataset, fraction, view)
    titles, all_documents = view.queries(dataset), view.documents(dataset)
    pool = [all_documents[i] for i in items]
    if corpus == "all":
        pool += [d for d in all_documents if d]
    position: dict[str, int] = {}
    for document in pool:
        position.setdefault(document, len(position))
    targets = np.asarray([position[all_documents[i]] for i in items], dtype=np.int64)
    return RetrievalTask(dataset.name, items, [titles[i] for i in items], list(position), targets)


def _search(query_emb: np.ndarray, doc_emb: np.ndarray, k: int, approximate: bool | None) -> np.ndarray:
    """Top-k document indices per query by inner product (= cosine on unit vectors)."""
    import faiss

    if approximate is None:
        approximate = len(doc_emb) > APPROXIMATE_ABOVE
    dim = doc_emb.shape[1]
    if approximate:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(128, k)
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(doc_emb, dtype=np.float32))
    _, top = index.search(np.ascontiguousarray(query_emb, dtype=np.float32), min(k, len(doc_emb)))
    return top


def ranks_from_top(top: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based position of each query's target in its top list, metrics.MISSING when absent."""
    hits = top == targets[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1), metrics.MISSING).astype(np.int64)


def dense_ranks(query_emb: np.ndarray, doc_emb: np.ndarray, targets: np.ndarray, k: int = TOP_K,
                approximate: bool | None = None) -> np.ndarray:
    return ranks_from_top(_search(query_emb, doc_emb, k, approximate), targets)


_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def bm25_ranks(queries: list[str], documents: list[str], targets: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """BM25 (bm25s, Lucene variant, k1=1.5, b=0.75) over lower-cased alphanumeric tokens."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index([tokenize(d) for d in documents], show_progress=False)
    top, _ = retriever.retrieve([tokenize(q) or ["<empty>"] for q in queries], k=min(k, len(documents)),
                                show_progress=False, n_threads=1)
    return ranks_from_top(np.asarray(top), targets)


def evaluate(ranks: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Recall@1/10, NDCG@10 and MRR (means), and the per-query values for paired tests."""
    per_query = metrics.per_query(ranks, ks=(1, 10), mrr=True)
    per_query.pop("NDCG@1")
    return metrics.summarize(per_query), per_query
