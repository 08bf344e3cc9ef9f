"""The report's summary: the paper's claims in their own form, one verdict each, our tables beside the paper's,
RESULTS.md.

It reads what the experiment notebooks wrote to results/<profile>/ (retrieval, collisions, unisrec, tiger) and
decides nothing the JSON does not support. Each claim is a family of settings (`families`): comparison rows that
02-05 recorded with `tables.compare` (the relative change of NDCG@10 with its interval over seeds and users and the
per-user randomization test, `encoderec.report.stats`). Inside a family the p-values are Holm-adjusted; each setting is
graded (`grade_setting`: supports, significantly worse, no gain of the paper's size, inconclusive) against the
change the paper reports for it, and the claim's verdict follows from the grades (`verdict_of`: reproduced, partly,
not reproduced, inconclusive; `LEGEND` says it in full, and RESULTS.md prints it).

Table 2 and Table 3 are tested in the paper's form (EncodeRec against every other backbone run, "outperforming the
other baselines", "over the strongest baselines") and in the weaker form against its base encoder, separately. The
retrieval test is of the training objective: the paper's Table 1 has no EncodeRec row.

In the tables, a cell is "mean ± std" over seeds; * marks a model that supports the claim against its base encoder
in that setting, † one significantly worse.
"""

from __future__ import annotations

import html
import os
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from encoderec.core.errors import EncoderecError
from encoderec.pipeline.registry import ID_ONLY, PLUS_OF
from encoderec.report import paper, stats
from encoderec.report.tables import seed_summary

ALPHA = stats.ALPHA
METRIC = "NDCG@10"
EXPERIMENTS = ("retrieval", "collisions", "unisrec", "tiger")
# a pending unit's model under the name each notebook gives it, and the keys of its setting (pending_table): named,
# not "the rest", so that a run's labels ("model seed", TIGER's "distinct IDs", `runs.inputs`) never read as one
_MODEL_KEYS = ("model", "backbone")
_SETTING_KEYS = ("setting", "tokenizer", "mode", "ids", "size")


@dataclass(frozen=True)
class Experiment:
    """How one results file is laid out: its model column, the column that splits settings, its metrics."""

    title: str
    model: str
    variant: str | None
    metrics: tuple[str, ...]
    paper_tables: tuple[str, ...]  # published tables to show beside ours (encoderec.report.paper)

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


def _relative(new: float, old: float) -> float | None:
    return new / old - 1 if old else None


def _percent(change: float | None) -> str:
    return "n/a" if change is None or change != change else f"{change:+.1%}"


def _setting(row: dict[str, Any], layout: Experiment) -> str:
    dataset, *variant = (row[k] for k in layout.settings)
    return f"{dataset} ({variant[0]})" if variant else str(dataset)


# --------------------------------------------------------------------------- verdicts

# a setting's grade (`grade_setting`)
SUPPORTS, WORSE, NO_EFFECT, INCONCLUSIVE = ("supports", "significantly worse", "no gain of the paper's size",
                                            "inconclusive")
# a claim's verdict from its settings' grades (`verdict_of`); our own hypotheses are "supported", not "reproduced"
VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive", "not testable here")
EXTENSION_GRADES = {"reproduced": "supported", "partly": "partly supported", "not reproduced": "not supported"}
PAPER_RECIPE = ("EncodeRec-22M", "EncodeRec-110M")  # the paper's EncodeRec models here (EncodeRec+ is ours)
LEGEND = (
    "How a verdict is decided. Every setting (dataset and mode or ID variant, one EncodeRec model against one "
    "other model) gives the relative change of NDCG@10 with a 95 % interval over both training runs (seeds, paired: "
    "seed s on both sides) and users or queries (`encoderec.report.stats`: two-way variance components, Satterthwaite's "
    "degrees of freedom), and a per-user paired randomization test on the seed-averaged values, Holm-adjusted "
    "inside the claim's family of settings. A setting **supports** the claim when its interval excludes zero on the "
    "gain side and its Holm-adjusted p < 0.05; it is **significantly worse** when both hold on the loss side. "
    "Otherwise it is **inconclusive** when the smallest change the design detects with 80 % power (given its seeds, "
    "users and the spread measured) is larger than the change the paper reports, or when it has one seed (run "
    "variance unmeasured), and shows **no gain of the paper's size** when it could have detected that change. "
    "Against every other backbone (the paper's strong form), a setting supports only when it beats each of them: "
    "the largest of their p-values is the one adjusted, and the interval's lower end is the lowest over them "
    "(an intersection-union test). A claim is **reproduced** when every setting supports it, **partly** when some "
    "do, **not reproduced** when none does and at least one setting is conclusive (no gain of the paper's size, "
    "or worse), **inconclusive** when none does and none is conclusive; our own extensions read supported, partly "
    "supported, not supported or inconclusive. Collisions are counted, not tested: reproduced when no catalogue "
    "has any left. The basis beside each verdict counts the grades and gives the headline setting, the "
    "best-measured one (most seeds, then most users); every setting is in the next section.")


