"""RecBole's SASRec as the peer of our ID-only SASRec: the split it trains on is ours, our read-out of its model
agrees with RecBole's own evaluator, and the pipeline plans, keys and tabulates its runs.

The fitting tests need the recbole extra (`make recbole`; `make test` installs it)."""

import numpy as np
import pandas as pd
import pytest

from encoderec.core.errors import EncoderecError
from encoderec.data.dataset import Example, Split, leave_one_out
from encoderec.models import recbole_sasrec as peer
from encoderec.models.fitting import validation_scores
from encoderec.pipeline import runs
from encoderec.pipeline.registry import ID_ONLY, RECBOLE_SASREC
from encoderec.report import tables

N_ITEMS = 30
TINY = dict(hidden_size=16, heads=2, inner_size=32, layers=1, dropout=0.1, batch_size=128, eval_batch_size=100,
            epochs=4, patience=4, lr=1e-2, max_len=6, device="cpu")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cyclic() -> Split:
    """Users walk a cycle of 30 items (item i is followed by i + 1), 3 to 8 items each: some users have three items,
    the ones RecBole validates on less than we do. Item 29 is never bought last, so some items are rarely seen."""
    rng = np.random.default_rng(0)
    return leave_one_out([[(start + t) % N_ITEMS for t in range(rng.integers(3, 9))]
                          for start in rng.integers(0, N_ITEMS, 300)])


def test_sequences_of_a_leave_one_out_split_are_the_sequences():
    sequences = [[1, 2, 3], [4, 5, 6, 7, 4]]
    assert peer.sequences_of(leave_one_out(sequences)) == sequences


def test_sequences_of_refuses_any_other_split():
    split = leave_one_out([[1, 2, 3, 4]])
    moved = Split(split.train, [Example(0, [1], 3)], split.test)
    with pytest.raises(EncoderecError, match="leave-one-out splits only; user 0"):
        peer.sequences_of(moved)
    with pytest.raises(EncoderecError, match="one validation and one test example per user"):
        peer.sequences_of(Split(split.train, split.valid, split.test + split.test))


