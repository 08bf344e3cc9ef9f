"""The report's summary: our tables beside the paper's, significance markers, one verdict per claim, RESULTS.md.

It reads what the experiment notebooks wrote to results/<profile>/ (retrieval, collisions, unisrec, tiger) and
decides nothing the JSON does not support. A verdict on an improvement claim compares EncodeRec with its own base
encoder on NDCG@10 with the paired Wilcoxon signed-rank test over queries or users that the notebooks ran (each
query's value averaged over seeds), at p < 0.05:

- reproduced: significantly better in every setting (dataset, mode or ID variant) run;
- partly: significantly better in some settings but not all;
- not reproduced: significantly better in none (the evidence says when the change at least has the paper's sign);
- not testable here: no run of this profile can test it, and the evidence says why.

In the tables, a cell is "mean ± std" over seeds; * marks a model significantly better than its base encoder in
that setting, † one significantly worse.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from encoderec import paper
from encoderec.tables import ID_ONLY, PLUS_OF, seed_summary

ALPHA = 0.05
METRIC = "NDCG@10"
EXPERIMENTS = ("retrieval", "collisions", "unisrec", "tiger")
# a pending unit's model under the name each notebook gives it, and the keys of its setting (pending_table): named,
# not "the rest", so that a run's labels ("model seed", TIGER's "distinct IDs", `runs.inputs`) never read as one
_MODEL_KEYS = ("model", "backbone")
_SETTING_KEYS = ("setting", "tokenizer", "mode", "ids")


@dataclass(frozen=True)
class Experiment:
    """How one results file is laid out: its model column, the column that splits settings, its metrics."""

    title: str
    model: str
    variant: str | None
    metrics: tuple[str, ...]
    paper_tables: tuple[str, ...]  # published tables to show beside ours (encoderec.paper)

    @property
    def settings(self) -> list[str]:
        """The columns that name one setting: the dataset, and the mode or ID variant where there is one."""
        return ["dataset", *([self.variant] if self.variant else [])]


LAYOUTS = {
    "retrieval": Experiment("Table 1: title-to-description retrieval (held-out items)", "model", None,
                            ("Recall@10", "NDCG@10", "MRR"), ("1",)),
    "unisrec": Experiment("Table 2: UniSRec (test users, full ranking)", "model", "mode",
                          ("Recall@10", "NDCG@10", "Recall@50", "NDCG@50"), ("2",)),
    "tiger": Experiment("Table 3: TIGER (test users, constrained beam search)", "backbone", "ids",
                        ("Recall@5", "NDCG@5", "Recall@10", "NDCG@10"), ("TIGER", "3")),
}


@dataclass(frozen=True)
class Claim:
    claim: str  # the paper's words, shortened
    where: str  # where the paper makes it
    verdict: str
    evidence: str


def load_results(read: Callable[..., dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """The experiment results of one profile that exist, by name; `read(name, missing_ok=True)` gives one (in a
    notebook: `NotebookRun.read_results`, which tells the runner what the summary depends on)."""
    found = {name: read(name, missing_ok=True) for name in EXPERIMENTS}
    return {name: result for name, result in found.items() if result is not None}


def format_p(p: float | None) -> str:
    if p is None:
        return "p n/a"
    return "p < 1e-4" if p < 1e-4 else f"p = {p:.2g}"


def p_value(row: dict[str, Any]) -> float | None:
    """The p-value of a comparison row (its column names the test and metric, e.g. "p (wilcoxon, NDCG@10)")."""
    return next((v for k, v in row.items() if k.startswith("p (")), None)


def _significance(row: dict[str, Any], metric: str = METRIC) -> str:
    p = p_value(row)
    if p is None or p >= ALPHA:
        return ""
    return "*" if row[f"model {metric}"] > row[f"base {metric}"] else "†"


def _relative(new: float, old: float) -> float | None:
    return new / old - 1 if old else None


def _percent(change: float | None) -> str:
    return "n/a" if change is None or change != change else f"{change:+.1%}"


def _setting(row: dict[str, Any], layout: Experiment) -> str:
    dataset, *variant = (row[k] for k in layout.settings)
    return f"{dataset} ({variant[0]})" if variant else str(dataset)


# --------------------------------------------------------------------------- tables

def marked_table(result: dict[str, Any], layout: Experiment) -> pd.DataFrame:
    """One row per dataset, setting and model: every metric as mean ± std over seeds, the model cell marked * (†)
    when it is significantly better (worse) than its base encoder on NDCG@10 in that setting."""
    table = pd.DataFrame(result["rows"])
    out = seed_summary(table, [*layout.settings, layout.model], {m: m for m in layout.metrics if m in table})
    marks = {(*(c[k] for k in layout.settings), c["model"]): _significance(c) for c in result.get("comparison", [])}
    out[layout.model] = [f"{r[layout.model]} {marks.get((*(r[k] for k in layout.settings), r[layout.model]), '')}"
                         .strip() for r in out.to_dict(orient="records")]
    return out


def collision_table(result: dict[str, Any]) -> pd.DataFrame:
    """RQ-VAE collision rate at 3 levels per dataset (rows) and backbone (columns), mean ± std over seeds."""
    table = pd.DataFrame(result["rows"])
    table = table[table.tokenizer == "rqvae"]
    summary = seed_summary(table, ["dataset", "backbone"], {"collision_rate@3": "coll@3"})
    wide = summary.pivot(index="dataset", columns="backbone", values="coll@3")
    return wide.loc[list(dict.fromkeys(summary.dataset)), list(dict.fromkeys(summary.backbone))].reset_index()


def relative_changes(results: dict[str, dict[str, Any]], metric: str = METRIC) -> pd.DataFrame:
    """EncodeRec against its base encoder, per experiment and setting, in the paper and here: relative change of
    `metric`, with our p-value. The paper's rows pair EncodeRec-22M with MiniLM-L6-v2 on its own datasets."""
    rows = []
    for name, layout in LAYOUTS.items():
        published = {d: c for t in layout.paper_tables for d, c in paper.relative_change(t, metric=metric).items()}
        for dataset, change in published.items():
            rows.append({"experiment": name, "source": "paper", "model": "EncodeRec-22M", "base": "all-MiniLM-L6-v2",
                         "setting": dataset, "relative change": change, "p": None})
        for c in results.get(name, {}).get("comparison", []):
            change = _relative(c[f"model {metric}"], c[f"base {metric}"])
            rows.append({"experiment": name, "source": "ours", "model": c["model"], "base": c["base"],
                         "setting": _setting(c, layout), "relative change": change, "p": p_value(c)})
    return pd.DataFrame(rows, columns=["experiment", "source", "model", "base", "setting", "relative change", "p"])


