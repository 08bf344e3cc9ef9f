from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoderec import index, paper, paths, profiles, summary
from encoderec.io import write_json

UNISREC = summary.LAYOUTS["unisrec"]


def comparison(base: float, model: float, p: float, dataset: str = "A", mode: str = "inductive",
               name: str = "EncodeRec-22M") -> dict:
    return {"dataset": dataset, "mode": mode, "model": name, "base": "all-MiniLM-L6-v2", "seeds": 1,
            "base NDCG@10": base, "model NDCG@10": model, "p (wilcoxon, NDCG@10)": p}


def unisrec_rows(values: dict[tuple[str, str, int], float]) -> list[dict]:
    return [{"dataset": d, "mode": "inductive", "model": m, "seed": s, "Recall@10": v, "NDCG@10": v,
             "Recall@50": v, "NDCG@50": v} for (d, m, s), v in values.items()]


@pytest.mark.parametrize("rows, verdict", [
    ([comparison(0.1, 0.2, 0.001), comparison(0.1, 0.2, 0.01, dataset="B")], "reproduced"),
    ([comparison(0.1, 0.2, 0.001), comparison(0.1, 0.05, 0.5, dataset="B")], "partly"),
    ([comparison(0.1, 0.2, 0.3), comparison(0.1, 0.11, 0.5, dataset="B")], "not reproduced"),  # sign only
    ([comparison(0.1, 0.2, 0.3), comparison(0.1, 0.05, 0.001, dataset="B")], "not reproduced"),
    ([], "not testable here"),
])
def test_improvement_verdicts_follow_the_stated_rules(rows, verdict):
    got, evidence = summary.improvement_verdict(rows, UNISREC)
    assert got == verdict
    if rows:
        assert "A (inductive): EncodeRec-22M 0.1000 → 0.2000 (+100.0% vs all-MiniLM-L6-v2" in evidence


def test_a_zero_base_does_not_divide_by_zero():
    _, evidence = summary.improvement_verdict([comparison(0.0, 0.0, 1.0)], UNISREC)
    assert "n/a vs all-MiniLM-L6-v2" in evidence


def test_marked_table_gives_mean_and_std_and_marks_significance():
    result = {"rows": unisrec_rows({("A", "all-MiniLM-L6-v2", 0): 0.1, ("A", "all-MiniLM-L6-v2", 1): 0.3,
                                    ("A", "EncodeRec-22M", 0): 0.4, ("A", "EncodeRec-22M", 1): 0.4,
                                    ("B", "all-MiniLM-L6-v2", 0): 0.3, ("B", "EncodeRec-22M", 0): 0.1}),
              "comparison": [comparison(0.2, 0.4, 0.01), comparison(0.3, 0.1, 0.02, dataset="B")]}
    table = summary.marked_table(result, UNISREC).set_index(["dataset", "model"])
    assert table.loc[("A", "all-MiniLM-L6-v2"), "NDCG@10"] == "0.2000 ± 0.1414"
    assert ("A", "EncodeRec-22M *") in table.index and ("B", "EncodeRec-22M †") in table.index


def test_best_model_counts_settings_where_the_model_leads():
    result = {"rows": unisrec_rows({("A", "x", 0): 0.1, ("A", "EncodeRec-22M", 0): 0.2,
                                    ("B", "x", 0): 0.3, ("B", "EncodeRec-22M", 0): 0.2})}
    assert "in 1 of 2 settings" in summary.best_model_counts(result, UNISREC, "EncodeRec-22M")


def collisions(*pairs: tuple[float, float]) -> dict:
    return {"verdict": [{"dataset": f"D{i}", "model": "EncodeRec-22M", "base": "all-MiniLM-L6-v2",
                         "EncodeRec coll@3": ours, "base coll@3": base, "eliminated (all seeds)": ours == 0}
                        for i, (ours, base) in enumerate(pairs)]}