@dataclass(frozen=True)
class Claim:
    claim: str  # the paper's words, shortened, and the form tested
    where: str  # where the paper makes it
    verdict: str
    evidence: str  # every setting in brief
    basis: str = ""  # what the verdict rests on, in a sentence or two (RESULTS.md's and README's claim table)


@dataclass(frozen=True)
class Family:
    """One claim's family of settings: comparison rows (experiment name, row) with the change the paper reports
    for each (`reference(name, row)`, None where it reports none), told in `reference_words`."""

    name: str
    rows: list[tuple[str, dict[str, Any]]]
    reference: Callable[[str, dict[str, Any]], float | None]
    reference_words: str


def change_of(row: dict[str, Any]) -> stats.Change | None:
    """The `stats.Change` a comparison row (`tables.compare`) records; None for a row written without one."""
    if "relative change" not in row:
        return None
    return stats.Change(row["relative change"], row.get("interval low"), row.get("interval high"), row.get("se"),
                        row.get("df"), row["seeds"], row["users"], row.get("sigma2 user"), row.get("sigma2 seed"),
                        row.get("sigma2 resid"))


def grade_setting(row: dict[str, Any], p_holm: float | None, effect: float | None) -> tuple[str, float | None]:
    """(grade, the smallest relative change the design detects) of one comparison row (see LEGEND)."""
    change = change_of(row)
    if change is None or not change.seed_variance_known:
        return INCONCLUSIVE, None
    detectable = stats.detectable_change(change.se, change.df)
    significant = p_holm is not None and p_holm < ALPHA
    if significant and change.low > 0:
        return SUPPORTS, detectable
    if significant and change.high < 0:
        return WORSE, detectable
    if effect is None or detectable > effect:
        return INCONCLUSIVE, detectable
    return NO_EFFECT, detectable


def verdict_of(grades: Sequence[str]) -> str:
    """A claim's verdict from its settings' grades (see LEGEND)."""
    if not grades:
        return "not testable here"
    supports = sum(g == SUPPORTS for g in grades)
    if supports == len(grades):
        return "reproduced"
    if supports:
        return "partly"
    return "not reproduced" if any(g in (WORSE, NO_EFFECT) for g in grades) else "inconclusive"


def graded(family: Family, results: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One record per setting of `family`: the comparison, its interval, the Holm-adjusted p, the detectable change
    beside the paper's, the grade, and the seeds that would settle an inconclusive one."""
    adjusted = stats.holm([p_value(row) for _, row in family.rows])
    out = []
    for (name, row), p_holm in zip(family.rows, adjusted):
        effect = family.reference(name, row)
        grade, detectable = grade_setting(row, p_holm, effect)
        change = change_of(row)
        needed = stats.seeds_needed(change, effect) if grade == INCONCLUSIVE and change and effect else None
        note = ("one seed: run variance unmeasured" if row.get("seeds") == 1
                else "no interval recorded" if change is None else
                f"{needed} seeds would settle it" if needed else
                f"not settled by {stats.MAX_SEEDS} seeds" if grade == INCONCLUSIVE and effect else "")
        out.append({
            "claim": family.name, "experiment": name, "setting": _setting(row, LAYOUTS[name]),
            "model": row["model"], "against": row.get("against", row["base"]), "seeds": row.get("seeds"),
            "users": row.get("users"), "against NDCG@10": row.get(f"base {METRIC}"),
            "model NDCG@10": row.get(f"model {METRIC}"),
            "change": _percent(row.get("relative change", _relative(row[f"model {METRIC}"], row[f"base {METRIC}"]))),
            "95 % interval": _interval(change), "p (Holm)": format_p(p_holm).removeprefix("p = ")
            .removeprefix("p "), "detectable": _percent(detectable) if detectable is not None else "n/a",
            "paper's change": _percent(effect), "grade": grade, "note": note,
            "precision": _precision(results or {}, name, row)})
    return out


def _interval(change: stats.Change | None) -> str:
    if change is None or change.low is None or change.low != change.low:
        return "n/a"
    return f"[{change.low:+.1%}, {change.high:+.1%}]" + ("" if change.seed_variance_known else " (users only)")


def _precision(results: dict[str, dict[str, Any]], name: str, row: dict[str, Any]) -> str:
    """The precisions the two sides' runs were trained in ("bf16", or "bf16 + fp32" where they mix: like against
    like only when one); empty where the runs do not record it (Table 1's frozen rankings)."""
    layout = LAYOUTS[name]
    found = {r.get("precision") for r in results.get(name, {}).get("rows", [])
             if all(r.get(k) == row.get(k) for k in layout.settings) and r.get(layout.model) in
             (row["model"], row["base"]) and r.get("precision")}
    return " + ".join(sorted(found))


def strong_form(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of each EncodeRec model against every other backbone of its setting (`tables.compare` rows against
    each baseline) joined into one per (setting, model): against the strongest baseline (the highest mean), with
    the largest p-value and the lowest interval end over all of them (an intersection-union test, LEGEND)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row.get("variant"), *(row.get(k) for k in ("mode", "ids", "corpus")),
                           row["model"]), []).append(row)
    out = []
    for group in groups.values():
        strongest = max(group, key=lambda r: r[f"base {METRIC}"])
        ps = [p_value(r) for r in group]
        lows = [r.get("interval low") for r in group]
        out.append({**strongest, "against": f"every other backbone ({len(group)}; strongest {strongest['base']})",
                    p_key(strongest): None if None in ps else max(ps),
                    "interval low": None if None in lows else min(lows)})
    return out