def scaling_table(results: dict[str, dict[str, Any]], metric: str = METRIC) -> pd.DataFrame:
    """The "scaling" rows of every experiment (the larger EncodeRec against the smaller): setting, both models'
    `metric`, relative change and p."""
    rows = [{"experiment": name, "setting": _setting(c, LAYOUTS[name]), "smaller": c["base"], "larger": c["model"],
             f"smaller {metric}": c[f"base {metric}"], f"larger {metric}": c[f"model {metric}"],
             "relative change": _percent(_relative(c[f"model {metric}"], c[f"base {metric}"])),
             "p": format_p(p_value(c))}
            for name in ("retrieval", "unisrec", "tiger") for c in results.get(name, {}).get("scaling", [])]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- verdicts

def _grade(holds: int, settings: int) -> str:
    """Reproduced when a claim holds in every setting, partly when in some, not reproduced when in none."""
    if holds == settings:
        return "reproduced"
    return "partly" if holds else "not reproduced"


def improvement_verdict(comparison: Sequence[dict[str, Any]], layout: Experiment,
                        metric: str = METRIC) -> tuple[str, str]:
    """(verdict, evidence) for "EncodeRec beats its base encoder" from an experiment's comparison rows."""
    if not comparison:
        return "not testable here", "no run of an EncodeRec model beside its base encoder in this profile"
    better = [c for c in comparison if c[f"model {metric}"] > c[f"base {metric}"]]
    significant = [c for c in better if _significance(c, metric) == "*"]
    worse = [c for c in comparison if _significance(c, metric) == "†"]
    verdict = _grade(len(significant), len(comparison))
    details = "; ".join(
        f"{_setting(c, layout)}: {c['model']} {c[f'base {metric}']:.4f} → {c[f'model {metric}']:.4f} "
        f"({_percent(_relative(c[f'model {metric}'], c[f'base {metric}']))} vs {c['base']}, {format_p(p_value(c))}"
        f"{', ' + str(c['seeds']) + ' seeds' if c.get('seeds', 1) > 1 else ''})" for c in comparison)
    counts = (f"{metric}, paired Wilcoxon: significantly better in {len(significant)} of {len(comparison)} settings, "
              f"significantly worse in {len(worse)}, higher on average in {len(better)}. ")
    return verdict, counts + details + "."