@pytest.mark.parametrize("result, verdict", [
    (collisions((0.0, 0.1), (0.0, 0.2)), "reproduced"),
    (collisions((0.0, 0.1), (0.3, 0.2)), "partly"),
    (collisions((0.05, 0.1), (0.1, 0.2)), "not reproduced"),  # fewer is not none
    (collisions((0.05, 0.01), (0.1, 0.2)), "not reproduced"),
    (None, "not testable here"),
    ({"verdict": [{"dataset": "D", "model": "EncodeRec-22M", "base": "all-MiniLM-L6-v2", "EncodeRec coll@3": 0.05,
                   "base coll@3": None, "eliminated (all seeds)": False}]}, "not reproduced"),  # base not run
])
def test_collision_verdict(result, verdict):
    assert summary.collision_verdict(result)[0] == verdict


def test_collision_evidence_counts_pairs_of_catalogue_and_model():
    result = collisions((0.05, 0.1), (0.1, 0.2))
    result["verdict"][1] |= {"dataset": "D0", "model": "EncodeRec-110M", "base": "all-mpnet-base-v2"}
    evidence = summary.collision_verdict(result)[1]
    assert "eliminated on 0 of 2 (catalogue, EncodeRec model) pairs, fewer than its base encoder on 2." in evidence
    assert evidence.endswith("D0: EncodeRec-110M 10.0% vs all-mpnet-base-v2 20.0%.")


def scaling(base: float, model: float, p: float, dataset: str = "A", mode: str = "inductive") -> dict:
    return comparison(base, model, p, dataset, mode, "EncodeRec-110M") | {"base": "EncodeRec-22M"}


@pytest.mark.parametrize("results, verdict", [
    ({"unisrec": {"rows": unisrec_rows({("A", "EncodeRec-22M", 0): 0.1}), "comparison": []}}, "not testable here"),
    ({"unisrec": {"scaling": [scaling(0.1, 0.2, 0.01)]},
      "retrieval": {"scaling": [{k: v for k, v in scaling(0.3, 0.4, 0.001, "B").items() if k != "mode"}]}},
     "reproduced"),
    ({"unisrec": {"scaling": [scaling(0.1, 0.2, 0.01), scaling(0.1, 0.11, 0.3, "B")]}}, "partly"),  # B: not significant
    ({"tiger": {"scaling": [{**scaling(0.1, 0.05, 0.01), "ids": "dedup"}]}}, "not reproduced"),
])
def test_scaling_verdict_counts_significantly_better_settings_of_every_table(results, verdict):
    assert summary.scaling_verdict(results)[0] == verdict


def test_scaling_evidence_names_each_table_and_setting():
    evidence = summary.scaling_verdict({"unisrec": {"scaling": [scaling(0.1, 0.2, 0.01), scaling(0.1, 0.11, 0.3, "B")]}})[1]
    assert "significantly better in 1 of 2 settings" in evidence
    assert "unisrec A (inductive): EncodeRec-22M 0.1000 → EncodeRec-110M 0.2000" in evidence


def test_claims_cover_every_claim_of_the_paper_even_without_results():
    found = summary.claims({})
    assert len(found) == 6 and {c.verdict for c in found} == {"not testable here"}


def test_relative_changes_put_the_paper_beside_ours():
    changes = summary.relative_changes({"unisrec": {"comparison": [comparison(0.1, 0.12, 0.04)]}})
    ours = changes[changes.source == "ours"].iloc[0]
    assert ours["relative change"] == pytest.approx(0.2) and ours["setting"] == "A (inductive)"
    beauty = changes[(changes.source == "paper") & (changes.experiment == "unisrec") & (changes.setting == "Beauty")]
    assert beauty["relative change"].item() == pytest.approx(0.0182 / 0.0130 - 1)


def test_published_tables_are_long_and_wide():
    long = paper.table("3")
    assert set(long.dataset) == {"Sports", "Beauty", "Toys"} and len(long) == 7 * 3
    wide = paper.wide("3")
    assert wide.loc["EncodeRec-22M", "Beauty Recall@10"] == 0.0689 and list(wide.columns)[:2] == [
        "Sports Recall@10", "Sports NDCG@10"]
    assert paper.relative_change("1") == {}  # Table 1 has no EncodeRec row
    with pytest.raises(KeyError, match="known: 1, 2, 3, TIGER"):
        paper.table("4")


