import numpy as np

from encoderec.models import metrics
from encoderec.report import tables


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
    from encoderec.models.tiger import TigerConfig

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


def test_under_protocols_reads_each_run_under_both_rankings():
    ours = result([0, 20]) | {"test_ranks_history_kept": [3, 20]}
    reference = result([3, 9]) | {"config": {"device": "cpu", "exclude_history": False}}
    runs = [{"dataset": "D", "model": "A", "seed": 0, "result": ours},
            {"dataset": "D", "model": "B", "seed": 0, "result": reference},
            {"dataset": "D", "model": "C", "seed": 0, "result": result([0, 0])}]  # recorded before both protocols
    table = tables.under_protocols(runs + runs[:1], ["dataset", "model", "seed"], ks=(10,))  # A twice: once
    assert table[["model", "protocol", "Recall@10"]].values.tolist() == [
        ["A", "history excluded", 0.5], ["A", "history kept", 0.5], ["B", "history kept, in validation too", 1.0],
        ["C", "history excluded", 1.0]]
    assert table["NDCG@10"].tolist()[:2] == [0.5, 0.5 / np.log2(5)]


def test_ablation_places_the_models_of_each_setting_and_tests_each_against_tfidf_and_the_reference():
    rng = np.random.default_rng(0)
    good, bad = rng.integers(0, 5, 200).tolist(), rng.integers(5, 40, 200).tolist()
    runs = [{"setting": setting, "dataset": "D", "model": model, "mode": "inductive", "seed": seed,
             "result": result(good if (model == "tfidf-svd") == (setting == "as is") else bad)}
            for setting in ("as is", "whitened") for seed in (0, 1) for model in ("tfidf-svd", "enc")]
    runs[-1]["result"]["best_epoch"] = 2  # 0-based, as fitting records it: the last of the 3 epochs run
    summary, gaps, effects = tables.ablation(runs, "as is")
    columns = ["setting", "model", "seeds", "place by NDCG@10", "epochs run", "epochs after the best"]
    assert summary[columns].values.tolist() == [["as is", "tfidf-svd", 2, 1, 3, 1], ["as is", "enc", 2, 2, 3, 1],
                                                ["whitened", "tfidf-svd", 2, 2, 3, 1], ["whitened", "enc", 2, 1, 3, 0.5]]
    assert gaps[["setting", "model", "base"]].values.tolist() == [["as is", "enc", "tfidf-svd"],
                                                                  ["whitened", "enc", "tfidf-svd"]]
    assert gaps["model NDCG@10"].iloc[0] < gaps["base NDCG@10"].iloc[0] and gaps.iloc[0, -1] < 1e-6  # p-value
    assert effects[["model", "setting", "against"]].values.tolist() == [["tfidf-svd", "whitened", "as is"],
                                                                       ["enc", "whitened", "as is"]]
    assert effects["model NDCG@10"].iloc[1] > effects["base NDCG@10"].iloc[1]


def test_ablation_compares_a_setting_with_the_reference_on_the_seeds_both_ran():
    rng = np.random.default_rng(0)
    good, bad = rng.integers(0, 5, 200).tolist(), rng.integers(5, 40, 200).tolist()
    runs = [{"setting": "as is", "dataset": "D", "model": "tfidf-svd", "mode": "inductive", "seed": seed,
             "result": result(bad if seed == 0 else good)} for seed in (0, 1)]  # seed 0 was a bad training
    runs += [{"setting": "whitened", "dataset": "D", "model": "tfidf-svd", "mode": "inductive", "seed": 1,
              "result": result(good)},
             {"setting": "scaled", "dataset": "D", "model": "tfidf-svd", "mode": "inductive", "seed": 2,
              "result": result(good)}]
    _, _, effects = tables.ablation(runs, "as is")
    assert effects[["setting", "seeds"]].values.tolist() == [["whitened", 1]]  # "scaled" shares no seed: no row
    assert effects["model NDCG@10"].iloc[0] == effects["base NDCG@10"].iloc[0]  # seed 1 against seed 1 only


def test_recommender_runs_of_no_run_are_empty_tables():
    table, summary, per_user = tables.recommender_runs([], ["dataset", "model", "seed"], ks=(10,))
    assert table.empty and list(summary.columns) == ["dataset", "model", "Recall@10", "NDCG@10"] and per_user == {}


def test_calibration_puts_each_size_beside_the_notebooks_run_of_the_same_backbone_and_seed():
    size = {"layers": 2, "d_ff": 512, "heads": 4, "d_kv": 32, "dropout": 0.0}
    sized_result = result([0, metrics.MISSING]) | {"config": {"device": "cpu", "precision": "bf16", **size, "layers": 4}}
    own = [{"dataset": "D", "backbone": b, "ids": ids, "seed": 0,
            "result": result([1, 1]) | {"config": {"device": "cpu", **size}}}
           for b, ids in (("x", "dedup"), ("x", "shared"), ("y", "dedup"))]
    sized = [{"size": "big", "dataset": "D", "backbone": "x", "ids": "dedup", "seed": 0, "result": sized_result}]
    table, curve = tables.calibration(own, sized)
    assert table[["size", "backbone", "layers", "precision"]].values.tolist() == [
        ["this notebook's", "x", 2, "fp32"], ["big", "x", 4, "bf16"]]  # not y's run, not the shared IDs
    assert table["NDCG@10"].tolist() == [1 / np.log2(3), 0.5] and table["training minutes"].tolist() == [0.1, 0.1]
    assert table["valid NDCG@10"].tolist() == [0.3, 0.3] and table["epochs run"].tolist() == [3, 3]
    # one point per evaluated epoch, at the minutes trained by its end
    assert curve[curve["size"] == "big"][["epoch", "training minutes"]].values.tolist() == [[0, 1 / 60], [1, 4 / 60]]
    assert tables.calibration(own, [])[0].empty