def per_seed_changes(result: dict[str, Any], layout: Experiment, metric: str = METRIC) -> str:
    """EncodeRec's relative change against its base encoder seed by seed, in each setting with several seeds: the
    paired tests average each user over seeds, so they do not show how much the change itself moves between seeds.
    A base encoder without seeds (a frozen one in retrieval) is compared with every seed of the model."""
    table = pd.DataFrame(result["rows"])
    parts = []
    for c in result.get("comparison", []):
        if c.get("seeds", 1) < 2:
            continue
        here = table[(table[layout.settings] == pd.Series({k: c[k] for k in layout.settings})).all(axis=1)]
        base = here[here[layout.model] == c["base"]]
        base_by_seed = base.groupby("seed")[metric].mean()
        model_by_seed = here[here[layout.model] == c["model"]].groupby("seed")[metric].mean()
        changes = ", ".join(f"seed {int(s)} {_percent(_relative(v, base_by_seed.get(s, base[metric].mean())))}"
                            for s, v in model_by_seed.items())
        parts.append(f"{_setting(c, layout)}, {c['model']}: {changes}")  # a setting can hold several EncodeRecs
    return f"{metric} change per seed: " + "; ".join(parts) if parts else ""


def best_model_counts(result: dict[str, Any], layout: Experiment, model: str, metric: str = METRIC) -> str:
    """In how many settings `model` has the highest mean `metric` of every model run there (seed-averaged)."""
    table = pd.DataFrame(result["rows"])
    means = table.groupby([*layout.settings, layout.model], sort=False)[metric].mean().reset_index()
    settings = [group for _, group in means.groupby(layout.settings, sort=False) if model in set(group[layout.model])]
    wins = sum(group.loc[group[metric].idxmax(), layout.model] == model for group in settings)
    return f"{model} has the highest mean {metric} of all backbones run in {wins} of {len(settings)} settings"


def collision_verdict(result: dict[str, Any] | None) -> tuple[str, str]:
    """(verdict, evidence) for "EncodeRec eliminates semantic-ID collisions" from the rows of
    `collisions.elimination` (results/<profile>/collisions.json, key "verdict")."""
    if not result or not result.get("verdict"):
        return "not testable here", "03_semantic_ids did not run an EncodeRec model in this profile"
    rows = result["verdict"]
    eliminated = [r for r in rows if r["eliminated (all seeds)"]]
    fewer = [r for r in rows if r.get("base coll@3") is not None and r["EncodeRec coll@3"] < r["base coll@3"]]
    verdict = _grade(len(eliminated), len(rows))
    details = "; ".join(f"{r['dataset']}: {r['model']} {r['EncodeRec coll@3']:.1%} vs {r['base']} "
                        + ("not run" if r.get("base coll@3") is None else f"{r['base coll@3']:.1%}") for r in rows)
    return verdict, (f"RQ-VAE 3 x 256 codes, collision rate at 3 levels (items without an ID of their own): "
                     f"eliminated on {len(eliminated)} of {len(rows)} (catalogue, EncodeRec model) pairs, fewer than "
                     f"its base encoder on {len(fewer)}. {details}.")


def scaling_verdict(results: dict[str, dict[str, Any]], metric: str = METRIC) -> tuple[str, str]:
    """(verdict, evidence) for "a larger EncodeRec is better" from the "scaling" rows of Table 1, 2 and 3 (the larger
    model against the smaller, `tables.LARGER_THAN`, paired Wilcoxon over queries or users)."""
    return paired_verdict(results, "scaling", "fine-tuned all-mpnet-base-v2, our stand-in for the paper's 300M model",
                          "no larger EncodeRec (EncodeRec-110M, fine-tuned all-mpnet-base-v2: our stand-in for the "
                          "paper's 300M model) was run beside EncodeRec-22M in this profile", metric)


# our own hypotheses are supported or not; "reproduced" is for the paper's claims
EXTENSION_GRADES = {"reproduced": "supported", "partly": "partly supported", "not reproduced": "not supported"}