def test_tables_escape_their_cells():
    records = [{"title": "a | b", "note": "<script>x</script>", "value": 0.123456, "missing": None}]
    assert summary.markdown_table(records).splitlines()[2] == "| a \\| b | &lt;script&gt;x&lt;/script&gt; | 0.1235 |  |"
    assert "&lt;script&gt;" in summary.html_table(records) and "<script>" not in summary.html_table(records)


def test_a_column_of_whole_numbers_is_written_without_decimals():
    """A seed column that pandas made float (a row without a seed), against a column of means that are not whole."""
    records = [{"seed": 0.0, "epochs": 20.0}, {"seed": None, "epochs": 0.3333}, {"seed": 2.0, "epochs": 1.0}]
    assert summary.markdown_table(records).splitlines()[2:] == ["| 0 | 20.0000 |", "|  | 0.3333 |", "| 2 | 1.0000 |"]
    assert "<td>2</td><td>1.0000</td>" in summary.html_table(records)


def test_records_of_two_kinds_share_one_table_with_every_column():
    """The pending runs of Table 2 and the pending tokenizations of the collision table in one table."""
    records = [{"experiment": "collisions", "backbone": "B", "seed": 0}, {"experiment": "unisrec", "model": "M",
                                                                         "seed": 1, "model seed": 1.0}]
    assert summary.markdown_table(records).splitlines() == [
        "| experiment | backbone | seed | model | model seed |", "|---|---|---|---|---|",
        "| collisions | B | 0 |  |  |", "| unisrec |  | 1 | M | 1 |"]
    assert summary.html_table(records).count("<td>") == 10


def test_markdown_and_html_link_images_relative_to_where_they_are_written(tmp_path):
    parts = [summary.Section("Figures", images=[("collisions", "figures/paper/c.png")])]
    assert "![collisions](figures/paper/c.png)" in summary.to_markdown("paper", parts, tmp_path / "RESULTS.md",
                                                                        tmp_path)
    page = summary.to_html(parts, tmp_path / "reports" / "paper" / "index.html", tmp_path)
    assert 'src="../../figures/paper/c.png"' in page


def test_index_page_shows_the_summary(tmp_path):
    parts = [summary.Section("Verdicts on the paper's claims", ["why <b>"], [[{"claim": "x", "verdict": "partly"}]])]
    write_json(tmp_path / "results" / "p" / "summary.json", {"sections": [asdict(s) for s in parts]})
    dirs = paths.ReportDirs(tmp_path / "notebooks", tmp_path / "params", tmp_path)
    profile = profiles.Profile("p", tmp_path / "params" / "p.yaml", "", {}, {})
    page = Path(index.write_index(profile, {}, dirs)).read_text()
    assert "<h2>Verdicts on the paper&#x27;s claims</h2>" in page and "why &lt;b&gt;" in page and "partly" in page


def test_provenance_table_names_commit_machine_and_wall_time():
    result = {"profile": "p", "notebook": "04_unisrec", "provenance": {
        "git": {"commit": "0123456789abcdef", "dirty": True}, "machine": {"cpu_count": 2, "device": "cpu"},
        "started_at": "2026-11-27T00:00:00+00:00", "wall_time_s": 90.0},
        "rows": [{"device": "cuda"}, {"device": "cpu", "precision": "bf16"}, {"device": "cuda"}]}
    row = summary.provenance_table({"unisrec": result}).iloc[0]
    assert row["commit"] == "0123456789 (dirty)" and row["machine"] == "2 CPUs, cpu" and row["wall time"] == "1.5 min"
    assert row["results"] == "results/p/unisrec.json" and row["runs trained on"] == "cpu (bf16), cuda (fp32)"
    assert row["packages"] == "not recorded"  # written before the environment was recorded
    packages = {"torch": "2.13.0+cpu", "transformers": "5.24.0", "sentence-transformers": "6.2.0",
                "faiss-cpu": "1.15.1", "numpy": "2.4.6", "scipy": "1.17.1"}
    result["provenance"]["environment"] = {"packages": packages, "lock_sha256": "ab" * 32}
    row = summary.provenance_table({"unisrec": result}).iloc[0]
    assert row["packages"] == ("torch 2.13.0+cpu, transformers 5.24.0, sentence-transformers 6.2.0, faiss-cpu 1.15.1, "
                               "numpy 2.4.6")