def test_atomic_files_hold_every_interaction_in_order_and_every_item(tmp_path):
    path = peer.write_atomic_files([[3, 1, 3], [0, 2]], 5, tmp_path) / peer._DATASET
    inter = pd.read_csv(path / f"{peer._DATASET}.inter", sep="\t")
    assert list(inter.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
    assert inter.values.tolist() == [[0, 3, 0], [0, 1, 1], [0, 3, 2], [1, 0, 0], [1, 2, 1]]
    assert (path / f"{peer._DATASET}.item").read_text().split() == ["item_id:token", "0", "1", "2", "3", "4"]


@pytest.mark.parametrize("change, message", [({"exclude_history": True}, "exclude_history"),
                                             ({"precision": "bf16"}, "precision"),
                                             ({"hidden_size": 15, "heads": 2}, "multiple of heads"),
                                             ({"dropout": 1.0}, "dropout")])
def test_config_validation(change, message):
    with pytest.raises(EncoderecError, match=message):
        peer.RecBoleSASRecConfig(**change)


@pytest.fixture(scope="module")
def fitted(cyclic):
    pytest.importorskip("recbole", reason="the recbole extra is not installed: make recbole")
    return peer.RecBoleSASRec(peer.RecBoleSASRecConfig(**TINY)).fit(cyclic, N_ITEMS, progress=False)


def test_our_read_out_agrees_with_recboles_evaluator(fitted, cyclic):
    """RecBole validates the users with at least four items; ranked by us, the kept model scores on them what
    RecBole's evaluator recorded for its best epoch."""
    validated = [e for e, train in zip(cyclic.valid, cyclic.train) if len(train) >= 2]
    assert len(validated) < len(cyclic.valid)  # the fixture has users with three items
    ours = validation_scores(fitted.rank(validated))
    best = fitted.history[fitted.best_epoch]
    assert ours["Recall@10"] == pytest.approx(best["valid Recall@10"], abs=1e-8)  # RecBole rounds to 8 digits
    assert ours["NDCG@10"] == pytest.approx(best["valid NDCG@10"], abs=1e-8)


def test_fit_records_every_epoch_and_learns_the_cycle(fitted, cyclic):
    assert [h["epoch"] for h in fitted.history] == list(range(TINY["epochs"]))
    assert all(h["loss"] > 0 and h["seconds"] > 0 and "valid NDCG@10" in h for h in fitted.history)
    assert fitted.best_epoch == int(np.argmax([h["valid NDCG@10"] for h in fitted.history]))
    ranks, gains = fitted.rank(cyclic.test)
    assert gains is None and ranks.shape == (len(cyclic.test),) and ranks.min() >= 0 and ranks.max() < N_ITEMS
    assert validation_scores((ranks, None))["Recall@10"] > 0.5  # 10 of 30 items at random: 1/3


def test_fit_and_rank_is_cached_and_counts_the_users_recbole_does_not_validate(cyclic, tmp_path):
    pytest.importorskip("recbole", reason="the recbole extra is not installed: make recbole")
    config = peer.RecBoleSASRecConfig(**{**TINY, "epochs": 1})
    assert peer.fit_and_rank(cyclic, N_ITEMS, config, cache_dir=tmp_path, read_only=True) is None
    result = peer.fit_and_rank(cyclic, N_ITEMS, config, cache_dir=tmp_path, progress=False)
    assert result["users_without_recbole_validation"] == sum(len(t) < 2 for t in cyclic.train) > 0
    assert result["config"]["precision"] == "fp32" and result["config"]["exclude_history"] is False
    assert len(result["valid_ranks"]) == len(cyclic.valid) and len(result["test_ranks"]) == len(cyclic.test)
    assert peer.fit_and_rank(cyclic, N_ITEMS, config, cache_dir=tmp_path, read_only=True) == result


# --------------------------------------------------------------------------- the pipeline


def test_recbole_plan_pairs_each_seed_with_our_run_under_the_same_settings():
    plan = runs.recbole_plan({"datasets": ["A", "B"], "seeds": [0, 1], "settings": {"exclude_history": False}},
                             {"epochs": 20, "text_norm": "scaled", "temperature": 0.1}, {"A": {"fast": True}},
                             datasets=["A"], seeds=[1])
    assert [(label, r.variant, r.seed, r.dataset) for label, r in plan] == [("ours", "id", 1, "A"),
                                                                            ("RecBole", runs.RECBOLE, 1, "A")]
    ours, recbole = plan[0][1], plan[1][1]
    assert ours.settings == {"epochs": 20, "temperature": 0.1, "exclude_history": False, "fast": True}
    assert recbole.settings == {"epochs": 20}  # the temperature and `fast` are ours alone; RecBole keeps the history
    assert recbole.config().epochs == 20 and recbole.config().seed == 1
    assert runs.versions(runs.RECBOLE, encoded=False) == {"recbole_sasrec": peer.RESULT_VERSION}


def test_recbole_plan_errors_name_the_parameter():
    with pytest.raises(EncoderecError, match="parameter recbole: .*unknown key 'backbones'"):
        runs.recbole_plan({"backbones": []}, {}, {})
    with pytest.raises(EncoderecError, match="parameter recbole.*exclude_history"):
        runs.recbole_plan({"datasets": ["A"], "settings": {"exclude_history": True}}, {}, {})
    assert runs.recbole_plan({}, {}, {}) == []


def test_a_recbole_run_is_recorded_under_its_own_name():
    run = runs.Run("unisrec", "A", None, runs.RECBOLE, 0)
    assert runs.record(run, {}, None)["model"] == RECBOLE_SASREC
    assert runs.record(runs.Run("unisrec", "A", None, "id", 0), {}, None)["model"] == ID_ONLY


def _record(implementation: str, seed: int, hits: int) -> dict:
    ranks = [0] * hits + [50] * (20 - hits)
    return {"implementation": implementation, "dataset": "A", "model": ID_ONLY, "mode": "id", "seed": seed,
            "result": {"test_ranks": ranks, "history": [{"seconds": 2.0 + seed, "valid NDCG@10": 0.1}],
                       "best_epoch": 0, "fit_seconds": 1.0, "rank_seconds": 1.0,
                       "config": {"device": "cpu", "precision": "fp32"}}}


def test_peer_check_tabulates_both_implementations_and_compares_recboles_with_ours():
    summary, gap = tables.peer_check([_record("ours", 0, 10), _record("ours", 1, 12),
                                      _record("RecBole", 0, 5), _record("RecBole", 1, 6)])
    assert summary["implementation"].tolist() == ["ours", "RecBole"]
    assert summary.loc[0, "Recall@10"] == "0.5500 ± 0.0707" and summary.loc[1, "seconds per epoch"] == "2.5 ± 0.7"
    assert len(gap) == 1 and gap.loc[0, "model"] == "RecBole" and gap.loc[0, "base"] == "ours"
    assert gap.loc[0, "seeds"] == 2 and gap.loc[0, "relative change"] == pytest.approx(5.5 / 11 - 1)