def plus_verdict(results: dict[str, dict[str, Any]], metric: str = METRIC) -> tuple[str, str]:
    """(verdict, evidence) for our extension "EncodeRec+ is better than EncodeRec" from the "plus" rows of Table 1,
    2 and 3 (`tables.PLUS_OF`), graded as the paper's claims are but worded as a hypothesis of ours
    (`EXTENSION_GRADES`)."""
    verdict, evidence = paired_verdict(
        results, "plus", "interaction-aware: next-item pairs of the training sequences mixed into the metadata pairs",
        "no EncodeRec+ was run beside EncodeRec-22M in this profile", metric)
    return EXTENSION_GRADES.get(verdict, verdict), evidence


def paired_verdict(results: dict[str, dict[str, Any]], key: str, what: str, untested: str,
                   metric: str = METRIC) -> tuple[str, str]:
    """(verdict, evidence) from the `key` rows of Tables 1, 2 and 3: one EncodeRec against another (paired Wilcoxon
    over queries or users), graded as the paper's claims are."""
    rows = [(name, c) for name in ("retrieval", "unisrec", "tiger") for c in results.get(name, {}).get(key, [])]
    if not rows:
        return "not testable here", untested
    better = [c for _, c in rows if c[f"model {metric}"] > c[f"base {metric}"]]
    significant = [c for c in better if _significance(c, metric) == "*"]
    worse = [c for _, c in rows if _significance(c, metric) == "†"]
    details = "; ".join(
        f"{name} {_setting(c, LAYOUTS[name])}: {c['base']} {c[f'base {metric}']:.4f} → "
        f"{c['model']} {c[f'model {metric}']:.4f} ({_percent(_relative(c[f'model {metric}'], c[f'base {metric}']))}, "
        f"{format_p(p_value(c))})" for name, c in rows)
    return _grade(len(significant), len(rows)), (
        f"{rows[0][1]['model']} ({what}) against {rows[0][1]['base']}, {metric}, paired Wilcoxon: significantly "
        f"better in {len(significant)} of {len(rows)} settings, significantly worse in {len(worse)}, higher on average "
        f"in {len(better)}. {details}.")


def _with_seeds(evidence: str, results: dict[str, dict[str, Any]], name: str) -> str:
    spread = per_seed_changes(results[name], LAYOUTS[name]) if name in results else ""
    return f"{evidence} {spread}." if spread else evidence