def test_per_seed_changes_show_how_the_change_moves_between_seeds():
    result = {"rows": unisrec_rows({("A", "all-MiniLM-L6-v2", 0): 0.1, ("A", "all-MiniLM-L6-v2", 1): 0.2,
                                    ("A", "EncodeRec-22M", 0): 0.11, ("A", "EncodeRec-22M", 1): 0.3}),
              "comparison": [comparison(0.15, 0.205, 0.01) | {"seeds": 2}]}
    expected = "NDCG@10 change per seed: A (inductive), EncodeRec-22M: seed 0 +10.0%, seed 1 +50.0%"
    assert summary.per_seed_changes(result, UNISREC) == expected
    assert summary.per_seed_changes(result | {"comparison": [comparison(0.15, 0.205, 0.01)]}, UNISREC) == ""


def test_per_seed_changes_compare_every_seed_with_a_base_without_seeds():
    rows = [{"dataset": "A", "model": "all-MiniLM-L6-v2", "seed": None, "NDCG@10": 0.5},
            {"dataset": "A", "model": "EncodeRec-22M", "seed": 0, "NDCG@10": 0.6},
            {"dataset": "A", "model": "EncodeRec-22M", "seed": 1, "NDCG@10": 0.55}]
    result = {"rows": rows, "comparison": [{"dataset": "A", "model": "EncodeRec-22M", "base": "all-MiniLM-L6-v2",
                                            "seeds": 2}]}
    changes = summary.per_seed_changes(result, summary.LAYOUTS["retrieval"])
    assert changes == "NDCG@10 change per seed: A, EncodeRec-22M: seed 0 +20.0%, seed 1 +10.0%"


def test_beside_published_puts_our_beauty_rows_next_to_tiger_and_table_3():
    ours = pd.DataFrame([{"dataset": d, "backbone": m, "seed": s, "Recall@10": r, "NDCG@10": r / 2}
                         for d, m, s, r in [("Beauty", "EncodeRec-22M", 0, 0.06), ("Beauty", "EncodeRec-22M", 1, 0.08),
                                            ("Beauty", "EncodeRec-110M", 0, 0.07), ("Scientific", "random", 0, 0.01)]])
    out = paper.beside_published(ours, "backbone").set_index("model")
    assert list(out.index) == ["EncodeRec-22M", "EncodeRec-110M"]  # Scientific is in no published TIGER table
    assert out.loc["EncodeRec-22M", "ours Recall@10"] == pytest.approx(0.07) and out.loc["EncodeRec-22M", "seeds"] == 2
    assert out.loc["EncodeRec-22M", "EncodeRec paper Recall@10"] == 0.0689
    assert np.isnan(out.loc["EncodeRec-110M", "EncodeRec paper Recall@10"])  # the paper has no 110M model
    assert (out["TIGER paper NDCG@10"] == 0.0384).all()
    assert paper.beside_published(ours[ours.dataset == "Scientific"], "backbone").empty


def test_sections_show_scale_published_tiger_and_pending_runs():
    results = {"unisrec": {"scaling": [scaling(0.1, 0.2, 0.01)], "pending": [
                   {"dataset": "Beauty", "model": "EncodeRec-110M", "mode": "inductive", "seed": 0}]},
               "tiger": {"published": [{"dataset": "Beauty", "model": "EncodeRec-22M", "ours Recall@10": 0.06}]}}
    titles = {s.title: s for s in summary.further_sections(results)}
    scale = titles["Scale: the larger EncodeRec against the smaller"].tables[0][0]
    assert (scale["setting"], scale["larger"], scale["relative change"]) == ("A (inductive)", "EncodeRec-110M", "+100.0%")
    assert titles["TIGER on Beauty and Toys beside the published TIGER"].tables[0][0]["ours Recall@10"] == 0.06
    assert titles["Pending runs"].tables[0] == [{"experiment": "unisrec", "dataset": "Beauty", "model": "EncodeRec-110M",
                                                 "setting": "inductive", "seeds": "0"}]
    assert summary.further_sections({"unisrec": {"pending": []}}) == []


