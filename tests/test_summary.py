import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoderec.core import paths
from encoderec.core.io import write_json
from encoderec.pipeline import profiles
from encoderec.report import index, paper, summary

UNISREC = summary.LAYOUTS["unisrec"]


def comparison(base: float, model: float, p: float, dataset: str = "A", mode: str = "inductive",
               name: str = "EncodeRec-22M", seeds: int = 3, half: float = 0.05, against: str = "all-MiniLM-L6-v2",
               se: float | None = None) -> dict:
    """A `tables.compare` row: relative change model / base - 1 with a symmetric interval of half-width `half`."""
    change = model / base - 1 if base else float("nan")
    return {"dataset": dataset, "mode": mode, "model": name, "base": against, "seeds": seeds, "users": 5000,
            "base NDCG@10": base, "model NDCG@10": model, "metric": "NDCG@10", "relative change": change,
            "interval low": change - half, "interval high": change + half, "se": se or half / 2.5, "df": 10.0,
            "sigma2 user": 1.0, "sigma2 seed": None if seeds == 1 else 1e-4, "sigma2 resid": None if seeds == 1 else 1.0,
            "p (randomization, NDCG@10)": p}


def unisrec_rows(values: dict[tuple[str, str, int], float]) -> list[dict]:
    return [{"dataset": d, "mode": "inductive", "model": m, "seed": s, "Recall@10": v, "NDCG@10": v,
             "Recall@50": v, "NDCG@50": v} for (d, m, s), v in values.items()]


@pytest.mark.parametrize("row, p_holm, effect, grade", [
    (comparison(0.1, 0.12, 0.001), 0.001, 0.05, summary.SUPPORTS),
    (comparison(0.1, 0.12, 0.001, half=0.3), 0.001, 0.05, summary.INCONCLUSIVE),  # interval reaches below zero
    # Holm took it; detectable (t_10 + z_0.8) x 1 % = 3.1 %: below the paper's 5 %, above its 3 %
    (comparison(0.1, 0.12, 0.001, se=0.01), 0.2, 0.05, summary.NO_EFFECT),
    (comparison(0.1, 0.12, 0.001, se=0.01), 0.2, 0.03, summary.INCONCLUSIVE),
    (comparison(0.1, 0.08, 0.001), 0.001, 0.05, summary.WORSE),
    (comparison(0.1, 0.2, 0.001, seeds=1), 0.001, 0.05, summary.INCONCLUSIVE),  # one seed: run variance unknown
])
def test_a_setting_is_graded_by_interval_holm_and_power(row, p_holm, effect, grade):
    assert summary.grade_setting(row, p_holm, effect)[0] == grade


@pytest.mark.parametrize("grades, verdict", [
    ([summary.SUPPORTS, summary.SUPPORTS], "reproduced"),
    ([summary.SUPPORTS, summary.INCONCLUSIVE], "partly"),
    ([summary.NO_EFFECT, summary.INCONCLUSIVE], "not reproduced"),
    ([summary.WORSE], "not reproduced"),
    ([summary.INCONCLUSIVE, summary.INCONCLUSIVE], "inconclusive"),
    ([], "not testable here"),
])
def test_a_claims_verdict_follows_from_its_settings(grades, verdict):
    assert summary.verdict_of(grades) == verdict


def test_holm_is_applied_inside_a_claims_family():
    alone = {"unisrec": {"comparison": [comparison(0.1, 0.12, 0.03)]}}
    two = {"unisrec": {"comparison": [comparison(0.1, 0.12, 0.03), comparison(0.1, 0.12, 0.03, dataset="B")]}}
    assert [c.verdict for c in summary.claims(alone) if c.claim.startswith("Table 2, weaker")] == ["reproduced"]
    assert [c.verdict for c in summary.claims(two) if c.claim.startswith("Table 2, weaker")] == ["not reproduced"]


def test_the_papers_form_needs_every_baseline_beaten_and_names_the_strongest():
    rows = [comparison(0.10, 0.13, 0.001, against="all-MiniLM-L6-v2"),
            comparison(0.12, 0.13, 0.30, against="tfidf-svd", half=0.02)]
    strong, = summary.strong_form(rows)
    assert strong["against"] == "every other backbone (2; strongest tfidf-svd)"
    assert summary.p_value(strong) == 0.30 and strong["interval low"] == pytest.approx(0.13 / 0.12 - 1 - 0.02)
    found = {c.claim[:20]: c.verdict for c in summary.claims({"unisrec": {"comparison": rows[:1], "baselines": rows}})}
    assert found["Table 2, the paper's"] == "not reproduced" and found["Table 2, weaker form"] == "reproduced"