def paper_recipe(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The results with the comparison rows (and the collision verdict's rows) of the paper's EncodeRec recipe only:
    EncodeRec+ (`tables.PLUS_OF`, our extension) has its own verdict and must not count for or against the paper."""
    keep = lambda rows: [r for r in rows if r["model"] not in PLUS_OF]  # noqa: E731
    return {name: {**result, **{k: keep(result[k]) for k in ("comparison", "verdict") if result.get(k)}}
            for name, result in results.items()}


def claims(results: dict[str, dict[str, Any]]) -> list[Claim]:
    """The paper's claims (of the paper's recipe, `paper_recipe`), each with its verdict and the evidence of this
    profile; then our extensions'."""
    results = paper_recipe(results)
    out = []
    verdict, evidence = improvement_verdict(results.get("retrieval", {}).get("comparison", []), LAYOUTS["retrieval"])
    evidence = _with_seeds(evidence, results, "retrieval")
    out.append(Claim("EncodeRec's fine-tuning improves title-to-description retrieval over its base encoder",
                     "Sections 1 and 3, Table 1", verdict, evidence))
    for name, words, where in (
            ("unisrec", "EncodeRec's item embeddings improve UniSRec's Recall/NDCG@10 over the base encoder (the "
                        "paper: highest of all backbones, +5-26 % over the baselines)", "Section 4.2, Table 2"),
            ("tiger", "EncodeRec as the semantic-ID input improves TIGER's Recall/NDCG@10 over the base encoder (the "
                      "paper: +4-9 % over the strongest baselines)", "Section 4.2, Table 3")):
        verdict, evidence = improvement_verdict(results.get(name, {}).get("comparison", []), LAYOUTS[name])
        if name in results and verdict != "not testable here":
            evidence += " " + best_model_counts(results[name], LAYOUTS[name], "EncodeRec-22M") + "."
        evidence = _with_seeds(evidence, results, name)
        out.append(Claim(words, where, verdict, evidence))
    out.append(Claim("EncodeRec eliminates Semantic ID collisions entirely", "Section 4.2",
                     *collision_verdict(results.get("collisions"))))
    out.append(Claim("A larger EncodeRec backbone consistently improves performance (22M → 300M)", "Section 4.2",
                     *scaling_verdict(results)))
    out.append(Claim("EncodeRec-22M is competitive with BLaIR with 6-16x fewer parameters", "Section 4.2",
                     "not testable here", "BLaIR's weights cannot be loaded on this machine (no Hugging Face hub); "
                     "the notebooks accept any Hugging Face id, so a user with internet can add the row"))
    if any(results.get(name, {}).get("plus") for name in ("retrieval", "unisrec", "tiger")):
        out.append(Claim("Our extension, not a claim of the paper (its own next step): EncodeRec+, trained with "
                         "interaction pairs as well, is better than EncodeRec-22M", "beyond the paper",
                         *plus_verdict(results)))
    variants = results.get("tiger", {}).get("variants") or []
    if variants:
        out.append(Claim("Our extension, not a claim of the paper: what a semantic-ID collision costs TIGER (the "
                         "paper: collisions are 'a major source of ambiguity and error')", "beyond the paper",
                         "measured", variant_evidence(variants)))
    return out


def variant_evidence(rows: Sequence[dict[str, Any]], metric: str = METRIC) -> str:
    """One sentence per ID variant on TIGER's "variants" rows (`tables.against_dedup`): how often it is significantly
    better or worse than TIGER's dedup IDs on the same codes, then each setting's numbers."""
    words = {"unique": "collision-free 3-code IDs (Hungarian last code)", "shared": "shared 3-code IDs (1/g credit)"}
    out = []
    for ids in sorted({r["ids"] for r in rows}, key=list(words).index):
        chosen = [r for r in rows if r["ids"] == ids]
        better = sum(_significance(r, metric) == "*" for r in chosen)
        worse = sum(_significance(r, metric) == "†" for r in chosen)
        details = "; ".join(
            f"{r['dataset']} {r['backbone']}: {r[f'base {metric}']:.4f} → {r[f'model {metric}']:.4f} "
            f"({_percent(_relative(r[f'model {metric}'], r[f'base {metric}']))}, {format_p(p_value(r))}, "
            f"{r['seeds']} seeds)" for r in chosen)
        out.append(f"{words.get(ids, ids)} against TIGER's dedup code, {metric}, paired Wilcoxon over test users: "
                   f"significantly better in {better} of {len(chosen)} settings, significantly worse in {worse} "
                   f"({details}).")
    return " ".join(out)


# --------------------------------------------------------------------------- the document

@dataclass
class Section:
    """A part of the summary, rendered as Markdown (RESULTS.md) and HTML (the report's index page). Tables are lists
    of records; images are (title, path relative to the output root) pairs."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[list[dict[str, Any]]] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def provenance_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for name, result in results.items():
        prov = result["provenance"]
        commit = prov["git"]["commit"] or "unknown"
        devices = sorted({f"{r['device']} ({r.get('precision') or 'fp32'})" for r in result.get("rows", [])
                          if r.get("device")})
        rows.append({"results": f"results/{result['profile']}/{name}.json", "notebook": result["notebook"],
                     "commit": commit[:10] + (" (dirty)" if prov["git"]["dirty"] else ""),
                     "machine": f"{prov['machine']['cpu_count']} CPUs, {prov['machine']['device']}",
                     "packages": _package_versions(prov),
                     "started": prov["started_at"], "wall time": f"{prov['wall_time_s'] / 60:.1f} min",
                     "runs trained on": ", ".join(devices)})
    return pd.DataFrame(rows)


def _package_versions(prov: dict[str, Any]) -> str:
    """The key packages' versions a results file was computed with, or "not recorded" (files written before the
    environment was recorded)."""
    packages = prov.get("environment", {}).get("packages")
    if not packages:
        return "not recorded"
    shown = ("torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy")
    return ", ".join(f"{name} {packages.get(name)}" for name in shown)


def sections(results: dict[str, dict[str, Any]], found: Sequence[Claim],
             figures: Iterable[tuple[str, str]] = ()) -> list[Section]:
    """The summary: verdicts, EncodeRec against its base beside the paper, every table with the published ones,
    collisions, figures, provenance."""
    out = [Section("Verdicts on the paper's claims", [
        "Reproduced = significantly better than the base encoder (paired Wilcoxon over queries or users, p < 0.05) "
        "in every setting run (for collisions: none left on every catalogue); partly = in some settings; not "
        "reproduced = in none; not testable here = no run of this profile can test it; our own extensions are "
        "graded the same way as supported, partly supported or not supported. In the tables below, * marks "
        "a model significantly better than its base encoder on NDCG@10 in that setting, † significantly worse; cells "
        "are mean ± std over seeds."], [[asdict(c) for c in found]])]
    changes = relative_changes(results)
    if not changes.empty:
        shown = changes.assign(**{"relative change": changes["relative change"].map(_percent),
                                  "p": [format_p(p) if s == "ours" else "" for p, s in zip(changes.p, changes.source)]})
        out.append(Section("EncodeRec against its base encoder, the paper beside us", [
            f"Relative change of {METRIC}. The paper's rows are its own datasets and splits (Amazon 2023 for Table 2, "
            "the Amazon 2014 P5 split for Table 3); ours are the mirrored datasets."], [_records(shown)]))
    for name, layout in LAYOUTS.items():
        if name in results:
            published = [paper.wide(t).reset_index() for t in layout.paper_tables]
            out.append(Section(layout.title, ["Ours, then as published: " + "; ".join(
                paper.SOURCES[t] for t in layout.paper_tables) + "."],
                [_records(marked_table(results[name], layout)), *map(_records, published)]))
    out += further_sections(results)
    if "collisions" in results:
        out.append(Section("Semantic-ID collisions (RQ-VAE 3 x 256, collision rate at 3 levels)", [
            "(items - distinct 3-code IDs) / items, mean ± std over seeds; the paper reports none for EncodeRec."],
            [_records(collision_table(results["collisions"]))]))
    figures = list(figures)
    if figures:
        out.append(Section("Figures", images=figures))
    if results:
        out.append(Section("Provenance", ["Where every number comes from: the commit, the machine and the wall "
                                          "time of the notebook run that wrote it, and the devices that trained "
                                          "the recommender runs it read from the run caches."],
                           [_records(provenance_table(results))]))
    return out


def further_sections(results: dict[str, dict[str, Any]]) -> list[Section]:
    """The sections on the larger EncodeRec, on what a collision costs TIGER (our extension), on TIGER beside the
    published TIGER, and on the runs still pending."""
    out = []
    scale = scaling_table(results)
    if not scale.empty:
        out.append(Section("Scale: the larger EncodeRec against the smaller", [
            f"Each setting where both ran: {METRIC} of each (mean over its seeds), relative change and the paired "
            "Wilcoxon test over queries (Table 1) or test users (Tables 2 and 3)."], [_records(scale)]))
    variants = results.get("tiger", {}).get("variants") or []
    if variants:
        out.append(Section("What a collision costs TIGER (our extension)", [
            "On the same RQ-VAE codes of a backbone: collision-free 3-code IDs (the Hungarian re-assignment of the last "
            "code) and shared 3-code IDs (1/g credit) against TIGER's 4th dedup code; NDCG@10 of each (mean over its "
            "seeds), paired Wilcoxon over test users."], [variants]))
    published = results.get("tiger", {}).get("published") or []
    if published:
        out.append(Section("TIGER on Beauty and Toys beside the published TIGER", [
            "The Amazon 2014 P5 split that TIGER and the EncodeRec paper's Table 3 use: ours (mean over seeds), the "
            "EncodeRec paper's row of the same model and TIGER's own (Sentence-T5). Item text here is title and "
            "categories only; the training budget and model size are in 05_tiger's departures table."],
            [published]))
    out += unisrec_sections(results.get("unisrec", {}))
    pending = pending_table(results)
    if pending:
        out.append(Section("Pending runs", [
            "Runs, rankings and tokenizations that were neither archived (`results/<profile>/runs/`) nor in the caches "
            "when this summary was written (the GPU set's, `make gpu-set`, and the parts not run yet, README); the "
            "tables above leave them out. One row per experiment, dataset, model and setting, with the seeds it "
            "lacks."], [pending]))
    return out


def pending_table(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The notebooks' pending units grouped: one row per experiment, dataset, model (a run's model, a
    tokenization's backbone) and setting (whatever else tells the units apart: tokenizer, mode, IDs, ablation
    setting), with its seeds. The model seed is left out: it follows from the seed."""
    units = [(name, row) for name in EXPERIMENTS for row in results.get(name, {}).get("pending") or []]
    ablation = results.get("unisrec", {}).get("ablation") or {}
    units += [("unisrec ablation", row) for row in ablation.get("pending") or []]
    seeds: dict[tuple[str, str | None, str | None, str], list[str]] = {}
    for experiment, row in units:
        setting = ", ".join(str(v) for k, v in row.items() if k in _SETTING_KEYS and v is not None)
        model = next((row[k] for k in _MODEL_KEYS if k in row), None)
        seeds.setdefault((experiment, row.get("dataset"), model, setting), []).append(_cell(row.get("seed"), whole=True))
    return [{"experiment": experiment, "dataset": dataset, "model": model, "setting": setting,
             "seeds": ", ".join(sorted({s for s in group if s}, key=int))}
            for (experiment, dataset, model, setting), group in seeds.items()]