def test_pending_units_are_grouped_with_their_seeds_whether_a_run_has_a_model_or_a_backbone():
    unit = lambda seed, **kw: {"dataset": "S", "seed": seed, **kw}  # noqa: E731
    results = {"collisions": {"pending": [unit(0, backbone="B", tokenizer="rqvae"),
                                          unit(1, backbone="B", tokenizer="rqvae"),
                                          unit(0, backbone="B", tokenizer="rkmeans")]},
               "tiger": {"pending": [unit(1, backbone="B", ids="dedup", **{"model seed": 1.0}),
                                     unit(0, backbone="B", ids="dedup", **{"model seed": 0.0, "distinct IDs": 12101.0})]},
               "retrieval": {"pending": [unit(None, model="E")]},
               "unisrec": {"ablation": {"pending": [unit(2.0, setting="no dropout", model="M", mode="inductive",
                                                         **{"model seed": None})]}}}
    assert summary.pending_table(results) == [
        {"experiment": "retrieval", "dataset": "S", "model": "E", "setting": "", "seeds": ""},
        {"experiment": "collisions", "dataset": "S", "model": "B", "setting": "rqvae", "seeds": "0, 1"},
        {"experiment": "collisions", "dataset": "S", "model": "B", "setting": "rkmeans", "seeds": "0"},
        {"experiment": "tiger", "dataset": "S", "model": "B", "setting": "dedup", "seeds": "0, 1"},
        {"experiment": "unisrec ablation", "dataset": "S", "model": "M", "setting": "no dropout, inductive",
         "seeds": "2"}]


def test_the_id_variant_comparison_is_our_extension_with_a_sentence_per_variant():
    variant = lambda ids, base, model, p, backbone: {  # noqa: E731
        "dataset": "S", "backbone": backbone, "ids": ids, "against": "dedup", "seeds": 2, "base NDCG@10": base,
        "model NDCG@10": model, "p (wilcoxon, NDCG@10)": p}
    rows = [variant("shared", 0.04, 0.02, 0.001, "m"), variant("unique", 0.04, 0.05, 0.01, "m"),
            variant("unique", 0.04, 0.041, 0.6, "e")]
    runs = [{"dataset": "S", "backbone": b, "ids": ids, "seed": 0, "Recall@5": 0.1, "NDCG@5": 0.1, "Recall@10": 0.1,
             "NDCG@10": 0.04} for b in ("m", "e") for ids in ("dedup", "unique")]
    results = {"tiger": {"variants": rows, "rows": runs, "comparison": []}}
    found = summary.claims(results)
    assert len(found) == 7 and found[-1].verdict == "measured" and "not a claim of the paper" in found[-1].claim
    unique, shared = found[-1].evidence.split(". shared")
    assert unique.startswith("collision-free 3-code IDs") and "significantly better in 1 of 2 settings" in unique
    assert "S m: 0.0400 → 0.0500 (+25.0%, p = 0.01, 2 seeds)" in unique
    assert "significantly worse in 1" in shared
    titles = [s.title for s in summary.further_sections(results)]
    assert "What a collision costs TIGER (our extension)" in titles


def test_encoderec_plus_is_graded_as_our_extension_against_encoderec_22m():
    row = comparison(0.1, 0.2, 0.01, name="EncodeRec+-22M") | {"base": "EncodeRec-22M"}
    found = summary.claims({"unisrec": {"plus": [row], "comparison": [], "rows": unisrec_rows({})}})
    plus = [c for c in found if c.claim.startswith("Our extension") and "EncodeRec+" in c.claim]
    assert len(plus) == 1 and plus[0].verdict == "supported" and plus[0].where == "beyond the paper"
    assert "EncodeRec+-22M (interaction-aware" in plus[0].evidence and "significantly better in 1 of 1" in plus[0].evidence
    assert summary.plus_verdict({})[0] == "not testable here"


