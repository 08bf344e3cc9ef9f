import dataclasses

import numpy as np
import pytest
import torch

from encoderec.core.errors import EncoderecError
from encoderec.core.io import settings_key, sha256_text
from encoderec.data.dataset import Example, leave_one_out, length_batches, prefix_examples
from encoderec.models import metrics, unisrec
from encoderec.models.unisrec import (
    MoEAdaptor,
    SequentialRecommender,
    UniformDropout,
    UniSRec,
    UniSRecConfig,
    collate,
    normalise_text,
)

TINY = dict(hidden_size=16, heads=2, inner_size=32, experts=2, layers=1, dropout=0.1, adaptor_dropout=0.1,
            batch_size=128, eval_batch_size=100, epochs=15, patience=15, lr=2e-2, max_len=6, device="cpu",
            precision="fp32")
N_ITEMS = 30
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cyclic():
    """Users walk a cycle of 30 items (item i is always followed by i + 1), starting anywhere; text embeddings
    place neighbouring items near each other, so both text and IDs can learn the rule."""
    rng = np.random.default_rng(0)
    sequences = [[(start + t) % N_ITEMS for t in range(rng.integers(4, 9))] for start in rng.integers(0, N_ITEMS, 300)]
    angle = 2 * np.pi * np.arange(N_ITEMS) / N_ITEMS
    text = np.column_stack([np.cos(angle), np.sin(angle), rng.normal(scale=0.1, size=(N_ITEMS, 6))]).astype(np.float32)
    return leave_one_out(sequences), text


def test_prefix_examples_are_every_prefix():
    assert prefix_examples([[1, 2, 3], [4], [5, 6]]) == [
        Example(0, [1], 2), Example(0, [1, 2], 3), Example(2, [5], 6)]


def test_length_batches_cover_every_example_once_and_group_lengths():
    lengths = np.random.default_rng(1).integers(1, 40, 500)
    shuffled = length_batches(lengths, 32, np.random.default_rng(0))
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(500))
    again = length_batches(lengths, 32, np.random.default_rng(0))
    assert [b.tolist() for b in shuffled] == [b.tolist() for b in again]
    assert np.mean([np.ptp(lengths[b]) for b in shuffled]) < 10  # random batches of 32 would span about 36
    assert np.concatenate(length_batches(lengths, 32)).tolist() == np.argsort(lengths, kind="stable").tolist()


def test_collate_right_pads_and_keeps_the_last_max_len_items():
    histories, lengths, targets = collate([Example(0, [1, 2, 3, 4], 5), Example(1, [7], 8)], max_len=3)
    assert histories.tolist() == [[2, 3, 4], [7, -1, -1]]
    assert lengths.tolist() == [3, 1] and targets.tolist() == [5, 8]
    with pytest.raises(EncoderecError, match="empty history"):
        collate([Example(0, [], 1)], max_len=3)


def test_moe_adaptor_is_a_gated_sum_of_whitened_projections():
    torch.manual_seed(0)
    moe = MoEAdaptor(text_dim=5, hidden=4, experts=3, dropout=0.2).eval()
    with torch.no_grad():
        moe.gate.normal_()
        moe.bias.normal_()
    t = torch.randn(7, 5)
    gates = (t @ moe.gate).softmax(-1)
    expected = sum(gates[:, k:k + 1] * ((t - moe.bias[k]) @ moe.weight[k]) for k in range(3))
    torch.testing.assert_close(moe(t), expected)


def test_user_vector_ignores_padding_and_future_items(cyclic):
    split, text = cyclic
    model = UniSRec(UniSRecConfig(**TINY), N_ITEMS, torch.from_numpy(text)).eval()
    items = model.items()
    short = torch.tensor([[3, 4, -1]]), torch.tensor([2])
    longer = torch.tensor([[3, 4, 9, 9, -1, -1]]), torch.tensor([2])  # items after the length are never seen
    torch.testing.assert_close(model.users(*short, items), model.users(*longer, items))


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("mode", ["inductive", "transductive", "id"])
def test_each_mode_learns_the_cycle(cyclic, mode, precision, fast):
    split, text = cyclic
    config = UniSRecConfig(**{**TINY, "mode": mode, "precision": precision, "fast": fast})
    model = SequentialRecommender(config).fit(split, N_ITEMS, text, progress=False)
    ndcg = metrics.summarize(metrics.per_query(model.rank(split.test)[0]))["NDCG@10"]
    assert ndcg > 0.8  # random ranking of 30 items gives about 0.14
    assert len(model.history) <= TINY["epochs"] and model.history[model.best_epoch]["valid NDCG@10"] == max(
        h["valid NDCG@10"] for h in model.history)