def unisrec_sections(unisrec: dict[str, Any]) -> list[Section]:
    """04_unisrec's protocol table beside the UniSRec paper, and its ablation with the finding it supports."""
    out = []
    if unisrec.get("protocols"):
        published = paper.wide("UniSRec").reset_index()
        out.append(Section("UniSRec under both ranking protocols, beside the UniSRec paper", [
            "Test users, full ranking; \"history excluded\" is our protocol, \"history kept\" RecBole's (the "
            "UniSRec paper's), read on the same models; \"history kept, in validation too\", runs whose early "
            "stopping ranked that way as well. Then as published: " + paper.SOURCES["UniSRec"] + "; what still "
            "differs is listed in 04_unisrec."], [unisrec["protocols"], _records(published)]))
    ablation = unisrec.get("ablation") or {}
    if ablation.get("table"):
        out.append(Section("Why TF-IDF beats the sentence encoders inside UniSRec (ablation)", [
            ablation_finding(ablation),
            "Every model under every setting (mean ± std over seeds, place among the setting's models by NDCG@10, "
            "epochs run and epochs run after the best validation epoch); "
            "each sentence encoder against TF-IDF + SVD per setting; each setting against the profile's own; the "
            "shape of the embeddings as the encoder gives them (paired Wilcoxon over test users on NDCG@10)."],
            [ablation["table"], ablation["gaps"], ablation["effects"], ablation.get("shape") or []]))
    return out