def test_ablation_finding_names_each_settings_gap_and_the_setting_that_moves_it():
    def gap(setting, model, ours, tfidf, p, seeds=3):
        return {"dataset": "S", "setting": setting, "model": model, "base": "tfidf-svd", "seeds": seeds,
                f"base {summary.METRIC}": tfidf, f"model {summary.METRIC}": ours, "p (wilcoxon, NDCG@10)": p}
    ablation = {"reference": "as is", "gaps": [
        gap("as is", "a", 0.08, 0.10, 1e-5), gap("as is", "b", 0.09, 0.10, 0.01),
        gap("whitened", "a", 0.105, 0.10, 0.2, seeds=1), gap("whitened", "b", 0.095, 0.10, 0.3, seeds=1),
        gap("no dropout", "a", 0.085, 0.10, 0.001), gap("as is", "ID only (SASRec)", 0.2, 0.10, 1e-9)]}
    text = summary.ablation_finding(ablation)
    assert text.startswith("S, NDCG@10 of the best sentence encoder against TF-IDF + SVD, by setting: as is: b "
                           "-10.0% (p = 0.01, 3 seeds); whitened: a +5.0% (p = 0.2, 1 seed); no dropout: a -15.0%")
    assert "moves the gap most from the reference's (as is): whitened (+15.0 points)." in text
    assert text.endswith(" TF-IDF significantly ahead under: as is, no dropout. No significant difference under: "
                         "whitened.")
    assert summary.ablation_finding({}) == "No sentence encoder and TF-IDF + SVD ran under the same setting yet."
    table = [{"setting": "as is", "model": "a", "epochs after the best": 0.5},
             {"setting": "to early stopping", "model": "a", "epochs after the best": 10.0}]
    assert summary.ablation_finding(ablation | {"table": table}).endswith(
        " 1 of 2 (setting, model) rows had their best validation epoch among the last 3 epochs run: the epoch cap, "
        "not early stopping, ended their training.")
    assert summary.capped_runs([{"setting": "as is", "model": "a"}]) == []
    shape = [{"dataset": "S", "model": "tfidf-svd", "mean cosine": 0.05, "last-item kNN NDCG@10, none": 0.0633,
              "last-item kNN NDCG@10, whiten": 0.0644},
             {"dataset": "S", "model": "a", "mean cosine": 0.2, "last-item kNN NDCG@10, none": 0.0671,
              "last-item kNN NDCG@10, whiten": 0.0672}]
    assert summary.ablation_finding(ablation | {"shape": shape}).endswith(
        " S without training (every item scored by its cosine to the user's last item), NDCG@10 by input: none: "
        "tfidf-svd 0.0633, a 0.0671; whiten: tfidf-svd 0.0644, a 0.0672.")
    assert summary.untrained_signal([{"dataset": "S", "model": "a", "mean cosine": 0.2}]) == []
    gaps = [{"dataset": "S", "variant": "none", "model": "a", "base": "tfidf-svd", "p (wilcoxon, NDCG@10)": 0.03}]
    assert summary.untrained_signal(shape, gaps)[0].endswith(
        "none: tfidf-svd 0.0633, a 0.0671 (p = 0.03); whiten: tfidf-svd 0.0644, a 0.0672.")


def test_the_paper_claims_leave_encoderec_plus_out_and_it_gets_its_own_verdict():
    def row(model, base_value, value, p):
        return {"dataset": "S", "corpus": "all", "model": model, "base": "MiniLM", "base NDCG@10": base_value,
                "model NDCG@10": value, "p (wilcoxon, NDCG@10)": p}
    results = {"retrieval": {"rows": [], "comparison": [row("EncodeRec-22M", 0.5, 0.6, 0.001),
                                                        row("EncodeRec+-22M", 0.5, 0.4, 0.001)],
                             "plus": [{**row("EncodeRec+-22M", 0.6, 0.4, 0.001), "base": "EncodeRec-22M"}]},
               "collisions": {"verdict": [{"dataset": "S", "model": "EncodeRec+-22M", "base": "MiniLM",
                                           "EncodeRec coll@3": 0.0, "eliminated (all seeds)": True,
                                           "base coll@3": 0.1}]}}
    found = {c.claim: c for c in summary.claims(results)}
    retrieval = found["EncodeRec's fine-tuning improves title-to-description retrieval over its base encoder"]
    assert retrieval.verdict == "reproduced" and "EncodeRec+" not in retrieval.evidence
    assert found["EncodeRec eliminates Semantic ID collisions entirely"].verdict == "not testable here"
    plus = next(c for c in found.values() if c.claim.startswith("Our extension, not a claim of the paper (its own"))
    assert plus.verdict == "not supported" and "EncodeRec+-22M" in plus.evidence