def test_rank_counts_better_items_and_skips_the_history(cyclic):
    split, text = cyclic
    model = SequentialRecommender(UniSRecConfig(**{**TINY, "epochs": 2})).fit(split, N_ITEMS, text, progress=False)
    examples = split.test[:20]
    ranks, gains = model.rank(examples)
    assert gains is None  # every hit counts 1
    for e, r in zip(examples, ranks):
        h, n, _ = collate([e], TINY["max_len"])
        with torch.no_grad():
            scores = model.model.logits(h, n)[0].numpy()
        scores[e.history] = -np.inf
        assert r == (scores > scores[e.target]).sum()


def test_a_repeated_item_is_ranked_against_the_items_outside_the_history(cyclic):
    """A target that is also in the history (a repeat purchase) is ranked, not masked away with the history."""
    split, text = cyclic
    model = SequentialRecommender(UniSRecConfig(**{**TINY, "epochs": 1})).fit(split, N_ITEMS, text, progress=False)
    repeat = Example(0, [3, 4, 5, 3, 6], 3)
    h, n, _ = collate([repeat], TINY["max_len"])
    with torch.no_grad():
        scores = model.model.logits(h, n)[0].numpy()
    outside = np.setdiff1d(np.arange(N_ITEMS), repeat.history)
    assert model.rank([repeat])[0][0] == (scores[outside] > scores[3]).sum() <= len(outside)
    # training keeps repeats too: every prefix, the repeated item as history and as target
    assert prefix_examples([[3, 4, 3]]) == [Example(0, [3], 4), Example(0, [3, 4], 3)]
    assert leave_one_out([[1, 2, 1, 2]]).test == [Example(0, [1, 2, 1], 2)]


def test_fit_is_deterministic_and_stops_early(cyclic):
    split, text = cyclic
    config = UniSRecConfig(**{**TINY, "epochs": 3})
    a = SequentialRecommender(config).fit(split, N_ITEMS, text, progress=False)
    b = SequentialRecommender(config).fit(split, N_ITEMS, text, progress=False)
    assert np.array_equal(a.rank(split.test)[0], b.rank(split.test)[0])
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    frozen = SequentialRecommender(UniSRecConfig(**{**TINY, "lr": 1e-12, "patience": 2})).fit(
        split, N_ITEMS, text, progress=False)
    assert len(frozen.history) < TINY["epochs"]  # no improvement: stops `patience` epochs after the best


def test_with_the_history_kept_every_item_is_ranked(cyclic):
    """The reference protocol (RecBole's full sort): the history competes with the target. Masking only removes
    competitors, so no rank gets better when the history is kept, and ranks count exactly the items above."""
    split, text = cyclic
    model = SequentialRecommender(UniSRecConfig(**{**TINY, "epochs": 2})).fit(split, N_ITEMS, text, progress=False)
    examples = split.test[:40]
    kept, _ = model.rank(examples, exclude_history=False)
    excluded, _ = model.rank(examples)
    assert (kept >= excluded).all() and (kept > excluded).any()
    for e, r in zip(examples, kept):
        h, n, _ = collate([e], TINY["max_len"])
        with torch.no_grad():
            scores = model.model.logits(h, n)[0].numpy()
        assert r == (scores > scores[e.target]).sum()
    model.config.exclude_history = False  # the config's protocol is rank's default
    assert np.array_equal(model.rank(examples)[0], kept)


def test_fit_and_rank_gives_the_test_ranks_under_both_protocols(cyclic, tmp_path):
    from encoderec.models.unisrec import fit_and_rank

    split, text = cyclic
    ours = fit_and_rank(split, N_ITEMS, text, UniSRecConfig(**{**TINY, "epochs": 1}), tmp_path, progress=False)
    assert len(ours["test_ranks_history_kept"]) == len(split.test)
    assert (np.array(ours["test_ranks_history_kept"]) >= np.array(ours["test_ranks"])).all()
    reference = fit_and_rank(split, N_ITEMS, text, UniSRecConfig(**{**TINY, "epochs": 1, "exclude_history": False}),
                             tmp_path, progress=False)
    assert "test_ranks_history_kept" not in reference  # its test_ranks are that protocol already