def p_key(row: dict[str, Any]) -> str:
    return next((k for k in row if k.startswith("p (")), "p")


def _median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


def _published(table: str, model: str = "EncodeRec-22M", base: str = "all-MiniLM-L6-v2") -> dict[str, float]:
    return paper.relative_change(table, model=model, base=base)


def _by_dataset_or_median(table: str, **models: str) -> Callable[[str, dict[str, Any]], float | None]:
    """The paper's change on the row's dataset where the paper ran the same split (Table 3: Beauty and Toys), else
    the median of its datasets' changes."""
    published = _published(table, **models)
    same_split = table == "3"
    return lambda _, row: published[row["dataset"]] if same_split and row["dataset"] in published \
        else _median(published.values())


def paper_ids(row: dict[str, Any]) -> bool:
    """Whether a TIGER row uses the paper's semantic IDs (TIGER's dedup 4th code; any row of another table does):
    the collision-free and shared IDs are our extension and count for no claim of the paper."""
    return row.get("ids", "dedup") == "dedup"


def families(results: dict[str, dict[str, Any]]) -> dict[str, Family]:
    """Every claim's family of settings, by key, from the comparison rows the notebooks recorded."""
    def rows(name: str, key: str, models: Sequence[str] = PAPER_RECIPE) -> list[tuple[str, dict[str, Any]]]:
        return [(name, r) for r in results.get(name, {}).get(key) or [] if r["model"] in models and paper_ids(r)]

    smallest = min([c for t in ("2", "3") for c in _published(t).values() if c > 0], default=None)
    larger = {t: _published(t, *paper.LARGER) for t in ("2", "3")}
    scale_reference = {"unisrec": _median(larger["2"].values()), "tiger": None,
                       "retrieval": _median([*larger["2"].values(), *larger["3"].values()])}
    table3_scale = _by_dataset_or_median("3", model=paper.LARGER[0], base=paper.LARGER[1])
    base_reference = {"retrieval": lambda *_: smallest, "unisrec": _by_dataset_or_median("2"),
                      "tiger": _by_dataset_or_median("3")}
    plus_rows = [(n, r) for n in ("retrieval", "unisrec", "tiger") for r in results.get(n, {}).get("plus") or []]

    def strong(name: str, table: str) -> Family:
        """The paper's form of Table 2 or 3: against every other backbone, its claimed gain's lower end."""
        low, high = paper.CLAIMED_GAIN[table]
        return Family(f"Table {table} (paper's form)", [(name, r) for r in strong_form([r for _, r in rows(
            name, "baselines")])], lambda *_: low, f"the lower end of the paper's claimed {_percent(low)} to "
                      f"{_percent(high)}")

    return {
        "objective": Family("Table 1 (training objective)", rows("retrieval", "comparison"),
                            base_reference["retrieval"],
                            "the smallest gain over its base the paper reports for EncodeRec-22M (Tables 2-3), "
                            f"{_percent(smallest)}: Table 1 itself has no EncodeRec row"),
        "unisrec strong": strong("unisrec", "2"),
        "unisrec base": Family("Table 2 (against the base encoder)", rows("unisrec", "comparison"),
                               base_reference["unisrec"], "the median of the paper's Table 2 changes over "
                               "all-MiniLM-L6-v2 (Amazon 2023 datasets, none of ours)"),
        "tiger strong": strong("tiger", "3"),
        "tiger base": Family("Table 3 (against the base encoder)", rows("tiger", "comparison"),
                             base_reference["tiger"], "the paper's Table 3 change over all-MiniLM-L6-v2 on the same "
                             "split (Beauty, Toys), elsewhere the median of its three datasets"),
        "scale": Family("Scale", [(n, r) for n in ("retrieval", "unisrec", "tiger")
                                  for r in results.get(n, {}).get("scaling") or [] if paper_ids(r)],
                        lambda n, r: table3_scale(n, r) if n == "tiger" else scale_reference[n],
                        "the paper's EncodeRec-300M over EncodeRec-22M: in Table 2 the median over its datasets, in "
                        "Table 3 its change on the same split or the median, in Table 1 (no such row) the median "
                        "over both tables"),
        "plus": Family("EncodeRec+ (ours)", plus_rows, lambda n, r: base_reference[n](n, r),
                       "what EncodeRec-22M gains over its base in the paper, as for the base-encoder form"),
    }