def test_claims_cover_every_claim_of_the_paper_even_without_results():
    found = summary.claims({})
    assert len(found) == 8 and {c.verdict for c in found} == {"not testable here"}
    assert any(c.claim.startswith("Not a claim of Table 1") for c in found)


def test_every_tiger_verdict_names_the_model_size_it_rests_on():
    tiger = {"comparison": [comparison(0.1, 0.11, 0.2, mode=None) | {"ids": "dedup"}],
             "departures": [{"dataset": "A", "setting": "layers", "this run": 2, "reference": 4}]}
    for claim in summary.claims({"tiger": tiger}):
        if "Table 3" in claim.claim and claim.verdict != "not testable here":
            assert "cut-down TIGER" in claim.basis and "layers 2 (4)" in claim.basis


def test_the_retrieval_test_names_its_document_kind():
    row = comparison(0.5, 0.6, 0.001, mode=None) | {"corpus": "all", "document": "category path"}
    claim = summary.claims({"retrieval": {"comparison": [row]}})[0]
    assert "training objective" in claim.claim and "Documents: A: category path." in claim.evidence


def test_marked_table_gives_mean_and_std_and_marks_grades():
    result = {"rows": unisrec_rows({("A", "all-MiniLM-L6-v2", 0): 0.1, ("A", "all-MiniLM-L6-v2", 1): 0.3,
                                    ("A", "EncodeRec-22M", 0): 0.4, ("A", "EncodeRec-22M", 1): 0.4,
                                    ("B", "all-MiniLM-L6-v2", 0): 0.3, ("B", "EncodeRec-22M", 0): 0.1}),
              "comparison": [comparison(0.2, 0.4, 0.01), comparison(0.3, 0.1, 0.02, dataset="B")]}
    marked = summary.marks({"unisrec": result})
    table = summary.marked_table(result, UNISREC, "unisrec", marked).set_index(["dataset", "model"])
    assert table.loc[("A", "all-MiniLM-L6-v2"), "NDCG@10"] == "0.2000 ± 0.1414"
    assert ("A", "EncodeRec-22M *") in table.index and ("B", "EncodeRec-22M †") in table.index


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
    return comparison(base, model, p, dataset, mode, "EncodeRec-110M", against="EncodeRec-22M")


@pytest.mark.parametrize("results, verdict", [
    ({"unisrec": {"rows": unisrec_rows({("A", "EncodeRec-22M", 0): 0.1}), "comparison": []}}, "not testable here"),
    ({"unisrec": {"scaling": [scaling(0.1, 0.2, 0.01)]},
      "retrieval": {"scaling": [{k: v for k, v in scaling(0.3, 0.4, 0.001, "B").items() if k != "mode"}]}},
     "reproduced"),
    ({"unisrec": {"scaling": [scaling(0.1, 0.2, 0.001), scaling(0.1, 0.11, 0.3, "B")]}}, "partly"),
    ({"tiger": {"scaling": [{**scaling(0.1, 0.05, 0.01), "ids": "dedup"}]}}, "not reproduced"),
])
def test_the_scale_claim_is_graded_over_every_table(results, verdict):
    scale, = [c for c in summary.claims(results) if c.claim.startswith("A larger EncodeRec")]
    assert scale.verdict == verdict


def test_forest_rows_put_the_paper_beside_ours_with_intervals():
    rows = summary.forest_rows({"unisrec": {"comparison": [comparison(0.1, 0.12, 0.001)]}})
    ours = rows[rows.source == "ours"].iloc[0]
    assert ours["change"] == pytest.approx(0.2) and ours["low"] == pytest.approx(0.15)
    assert ours["paper's change"] == pytest.approx(sorted(paper.relative_change("2").values())[1])
    beauty = rows[rows.row == "paper Table 2 · Beauty · EncodeRec-22M vs all-MiniLM-L6-v2"]
    assert beauty["change"].item() == pytest.approx(0.0182 / 0.0130 - 1)


def test_the_readme_claim_table_is_rewritten_between_its_markers(tmp_path):
    start, end = summary.README_MARKERS
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{start}\nold\n{end}\nrest\n")
    found = summary.claims({})
    text = summary.update_readme(readme, found)
    assert text.startswith(f"# x\n{start}\n| claim |") and text.endswith(f"{end}\nrest\n") and "old" not in text
    readme.write_text("no markers")
    with pytest.raises(summary.EncoderecError, match="no claim table"):
        summary.update_readme(readme, found)