def ablation_finding(ablation: dict[str, Any], metric: str = METRIC) -> str:
    """What the ablation says, in words from its rows: per dataset, the best sentence encoder's gap to TF-IDF + SVD
    under each setting, the setting that moves it most from the reference setting's, and how many of its runs the
    epoch cap stopped while they still improved (`capped_runs`)."""
    sentences = []
    gaps = pd.DataFrame(ablation.get("gaps") or [])
    gaps = gaps[gaps["model"] != ID_ONLY] if len(gaps) else gaps
    if gaps.empty:
        return "No sentence encoder and TF-IDF + SVD ran under the same setting yet."
    for dataset, rows in gaps.groupby("dataset", sort=False):
        best = rows.loc[rows.groupby("setting", sort=False)[f"model {metric}"].idxmax()]
        change = {r.setting: _relative(r[f"model {metric}"], r[f"base {metric}"]) for _, r in best.iterrows()}
        told = "; ".join(f"{r.setting}: {r.model} {_percent(change[r.setting])} ({format_p(p_value(r.to_dict()))}, "
                         f"{r.seeds} seed{'s' if r.seeds > 1 else ''})" for _, r in best.iterrows())
        text = f"{dataset}, {metric} of the best sentence encoder against TF-IDF + SVD, by setting: {told}."
        reference = ablation.get("reference")
        moved = {s: c - change[reference] for s, c in change.items()
                 if s != reference and reference in change and c is not None and change[reference] is not None}
        if moved:
            top = max(moved, key=lambda s: abs(moved[s]))
            text += (f" The setting that moves the gap most from the reference's ({reference}): {top} "
                     f"({moved[top] * 100:+.1f} points).")
        standing: dict[str, list[str]] = {}
        for _, r in best.iterrows():
            significant = (p_value(r.to_dict()) or 1.0) < ALPHA
            side = "level" if not significant else "ahead" if change[r.setting] > 0 else "behind"
            standing.setdefault(side, []).append(r.setting)
        text += "".join(f" {what}: {', '.join(standing[side])}." for side, what in (
            ("behind", "TF-IDF significantly ahead under"), ("level", "No significant difference under"),
            ("ahead", "The sentence encoder significantly ahead under")) if side in standing)
        sentences.append(text)
    return " ".join(sentences + capped_runs(ablation.get("table") or [])
                    + untrained_signal(ablation.get("shape") or [], ablation.get("untrained gaps") or []))


