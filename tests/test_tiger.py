import itertools

import numpy as np
import pytest
import torch

from encoderec.core.errors import EncoderecError
from encoderec.data.dataset import Example, leave_one_out
from encoderec.models import metrics
from encoderec.models.semantic_ids import with_dedup_code
from encoderec.models.tiger import IDTrie, Tiger, TigerConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(layers=1, d_model=32, heads=2, d_kv=16, d_ff=64, dropout=0.0, user_buckets=8, max_history=5,
            lr=3e-3, batch_size=64, epochs=40, eval_every=5, patience=10, valid_users=None, beam_size=6, top_k=4,
            eval_batch_size=40, device="cpu", precision="fp32")
N_ITEMS = 24


@pytest.fixture(scope="module")
def cyclic():
    """Users walk a cycle of 24 items (item i is followed by i + 1); IDs are (i // 8, i % 8 // 2, i % 2)."""
    rng = np.random.default_rng(0)
    sequences = [[(start + t) % N_ITEMS for t in range(rng.integers(4, 8))] for start in rng.integers(0, N_ITEMS, 250)]
    ids = np.array([(i // 8, i % 8 // 2, i % 2) for i in range(N_ITEMS)])
    return leave_one_out(sequences), ids


@pytest.fixture(scope="module")
def trained(cyclic):
    split, ids = cyclic
    return Tiger(TigerConfig(**TINY)).fit(split, ids, progress=False)


def test_trie_lists_every_id_and_shared_ids():
    codes = np.array([[0, 1], [0, 1], [2, 0], [0, 3]])
    trie = IDTrie(codes)
    assert trie.depth == 2 and trie.sizes == [3, 4]
    assert (trie.children[0][0] >= 0).tolist() == [True, False, True]
    paths = {(a, b) for a, b in itertools.product(range(3), range(4))
             if trie.children[0][0, a] >= 0 and trie.children[1][trie.children[0][0, a], b] >= 0}
    assert paths == {(0, 1), (2, 0), (0, 3)}
    assert trie.leaf_of_item[0] == trie.leaf_of_item[1] != trie.leaf_of_item[2]
    assert trie.group_size[trie.leaf_of_item[0]] == 2 and trie.items_of_leaf[trie.leaf_of_item[0]] == [0, 1]


def test_inputs_are_user_token_history_codes_and_end(cyclic):
    split, ids = cyclic
    tiger = Tiger(TigerConfig(**TINY))
    tiger._setup(ids)
    inputs, mask = tiger.encode_inputs([Example(3, [0, 9], 10), Example(5, list(range(8)), 8)])
    first = inputs[0, : mask[0].sum()].tolist()
    assert first[0] == tiger.user_token(3) and first[-1] == 1
    assert first[1:4] == (ids[0] + tiger.offsets).tolist() and first[4:7] == (ids[9] + tiger.offsets).tolist()
    assert mask[1].sum() == 1 + 3 * TINY["max_history"] + 1  # only the last max_history items
    assert inputs[0, mask[0].sum():].eq(0).all()
    assert tiger.user_offset <= tiger.user_token(123456) < tiger.vocab_size


def test_learns_the_cycle_and_only_returns_valid_ids(trained, cyclic):
    split, ids = cyclic
    ranks, gains = trained.rank(split.test)
    assert np.all(gains == 1)
    recall = metrics.summarize(metrics.per_query(ranks, ks=(1, 4)))
    assert recall["Recall@1"] > 0.8  # the next item is fully determined by the last one
    leaves, scores = trained.beam_search(split.test[:30])
    assert (leaves >= 0).all() and np.all(np.diff(scores, axis=1) <= 1e-6)  # valid IDs, best first
    assert all(len(set(row)) == len(row) for row in leaves.tolist())  # no ID twice
    top = trained.recommend(split.test[:30])
    assert top.shape == (30, TINY["top_k"]) and set(top.ravel()) <= set(range(N_ITEMS))
    evaluated = [h for h in trained.history if "valid NDCG@10" in h]
    assert len(evaluated) >= 2 and trained.history[trained.best_epoch]["valid NDCG@10"] == max(
        h["valid NDCG@10"] for h in evaluated)


def test_learns_the_cycle_under_bf16_autocast(cyclic):
    split, ids = cyclic
    tiger = Tiger(TigerConfig(**{**TINY, "precision": "bf16"})).fit(split, ids, progress=False)
    recall = metrics.summarize(metrics.per_query(tiger.rank(split.test)[0], ks=(1,)))
    assert recall["Recall@1"] > 0.5  # chance is 1/24; bf16 emulated on a CPU without it learns slower (0.78 seen)


def test_beam_search_agrees_with_exhaustive_scoring(trained, cyclic):
    """With a beam as wide as the number of IDs, beam search returns every ID ordered by its exact log-probability."""
    split, ids = cyclic
    wide = Tiger(TigerConfig(**{**TINY, "beam_size": N_ITEMS, "top_k": N_ITEMS}))
    wide.model, wide.trie = trained.model, trained.trie
    wide._setup(ids)
    example = split.test[7]
    leaves, scores = wide.beam_search([example])
    inputs, mask = wide.encode_inputs([example])
    targets = torch.from_numpy(wide.item_tokens)
    with torch.no_grad():
        logits = wide.model(input_ids=inputs.repeat(N_ITEMS, 1), attention_mask=mask.repeat(N_ITEMS, 1),
                            labels=targets).logits
    exact = torch.log_softmax(logits, -1).gather(2, targets.unsqueeze(-1)).squeeze(-1).sum(1).numpy()
    by_leaf = exact[np.argsort(wide.trie.leaf_of_item)]
    np.testing.assert_allclose(scores[0], by_leaf[leaves[0]], atol=1e-4)
    np.testing.assert_allclose(np.sort(scores[0])[::-1], np.sort(exact)[::-1], atol=1e-4)


def test_colliding_ids_get_fractional_credit(cyclic):
    split, ids = cyclic
    shared = ids[:, :2]  # items 2k and 2k + 1 share their first two codes
    tiger = Tiger(TigerConfig(**{**TINY, "epochs": 5}))
    tiger.fit(split, shared, progress=False)
    ranks, gains = tiger.rank(split.test)
    assert np.all(gains == 0.5)
    faithful = metrics.summarize(metrics.per_query(ranks, ks=(4,), gains=gains))["Recall@4"]
    plain = metrics.summarize(metrics.per_query(ranks, ks=(4,)))["Recall@4"]
    assert faithful == pytest.approx(plain / 2)
    unique = Tiger(TigerConfig(**{**TINY, "epochs": 1})).fit(split, with_dedup_code(shared), progress=False)
    assert np.all(unique.rank(split.test[:5])[1] == 1)


def test_fit_is_deterministic(cyclic):
    split, ids = cyclic
    config = TigerConfig(**{**TINY, "epochs": 2, "eval_every": 1})
    a, b = Tiger(config).fit(split, ids, progress=False), Tiger(config).fit(split, ids, progress=False)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert np.array_equal(a.rank(split.test)[0], b.rank(split.test)[0])


@pytest.mark.parametrize("change, message", [
    ({"top_k": 30}, "TigerConfig.top_k: expected a positive integer <= beam_size"),
    ({"dropout": 1.0}, r"TigerConfig.dropout: expected in \[0, 1\)"),
    ({"valid_users": 0}, "TigerConfig.valid_users"),
])
def test_config_validation(change, message):
    with pytest.raises(EncoderecError, match=message):
        TigerConfig(**{**TINY, **change})


def test_bad_inputs(cyclic):
    split, ids = cyclic
    with pytest.raises(EncoderecError, match="outside the 10 semantic IDs"):
        Tiger(TigerConfig(**TINY)).fit(split, ids[:10])
    with pytest.raises(EncoderecError, match="not fitted"):
        Tiger().rank(split.test)
    with pytest.raises(EncoderecError, match="semantic IDs: codes must be >= 0"):
        IDTrie(-ids)


def test_fit_and_rank_is_cached(cyclic, tmp_path):
    from encoderec.models.tiger import fit_and_rank

    split, ids = cyclic
    config = TigerConfig(**{**TINY, "epochs": 1})
    first = fit_and_rank(split, ids, config, cache_dir=tmp_path, progress=False)
    assert len(first["test_ranks"]) == len(first["test_gains"]) == len(split.test)
    assert fit_and_rank(split, ids, TigerConfig(**{**TINY, "epochs": 1, "device": None}), cache_dir=tmp_path) == first
    fit_and_rank(split, ids[::-1], config, cache_dir=tmp_path, progress=False)  # other IDs, another run
    assert len(list((tmp_path / "tiger").glob("*.json"))) == 2


def test_a_new_result_version_is_a_new_run(cyclic, tmp_path, monkeypatch):
    from encoderec.models import tiger

    split, ids = cyclic
    config = TigerConfig(**{**TINY, "epochs": 1})
    tiger.fit_and_rank(split, ids, config, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(tiger, "RESULT_VERSION", 2)
    tiger.fit_and_rank(split, ids, config, cache_dir=tmp_path, progress=False)
    assert len(list((tmp_path / "tiger").glob("*.json"))) == 2


def test_the_cache_keys_on_the_resolved_precision(cyclic, tmp_path, monkeypatch):
    from encoderec.models.tiger import fit_and_rank

    split, ids = cyclic
    monkeypatch.delenv("ENCODEREC_PRECISION", raising=False)
    monkeypatch.setattr("encoderec.core.precision.native_bf16", lambda device: True)
    auto = fit_and_rank(split, ids, TigerConfig(**{**TINY, "epochs": 1, "precision": "auto"}), tmp_path, False)
    assert auto["config"]["precision"] == "bf16"
    bf16 = fit_and_rank(split, ids, TigerConfig(**{**TINY, "epochs": 1, "precision": "bf16"}), tmp_path, False)
    assert bf16 == auto  # "auto" on a bf16 machine is the bf16 run
    fit_and_rank(split, ids, TigerConfig(**{**TINY, "epochs": 1, "precision": "fp32"}), tmp_path, False)
    assert len(list((tmp_path / "tiger").glob("*.json"))) == 2