def test_the_readme_claim_table_matches_results_md_word_for_word():
    root = paths.project_root()
    rows = json.loads((root / "results" / "paper" / "summary.json").read_text())["rows"]
    table = summary.claims_markdown(rows)
    assert table in (root / "README.md").read_text() and table in (root / "RESULTS.md").read_text()


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


def test_sections_show_every_setting_published_tiger_and_pending_runs(monkeypatch):
    results = {"unisrec": {"scaling": [scaling(0.1, 0.2, 0.01)], "pending": [
                   {"dataset": "Beauty", "model": "EncodeRec-110M", "mode": "inductive", "seed": 0}]},
               "tiger": {"published": [{"dataset": "Beauty", "model": "EncodeRec-22M", "ours Recall@10": 0.06}]}}
    scale, = summary.settings_table(results)
    assert (scale["claim"], scale["setting"], scale["model"], scale["change"], scale["95 % interval"]) == (
        "Scale", "A (inductive)", "EncodeRec-110M", "+100.0%", "[+95.0%, +105.0%]")
    protocol = lambda dataset, model, kept: {"dataset": dataset, "model": model, "mode": "id",  # noqa: E731
                                            "protocol": "history kept" if kept else "history excluded",
                                            "NDCG@10": "0.03 ± 0.001"}
    results["unisrec"]["protocols"] = [protocol("Beauty", summary.ID_ONLY, True),
                                       protocol("Beauty", summary.ID_ONLY, False),
                                       protocol("Scientific", summary.ID_ONLY, True),
                                       protocol("Beauty", "all-MiniLM-L6-v2", True)]
    titles = {s.title: s for s in summary.further_sections(results)}
    ours, sasrec, tiger, later = titles["Calibration: TIGER and SASRec on Beauty and Toys beside the published "
                                        "ones"].tables
    assert ours[0]["ours Recall@10"] == 0.06
    assert sasrec == [{"dataset": "Beauty", "model": summary.ID_ONLY, "NDCG@10": "0.03 ± 0.001"}]  # only the
    # ID-only SASRec on a P5 dataset under the reference protocol
    assert [r["model"] for r in tiger] == ["Sentence-T5"] and "Beauty Recall@10" in tiger[0]
    tuned = next(r for r in later if r["model"].startswith("SASRec tuned"))
    assert tuned["Beauty NDCG@10"] == 0.0531
    assert next(r for r in later if r["model"] == "RPG")["Beauty Recall@10"] is None  # not given: a blank cell
    # the order of the sections only, without the results tables
    monkeypatch.setattr(summary, "LAYOUTS", {})
    monkeypatch.setattr(summary, "settings_table", lambda results: [])
    monkeypatch.setattr(summary, "provenance_table", lambda results: pd.DataFrame())
    last = summary.sections(results, [])[-1]
    assert last.title == "Appendix: pending runs"
    assert last.tables[0] == [{"experiment": "unisrec", "dataset": "Beauty", "model": "EncodeRec-110M",
                               "setting": "inductive", "seeds": "0"}]
    assert summary.appendix({"unisrec": {"pending": []}}) == []


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
    variant = lambda ids, base, model, p, backbone: comparison(base, model, p, name=ids) | {  # noqa: E731
        "dataset": "S", "backbone": backbone, "ids": ids, "against": "dedup", "seeds": 2}
    rows = [variant("shared", 0.04, 0.02, 0.001, "m"), variant("unique", 0.04, 0.05, 0.01, "m"),
            variant("unique", 0.04, 0.041, 0.6, "e")]
    runs = [{"dataset": "S", "backbone": b, "ids": ids, "seed": 0, "Recall@5": 0.1, "NDCG@5": 0.1, "Recall@10": 0.1,
             "NDCG@10": 0.04} for b in ("m", "e") for ids in ("dedup", "unique")]
    results = {"tiger": {"variants": rows, "rows": runs, "comparison": []}}
    found = summary.claims(results)
    assert len(found) == 9 and found[-1].verdict == "measured" and "not a claim of the paper" in found[-1].claim
    unique, shared = found[-1].evidence.split(". shared")
    assert unique.startswith("collision-free 3-code IDs") and "better in 1 of 2 settings" in unique
    assert "S m: 0.0400 → 0.0500 (+25.0% [+20.0%, +30.0%], Holm-adjusted p = 0.02, 2 seeds)" in unique
    assert "worse in 1" in shared
    titles = [s.title for s in summary.further_sections(results)]
    assert "What a collision costs TIGER (our extension)" in titles


