"""Golden outputs: a small seeded computation of every unit whose results are cached and archived.

Cached and archived results are keyed by each computing module's RESULT_VERSION, not by its source, so that moving
a file or a speed-up that changes no number keeps days of archived CPU work. The price is this test: each unit's
outputs on a fixed input are recorded in tests/golden/<unit>.json with the version they were recorded at, and a
change that moves them fails here until the module's RESULT_VERSION is bumped and the outputs re-recorded:

    pytest tests/test_golden.py --record-golden

Everything runs in fp32 on the CPU with one thread. The tolerances are those of fp32 arithmetic on another CPU
(sums in another order: relative 1e-3 on losses after a few steps, a few percent of integer outputs such as ranks
and codes flipping on near-ties), far below what a changed setting, formula or data order moves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from encoderec.data.dataset import leave_one_out
from encoderec.models import embeddings, retrieval, semantic_ids, space, tiger, unisrec
from encoderec.models.rqvae import RQVAEConfig

GOLDEN = Path(__file__).parent / "golden"
pytestmark = pytest.mark.usefixtures("one_thread")


def cycle(n_items: int, users: int) -> Any:
    """Users walk a cycle of items (item i followed by i + 1), starting anywhere."""
    rng = np.random.default_rng(0)
    return leave_one_out([[(start + t) % n_items for t in range(rng.integers(4, 9))]
                          for start in rng.integers(0, n_items, users)])


def clusters(n: int = 96, dim: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, dim))
    return (centres[np.arange(n) % 6] + rng.normal(scale=0.3, size=(n, dim))).astype(np.float32)


def encoding(model: Path, tmp_path: Path) -> dict[str, Any]:
    texts = ["red wooden puzzle", "glass beaker set", "kids jigsaw piece", "blue laboratory toy", "a the of"]
    x = embeddings.encode(str(model), texts, view="golden", cache_dir=tmp_path, precision="fp32", progress=False,
                          runtime="torch")  # the reference; ONNX Runtime agrees within 1e-5 (test_runtime)
    return {"embeddings": x.round(6).tolist()}


def retrieval_ranks(model: Path, tmp_path: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(60, 16)).astype(np.float32)
    queries = docs[:30] + rng.normal(scale=1.5, size=(30, 16)).astype(np.float32)
    words = [" ".join(rng.choice(["kids", "puzzle", "glass", "beaker", "toy", "red", "blue", "set"], 3)) for _ in
             range(60)]
    return {"dense": retrieval.dense_ranks(queries, docs, np.arange(30)).tolist(),
            "bm25": retrieval.bm25_ranks(words[:30], words, np.arange(30)).tolist()}


def tokenization(model: Path, tmp_path: Path) -> dict[str, Any]:
    config = RQVAEConfig(hidden_dims=(16,), latent_dim=4, levels=2, codebook_size=8, epochs=5, batch_size=32,
                         device="cpu")
    found = semantic_ids.tokenize(clusters(), np.arange(80), "rqvae", config, cache_dir=tmp_path, progress=False)
    return {"codes": found.codes.tolist(), "loss": [h["loss"] for h in found.info["history"]]}


def item_map(model: Path, tmp_path: Path) -> dict[str, Any]:
    """The map's shape, not its coordinates: a seeded UMAP repeats itself on one machine (test_space), but on another
    CPU its spectral start (the machine's LAPACK) differs in the last digits and its optimisation carries that into a
    different picture (an AVX2 EPYC put points up to 16 units from where the recording machine did, no rotation or
    reflection apart). What a setting moves and a machine does not: the share of each point's 9 nearest points on the
    map that come from its own cluster (6 clusters of 10; measured by hand: 0.983 and 0.980 on the two machines, 0.957
    with min_dist 0.5, 0.969 with 5 neighbours, 0.957 with 30), and the nearest point's distance over the median
    distance (0.0125 and 0.0139; 0.008 with 30 neighbours)."""
    coordinates = space.umap_coordinates(clusters(60))
    distances = np.sqrt(((coordinates[:, None] - coordinates[None]) ** 2).sum(-1))
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :9]
    cluster = np.arange(60) % 6
    median = np.median(distances[np.isfinite(distances)])
    return {"same-cluster neighbours": float(np.mean(cluster[nearest] == cluster[:, None])),
            "nearest over median distance": float(np.median(distances.min(1)) / median)}


def recommender_result(result: dict[str, Any]) -> dict[str, Any]:
    return {"loss": [h["loss"] for h in result["history"]], "valid_ranks": result["valid_ranks"],
            "test_ranks": result["test_ranks"]}


def unisrec_fit(model: Path, tmp_path: Path, lr: float = 1e-2) -> dict[str, Any]:
    config = unisrec.UniSRecConfig(hidden_size=16, heads=2, inner_size=32, experts=2, layers=1, batch_size=128,
                                   eval_batch_size=100, epochs=3, lr=lr, max_len=6, device="cpu", precision="fp32")
    return recommender_result(unisrec.fit_and_rank(cycle(30, 200), 30, clusters(30), config, tmp_path,
                                                   progress=False))


def tiger_fit(model: Path, tmp_path: Path) -> dict[str, Any]:
    config = tiger.TigerConfig(layers=1, d_model=32, heads=2, d_kv=16, d_ff=64, dropout=0.0, user_buckets=8,
                               max_history=5, lr=3e-3, batch_size=64, epochs=3, eval_every=1, beam_size=6, top_k=4,
                               eval_batch_size=40, device="cpu", precision="fp32")
    ids = np.array([(i // 8, i % 8 // 2, i % 2) for i in range(24)])
    return recommender_result(tiger.fit_and_rank(cycle(24, 150), ids, config, tmp_path, progress=False))


# unit: (the module whose RESULT_VERSION keys it, what it computes)
UNITS: dict[str, tuple[Any, Callable[[Path, Path], dict[str, Any]]]] = {
    "encoding": (embeddings, encoding), "retrieval": (retrieval, retrieval_ranks),
    "semantic_ids": (semantic_ids, tokenization), "space": (space, item_map), "unisrec": (unisrec, unisrec_fit),
    "tiger": (tiger, tiger_fit)}


# outputs that are statistics of a result which itself differs between CPUs (item_map): absolute tolerances
SPREAD = {"same-cluster neighbours": 0.01, "nearest over median distance": 0.003}


def differences(recorded: dict[str, Any], computed: dict[str, Any]) -> list[str]:
    """What moved beyond fp32 noise between two outputs of a unit: float arrays (relative 1e-3, or SPREAD's absolute
    tolerance), integer arrays (at most 5 % of the entries), and their shapes."""
    moved = []
    for name, expected in recorded.items():
        a, b = np.asarray(expected), np.asarray(computed.get(name))
        if a.shape != b.shape:
            moved.append(f"{name}: shape {b.shape}, recorded {a.shape}")
        elif np.issubdtype(a.dtype, np.integer):
            if (share := float(np.mean(a != b))) > 0.05:
                moved.append(f"{name}: {share:.0%} of the entries differ")
        elif not np.allclose(a, b, rtol=0 if name in SPREAD else 1e-3, atol=SPREAD.get(name, 1e-4)):
            moved.append(f"{name}: up to {float(np.max(np.abs(a - b))):.3g} away")
    return moved


@pytest.mark.parametrize("unit", list(UNITS))
def test_outputs_match_those_recorded_at_the_result_version(unit, tiny_st_model, tmp_path, request):
    module, compute = UNITS[unit]
    computed = compute(tiny_st_model, tmp_path)
    path = GOLDEN / f"{unit}.json"
    if request.config.getoption("--record-golden"):
        path.write_text(json.dumps({"version": module.RESULT_VERSION, "outputs": computed}) + "\n")
    recorded = json.loads(path.read_text())
    how = "pytest tests/test_golden.py --record-golden"
    assert recorded["version"] == module.RESULT_VERSION, (
        f"{module.__name__}.RESULT_VERSION is {module.RESULT_VERSION}, {path.name} was recorded at "
        f"{recorded['version']}: re-record it with {how}")
    moved = differences(recorded["outputs"], computed)
    assert not moved, (f"{unit}'s outputs moved ({'; '.join(moved)}): bump RESULT_VERSION in {module.__name__} "
                       f"(its cached and archived results are then computed again) and re-record with {how}")


def test_a_changed_setting_moves_the_outputs_beyond_the_tolerance(tiny_st_model, tmp_path):
    recorded = json.loads((GOLDEN / "unisrec.json").read_text())["outputs"]
    assert differences(recorded, unisrec_fit(tiny_st_model, tmp_path, lr=2e-2))
