"""Functional tests: run the smoke report, read its metrics back, compare with tests/expected/smoke.yaml.

nbval then re-executes the same executed notebooks (`make test` passes reports/smoke to pytest --nbval-lax)
and checks the cells marked `# NBVAL_CHECK_OUTPUT`.
"""

import json
import math
import re
import shutil
from pathlib import Path

import jupytext
import pytest
import yaml

from encoderec.core import paths
from encoderec.pipeline import profiles
from encoderec.report import runner
from encoderec.report import summary as summary_module

ROOT = paths.project_root()
EXPECTED = yaml.safe_load((ROOT / "tests" / "expected" / "smoke.yaml").read_text())
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def smoke(mirror) -> Path:
    """The smoke report (notebooks whose inputs are unchanged since their last run are not re-executed)."""
    runner.run_report("smoke")
    return ROOT


def _key(row: dict, key: list[str]) -> tuple:
    return tuple(row.get(k) for k in key)


METRIC = re.compile(r"(recall|ndcg|mrr)", re.IGNORECASE)


def within(got: float, recorded: float, spec: dict, field: str) -> bool:
    """`got` agrees with `recorded`: within the field's relative tolerance (a share of the recorded value, for the
    metrics of models trained on a CPU, which move with the thread count), else its absolute one, else to 1e-6."""
    if field in spec.get("relative", {}):
        return abs(got - recorded) <= spec["relative"][field] * abs(recorded)
    return math.isclose(got, recorded, abs_tol=spec.get("tolerance", {}).get(field, 1e-6))


def recorded_metrics():
    """(file, row key, field, recorded value, spec) of every recorded metric (Recall, NDCG, MRR)."""
    for name, spec in EXPECTED.items():
        key = spec["key"] if isinstance(spec["key"], list) else [spec["key"]]
        for row in spec["rows"]:
            for field, value in row.items():
                if METRIC.search(field) and isinstance(value, (int, float)):
                    yield name, _key(row, key), field, value, spec


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_smoke_metrics_match_recorded_values(smoke, name):
    spec = EXPECTED[name]
    key = spec["key"] if isinstance(spec["key"], list) else [spec["key"]]
    actual = {_key(row, key): row for row in json.loads((smoke / "results" / "smoke" / f"{name}.json").read_text())["rows"]}
    for expected in spec["rows"]:
        row = actual.get(_key(expected, key))
        assert row is not None, f"{name}: no row for {_key(expected, key)}"
        for field, value in expected.items():
            got, where = row.get(field), f"{name} {_key(expected, key)}.{field}"
            toleranced = field in spec.get("tolerance", {}) or field in spec.get("relative", {})
            if (isinstance(value, float) or toleranced) and got is not None:
                assert within(got, value, spec, field), f"{where}: {got} vs recorded {value}"
            else:
                assert got == value, f"{where}: {got} vs recorded {value}"