def family_verdict(family: Family, results: dict[str, dict[str, Any]], untested: str,
                   extension: bool = False, size: str = "") -> tuple[str, str, str]:
    """(verdict, evidence, basis) of one family. The basis is what the claim table shows: how many settings have
    each grade and the headline setting's change with its interval (`headline`), then what TIGER it rests on
    (`size`); the evidence adds why the inconclusive ones are, the reference change and every setting in brief."""
    settings = graded(family, results)
    if not settings:
        return "not testable here", untested, untested
    verdict = verdict_of([s["grade"] for s in settings])
    counts = ", ".join(f"{sum(s['grade'] == g for s in settings)} {g}" for g in (SUPPORTS, WORSE, NO_EFFECT,
                                                                                  INCONCLUSIVE)
                       if any(s["grade"] == g for s in settings))
    details = "; ".join(f"{_in_brief(s)}, {s['grade']}" + (f" ({s['note']})" if s["note"] else "") for s in settings)
    tally = f"{len(settings)} setting{'s' if len(settings) > 1 else ''}: {counts}"
    basis = f"{tally}; headline {_in_brief(headline(settings))}. {size}".strip()
    evidence = (f"{tally}{_why_inconclusive(settings)}. {size} The paper's change used for power: "
                f"{family.reference_words}. {details}.").replace("  ", " ")
    return (EXTENSION_GRADES.get(verdict, verdict) if extension else verdict), evidence, basis


