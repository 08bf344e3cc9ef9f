"""Results tables shared by the notebooks and the summary."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from encoderec.models import metrics
from encoderec.pipeline import registry
from encoderec.report import stats


def compare(per_user: dict[tuple, dict[str, np.ndarray]], pairs: dict[str, str] | list[tuple[str, str]],
            metric: str = "NDCG@10") -> list[dict[str, Any]]:
    """Every (model, base) pair of `pairs` (a dict model -> base, or a list of pairs) per dataset and variant, on the
    seeds both ran (a base with one run of seed None, a frozen encoder, goes with every seed of the model; a pair
    without a shared seed gives no row): `per_user` maps (dataset, model, variant, seed) to per-user values
    (`metrics.per_query`). A row: dataset, variant, model, base, seeds, users, each side's mean of every metric
    ("base NDCG@10", "model NDCG@10", ...), then for `metric` the relative change with its 95 % interval over seeds
    and users and its variance components (`stats.relative_change`) and the per-user randomization test on the
    seed-averaged values (`stats.randomization_test`)."""
    runs: dict[tuple, dict[Any, dict[str, np.ndarray]]] = {}
    for (dataset, model, variant, seed), values in per_user.items():
        runs.setdefault((dataset, model, variant), {})[seed] = values
    pairs = list(pairs.items()) if isinstance(pairs, dict) else list(pairs)
    rows = []
    for (dataset, model, variant), model_runs in runs.items():
        for base in [b for m, b in pairs if m == model]:
            base_runs = runs.get((dataset, base, variant))
            if not base_runs:
                continue
            frozen = list(base_runs) == [None]
            seeds = sorted(model_runs if frozen else set(model_runs) & set(base_runs), key=str)
            if seeds:
                rows.append(_comparison(dataset, variant, model, base, [model_runs[s] for s in seeds],
                                        [base_runs[None if frozen else s] for s in seeds], metric))
    return rows


def against_every_baseline(per_user: dict[tuple, Any], base_of: dict[str, str | None]) -> list[tuple[str, str]]:
    """(model, baseline) pairs for the paper's strong form: every fine-tuned model (one with a base in `base_of`)
    against every model of `per_user` (keys: dataset, model, variant, seed) that is not fine-tuned."""
    tuned = {m for m, base in base_of.items() if base}
    models = list(dict.fromkeys(key[1] for key in per_user))
    return [(model, other) for model in models if model in tuned for other in models if other not in tuned]


def in_every_variant(per_user: dict[tuple, Any], model: str) -> dict[tuple, Any]:
    """`per_user` (keys: dataset, model, variant, seed) with `model`'s runs also under every other variant of their
    dataset: a model that has a variant of its own (the ID-only SASRec's mode "id") is a baseline of every mode."""
    variants: dict[Any, set] = {}
    for dataset, _, variant, _ in per_user:
        variants.setdefault(dataset, set()).add(variant)
    copies = {(dataset, m, other, seed): values for (dataset, m, variant, seed), values in per_user.items()
              if m == model for other in variants[dataset] - {variant}}
    return {**per_user, **copies}


def document_kind(dataset: Any, items: list[int]) -> str:
    """What a title is matched with in `dataset`'s retrieval task over `items` (a `data.Dataset`): "description and
    attributes" where most of them have a description, else "category path" (Beauty and Toys have none)."""
    described = sum(bool(str(dataset.items[i].get("description") or "").strip()) for i in items)
    return "description and attributes" if described * 2 > len(items) else "category path"


def _comparison(dataset: Any, variant: Any, model: str, base: str, model_runs: list[dict[str, np.ndarray]],
                base_runs: list[dict[str, np.ndarray]], metric: str) -> dict[str, Any]:
    stacked = {side: {k: np.stack([run[k] for run in side_runs]) for k in side_runs[0]}
               for side, side_runs in (("base", base_runs), ("model", model_runs))}
    means = {f"{side} {k}": float(v.mean()) for side, values in stacked.items() for k, v in values.items()}
    change = stats.relative_change(stacked["model"][metric], stacked["base"][metric])
    differences = stacked["model"][metric].mean(axis=0) - stacked["base"][metric].mean(axis=0)
    return {"dataset": dataset, "variant": variant, "model": model, "base": base, "seeds": len(model_runs),
            "users": change.users, **means, "metric": metric, "relative change": change.estimate,
            "interval low": change.low, "interval high": change.high, "se": change.se, "df": change.df,
            "sigma2 user": change.sigma2_user, "sigma2 seed": change.sigma2_seed, "sigma2 resid": change.sigma2_resid,
            f"p (randomization, {metric})": stats.randomization_test(differences)}


def seed_summary(table: pd.DataFrame, by: list[str], columns: dict[str, str],
                 digits: int | dict[str, int] = 4) -> pd.DataFrame:
    """One row per `by` group of a results table (one row per seed), in order of appearance: each of `columns`
    (name -> label) as "mean ± std" over the group's rows, or the value alone for a group of one row."""
    grouped = table.groupby(by, sort=False)[list(columns)]
    means, stds, sizes = grouped.mean(), grouped.std(), grouped.size()
    out = means.index.to_frame(index=False)
    for name, label in columns.items():
        d = digits.get(name, 4) if isinstance(digits, dict) else digits
        out[label] = [f"{m:.{d}f}" + (f" ± {s:.{d}f}" if n > 1 else "")
                      for m, s, n in zip(means[name], stds[name], sizes)]
    return out


def recommender_runs(runs: list[dict[str, Any]], keys: list[str],
                     ks: tuple[int, ...]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The table of recommender runs (UniSRec, SASRec, TIGER, ...), one row per run; its summary over seeds (one
    row per `keys` but "seed": Recall and NDCG at `ks`, mean ± std); and each run's per-user test metrics keyed by
    the tuple of its `keys` (what `compare` pairs).

    A run is a dict of its labels (dataset, model, seed, ...) and "result", what `fitting.fit_and_rank` returned.
    A row is the labels, Recall and NDCG at each of `ks` (with the gains of shared IDs when the result has them),
    the best epoch and its validation NDCG@10, the epochs run, the training seconds per epoch, the fitting and
    ranking seconds, and the device that trained it."""
    columns = {f"{m}@{k}": f"{m}@{k}" for k in ks for m in ("Recall", "NDCG")}
    if not runs:  # a part of a profile that runs none of this table's runs (04's ablation parts)
        return pd.DataFrame(columns=[*keys, *columns]), pd.DataFrame(columns=[k for k in keys if k != "seed"]
                                                                     + list(columns)), {}
    rows, per_user = [], {}
    for run in runs:
        result = run["result"]
        gains = np.array(result["test_gains"]) if "test_gains" in result else None
        values = metrics.per_query(np.array(result["test_ranks"]), ks=ks, gains=gains)
        per_user[tuple(run[k] for k in keys)] = values
        history = result["history"]
        rows.append({k: v for k, v in run.items() if k != "result"} | metrics.summarize(values) | {
            "best epoch": result["best_epoch"], "epochs run": len(history),
            "valid NDCG@10": max(h["valid NDCG@10"] for h in history if "valid NDCG@10" in h),
            "seconds per epoch": float(np.mean([h["seconds"] for h in history])),
            "fit seconds": result["fit_seconds"], "ranking seconds": result["rank_seconds"],
            "device": result["config"]["device"], "precision": result["config"].get("precision", "fp32")})
    table = pd.DataFrame(rows)
    return table, seed_summary(table, [k for k in keys if k != "seed"], columns), per_user


def under_protocols(runs: list[dict[str, Any]], keys: list[str], ks: tuple[int, ...] = (10, 50)) -> pd.DataFrame:
    """UniSRec runs (`runs.execute` records) under the ranking protocols (`unisrec` module docstring): one row per
    run and protocol, its `keys`, the protocol and Recall / NDCG at `ks`. "history excluded" (ours) and "history
    kept" are the same model's test ranks; a run trained with `exclude_history: false` (its early stopping ranked
    the history too, as RecBole does) is "history kept, in validation too". A run given twice counts once."""
    rows = []
    for run in runs:
        result = run["result"]
        if result["config"].get("exclude_history", True):
            ranks = {"history excluded": result["test_ranks"]} | (
                {"history kept": result["test_ranks_history_kept"]} if "test_ranks_history_kept" in result else {})
        else:
            ranks = {"history kept, in validation too": result["test_ranks"]}
        for protocol, values in ranks.items():
            rows.append({k: run[k] for k in keys} | {"protocol": protocol}
                        | metrics.summarize(metrics.per_query(np.array(values), ks=ks)))
    table = pd.DataFrame(rows)
    return table.drop_duplicates([*keys, "protocol"], ignore_index=True) if rows else table


def ablation(runs: list[dict[str, Any]], reference: str, ks: tuple[int, ...] = (10, 50),
             metric: str = "NDCG@10") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """04_unisrec's ablation: runs labelled with their "setting" (`runs.ablation_plan`). Returns
    - the summary: per dataset, setting and model, Recall / NDCG at `ks` (mean ± std over seeds), the seeds, the
      model's place among the setting's models by mean `metric` (1 = best), and what ended its training: the
      epochs run and the epochs run after the best validation epoch (means over seeds; 0 to a few: still improving
      when the epoch cap stopped it; the patience: early stopping);
    - the gaps: per dataset and setting, every model (the ID-only SASRec too) against "tfidf-svd" (paired Wilcoxon
      over test users, each user's value averaged over the seeds both sides ran: `on_shared_seeds`; a negative
      change: the model is worse than TF-IDF);
    - the effects: per dataset and model, every setting against the `reference` setting, by the same test."""
    table, summary, per_user = recommender_runs(runs, ["dataset", "setting", "model", "seed"], ks)
    means = table.groupby(["dataset", "setting", "model"], sort=False)[metric].mean()
    places = means.groupby(level=["dataset", "setting"], sort=False).rank(ascending=False, method="min")
    summary["seeds"] = table.groupby(["dataset", "setting", "model"], sort=False).size().to_numpy()
    summary[f"place by {metric}"] = places.astype(int).to_numpy()
    epochs = table.groupby(["dataset", "setting", "model"], sort=False)[["epochs run", "best epoch"]].mean()
    summary["epochs run"] = epochs["epochs run"].to_numpy()
    summary["epochs after the best"] = (epochs["epochs run"] - epochs["best epoch"] - 1).to_numpy()  # 0-based best
    by_model = {(d, model, setting, seed): v for (d, setting, model, seed), v in per_user.items()}
    gaps = on_shared_seeds(by_model, {m: "tfidf-svd" for m in table["model"].unique() if m != "tfidf-svd"}, metric)
    effects = on_shared_seeds(per_user, {s: reference for s in table["setting"].unique() if s != reference},
                              metric)  # keyed (dataset, setting, model, seed): the setting in the model's place
    return (summary, pd.DataFrame(gaps).rename(columns={"variant": "setting"}),
            pd.DataFrame(effects).rename(columns={"variant": "model", "model": "setting", "base": "against"}))


def on_shared_seeds(per_user: dict[tuple, dict[str, np.ndarray]], base_of: dict[str, str],
                    metric: str = "NDCG@10") -> list[dict]:
    """`metrics.against_base` (keys: dataset, model, variant, seed), each model and its base compared on the seeds
    both ran: an ablation fills in seed by seed, and averaging each side over its own seeds would compare different
    trainings. A pair without a shared seed gives no row."""
    seeds: dict[tuple, set] = {}
    for dataset, model, variant, seed in per_user:
        seeds.setdefault((dataset, model, variant), set()).add(seed)
    rows = []
    for model, base in base_of.items():
        shared = {(d, v): s & seeds.get((d, base, v), set()) for (d, m, v), s in seeds.items() if m == model}
        rows += metrics.against_base({k: values for k, values in per_user.items() if k[1] in (model, base)
                                      and k[3] in shared.get((k[0], k[2]), ())}, {model: base}, metric)
    return rows


def against_dedup(per_user: dict[tuple, dict[str, np.ndarray]]) -> pd.DataFrame:
    """TIGER's ID variants of one backbone against its "dedup" IDs (`recommender_runs`' per-user values keyed by
    dataset, backbone, ids, seed): `compare` rows with the variant in the model's place."""
    by_variant = {(dataset, ids, backbone, seed): values for (dataset, backbone, ids, seed), values in per_user.items()}
    rows = compare(by_variant, {"unique": "dedup", "shared": "dedup"})
    return pd.DataFrame(rows).rename(columns={"variant": "backbone", "model": "ids", "base": "against"})