@pytest.mark.parametrize("name, key, field, value, spec", list(recorded_metrics()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_recorded_metric_fails_a_model_that_returns_nothing(name, key, field, value, spec):
    """A check that a model recommending nothing (every metric 0) would pass is no check."""
    assert not within(0.0, value, spec, field), f"{name} {key}.{field}: recorded {value} admits 0"


@pytest.mark.parametrize("name, ks", [("unisrec", (10, 50)), ("tiger", (10,))])
def test_recommenders_beat_the_random_floor(smoke, name, ks):
    """Every smoke recommender learns: Recall@k at least 1.5 times what ranking items at random gives (k / items;
    with shared IDs and 1/g credit the expectation is the same). TIGER on random embeddings is that floor itself.
    TIGER with shared IDs, where a 3-code ID stands for up to g items, learns least in a run this small (1.39x on a
    CPU without bf16): it must beat the floor itself."""
    result = json.loads((smoke / "results" / "smoke" / f"{name}.json").read_text())
    items = {row["dataset"]: row["items"] for row in result["data"]}
    for row in result["rows"]:
        if row.get("backbone") == "random":
            continue
        margin = 1.0 if row.get("ids") == "shared" else 1.5
        for k in ks:
            floor = k / items[row["dataset"]]
            assert row[f"Recall@{k}"] > margin * floor, f"{name} {row}: Recall@{k} {row[f'Recall@{k}']}, floor {floor}"


def test_unisrec_reads_every_run_under_both_protocols_and_runs_the_ablation(smoke):
    """Keeping the history in the ranking only adds competitors: no metric of a model gets better. The smoke
    ablation's runs all finish (the profile's setting read again from Table 2's runs) and learn."""
    result = json.loads((smoke / "results" / "smoke" / "unisrec.json").read_text())
    rows = {(r["model"], r["mode"], r["protocol"]): r for r in result["protocols"]}
    kept = [(model, mode) for model, mode, protocol in rows if protocol == "history kept"]
    assert len(kept) == len(result["rows"])  # every run, under both
    for model, mode in kept:
        for metric in ("Recall@10", "NDCG@10", "Recall@50", "NDCG@50"):
            assert float(rows[model, mode, "history kept"][metric]) <= float(
                rows[model, mode, "history excluded"][metric]), (model, mode, metric)
    ablation = result["ablation"]
    assert [(r["setting"], r["model"]) for r in ablation["table"]] == [
        ("smoke", "ID only (SASRec)"), ("smoke", "tfidf-svd"), ("smoke", "all-MiniLM-L6-v2"),
        ("input whitened", "tfidf-svd"), ("input whitened", "all-MiniLM-L6-v2")]
    assert not ablation["pending"] and {r["model"] for r in ablation["shape"]} == {"tfidf-svd", "all-MiniLM-L6-v2"}
    floor = 10 / {row["dataset"]: row["items"] for row in result["data"]}["Beauty"]
    assert all(float(r["Recall@10"]) > 1.5 * floor for r in ablation["table"])


def test_recbole_sasrec_runs_beside_ours_and_learns(smoke):
    """The smoke profile's peer check: our ID-only SASRec and RecBole's, trained on the same split, both learn, and
    RecBole's is compared with ours."""
    result = json.loads((smoke / "results" / "smoke" / "unisrec.json").read_text())
    recbole = result["recbole"]
    assert [(r["implementation"], r["precision"]) for r in recbole["table"]][1] == ("RecBole", "fp32")
    assert [r["implementation"] for r in recbole["table"]] == ["ours", "RecBole"] and not recbole["pending"]
    floor = 10 / {row["dataset"]: row["items"] for row in result["data"]}["Beauty"]
    assert all(float(r["Recall@10"]) > 1.5 * floor for r in recbole["table"])
    assert [(r["model"], r["base"], r["seeds"]) for r in recbole["gap"]] == [("RecBole", "ours", 1)]


def test_tiger_calibration_puts_the_other_size_beside_the_notebooks_run_and_learns(smoke):
    result = json.loads((smoke / "results" / "smoke" / "tiger.json").read_text())
    sizes = {r["size"]: r for r in result["calibration"]}
    assert set(sizes) == {"this notebook's", "4 + 4 layers"}
    assert (sizes["this notebook's"]["layers"], sizes["4 + 4 layers"]["layers"]) == (2, 4)
    assert sizes["4 + 4 layers"]["epochs run"] == 4  # every epoch evaluated: one curve point each
    assert sum(r["size"] == "4 + 4 layers" for r in result["calibration_curve"]) == 4
    floor = 10 / {row["dataset"]: row["items"] for row in result["data"]}["Beauty"]
    assert all(r["Recall@10"] > floor for r in result["calibration"])


def test_a_report_from_the_archive_reproduces_the_tables_without_a_model(smoke, tmp_path, monkeypatch):
    """`report --read-only` where none of the smoke report's caches are: every model, Table 1 ranking,
    tokenization and recommender run is read from the archive the smoke report wrote, no model is trained, and every
    recorded metric is the smoke report's."""
    shutil.copytree(smoke / "results" / "smoke" / "runs", tmp_path / "results" / "smoke" / "runs")
    monkeypatch.setenv("ENCODEREC_CACHE", str(tmp_path / "cache"))
    dirs = paths.ReportDirs(smoke / "notebooks", smoke / "params", tmp_path)
    runner.run_report("smoke", dirs=dirs, read_only=True)
    assert not (tmp_path / "cache" / "encoderec").exists()
    for name, spec in EXPECTED.items():
        key = spec["key"] if isinstance(spec["key"], list) else [spec["key"]]
        read = [json.loads((root / "results" / "smoke" / f"{name}.json").read_text()) for root in (smoke, tmp_path)]
        assert not read[1].get("pending"), f"{name}: pending {read[1].get('pending')}"
        rows = [{_key(row, key): row for row in result["rows"]} for result in read]
        assert rows[0].keys() == rows[1].keys(), name
        for expected in spec["rows"]:
            ours, archived = (r[_key(expected, key)] for r in rows)
            fields = [f for f in expected if METRIC.search(f) or f in ("coll@3", "collision_rate@3")]
            assert {f: archived.get(f) for f in fields} == {f: ours.get(f) for f in fields}, (name, expected)


def test_results_carry_provenance(smoke):
    for path in (smoke / "results" / "smoke").glob("*.json"):
        prov = json.loads(path.read_text())["provenance"]
        assert prov["git"]["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"])
        assert prov["parameters"]["profile"] == "smoke"
        assert prov["machine"]["cpu_count"] >= 1 and prov["wall_time_s"] >= 0


def test_report_pages_render_offline(smoke):
    out = smoke / "reports" / "smoke"
    index = (out / "index.html").read_text()
    for nb in profiles.load_profile("smoke").notebooks:
        assert f'href="{nb}.html"' in index
        page = (out / f"{nb}.html").read_text()
        assert not re.search(r'<script[^>]*src="https?://[^"]*plotly', page), f"{nb}.html loads plotly.js from the network"
    figures = list((smoke / "figures" / "smoke").glob("*.html"))
    assert figures and (smoke / "figures" / "smoke" / "plotly.min.js").is_file()
    for fig in figures:
        assert 'src="plotly.min.js"' in fig.read_text()[:5000], f"{fig.name} does not use the local plotly.min.js"


def test_summary_writes_results_md_static_figures_and_the_index_findings(smoke):
    summary = json.loads((smoke / "results" / "smoke" / "summary.json").read_text())
    verdicts = {row["claim"]: row["verdict"] for row in summary["rows"]}
    paper = {claim: v for claim, v in verdicts.items() if not claim.startswith("Our extension")}
    assert len(paper) == 8 and set(paper.values()) <= set(summary_module.VERDICTS)
    # one seed: no setting can see run variance, so no improvement claim is reproduced (or refuted) on the smoke profile
    assert {v for c, v in paper.items() if c.startswith("Table")} <= {"inconclusive", "not testable here"}
    # the smoke profile runs both extensions (EncodeRec+ and TIGER's ID variants), each labelled as ours
    assert len(verdicts) == 10 and all("not a claim of the paper" in claim for claim in set(verdicts) - set(paper))
    markdown = (smoke / summary["results_md"]).read_text()
    for row in summary["rows"]:
        assert row["verdict"] in markdown
    pngs = sorted((smoke / "figures" / "smoke").glob("summary_*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert f"](../../figures/smoke/{pngs[0].name})" in markdown
    index = (smoke / "reports" / "smoke" / "index.html").read_text()
    assert "<h2>Verdicts on the paper&#x27;s claims</h2>" in index and f"../../figures/smoke/{pngs[0].name}" in index


def test_data_notebook_plots_inline_plotlyjs(smoke):
    page = (smoke / "reports" / "smoke" / "00_data.html").read_text()
    assert "plotly.js v" in page, "plotly.js is not inlined: figures would not render offline"


@pytest.mark.parametrize("source", sorted((ROOT / "notebooks").glob("*.py")), ids=lambda p: p.stem)
def test_paired_ipynb_is_in_step_with_the_py(source):
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired.name} missing: run `make sync`"
    cells = lambda nb: [(c.cell_type, c.source) for c in nb.cells]  # noqa: E731
    assert cells(jupytext.read(paired)) == cells(jupytext.read(source)), f"{paired.name} is stale: run `make sync`"