def headline(settings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The setting a claim's verdict is summed up by: the best-measured one (most seeds, then most users), the
    first of equals."""
    return max(settings, key=lambda s: (s["seeds"] or 0, s["users"] or 0))


def _in_brief(setting: dict[str, Any]) -> str:
    seeds = setting["seeds"]
    return (f"{setting['setting']} {setting['model']} vs {setting['against']}: {setting['change']} "
            f"{setting['95 % interval']}, {seeds} seed{'s' if seeds != 1 else ''}")


def _why_inconclusive(settings: Sequence[dict[str, Any]]) -> str:
    """" (...)" on what the inconclusive settings lack: run variance (one seed), a known number of seeds, or more."""
    notes = [s["note"] for s in settings if s["grade"] == INCONCLUSIVE and s["note"]]
    seeds = sorted(int(n.split()[0]) for n in notes if n.endswith("seeds would settle it"))
    parts = [f"{notes.count(note)} {what}" for note, what in (
        ("one seed: run variance unmeasured", "with one seed, run variance unmeasured"),
        ("no interval recorded", "without a recorded interval"),
        (f"not settled by {stats.MAX_SEEDS} seeds", f"not settled by {stats.MAX_SEEDS} seeds")) if note in notes]
    if seeds:
        parts.append(f"{len(seeds)} settled by {', '.join(map(str, seeds))} seeds")
    return f" ({'; '.join(parts)})" if parts else ""


def tiger_size(tiger: dict[str, Any] | None) -> str:
    """A sentence on the TIGER the verdict rests on: its departures from TIGER's own size and training budget
    (05_tiger's departures table) on the datasets it ran, or TIGER's own size where it has none."""
    sizes = ("layers", "d_model", "d_ff", "epochs")
    run = {r["dataset"] for r in (tiger or {}).get("rows") or []}
    rows = [r for r in (tiger or {}).get("departures") or [] if r["setting"] in sizes
            and (not run or r.get("dataset", next(iter(run))) in run)]
    if not tiger:
        return ""
    if not rows:
        return "On TIGER's own size."
    told = dict.fromkeys(f"{r['setting']} {_cell(r['this run'], True)} ({_cell(r['reference'], True)})"
                         for r in rows)
    datasets = ", ".join(dict.fromkeys(r["dataset"] for r in rows if r.get("dataset")))
    return f"On a cut-down TIGER{' on ' + datasets if datasets else ''}: {', '.join(told)} (TIGER's own in brackets)."


def collision_verdict(result: dict[str, Any] | None) -> tuple[str, str]:
    """(verdict, evidence) for "EncodeRec eliminates semantic-ID collisions" from the rows of
    `collisions.elimination` (results/<profile>/collisions.json, key "verdict"): counted, not tested."""
    if not result or not result.get("verdict"):
        return "not testable here", "03_semantic_ids did not run an EncodeRec model in this profile"
    rows = result["verdict"]
    eliminated = [r for r in rows if r["eliminated (all seeds)"]]
    fewer = [r for r in rows if r.get("base coll@3") is not None and r["EncodeRec coll@3"] < r["base coll@3"]]
    verdict = "reproduced" if len(eliminated) == len(rows) else "partly" if eliminated else "not reproduced"
    details = "; ".join(f"{r['dataset']}: {r['model']} {r['EncodeRec coll@3']:.1%} vs {r['base']} "
                        + ("not run" if r.get("base coll@3") is None else f"{r['base coll@3']:.1%}") for r in rows)
    return verdict, (f"RQ-VAE 3 x 256 codes, collision rate at 3 levels (items without an ID of their own): "
                     f"eliminated on {len(eliminated)} of {len(rows)} (catalogue, EncodeRec model) pairs, fewer than "
                     f"its base encoder on {len(fewer)}. Per pair: {details}.")


def _documents(results: dict[str, dict[str, Any]]) -> str:
    kinds = {r["dataset"]: r["document"] for r in results.get("retrieval", {}).get("comparison") or []
             if r.get("document")}
    return "; ".join(f"{d}: {k}" for d, k in kinds.items())


def claims(results: dict[str, dict[str, Any]]) -> list[Claim]:
    """The paper's claims (of the paper's recipe, `PAPER_RECIPE`), each in the paper's form and, where it helps, a
    weaker one, with its verdict, evidence and basis; then our extensions'."""
    found = families(results)
    size = tiger_size(results.get("tiger"))
    documents = _documents(results)
    scale_size = size if any(n == "tiger" for n, _ in found["scale"].rows) else ""
    collisions = collision_verdict(paper_recipe(results).get("collisions"))
    out = [
        Claim("Not a claim of Table 1 (it has no EncodeRec row): EncodeRec's fine-tuning improves retrieval of an "
              "item's document from its title over its base encoder, a test of the training objective",
              "Sections 1 and 3", *_with_documents(family_verdict(
                  found["objective"], results, "no EncodeRec model beside its base encoder in 02"), documents)),
        Claim("Table 2, the paper's form: 'EncodeRec achieves the highest performance across all datasets, "
              "outperforming the other baselines by 5-26%' (UniSRec, NDCG@10, against every other backbone run)",
              "Section 4.2, Table 2", *family_verdict(found["unisrec strong"], results,
                                                       "no other backbone beside EncodeRec in 04")),
        Claim("Table 2, weaker form: EncodeRec's embeddings improve UniSRec over its base encoder",
              "Section 4.2, Table 2", *family_verdict(found["unisrec base"], results,
                                                       "no EncodeRec model beside its base encoder in 04")),
        Claim("Table 3, the paper's form: 'consistent improvements of 4-9% over the strongest baselines' (TIGER, "
              "NDCG@10, against every other backbone run)", "Section 4.2, Table 3",
              *family_verdict(found["tiger strong"], results, "no other backbone beside EncodeRec in 05", size=size)),
        Claim("Table 3, weaker form: EncodeRec as the semantic-ID input improves TIGER over its base encoder",
              "Section 4.2, Table 3",
              *family_verdict(found["tiger base"], results, "no EncodeRec model beside its base encoder in 05",
                              size=size)),
        Claim("EncodeRec eliminates Semantic ID collisions entirely", "Section 4.2", *collisions,
              _first_pair(collisions[1])),
        Claim("A larger EncodeRec backbone consistently improves performance (22M → 300M; here EncodeRec-110M, "
              "fine-tuned all-mpnet-base-v2)", "Section 4.2",
              *family_verdict(found["scale"], results, "no larger EncodeRec (EncodeRec-110M, fine-tuned "
                              "all-mpnet-base-v2: our stand-in for the paper's 300M model) beside EncodeRec-22M in "
                              "this profile", size=scale_size)),
        Claim("EncodeRec-22M is competitive with BLaIR with 6-16x fewer parameters", "Section 4.2",
              "not testable here", "BLaIR's weights cannot be loaded on this machine (no Hugging Face hub); the "
              "notebooks accept any Hugging Face id, so a user with internet can add the row",
              "BLaIR's weights are not reachable offline."),
    ]
    if found["plus"].rows:
        out.append(Claim("Our extension, not a claim of the paper (its own next step): EncodeRec+, trained with "
                         "interaction pairs as well, is better than EncodeRec-22M", "beyond the paper",
                         *family_verdict(found["plus"], results, "", extension=True)))
    variants = results.get("tiger", {}).get("variants") or []
    if variants:
        evidence, basis = variant_evidence(variants)
        out.append(Claim("Our extension, not a claim of the paper: what a semantic-ID collision costs TIGER (the "
                         "paper: collisions are 'a major source of ambiguity and error')", "beyond the paper",
                         "measured", evidence, f"{basis} {size}".strip()))
    return out


def _first_pair(evidence: str) -> str:
    """The collision claim's basis: its count and its first (catalogue, EncodeRec model) pair."""
    count, _, pairs = evidence.partition(" Per pair: ")
    return f"{count} Headline {pairs.split('; ')[0].rstrip('.')}." if pairs else evidence


def _with_documents(found: tuple[str, str, str], documents: str) -> tuple[str, str, str]:
    """Table 1's (verdict, evidence, basis) with the document each dataset retrieves named in the evidence."""
    verdict, evidence, basis = found
    return verdict, f"{evidence} Documents: {documents}." if documents else evidence, basis


def paper_recipe(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The results with the collision verdict's rows of the paper's EncodeRec recipe only: EncodeRec+
    (`tables.PLUS_OF`, our extension) has its own verdict and must not count for or against the paper."""
    keep = lambda rows: [r for r in rows if r["model"] not in PLUS_OF]  # noqa: E731
    return {name: {**result, **{k: keep(result[k]) for k in ("comparison", "verdict") if result.get(k)}}
            for name, result in results.items()}


def variant_evidence(rows: Sequence[dict[str, Any]], metric: str = METRIC) -> tuple[str, str]:
    """(evidence, basis): one sentence per ID variant on TIGER's "variants" rows (`tables.against_dedup`): how often it is better or
    worse than TIGER's dedup IDs on the same codes (interval over seeds and users excluding zero, Holm-adjusted
    randomization test across all the variant rows), then each setting's numbers."""
    words = {"unique": "collision-free 3-code IDs (Hungarian last code)", "shared": "shared 3-code IDs (1/g credit)"}
    adjusted = dict(zip(map(id, rows), stats.holm([p_value(r) for r in rows])))
    out, basis = [], []
    for ids in sorted({r["ids"] for r in rows}, key=list(words).index):
        chosen = [r for r in rows if r["ids"] == ids]
        grades = {id(r): grade_setting(r, adjusted[id(r)], None)[0] for r in chosen}
        details = "; ".join(
            f"{r['dataset']} {r['backbone']}: {r[f'base {metric}']:.4f} → {r[f'model {metric}']:.4f} "
            f"({_percent(_relative(r[f'model {metric}'], r[f'base {metric}']))} {_interval(change_of(r))}, "
            f"Holm-adjusted {format_p(adjusted[id(r)])}, {r['seeds']} seeds)" for r in chosen)
        basis.append(f"{words.get(ids, ids)} against TIGER's dedup code, {metric}: better in "
                     f"{sum(g == SUPPORTS for g in grades.values())} of {len(chosen)} settings, worse in "
                     f"{sum(g == WORSE for g in grades.values())}")
        out.append(f"{basis[-1]} ({details}).")
    return " ".join(out), ". ".join(basis) + "."


def claims_markdown(found: Sequence[Claim | dict[str, Any]]) -> str:
    """The claim / verdict table of RESULTS.md's first section, as README.md shows it (`update_readme`)."""
    return markdown_table(claim_records(found))


def claim_records(found: Sequence[Claim | dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [c if isinstance(c, dict) else asdict(c) for c in found]
    return [{"claim": r["claim"], "where": r["where"], "verdict": r["verdict"], "basis": r.get("basis", "")}
            for r in rows]


README_MARKERS = ("<!-- claims: generated by 06_summary from results/paper/summary.json -->", "<!-- claims: end -->")


def update_readme(path: Path, found: Sequence[Claim | dict[str, Any]]) -> str:
    """README.md with the claim table between README_MARKERS replaced by `claims_markdown(found)`."""
    text = path.read_text(encoding="utf-8")
    start, end = README_MARKERS
    if start not in text or end not in text:
        raise EncoderecError(f"{path}: no claim table to update; put the lines {start!r} and {end!r} where it goes")
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{claims_markdown(found)}\n{end}{rest.split(end, 1)[1]}"


# --------------------------------------------------------------------------- tables

def settings_table(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every setting behind the verdicts (`graded`), claim by claim."""
    return [row for family in families(results).values() for row in graded(family, results)]


def marks(results: dict[str, dict[str, Any]]) -> dict[tuple, str]:
    """* for a model that supports the base-encoder form in a setting, † for one significantly worse than its base,
    keyed (experiment, dataset, variant, model) for `marked_table`."""
    out, found = {}, families(results)
    for key in ("objective", "unisrec base", "tiger base"):
        family = found[key]
        for (name, row), setting in zip(family.rows, graded(family, results)):
            mark = {SUPPORTS: "*", WORSE: "†"}.get(setting["grade"], "")
            out[(name, *(row[k] for k in LAYOUTS[name].settings), row["model"])] = mark
    return out


def marked_table(result: dict[str, Any], layout: Experiment, name: str,
                 marked: dict[tuple, str] | None = None) -> pd.DataFrame:
    """One row per dataset, setting and model: every metric as mean ± std over seeds, the model cell marked as
    `marks` says (* supports the claim against its base encoder, † significantly worse)."""
    table = pd.DataFrame(result["rows"])
    out = seed_summary(table, [*layout.settings, layout.model], {m: m for m in layout.metrics if m in table})
    marked = marked or {}
    out[layout.model] = [f"{r[layout.model]} {marked.get((name, *(r[k] for k in layout.settings), r[layout.model]), '')}"
                         .strip() for r in out.to_dict(orient="records")]
    return out


def collision_table(result: dict[str, Any]) -> pd.DataFrame:
    """RQ-VAE collision rate at 3 levels per dataset (rows) and backbone (columns), mean ± std over seeds."""
    table = pd.DataFrame(result["rows"])
    table = table[table.tokenizer == "rqvae"]
    summary = seed_summary(table, ["dataset", "backbone"], {"collision_rate@3": "coll@3"})
    wide = summary.pivot(index="dataset", columns="backbone", values="coll@3")
    return wide.loc[list(dict.fromkeys(summary.dataset)), list(dict.fromkeys(summary.backbone))].reset_index()


def forest_rows(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The forest plot's rows: one per (claim, setting, model, against) with the relative change, its interval
    (None where it was not measured) and grade, then the paper's own changes of EncodeRec-22M over
    all-MiniLM-L6-v2 (Tables 2 and 3) and of its larger model, labelled as the paper's."""
    rows = []
    for family in families(results).values():
        for (name, row), setting in zip(family.rows, graded(family, results)):
            change = change_of(row)
            known = change is not None and change.low is not None and change.seed_variance_known
            against = "every other backbone" if "against" in row else row["base"]
            rows.append({"row": f"{family.name} · {setting['setting']} · {row['model']} vs {against}",
                         "source": "ours", "change": row.get("relative change", _relative(
                             row[f"model {METRIC}"], row[f"base {METRIC}"])),
                         "low": change.low if known else None, "high": change.high if known else None,
                         "grade": setting["grade"], "paper's change": family.reference(name, row)})
    for table, (model, base) in (("2", ("EncodeRec-22M", "all-MiniLM-L6-v2")), ("3", ("EncodeRec-22M", "all-MiniLM-L6-v2")),
                                 ("2", paper.LARGER), ("3", paper.LARGER)):
        for dataset, change in paper.relative_change(table, model=model, base=base).items():
            rows.append({"row": f"paper Table {table} · {dataset} · {model} vs {base}", "source": "paper",
                         "change": change, "low": None, "high": None, "grade": "the paper's", "paper's change": None})
    return pd.DataFrame(rows, columns=["row", "source", "change", "low", "high", "grade", "paper's change"])


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
    """The summary: verdicts with their legend, every setting behind them, every table with the published ones,
    collisions, figures, provenance, and the pending runs as an appendix."""
    marked = marks(results)
    out = [Section("Verdicts on the paper's claims", [LEGEND], [claim_records(found)])]
    behind = settings_table(results)
    if behind:
        out.append(Section("Every setting behind the verdicts", [
            f"Relative change of {METRIC} with its 95 % interval over seeds and users, the Holm-adjusted per-user "
            "randomization test inside the claim's family, the smallest change the design detects with 80 % power "
            "beside the change the paper reports, and the grade (the legend above). The paper's numbers come from "
            "its own datasets and splits (Amazon 2023 for Table 2; Table 3's Sports, Beauty and Toys, which its text "
            "calls Amazon-2018, are as far as anyone can tell the Amazon 2014 P5 split that our Beauty and Toys "
            "are); ours are the mirrored datasets. Both sides run the same seeds; \"precision\" names the precisions "
            "their recommender runs trained in, and \"bf16 + fp32\" flags a setting that mixes them (the default "
            "profile's fp32 parts measure what that moves: docs/speed.md)."], [behind]))
    for name, layout in LAYOUTS.items():
        if name in results:
            published = [paper.wide(t).reset_index() for t in layout.paper_tables]
            out.append(Section(layout.title, ["Ours, then as published: " + "; ".join(
                paper.SOURCES[t] for t in layout.paper_tables) + "."],
                [_records(marked_table(results[name], layout, name, marked)), *map(_records, published)]))
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
    return out + appendix(results)


def further_sections(results: dict[str, dict[str, Any]]) -> list[Section]:
    """The sections on what a collision costs TIGER (our extension), on TIGER beside the published TIGER, and on
    UniSRec's protocols and ablation."""
    out = []
    variants = results.get("tiger", {}).get("variants") or []
    if variants:
        out.append(Section("What a collision costs TIGER (our extension)", [
            "On the same RQ-VAE codes of a backbone: collision-free 3-code IDs (the Hungarian re-assignment of the last "
            "code) and shared 3-code IDs (1/g credit) against TIGER's 4th dedup code; NDCG@10 of each (mean over its "
            "seeds), the relative change with its interval over seeds and users, and the per-user randomization "
            "test (unadjusted here; the claim's evidence adjusts it)."],
            [_change_records(variants, ("dataset", "backbone", "ids", "against"))]))
    published = results.get("tiger", {}).get("published") or []
    if published:
        sized = results["tiger"].get("calibration") or []
        out.append(Section("Calibration: TIGER and SASRec on Beauty and Toys beside the published ones", [
            "The Amazon 2014 P5 split that TIGER and the EncodeRec paper's Table 3 use. Ours: TIGER (mean over seeds) at "
            "the size and training budget of 05_tiger's departures table, item text title and categories only"
            + ("; the same backbone and seed at other sizes (05_tiger's calibration: test metrics, best validation "
               "NDCG@10, epochs and minutes trained)" if sized else "") + "; our "
            "ID-only SASRec (UniSRec's trainer without text) under the reference protocol (the history kept in the "
            "ranking). Then the EncodeRec paper's row of the same model and TIGER's own (Sentence-T5), and later "
            "results on the same split: a re-run of TIGER with GRID's code, two later generative models and a tuned "
            "ID-only SASRec."], [t for t in (published, sized, id_only_reference(results.get("unisrec", {}),
                                                                                   paper.P5_DATASETS),
                                              _records(paper.wide("TIGER").reset_index()),
                                              _records(paper.wide("P5 later").reset_index())) if t]))
    out += unisrec_sections(results.get("unisrec", {}))
    return out


def id_only_reference(unisrec: dict[str, Any], datasets: Sequence[str]) -> list[dict[str, Any]]:
    """Our ID-only SASRec's rows of `datasets` under the reference protocol (history kept), mean ± std over seeds."""
    return [{k: v for k, v in row.items() if k not in ("mode", "protocol")}
            for row in unisrec.get("protocols") or []
            if row["model"] == ID_ONLY and row["dataset"] in datasets and row["protocol"] == "history kept"]


def appendix(results: dict[str, dict[str, Any]]) -> list[Section]:
    """What the tables above lack: the runs still pending, at the end of the summary."""
    pending = pending_table(results)
    if not pending:
        return []
    return [Section("Appendix: pending runs", [
        "Runs, rankings and tokenizations that were neither archived (`results/<profile>/runs/`) nor in the caches "
        "when this summary was written (the parts not run yet: docs/profiles.md); "
        "the tables above leave them out. One row per experiment, dataset, model and setting, with the seeds it "
        "lacks."], [pending])]


def _change_records(rows: Sequence[dict[str, Any]],
                    labels: tuple[str, ...] = ("dataset", "model", "base")) -> list[dict[str, Any]]:
    """Comparison rows (`tables.compare`) for a table: their `labels`, seeds, users, both sides' mean of the metric,
    the relative change with its 95 % interval, and p."""
    return [{k: r.get(k) for k in (*labels, "seeds", "users", f"base {METRIC}", f"model {METRIC}")}
            | {"change": _percent(r.get("relative change")), "95 % interval": _interval(change_of(r)),
               "p": format_p(p_value(r))} for r in rows]


def pending_table(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The notebooks' pending units grouped: one row per experiment, dataset, model (a run's model, a
    tokenization's backbone) and setting (whatever else tells the units apart: tokenizer, mode, IDs, ablation
    setting), with its seeds. The model seed is left out: it follows from the seed."""
    units = [(name, row) for name in EXPERIMENTS for row in results.get(name, {}).get("pending") or []]
    for part in ("ablation", "recbole"):
        units += [(f"unisrec {part}", row) for row in (results.get("unisrec", {}).get(part) or {}).get("pending") or []]
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
    recbole = unisrec.get("recbole") or {}
    if recbole.get("table"):
        out.append(Section("Our ID-only SASRec beside RecBole's", [
            "A peer implementation as a check of our trainer: RecBole 1.2.1's SASRec (the library of the UniSRec "
            "paper's tables) trained by RecBole on our split with our hyperparameters, both under the reference "
            "protocol (history kept, in early stopping too), test users ranked by our metric code; mean ± std over "
            "seeds, with the seconds per training epoch on this project's CPUs. Then RecBole's against ours "
            "(relative change of NDCG@10, 95 % interval over seeds and users). What still differs (inner-product "
            "against cosine / temperature scores, initialisation, padding, fp32) is in 04_unisrec."],
            [recbole["table"], _change_records(recbole.get("gap") or [])]))
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