def peer_check(runs: list[dict[str, Any]], ks: tuple[int, ...] = (10, 50)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Our ID-only SASRec beside RecBole's (04_unisrec's `recbole` parameter; records of `runs.execute` with their
    "implementation": "ours" or "RecBole"): per dataset and implementation, Recall and NDCG at `ks`, the epochs run,
    the best epoch and the seconds per training epoch (mean ± std over seeds); and per dataset RecBole's against
    ours (`compare`: the relative change of NDCG@10 with its 95 % interval over seeds and users)."""
    same = [{**r, "variant": "ID-only SASRec"} for r in runs]  # one variant, so `compare` pairs the two
    keys = ["dataset", "implementation", "variant", "seed"]
    table, _, per_user = recommender_runs(same, keys, ks)
    columns = {f"{m}@{k}": f"{m}@{k}" for k in ks for m in ("Recall", "NDCG")} | {
        "epochs run": "epochs run", "best epoch": "best epoch", "seconds per epoch": "seconds per epoch"}
    digits = {"epochs run": 1, "best epoch": 1, "seconds per epoch": 1}
    summary = seed_summary(table, ["dataset", "implementation", "precision"], columns, digits)
    return summary, pd.DataFrame(compare(per_user, {"RecBole": "ours"}))


def learning_curves(runs: list[dict[str, Any]], label: Callable[[dict], str], seed: int) -> pd.DataFrame:
    """One row per epoch of every run with `seed`: its dataset, `label(run)` and the epoch's history record."""
    return pd.DataFrame([{"dataset": run["dataset"], "run": label(run), **record}
                         for run in runs if run["seed"] == seed for record in run["result"]["history"]])


