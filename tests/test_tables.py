import numpy as np

from encoderec import metrics, tables


def result(ranks, gains=None, best=1):
    history = [{"epoch": 0, "loss": 2.0, "seconds": 1.0, "valid NDCG@10": 0.1, "valid Recall@10": 0.2},
               {"epoch": 1, "loss": 1.0, "seconds": 3.0, "valid NDCG@10": 0.3, "valid Recall@10": 0.4},
               {"epoch": 2, "loss": 0.5, "seconds": 2.0}]  # an epoch without evaluation (TIGER's eval_every)
    out = {"config": {"device": "cpu"}, "best_epoch": best, "history": history, "fit_seconds": 6.0,
           "rank_seconds": 0.5, "test_ranks": ranks}
    return out | ({"test_gains": gains} if gains is not None else {})


def test_recommender_runs_gives_one_row_per_run_and_the_per_user_values():
    runs = [{"dataset": "D", "model": "A", "seed": 0, "result": result([0, metrics.MISSING])},
            {"dataset": "D", "model": "B", "seed": 0, "result": result([0, 1], gains=[0.5, 1.0])}]
    table, by_model, per_user = tables.recommender_runs(runs, ["dataset", "model", "seed"], ks=(1, 10))
    assert by_model.to_dict(orient="records")[1] == {"dataset": "D", "model": "B", "Recall@1": "0.2500",
                                                     "NDCG@1": "0.2500", "Recall@10": "0.7500",
                                                     "NDCG@10": "0.5655"}  # (0.5 + 1/log2(3)) / 2
    assert table[["dataset", "model", "seed"]].to_dict(orient="records") == [
        {"dataset": "D", "model": "A", "seed": 0}, {"dataset": "D", "model": "B", "seed": 0}]
    assert table["Recall@10"].tolist() == [0.5, 0.75]  # B's hits count their gains
    assert table["Recall@1"].tolist() == [0.5, 0.25]
    row = table.iloc[0]
    assert (row["best epoch"], row["epochs run"], row["valid NDCG@10"], row["seconds per epoch"]) == (1, 3, 0.3, 2.0)
    assert row["fit seconds"] == 6.0 and row["ranking seconds"] == 0.5 and row["device"] == "cpu"
    assert set(per_user) == {("D", "A", 0), ("D", "B", 0)}
    assert np.array_equal(per_user["D", "A", 0]["Recall@10"], [1.0, 0.0])


def test_learning_curves_take_the_runs_of_one_seed():
    runs = [{"dataset": "D", "model": "A", "seed": s, "result": result([0])} for s in (0, 1)]
    curves = tables.learning_curves(runs, lambda r: r["model"] + "!", seed=1)
    assert len(curves) == 3 and set(curves.run) == {"A!"} and curves.epoch.tolist() == [0, 1, 2]
    assert curves["valid NDCG@10"].isna().tolist() == [False, False, True]



def test_departures_list_the_changed_settings_only():
    from encoderec.tiger import TigerConfig

    table = tables.departures(TigerConfig(layers=2, epochs=14, seed=3, precision="fp32"), TigerConfig())
    assert table.to_dict(orient="records") == [{"setting": "layers", "this run": 2, "reference": 4},
                                               {"setting": "epochs", "this run": 14, "reference": 200}]
    assert tables.departures(TigerConfig(), TigerConfig()).empty


def test_against_dedup_compares_each_id_variant_with_the_same_backbones_dedup_ids():
    ndcg = {"dedup": [0.1, 0.2, 0.3], "unique": [0.2, 0.3, 0.4], "shared": [0.0, 0.1, 0.1]}
    per_user = {("D", backbone, ids, seed): {"NDCG@10": np.array(values)}
                for backbone in ("m", "e") for ids, values in ndcg.items() for seed in (0, 1)
                if not (backbone == "e" and ids == "shared")}
    per_user[("D", "lonely", "unique", 0)] = {"NDCG@10": np.array([0.5, 0.5, 0.5])}  # no dedup run to pair with
    rows = tables.against_dedup(per_user)
    assert sorted(zip(rows["backbone"], rows["ids"], rows["against"], rows["seeds"])) == [
        ("e", "unique", "dedup", 2), ("m", "shared", "dedup", 2), ("m", "unique", "dedup", 2)]
    unique = rows[(rows["backbone"] == "m") & (rows["ids"] == "unique")].iloc[0]
    assert unique["model NDCG@10"] > unique["base NDCG@10"]
    assert tables.against_dedup({("D", "m", "dedup", 0): {"NDCG@10": np.array([0.1])}}).empty