def untrained_signal(shape: Sequence[dict[str, Any]], gaps: Sequence[dict[str, Any]] = ()) -> list[str]:
    """A sentence per dataset on the next-item signal of each backbone's geometry without training (04's shape
    table: NDCG@10 of the last-item neighbour recommender per normalisation), with the p-value of each backbone
    against TF-IDF + SVD where `gaps` (04's "untrained gaps") has it; none for a table without it."""
    prefix = "last-item kNN NDCG@10, "
    p_of = {(g["dataset"], g["model"], g["variant"]): p_value(g) for g in gaps}

    def value(row: dict[str, Any], how: str) -> str:
        key = (row["dataset"], row["model"], how)
        return f"{row['model']} {row[prefix + how]:.4f}" + (f" ({format_p(p_of[key])})" if key in p_of else "")

    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in shape):
        rows = [r for r in shape if r["dataset"] == dataset]
        hows = [c[len(prefix):] for c in rows[0] if c.startswith(prefix)]
        if hows:
            told = "; ".join(f"{how}: " + ", ".join(value(r, how) for r in rows) for how in hows)
            out.append(f"{dataset} without training (every item scored by its cosine to the user's last item), "
                       f"NDCG@10 by input: {told}.")
    return out


def capped_runs(table: Sequence[dict[str, Any]], within: int = 3) -> list[str]:
    """A sentence on the ablation table's rows (`tables.ablation`) whose best validation epoch is among the last
    `within` epochs run (a mean over seeds): those the epoch cap, not early stopping, ended; none when no row has
    the epoch columns."""
    rows = [r for r in table if r.get("epochs after the best") is not None]
    capped = [r for r in rows if r["epochs after the best"] < within]
    if not rows:
        return []
    return [f"{len(capped)} of {len(rows)} (setting, model) rows had their best validation epoch among the last "
            f"{within} epochs run: the epoch cap, not early stopping, ended their training."]


def _cell(v: Any, whole: bool = False, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return str(int(v)) if whole else f"{v:.{digits}f}"
    return str(v)


def _columns(records: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of the records in the order they first appear: records that lack a key leave its column empty."""
    return list(dict.fromkeys(c for r in records for c in r))


def _cells(records: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Each record's cells under `_columns`; a column whose numbers are all whole (a seed or an epoch count that
    pandas made float because a row lacks it, or a mean over seeds that agree) is written without decimals."""
    columns = _columns(records)
    whole = {c: all(not isinstance(v, float) or v.is_integer() for r in records if (v := r.get(c)) is not None)
             for c in columns}
    return [[_cell(r.get(c), whole[c]) for c in columns] for r in records]


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """A GitHub Markdown table; floats rounded, '|' and HTML escaped, missing values empty."""
    columns = _columns(records)
    def row(cells: Iterable[str]) -> str:
        return "| " + " | ".join(html.escape(c, quote=False).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
    return "\n".join([row(map(str, columns)), "|" + "---|" * len(columns), *(row(r) for r in _cells(records))])


def html_table(records: Sequence[dict[str, Any]]) -> str:
    """An HTML table, every cell escaped."""
    columns = _columns(records)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in _cells(records))
    return f"<table><tr>{head}</tr>{body}</table>"


def to_markdown(profile: str, parts: Sequence[Section], location: Path, output_root: Path) -> str:
    """RESULTS.md, written at `location` (image links are made relative to it)."""
    lines = [f"# encoderec results: profile `{profile}`",
             f"Generated by `python -m encoderec report --profile {profile}` (notebook `06_summary`) from "
             f"`results/{profile}/*.json`, which also hold each number's provenance. Do not edit by hand."]
    for part in parts:
        lines += [f"## {part.title}", *part.text, *map(markdown_table, part.tables)]
        lines += [f"![{title}]({os.path.relpath(output_root / path, location.parent)})" for title, path in part.images]
    return "\n\n".join(lines) + "\n"


def to_html(parts: Sequence[dict[str, Any]] | Sequence[Section], location: Path, output_root: Path) -> str:
    """The sections as an HTML fragment for a page at `location` (text and cells escaped, images linked)."""
    out = []
    for part in parts:
        part = part if isinstance(part, dict) else asdict(part)
        out.append(f"<h2>{html.escape(part['title'])}</h2>")
        out += [f"<p>{html.escape(t)}</p>" for t in part["text"]] + [html_table(t) for t in part["tables"]]
        out += [f'<figure><img src="{html.escape(os.path.relpath(output_root / path, location.parent))}" '
                f'alt="{html.escape(title)}" style="max-width:100%"><figcaption>{html.escape(title)}</figcaption>'
                f"</figure>" for title, path in part["images"]]
    return "\n".join(out)