def calibration(runs: list[dict[str, Any]], sized: list[dict[str, Any]], size_fields: tuple[str, ...] = (
        "layers", "d_ff", "heads", "d_kv", "dropout")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """TIGER at other sizes (`sized`: run records with a "size" label) beside the runs of the notebook's own size
    with the same dataset, backbone, seed and dedup IDs (`runs`): one row per run (`recommender_runs`' at @10) with
    its size fields and minutes of training; and its learning curve, one row per evaluated epoch with the validation
    NDCG@10 against the minutes trained so far."""
    wanted = {(r["dataset"], r["backbone"], r["seed"]) for r in sized}
    both = [{"size": "this notebook's"} | r for r in runs
            if r["ids"] == "dedup" and (r["dataset"], r["backbone"], r["seed"]) in wanted] + sized
    if not both:
        return pd.DataFrame(), pd.DataFrame()
    minutes = [np.cumsum([h["seconds"] for h in run["result"]["history"]]) / 60 for run in both]
    table = recommender_runs(both, ["dataset", "backbone", "seed", "size"], ks=(10,))[0].assign(
        **{f: [run["result"]["config"][f] for run in both] for f in size_fields},
        **{"training minutes": [float(m[-1]) for m in minutes]})
    curve = [{k: run[k] for k in ("dataset", "backbone", "seed", "size")} | {
        "epoch": h["epoch"], "training minutes": float(m), "valid NDCG@10": h["valid NDCG@10"]}
        for run, run_minutes in zip(both, minutes) for h, m in zip(run["result"]["history"], run_minutes)
        if "valid NDCG@10" in h]
    return table, pd.DataFrame(curve)


def departures(config: Any, reference: Any,
               ignore: tuple[str, ...] = ("seed", "device", "precision")) -> pd.DataFrame:
    """The settings in which `config` departs from `reference` (a config dataclass of the reference settings):
    one row per field, with both values, so a notebook shows next to its numbers how the run was cut down."""
    ours, theirs = dataclasses.asdict(config), dataclasses.asdict(reference)
    rows = [{"setting": k, "this run": ours[k], "reference": theirs[k]} for k in ours
            if k not in ignore and ours[k] != theirs[k]]
    return pd.DataFrame(rows, columns=["setting", "this run", "reference"])


def dataset_departures(config_class: type, settings: dict[str, Any], dataset_settings: dict[str, dict[str, Any]],
                       datasets: list[str]) -> pd.DataFrame:
    """`departures` of each dataset's config (`settings`, then that dataset's `dataset_settings` on top) from
    `config_class()`'s reference settings, with a "dataset" column."""
    frames = [departures(config_class(**{**settings, **dataset_settings.get(name, {})}), config_class())
              .assign(dataset=name) for name in datasets]
    return pd.concat(frames, ignore_index=True)[["dataset", "setting", "this run", "reference"]]


def finished_and_pending(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The run records (`runs.execute`) that have a result, and a table of those that do not (pending: their result
    is neither archived nor in the run cache yet)."""
    finished = [r for r in records if r["result"] is not None]
    pending = pd.DataFrame([{k: v for k, v in r.items() if k != "result"} for r in records if r["result"] is None])
    return finished, pending


# --------------------------------------------------------------------------- what the notebooks assemble


def comparisons(per_user: dict[tuple, dict[str, np.ndarray]], models: registry.Models, variant: str,
                baselines: bool = True) -> dict[str, pd.DataFrame]:
    """The comparisons of one table's runs (`per_user`: (dataset, model, variant, seed) -> per-user values), each a
    `compare` table with its variant column named `variant`: "base", every fine-tuned model against its base
    encoder; "baselines" (with `baselines`), the paper's form, every fine-tuned model against every model that is
    not fine-tuned, the ID-only SASRec a baseline of every mode; "scale", the larger EncodeRec against the smaller
    (`registry.LARGER_THAN`); and "plus", EncodeRec+ against EncodeRec-22M (`registry.PLUS_OF`)."""
    base_of = {model: models.base_encoder(model) for model in dict.fromkeys(key[1] for key in per_user)}
    pairs: dict[str, Any] = {"base": base_of, "scale": registry.LARGER_THAN, "plus": registry.PLUS_OF}
    if baselines:
        pairs["baselines"] = against_every_baseline(per_user, base_of)
    expanded = in_every_variant(per_user, registry.ID_ONLY)
    return {name: pd.DataFrame(compare(expanded if name == "baselines" else per_user, pair)).rename(
        columns={"variant": variant}) for name, pair in pairs.items()}


def table_1(tasks: dict[str, Any], encoders: dict[str, dict[str, Any]], corpus: str, policy: Any
            ) -> tuple[pd.DataFrame, dict[tuple, dict[str, np.ndarray]], pd.DataFrame]:
    """Table 1: BM25 and every encoder (`registry.Models.encoders`: label -> name, backbone, base, seed) on every
    dataset's retrieval task (`retrieval.build_task`), each encoder's ranks obtained under `policy`
    (`runs.retrieval_ranks`). Returns the table (a row per dataset and encoder: task size and metrics), the
    per-query values by (dataset, model, `corpus`, seed), and the pending units."""
    from encoderec.models import retrieval  # here: the summary reads these tables without loading torch
    from encoderec.pipeline import runs

    rows, per_query, pending = [], {}, []
    for name, task in tasks.items():
        ranks = {"BM25": retrieval.bm25_ranks(task.queries, task.documents, task.targets)}
        for label, enc in encoders.items():
            found = runs.retrieval_ranks(task, enc["backbone"], enc["seed"], label, policy)
            if found is None:
                pending.append({"dataset": name, "model": enc["name"], "seed": enc["seed"]})
            else:
                ranks[label] = found
        for label, r in ranks.items():
            summary, values = retrieval.evaluate(r)
            enc = encoders.get(label, {"name": label, "base": None, "seed": None})
            per_query[(name, enc["name"], corpus, enc["seed"])] = values
            rows.append({"dataset": name, "model": enc["name"], "base": enc["base"], "seed": enc["seed"],
                         **task.size, **summary})
    return pd.DataFrame(rows), per_query, pd.DataFrame(pending)


def tokenizations(catalogues: dict[str, Any], backbones: list[str], tokenizers: list[str], seeds: list[int],
                  rqvae: dict[str, Any], models: registry.Models, policy: Any
                  ) -> tuple[pd.DataFrame, dict[tuple, Any], pd.DataFrame]:
    """03_semantic_ids's plan: every catalogue (`runs.catalogue`) x backbone x seed x tokenizer, each tokenization
    obtained under `policy` (`runs.tokenization`). Returns a row per tokenization (its collision report, fit and
    collision-free level), the tokenizations by (dataset, backbone, tokenizer, seed), and the pending ones."""
    from encoderec.models import collisions, semantic_ids
    from encoderec.models.rqvae import RQVAEConfig
    from encoderec.pipeline import runs

    rows, ids, pending, codebook_size = [], {}, [], RQVAEConfig(**rqvae).codebook_size
    for name, cat in catalogues.items():
        for backbone, seed, kind in itertools.product(backbones, seeds, tokenizers):
            result, model_seed = runs.tokenization(name, backbone, seed, kind, cat.texts, cat.fit_items, rqvae,
                                                   models.encoder, policy)
            if result is None:
                pending.append({"dataset": name, "backbone": backbone, "tokenizer": kind, "seed": seed})
                continue
            ids[(name, backbone, kind, seed)] = result
            info = result.info
            rows.append({
                "dataset": name, "backbone": backbone, "tokenizer": kind, "seed": seed, "model seed": model_seed,
                **collisions.collision_report(result.codes, cat.texts, codebook_size=codebook_size,
                                              reconstruction_error=info["relative_reconstruction_error"]),
                "fit_items": info["fit_items"], "fit_seconds": info["fit_seconds"],
                "hungarian_possible": info["hungarian"]["possible"],
                "hungarian_changed": info["hungarian"].get("changed"),
                "max_4th_code": int(semantic_ids.with_dedup_code(result.codes)[:, -1].max())})
    return pd.DataFrame(rows), ids, pd.DataFrame(pending)


def training_free(spaces: dict[tuple[str, str], np.ndarray], splits: dict[str, Any]
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The backbones' embeddings as the encoder gives them (`spaces`: (dataset, backbone) -> item embeddings):
    their anisotropy (`space.anisotropy`) with the NDCG@10 of the training-free last-item neighbour recommender
    (`space.last_item_ranks` on the test users of `splits[dataset]`), as given and PCA-whitened; and each backbone
    against TF-IDF + SVD under that recommender (`metrics.against_base`)."""
    from encoderec.models import space
    from encoderec.models.unisrec import normalise_text

    untrained = {(name, b, how, 0): metrics.per_query(space.last_item_ranks(normalise_text(x, how),
                                                                            splits[name].test))
                 for (name, b), x in spaces.items() for how in ("none", "whiten")}
    shape = pd.DataFrame([{"dataset": name, "model": b, **space.anisotropy(x),
                           **{f"last-item kNN NDCG@10, {how}": untrained[(name, b, how, 0)]["NDCG@10"].mean()
                              for how in ("none", "whiten")}} for (name, b), x in spaces.items()])
    backbones = {b for _, b in spaces}
    gaps = pd.DataFrame(metrics.against_base(untrained, {b: "tfidf-svd" for b in backbones if b != "tfidf-svd"}))
    return shape, gaps