def test_text_norms():
    rng = np.random.default_rng(0)
    # anisotropic unit rows: a shared direction plus noise, in 4 of 6 coordinates (the other two are 0)
    x = np.column_stack([np.full(200, 3.0), rng.normal(size=(200, 3)) * [2.0, 1.0, 0.5], np.zeros((200, 2))])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert np.array_equal(normalise_text(x, "none"), x.astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(normalise_text(x, "scaled"), axis=1), np.sqrt(6), rtol=1e-5)
    standard = normalise_text(x, "standard")
    np.testing.assert_allclose(standard.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(standard.std(0), [1, 1, 1, 1, 0, 0], atol=1e-4)  # constant coordinates stay 0
    white = normalise_text(x, "whiten")
    assert white.shape == (200, 4)  # the directions without variance are dropped
    np.testing.assert_allclose(np.cov(white.T, bias=True), np.eye(4), atol=1e-4)
    with pytest.raises(EncoderecError, match="text_norm 'pca': use one of none, scaled, standard, whiten"):
        normalise_text(x, "pca")


def test_every_text_norm_learns_the_cycle(cyclic):
    split, text = cyclic
    for how in ("scaled", "standard", "whiten"):
        model = SequentialRecommender(UniSRecConfig(**{**TINY, "text_norm": how})).fit(split, N_ITEMS, text,
                                                                                        progress=False)
        ranks, _ = model.rank(split.test)
        assert metrics.summarize(metrics.per_query(ranks, ks=(10,)))["Recall@10"] > 0.6, how  # chance: 10/25


@pytest.mark.parametrize("change, message", [
    ({"mode": "hybrid"}, "UniSRecConfig.mode: expected one of inductive, transductive, id"),
    ({"text_norm": "pca"}, "UniSRecConfig.text_norm: expected one of none, scaled, standard, whiten"),
    ({"exclude_history": "yes"}, "UniSRecConfig.exclude_history: expected true or false"),
    ({"hidden_size": 15}, "UniSRecConfig.hidden_size: expected a multiple of heads"),
    ({"epochs": 0}, "UniSRecConfig.epochs: expected a positive integer"),
])
def test_config_validation(change, message):
    with pytest.raises(EncoderecError, match=message):
        UniSRecConfig(**{**TINY, **change})


def test_bad_inputs(cyclic):
    split, text = cyclic
    with pytest.raises(EncoderecError, match="needs text embeddings"):
        SequentialRecommender(UniSRecConfig(**TINY)).fit(split, N_ITEMS, None)
    with pytest.raises(EncoderecError, match=r"expected 30 finite rows .* got shape \(29, 8\)"):
        SequentialRecommender(UniSRecConfig(**TINY)).fit(split, N_ITEMS, text[:29])
    with pytest.raises(EncoderecError, match="outside 0..19"):
        SequentialRecommender(UniSRecConfig(**{**TINY, "mode": "id"})).fit(split, 20)
    with pytest.raises(EncoderecError, match="not fitted"):
        SequentialRecommender().rank(split.test)


def test_fit_and_rank_is_cached_whatever_the_device_setting(cyclic, tmp_path):
    from encoderec.models.unisrec import fit_and_rank

    split, text = cyclic
    config = UniSRecConfig(**{**TINY, "epochs": 2})
    first = fit_and_rank(split, N_ITEMS, text, config, cache_dir=tmp_path, progress=False)
    assert len(first["test_ranks"]) == len(split.test) and first["config"]["device"] == "cpu"
    unset = UniSRecConfig(**{**TINY, "epochs": 2, "device": None})  # where CUDA is available this is the GPU
    assert fit_and_rank(split, N_ITEMS, text, unset, cache_dir=tmp_path) == first
    assert len(list((tmp_path / "unisrec").glob("*.json"))) == 1
    fit_and_rank(split, N_ITEMS, text * 2, config, cache_dir=tmp_path, progress=False)
    assert len(list((tmp_path / "unisrec").glob("*.json"))) == 2  # other embeddings, another run


def test_uniform_dropout_is_dropout_with_another_random_stream():
    x = torch.ones(200_000, dtype=torch.bfloat16, requires_grad=True)
    for p in (0.2, 0.5):
        torch.manual_seed(0)
        y = UniformDropout(p)(x)
        kept = y != 0
        assert y.dtype == x.dtype and torch.equal(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
        assert abs(kept.float().mean().item() - (1 - p)) < 0.005  # Bernoulli(1 - p): 4 standard errors
        y.sum().backward()
        assert torch.equal(x.grad, y.detach())  # the gradient goes through the kept elements, scaled
        x.grad = None
    dropout = UniformDropout(0.5).eval()
    assert dropout(x) is x


def test_fast_replaces_every_dropout_but_the_attention_and_keeps_the_parameters():
    text = torch.randn(N_ITEMS, 8)
    torch.manual_seed(0)
    plain = UniSRec(UniSRecConfig(**TINY), N_ITEMS, text)
    torch.manual_seed(0)
    fast = UniSRec(UniSRecConfig(**{**TINY, "fast": True}), N_ITEMS, text)
    kinds = [type(m) for m in fast.modules() if isinstance(m, torch.nn.Dropout)]
    assert kinds and set(kinds) == {UniformDropout}
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), fast.state_dict().values()))
    assert all(not isinstance(m, UniformDropout) for m in plain.modules())