def test_encoderec_plus_is_graded_as_our_extension_against_encoderec_22m():
    row = comparison(0.1, 0.2, 0.01, name="EncodeRec+-22M", against="EncodeRec-22M")
    found = summary.claims({"unisrec": {"plus": [row], "comparison": [], "rows": unisrec_rows({})}})
    plus = [c for c in found if c.claim.startswith("Our extension") and "EncodeRec+" in c.claim]
    assert len(plus) == 1 and plus[0].verdict == "supported" and plus[0].where == "beyond the paper"
    assert "EncodeRec+-22M vs EncodeRec-22M: +100.0%" in plus[0].evidence and "1 supports" in plus[0].basis
    assert not [c for c in summary.claims({}) if "EncodeRec+" in c.claim]


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
    def row(model, base_value, value, against="all-MiniLM-L6-v2"):
        return {k: v for k, v in comparison(base_value, value, 0.001, name=model, against=against).items()
                if k != "mode"} | {"dataset": "S", "corpus": "all"}
    results = {"retrieval": {"rows": [], "comparison": [row("EncodeRec-22M", 0.5, 0.6), row("EncodeRec+-22M", 0.5, 0.4)],
                             "plus": [row("EncodeRec+-22M", 0.6, 0.4, "EncodeRec-22M")]},
               "collisions": {"verdict": [{"dataset": "S", "model": "EncodeRec+-22M", "base": "MiniLM",
                                           "EncodeRec coll@3": 0.0, "eliminated (all seeds)": True,
                                           "base coll@3": 0.1}]}}
    found = summary.claims(results)
    retrieval = found[0]
    assert retrieval.verdict == "reproduced" and "EncodeRec+" not in retrieval.evidence
    assert next(c for c in found if c.claim.startswith("EncodeRec eliminates")).verdict == "not testable here"
    plus = next(c for c in found if c.claim.startswith("Our extension, not a claim of the paper (its own"))
    assert plus.verdict == "not supported" and "EncodeRec+-22M" in plus.evidence


def test_a_claims_basis_is_its_tally_and_its_best_measured_setting():
    """The claim table's basis: the grades counted and the headline setting (most seeds, then most users) with its
    change and interval; every setting stays in the evidence."""
    rows = [comparison(0.5, 0.6, 0.001, dataset="A", mode=None, seeds=2) | {"users": 900},
            comparison(0.5, 0.55, 0.001, dataset="B", mode=None, seeds=3) | {"users": 100}]
    claim = summary.claims({"retrieval": {"comparison": rows}})[0]
    assert claim.basis.startswith("2 settings: ")
    assert "; headline B EncodeRec-22M vs all-MiniLM-L6-v2: +10.0%" in claim.basis and "3 seeds" in claim.basis
    assert "A EncodeRec-22M vs all-MiniLM-L6-v2: +20.0%" in claim.evidence and "A EncodeRec" not in claim.basis


def test_recbole_peer_check_has_a_section_and_its_pending_runs_an_appendix_row():
    unisrec = {"recbole": {
        "table": [{"dataset": "S", "implementation": "ours", "Recall@10": "0.1100 ± 0.0010"},
                  {"dataset": "S", "implementation": "RecBole", "Recall@10": "0.1000 ± 0.0020"}],
        "gap": [comparison(0.08, 0.07, 0.01, dataset="S", name="RecBole", against="ours")],
        "pending": [{"implementation": "RecBole", "dataset": "B", "model": "SASRec (RecBole)", "mode": "recbole",
                     "seed": 1, "model seed": None}]}}
    section = next(s for s in summary.unisrec_sections(unisrec) if "RecBole's" in s.title)
    table, gap = section.tables
    assert [row["implementation"] for row in table] == ["ours", "RecBole"]
    assert gap == [{"dataset": "S", "model": "RecBole", "base": "ours", "seeds": 3, "users": 5000,
                    "base NDCG@10": 0.08, "model NDCG@10": 0.07, "change": "-12.5%",
                    "95 % interval": gap[0]["95 % interval"], "p": gap[0]["p"]}]
    assert summary.pending_table({"unisrec": unisrec}) == [
        {"experiment": "unisrec recbole", "dataset": "B", "model": "SASRec (RecBole)", "setting": "recbole",
         "seeds": "1"}]