def test_fast_is_keyed_only_when_set():
    """A field added after runs were cached stays out of the key at its default: those runs keep their keys."""
    config = UniSRecConfig(**{**TINY, "epochs": 1})
    fields_before_fast = {k: v for k, v in vars(config).items() if k not in ("fast", "device")}
    assert settings_key(config) == sha256_text(repr(sorted(fields_before_fast.items())))
    assert settings_key(dataclasses.replace(config, fast=True)) != settings_key(config)


def test_a_new_result_version_is_a_new_run(cyclic, tmp_path, monkeypatch):
    from encoderec.models import unisrec

    split, text = cyclic
    config = UniSRecConfig(**{**TINY, "epochs": 1})
    unisrec.fit_and_rank(split, N_ITEMS, text, config, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(unisrec, "RESULT_VERSION", 2)
    unisrec.fit_and_rank(split, N_ITEMS, text, config, cache_dir=tmp_path, progress=False)
    assert len(list((tmp_path / "unisrec").glob("*.json"))) == 2


def test_early_stopping_keeps_the_best_evaluation_and_counts_patience_in_evaluations():
    from encoderec.models.fitting import train_with_early_stopping

    model = torch.nn.Linear(1, 1)
    start = model.weight.item()
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.9])  # the 0.9 comes after patience ran out

    def train_epoch():
        with torch.no_grad():
            model.weight += 1.0  # the epoch number + 1, so the kept weights tell which epoch they are from
        return 1.0

    history, best = train_with_early_stopping(model, train_epoch, lambda: {"Recall@10": 0, "NDCG@10": next(scores)},
                                              epochs=20, patience=2, eval_every=2, progress=False)
    evaluated = [h["epoch"] for h in history if "valid NDCG@10" in h]
    assert evaluated == [1, 3, 5, 7] and len(history) == 8  # stopped after 2 evaluations without a better one
    assert best == 3 and model.weight.item() == pytest.approx(start + 4)  # the weights after epoch 3
    assert not model.training


def test_a_fit_repeats_itself_with_several_threads(tmp_path):
    """fp32 on 2,000 items and 4,000 users with two threads (tensors this size are split between them): two fits of
    one seed give the same losses and ranks (fitting.fit_and_rank trains under torch's deterministic kernels)."""
    from tests.test_golden import cycle

    torch.set_num_threads(2)  # the one_thread fixture restores the count after the test
    split, embeddings = cycle(2000, 4000), np.random.default_rng(0).normal(size=(2000, 384)).astype(np.float32)
    config = UniSRecConfig(epochs=1, device="cpu", precision="fp32", batch_size=1024, max_len=8)
    fits = [unisrec.fit_and_rank(split, 2000, embeddings, config, tmp_path / str(i), progress=False) for i in range(2)]
    losses = [[h["loss"] for h in fit["history"]] for fit in fits]
    assert losses[0] == losses[1] and fits[0]["test_ranks"] == fits[1]["test_ranks"]
