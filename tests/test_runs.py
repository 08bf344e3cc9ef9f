import dataclasses
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from encoderec import cli
from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.data import dataset as data
from encoderec.models import retrieval
from encoderec.pipeline import archive, parameters, provenance, runs
from encoderec.pipeline.policy import READ, Policy
from encoderec.pipeline.profiles import load_profile
from encoderec.report import runner
from tests.conftest import write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

UNISREC = {"datasets": ["A", "B"], "backbones": ["x", "y"], "modes": ["inductive"], "id_baseline": True,
           "seeds": [0, 1], "unisrec": {"epochs": 3}, "dataset_unisrec": {"B": {"epochs": 9}}, "data_dir": None,
           "max_items": None, "max_users": None}
TIGER = {"datasets": ["A", "B"], "backbones": ["x"], "extra_backbones": {"B": ["random"]},
         "id_variants": ["dedup", "shared"], "extra_id_variants": {"B": {"random": ["unique", "dedup"]}}, "seeds": [0],
         "rqvae": {"epochs": 2}, "tiger": {"epochs": 3}, "dataset_tiger": {"A": {"layers": 1}}, "data_dir": None, "max_items": None, "max_users": None}


def test_unisrec_plan_follows_the_notebook_loops():
    plan = runs.plan("04_unisrec", UNISREC)
    assert [(r.dataset, r.seed, r.backbone, r.variant) for r in plan[:3]] == [
        ("A", 0, None, "id"), ("A", 0, "x", "inductive"), ("A", 0, "y", "inductive")]
    assert len(plan) == 2 * 2 * 3
    assert {r.settings["epochs"] for r in plan if r.dataset == "B"} == {9}  # the dataset's own settings on top
    assert plan[0].config().mode == "id" and plan[1].config(device="cpu").device == "cpu"


ABLATION = {"datasets": ["B"], "backbones": ["x", "z"], "id_baseline": True, "seeds": [0],
            "settings": {"as is": {}, "whitened": {"text_norm": "whiten"}, "reference": {"exclude_history": False}}}


def test_ablation_plan_changes_one_setting_and_trains_the_id_model_only_where_it_can_differ():
    labelled = runs.ablation_plan(ABLATION, UNISREC["unisrec"], UNISREC["dataset_unisrec"])
    assert [(label, r.backbone) for label, r in labelled] == [
        ("as is", None), ("as is", "x"), ("as is", "z"), ("whitened", "x"), ("whitened", "z"),
        ("reference", None), ("reference", "x"), ("reference", "z")]  # no ID-only run for an adaptor setting
    assert [r.settings for _, r in labelled[2:6:3]] == [{"epochs": 9}, {"epochs": 9, "exclude_history": False}]
    assert labelled[3][1].config().text_norm == "whiten" and labelled[3][1].variant == "inductive"
    # the setting {} is Table 2's own run: a notebook plan with both runs it once
    plan = runs.plan("04_unisrec", {**UNISREC, "ablation": ABLATION})
    assert len(plan) == 2 * 2 * 3 + 1 + 5  # Table 2's, z's run (not in Table 2) and the five changed ones
    assert runs.plan("04_unisrec", {**UNISREC, "ablation": {}}) == runs.plan("04_unisrec", UNISREC)
    # a notebook (a part of a profile) runs the ablation's datasets and seeds that are also its own
    assert runs.ablation_plan(ABLATION, {}, {}, datasets=["A"]) == runs.ablation_plan(ABLATION, {}, {}, seeds=[1]) == []
    # `settings` picks the ablation's runs of those settings, none of Table 2's
    picked = runs.plan("04_unisrec", {**UNISREC, "ablation": ABLATION}, settings=["reference", "whitened"])
    assert picked == [r for label, r in labelled if label in ("whitened", "reference")]
    with pytest.raises(EncoderecError, match="no ablation setting 'wide' in this part; its settings: 'as is', "):
        runs.plan("04_unisrec", {**UNISREC, "ablation": ABLATION}, settings=["wide"])
    with pytest.raises(EncoderecError, match="its settings: none"):
        runs.plan("05_tiger", TIGER, settings=["as is"])


def test_a_unisrec_run_is_named_by_what_departs_from_the_defaults():
    """A setting restoring a default the profile changed is the run that never changed it (one archive entry), and
    the ID-only SASRec carries no field that only the text adaptor reads."""
    scaled = {"epochs": 9, "text_norm": "scaled"}
    ablation = {"datasets": ["B"], "backbones": ["x"], "id_baseline": True, "seeds": [0],
                "settings": {"as given": {"text_norm": "none"}, "profile": {}}}
    (_, as_given), (_, id_only), (_, profile) = runs.ablation_plan(ablation, scaled, {})
    assert as_given == runs.Run("unisrec", "B", "x", "inductive", 0, {"epochs": 9})
    assert profile.settings == scaled and profile.config().text_norm == "scaled"
    assert id_only.variant == "id" and id_only.settings == {"epochs": 9}
    assert [r.settings for r in runs.unisrec_plan(["B"], ["x"], ["inductive"], True, [0], scaled, {})] == [
        {"epochs": 9}, scaled]


@pytest.mark.parametrize("ablation, message", [
    ({**ABLATION, "seed": [1]}, "ablation: expected a mapping with keys datasets, .*; unknown key 'seed'"),
    ({**ABLATION, "settings": {"wide": {"hidden": 64}}}, "setting 'wide': unknown key 'hidden'"),
    ({**ABLATION, "settings": {"odd": {"text_norm": "pca"}}}, "setting 'odd': UniSRecConfig.text_norm: expected"),
])
def test_ablation_errors_name_the_setting_and_key(ablation, message):
    with pytest.raises(EncoderecError, match=message):
        runs.ablation_plan(ablation, {}, {})


def test_tiger_plan_adds_each_datasets_extra_backbones_and_settings():
    plan = runs.plan("05_tiger", TIGER)
    assert [(r.dataset, r.backbone, r.variant) for r in plan] == [
        ("A", "x", "dedup"), ("A", "x", "shared"), ("B", "x", "dedup"), ("B", "x", "shared"),
        ("B", "random", "dedup"), ("B", "random", "shared"), ("B", "random", "unique")]
    assert plan[0].config().layers == 1 and plan[2].config().layers == 4
    assert plan[0].rqvae == {"epochs": 2}


def test_calibration_plan_runs_other_sizes_of_the_notebooks_runs():
    calibration = {"datasets": ["A", "C"], "backbones": ["x"], "seeds": [0, 1],
                   "settings": {"big": {"layers": 4, "d_ff": 64}, "same": {}}}
    labelled = runs.calibration_plan(calibration, TIGER)
    # only the notebook's datasets (A) and seeds (0); each setting over the dataset's settings, dedup IDs
    assert [(label, r.dataset, r.seed, r.variant) for label, r in labelled] == [("big", "A", 0, "dedup"),
                                                                                 ("same", "A", 0, "dedup")]
    assert labelled[0][1].settings == {"epochs": 3, "layers": 4, "d_ff": 64} and labelled[0][1].rqvae == {"epochs": 2}
    # the setting {} is the notebook's own run: the plan has it once, the other size after the Table 3 runs
    plan = runs.plan("05_tiger", {**TIGER, "calibration": calibration})
    assert plan[:-1] == runs.plan("05_tiger", TIGER) and plan[-1] == labelled[0][1]
    with pytest.raises(EncoderecError, match="calibration: expected a mapping with keys .*unknown key 'size'"):
        runs.calibration_plan({"size": {}}, TIGER)
    with pytest.raises(EncoderecError, match="setting 'bad'"):
        runs.calibration_plan({**calibration, "settings": {"bad": {"layer": 4}}}, TIGER)


def test_plan_errors_name_the_notebook_and_parameter():
    with pytest.raises(EncoderecError, match="03_semantic_ids: has no recommender runs"):
        runs.plan("03_semantic_ids", {})
    with pytest.raises(EncoderecError, match="05_tiger: parameter 'dataset_tiger' is missing"):
        runs.plan("05_tiger", {k: v for k, v in TIGER.items() if k != "dataset_tiger"})


P5 = ("Beauty", "Toys")


@pytest.mark.parametrize("notebook", ["04_unisrec", "05_tiger"])
def test_paper_beauty_and_toys_parts_train_the_notebooks_runs(notebook):
    """Every run a part plans on Beauty or Toys is one the notebook reads (the same settings, so the same archive
    entry, whether a CPU part or the GPU set trains it), and the CPU parts leave out only the scale rows' third seed."""
    key = lambda run: json.dumps(dataclasses.asdict(run), sort_keys=True)  # noqa: E731
    profile = load_profile("paper")
    params = parameters.validate(notebook, parameters.notebook_parameters(profile, notebook), "paper")
    data_dir = str(paths.data_dir().resolve())  # as a part's parameters give it
    whole = {key(r): r for r in runs.plan(notebook, {**dataclasses.asdict(params), "data_dir": data_dir})
             if r.dataset in P5}
    cpu = set()
    for part, spec in profile.parts.items():
        if spec["notebook"] == notebook:
            planned = {key(r) for r in runs.plan(notebook, runner.part_parameters("paper", part)[1])
                       if r.dataset in P5}
            assert planned <= set(whole), part
            cpu |= planned if not part.startswith("gpu-") else set()
    scale = {"all-mpnet-base-v2", "EncodeRec-110M", "EncodeRec+-22M"}
    assert {k for k in whole if k not in cpu} == {k for k, r in whole.items() if r.backbone in scale and r.seed == 2}
    # the calibration run (TIGER's own size, 55 min) is a part of its own, in no other part
    calibrated = [part for part, spec in profile.parts.items() if spec["notebook"] == notebook == "05_tiger" and any(
        r.config().layers == 4 for r in runs.plan(notebook, runner.part_parameters("paper", part)[1]))]
    assert calibrated == ([] if notebook == "04_unisrec" else ["calibration-tiger-Beauty", "gpu-tiger-seed0"])


def test_paper_gpu_set_of_seed_0():
    """UniSRec: ID-only SASRec and six text backbones; TIGER: five encoders, random and TF-IDF; on Beauty and Toys,
    with the CPU parts' settings; and TIGER's calibration run."""
    unisrec = runs.plan("04_unisrec", runner.part_parameters("paper", "gpu-unisrec-seed0")[1])
    tiger = runs.plan("05_tiger", runner.part_parameters("paper", "gpu-tiger-seed0")[1])
    assert len(unisrec) == 2 * 7 and len(tiger) == 2 * 7 + 1  # and the calibration run, at TIGER's own size
    assert {r.backbone for r in tiger} >= {"all-MiniLM-L6-v2", "EncodeRec-22M", "EncodeRec-110M", "EncodeRec+-22M",
                                          "random", "tfidf-svd"}
    assert {r.seed for r in unisrec + tiger} == {0}
    assert [r.config().layers for r in tiger].count(2) == 2 * 7  # the size Scientific's runs use
    assert tiger[-1].config().layers == 4 and tiger[-1].dataset == "Beauty"
    assert {r.config().fast for r in unisrec} == {True}  # UniSRec's CPU shortcuts on Beauty and Toys


# --------------------------------------------------------------------------- the GPU set rehearsed on the CPU

REHEARSAL = """\
description: the GPU set's machinery on a tiny catalogue
common: {archive: true}
notebooks:
  01_encoderec: {models: [{name: EncodeRec-22M, backbone: all-MiniLM-L6-v2}]}
  04_unisrec: {datasets: [Cyc], backbones: [tfidf-svd, random], id_baseline: true, seeds: [0],
               unisrec: {epochs: 2, hidden_size: 16, inner_size: 32, experts: 2}, read_only: [Cyc]}
  05_tiger: {datasets: [Cyc], backbones: [tfidf-svd], extra_backbones: {Cyc: [random]}, id_variants: [dedup],
             seeds: [0], rqvae: {epochs: 3, codebook_size: 4, hidden_dims: [16]},
             tiger: {epochs: 2, layers: 1, d_model: 16, heads: 2, d_kv: 8, d_ff: 32, valid_users: 20, beam_size: 4,
                     top_k: 2}, read_only: [Cyc]}
parts:
  gpu-unisrec: {notebook: 04_unisrec}
  gpu-tiger: {notebook: 05_tiger}
  needs-a-model: {notebook: 04_unisrec, backbones: [tfidf-svd, EncodeRec-22M]}
  train-22M: {notebook: 01_encoderec}
"""


@pytest.fixture
def rehearsal(tmp_path, monkeypatch):
    """A profile whose GPU parts train 5 small runs on a cyclic catalogue, in a cache of its own."""
    items = {str(i): {"title": f"w{i} w{i % 7}", "description": f"w{(i * 3) % 11} w{i % 5}", "brand": "",
                      "categories": f"w{i % 4}"} for i in range(24)}
    sequences = {str(u): [(u + k) % 24 for k in range(6)] for u in range(60)}
    write_dataset(tmp_path / "data", "Cyc", items, sequences)
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "rehearsal.yaml").write_text(REHEARSAL)
    monkeypatch.setenv("ENCODEREC_CACHE", str(tmp_path / "cache"))
    return paths.ReportDirs(paths.project_root() / "notebooks", tmp_path / "params", tmp_path), tmp_path / "data"


def test_fit_command_fills_the_caches_that_the_notebooks_read(rehearsal, monkeypatch, capsys):
    """`make gpu-set` rehearsed: `python -m encoderec fit` with two parts, two runs at a time in worker processes."""
    dirs, data_dir = rehearsal
    monkeypatch.setattr(paths.ReportDirs, "default", classmethod(lambda cls: dirs))
    planned = []
    for part in ("gpu-unisrec", "gpu-tiger"):
        notebook, params = runner.part_parameters("rehearsal", part, str(data_dir), dirs)
        planned += runs.plan(notebook, params)
    backbone_of = lambda name, seed: (name, None)  # noqa: E731 (baselines only: no EncodeRec model to look up)
    assert [runs.execute(r, backbone_of, policy=READ)["result"] for r in planned] == [None] * 5  # pending
    fit = ["fit", "--profile", "rehearsal", "--part", "gpu-unisrec", "--part", "gpu-tiger", "--device", "cpu",
           "--data-dir", str(data_dir)]
    assert cli.main([*fit, "--list"]) == 0
    assert capsys.readouterr().out.count("pending (neither archived nor in the run cache)") == 5

    assert cli.main([*fit, "--list", "--backbone", "random"]) == 0  # the runs of one backbone: UniSRec's and TIGER's
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and all(" random " in line.split(":")[1] for line in listed)
    assert cli.main([*fit, "--list", "--backbone", "bert"]) == 2
    assert "--backbone bert: no run of these parts uses it; their backbones: id, random, tfidf-svd" in capsys.readouterr().err
    assert cli.main([*fit, "--list", "--backbone", "id"]) == 0  # the ID-only SASRec, which has no text backbone
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and "ID only (SASRec)" in listed[0]

    commits = iter([{"commit": f"{k:040x}", "dirty": False} for k in range(100)])  # HEAD moves during the fits
    monkeypatch.setattr(runs.provenance, "git_commit", lambda: next(commits))
    assert cli.main([*fit, "--jobs", "2", "--threads", "1"]) == 0
    assert "fit gpu-unisrec, gpu-tiger: 5 runs in" in capsys.readouterr().out
    assert cli.main([*fit, "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 5 and all(": test Recall@10 0." in line and " on cpu " in line for line in listed)

    archive = dirs.output_root / "results" / "rehearsal" / "runs"
    entries = [json.loads(gzip.decompress(p.read_bytes())) for p in archive.rglob("*.json.gz")]
    assert len(entries) == 5  # the profile says archive: true
    started = {e["provenance"]["git"]["commit"] for e in entries}
    assert len(started) == 1 and started < {f"{k:040x}" for k in range(5)}  # the commit the fits started from
    for run in planned:
        read = runs.execute(run, backbone_of, policy=READ)  # what the notebook does for a gpu dataset
        assert read["result"] is not None, run.name
        assert read["result"]["config"]["device"] == "cpu" and len(read["result"]["test_ranks"]) == 60
    again = runs.fit_all(planned, backbone_of, jobs=1, progress=False)  # a second fit is a read of the same entries
    assert [a["result"]["test_ranks"] for a in again] == [
        runs.execute(r, backbone_of, policy=READ)["result"]["test_ranks"] for r in planned]


def test_fit_errors(rehearsal):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = subprocess.run([sys.executable, "-m", "encoderec", "fit", "--profile", "smoke", "--part", "x",
                          "--device", "cuda"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--part x: not a part of profile smoke.yaml" in out.stderr  # the part is checked first
    with pytest.raises(EncoderecError, match="--device cuda: torch .* sees no CUDA GPU here"):
        runs.fit_all([], lambda name, seed: (name, None), device="cuda")


# --------------------------------------------------------------------------- the run archive


def test_an_archived_run_is_read_on_a_machine_without_its_caches(rehearsal, monkeypatch, tmp_path):
    dirs, data_dir = rehearsal
    backbone_of = lambda name, seed: (name, None)  # noqa: E731
    notebook, params = runner.part_parameters("rehearsal", "gpu-unisrec", str(data_dir), dirs)
    run = runs.plan(notebook, params)[1]  # tfidf-svd: an input embedding, then a fit
    archive = tmp_path / "archive"
    trained = runs.execute(run, backbone_of, policy=Policy(archive))
    [path] = archive.rglob("*.json.gz")
    assert path.parent == archive / "unisrec" / "Cyc" and path.name.startswith("tfidf-svd-inductive-seed0-")

    monkeypatch.setenv("ENCODEREC_CACHE", str(tmp_path / "empty cache"))  # another machine: nothing cached
    read = runs.execute(run, backbone_of, policy=Policy(archive, read_only=True))
    assert read == trained and list(read) == list(trained)  # the same columns in the same order in a table
    assert runs.fit_all([run], backbone_of, archive=archive, progress=False) == [trained]
    assert not (tmp_path / "empty cache").exists()  # read without encoding or training anything
    assert runs.execute(run, backbone_of, policy=READ)["result"] is None

    other = dataclasses.replace(run, settings={**run.settings, "epochs": 1})
    assert runs.execute(other, backbone_of, policy=Policy(archive, read_only=True))["result"] is None
    monkeypatch.setattr(runs.usr, "RESULT_VERSION", 2)
    assert runs.execute(run, backbone_of, policy=Policy(archive, read_only=True))["result"] is None  # other results


def test_archive_file_names_are_readable_and_tell_encoderec_plus_from_encoderec(tmp_path):
    identity = {"kind": "encoderec", "recipe": {"name": "x"}}
    plus = archive.path(tmp_path, "encoderec", "EncodeRec+-22M", "seed0", identity)
    assert plus.parent.name == "EncodeRec+-22M" and plus.name.startswith("seed0-")
    assert archive.path(tmp_path, "retrieval", "S", "EncodeRec+0.25-22M (seed 0)", identity).name.startswith(
        "EncodeRec+0.25-22M-seed-0-")
    assert plus.parent != archive.path(tmp_path, "encoderec", "EncodeRec-22M", "seed0", identity).parent


def test_archive_lookups_are_logged_as_reads_so_a_run_archived_later_reruns_the_notebook(rehearsal, monkeypatch,
                                                                                          tmp_path):
    dirs, data_dir = rehearsal
    backbone_of = lambda name, seed: (name, None)  # noqa: E731
    run = runs.plan(*runner.part_parameters("rehearsal", "gpu-unisrec", str(data_dir), dirs))[0]
    entry = runs.archive_path(tmp_path / "archive", run, backbone_of)
    log = tmp_path / "reads.json"
    monkeypatch.setenv(provenance.READS_LOG, str(log))

    assert runs.archived(run, backbone_of, tmp_path / "archive") is None  # pending: its absence is what was read
    reads = json.loads(log.read_text())
    assert reads == {str(entry.resolve()): None} and runner._reads_unchanged(reads, dirs.output_root)
    runs.archive_run({"result": {"x": 1}}, run, backbone_of, tmp_path / "archive")  # another process's fit
    assert not runner._reads_unchanged(reads, dirs.output_root)  # so the notebook runs again

    log.unlink()
    assert runs.archived(run, backbone_of, tmp_path / "archive") == {"result": {"x": 1}}
    runs.archive_run({"result": {"x": 2}}, run, backbone_of, tmp_path / "archive")  # the notebook's own write
    reads = json.loads(log.read_text())
    assert reads[str(entry.resolve())] == hashlib.sha256(entry.read_bytes()).hexdigest()
    assert runner._reads_unchanged(reads, dirs.output_root)  # what it wrote itself is no reason to run again


def test_a_damaged_archive_entry_is_named(rehearsal, tmp_path):
    dirs, data_dir = rehearsal
    backbone_of = lambda name, seed: (name, None)  # noqa: E731
    run = runs.plan(*runner.part_parameters("rehearsal", "gpu-unisrec", str(data_dir), dirs))[0]
    path = runs.archive_path(tmp_path, run, backbone_of)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not gzip")
    with pytest.raises(EncoderecError, match=f"{path.name}: not a gzip-compressed JSON archive entry .* delete it"):
        runs.execute(run, backbone_of, policy=Policy(tmp_path, read_only=True))


@pytest.mark.parametrize(("encoder", "portable"), [
    ("/work/main/cache/encoderec/EncodeRec-22M-5b633df53fe3/final", "encoderec/EncodeRec-22M-5b633df53fe3/final"),
    ("/tmp/x/cache/encoderec/EncodeRec-22M-5b633df53fe3/final", "encoderec/EncodeRec-22M-5b633df53fe3/final"),
    ("/home/u/encoderec/cache/encoderec/EncodeRec-22M-5b633df53fe3/final", "encoderec/EncodeRec-22M-5b633df53fe3/final"),
    ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2"), ("sentence-transformers/all-mpnet-base-v2",
                                               "sentence-transformers/all-mpnet-base-v2"), ("random", "random")])
def test_an_encodeRec_model_is_named_by_its_recipe_folder_wherever_the_cache_is(encoder, portable):
    assert archive.portable_encoder(encoder) == portable


def test_a_tokenization_and_a_map_are_archived_and_read_back_without_their_encoder(rehearsal, monkeypatch, tmp_path):
    """03_semantic_ids's units: a session that trained a model archives its tokenizations and map; a later one, with
    neither the model nor any cache, reads them back, and another seed, tokenizer, catalogue or code is a new unit."""
    _, data_dir = rehearsal
    ds = data.load_dataset("Cyc", str(data_dir))
    texts, fit_items = data.TextView().full(ds), data.training_items(ds)
    backbone_of = lambda name, seed: ("tfidf-svd", None)  # noqa: E731 (a backbone that needs no model)
    folder = tmp_path / "archive"
    args = ("Cyc", "TF-IDF", 0, "rkmeans", texts, fit_items, {"codebook_size": 4})
    computed, model_seed = runs.tokenization(*args, backbone_of, policy=Policy(folder), progress=False)
    coordinates = runs.item_map("Cyc", "TF-IDF", 0, texts, backbone_of, policy=Policy(folder))
    assert sorted(p.relative_to(folder).parts[:2] for p in folder.rglob("*.json.gz")) == [
        ("semantic_ids", "Cyc"), ("umap", "Cyc")]
    assert model_seed is None and computed.codes.shape == (24, 3) and coordinates.shape == (24, 2)

    monkeypatch.setenv("ENCODEREC_CACHE", str(tmp_path / "empty cache"))  # another machine: nothing cached
    untrained = lambda name, seed: ("tfidf-svd", seed)  # noqa: E731 (the same encoder, a model seed to report)
    read, model_seed = runs.tokenization(*args, untrained, policy=Policy(folder), progress=False)
    assert model_seed == 0 and (read.codes == computed.codes).all() and read.info == computed.info
    assert (runs.item_map("Cyc", "TF-IDF", 0, texts, backbone_of, policy=Policy(folder)) == coordinates).all()
    assert not (tmp_path / "empty cache").exists()  # nothing encoded or fitted
    pending = ("Cyc", "TF-IDF", 0, "rqvae", texts, fit_items, {"codebook_size": 4})  # never computed: read only
    assert runs.tokenization(*pending, backbone_of, policy=Policy(folder, read_only=True), progress=False) == (None, None)
    unseen = lambda name, seed: (str(tmp_path / "cache" / "encoderec" / "M-0123" / "final"), 0)  # noqa: E731
    assert runs.item_map("Cyc", "M", 0, texts, unseen, policy=Policy(folder, read_only=True)) is None
    assert not (tmp_path / "empty cache").exists()

    archived = len(list(folder.rglob("*.json.gz")))
    runs.tokenization("Cyc", "TF-IDF", 1, *args[3:], backbone_of, policy=Policy(folder), progress=False)  # another seed
    runs.tokenization(*args[:-1], {"codebook_size": 5}, backbone_of, policy=Policy(folder), progress=False)
    runs.tokenization(*args[:4], texts[:-1] + ["other"], *args[5:], backbone_of, policy=Policy(folder), progress=False)
    monkeypatch.setattr(runs.semantic_ids, "RESULT_VERSION", 2)
    runs.tokenization(*args, backbone_of, policy=Policy(folder), progress=False)
    assert len(list(folder.rglob("*.json.gz"))) == archived + 4
    assert runs.tokenization(*args, backbone_of, progress=False)[0].codes.shape == (24, 3)  # no archive: computed


def test_table_1_ranks_are_archived_and_read_back_without_the_encoder(tiny_st_model, monkeypatch, tmp_path):
    task = retrieval.RetrievalTask("D", [0, 1, 2], ["w1 w2", "w3 w4", "w5 w7"], ["w2 w1 w9", "w4 w3", "w7 w5 w6"],
                                   np.array([0, 1, 2]))
    monkeypatch.setenv("ENCODEREC_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "archive"
    computed = runs.retrieval_ranks(task, str(tiny_st_model), 0, "tiny (seed 0)", policy=Policy(folder))
    [entry] = folder.rglob("*.json.gz")
    assert entry.parent == folder / "retrieval" / "D" and entry.name.startswith("tiny-seed-0-")
    assert computed.dtype == np.int64 and computed.shape == (3,)

    monkeypatch.setenv("ENCODEREC_CACHE", str(tmp_path / "empty cache"))  # another machine: nothing cached
    assert (runs.retrieval_ranks(task, str(tiny_st_model), 0, "tiny (seed 0)", policy=Policy(folder)) == computed).all()
    assert not (tmp_path / "empty cache").exists()
    other = dataclasses.replace(task, documents=["w2 w1", "w4 w3", "w7 w5 w6"])  # another corpus: another unit
    assert runs.retrieval_ranks(other, str(tiny_st_model), 0, "tiny (seed 0)", policy=Policy(folder, read_only=True)) is None
    runs.retrieval_ranks(other, str(tiny_st_model), 0, "tiny (seed 0)", policy=Policy(folder))
    assert len(list(folder.rglob("*.json.gz"))) == 2
    untrained = str(tmp_path / "cache" / "encoderec" / "M-0123" / "final")  # archived as a model, never trained here
    assert runs.retrieval_ranks(task, untrained, 0, "M (seed 0)", policy=Policy(folder, read_only=True)) is None


def test_a_listing_counts_a_model_this_machine_has_not_trained_as_pending(rehearsal, tmp_path):
    """`fit --list` on a fresh machine: 01_encoderec's models are listed in the results but not on this disk."""
    dirs, data_dir = rehearsal
    run = runs.plan(*runner.part_parameters("rehearsal", "gpu-unisrec", str(data_dir), dirs))[1]
    untrained = str(tmp_path / "cache" / "encoderec" / "EncodeRec-22M-0123456789ab" / "final")
    read = runs.execute(run, lambda name, seed: (untrained, seed), policy=READ)
    assert read["result"] is None and read["model seed"] == 0


def test_fit_names_a_model_that_01_has_not_trained_before_training_anything(rehearsal, monkeypatch, capsys):
    """A part with an EncodeRec model that 01_encoderec has not trained: the listing counts its runs as pending, and
    `fit` stops at once with the fix (train the model, or the other backbones' runs now)."""
    dirs, data_dir = rehearsal
    monkeypatch.setattr(paths.ReportDirs, "default", classmethod(lambda cls: dirs))
    fit = ["fit", "--profile", "rehearsal", "--part", "needs-a-model", "--device", "cpu", "--data-dir", str(data_dir)]
    assert cli.main([*fit, "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 3 and all(line.endswith("pending (neither archived nor in the run cache)") for line in listed)
    assert cli.main(fit) == 2
    error = capsys.readouterr().err
    assert "lists no run of EncodeRec-22M: train it first with python -m encoderec report --profile rehearsal --only " \
           "01_encoderec" in error
    assert error.rstrip().endswith("; or train the other runs now with --backbone id --backbone tfidf-svd")
    assert not (dirs.output_root / "results" / "rehearsal" / "runs").exists() and not (data_dir.parent / "cache").exists()

    # archived on another machine: 01_encoderec lists the run, this machine's cache lacks its weights
    results = dirs.output_root / "results" / "rehearsal"
    results.mkdir(parents=True)
    missing = data_dir.parent / "cache" / "encoderec" / "EncodeRec-22M-0123456789ab" / "final"
    (results / "encoderec_models.json").write_text(json.dumps({"rows": [
        {"name": "EncodeRec-22M", "backbone": "all-MiniLM-L6-v2", "seed": 0, "path": str(missing)}]}))
    assert cli.main(fit) == 2
    assert capsys.readouterr().err.startswith(
        f"encoderec: error: EncodeRec-22M seed 0: its weights are not in this machine's cache ({missing}); train them "
        "first with python -m encoderec report --profile rehearsal --part train-22M; or train the other runs now with")


def test_a_fit_worker_stops_when_its_parent_is_killed(tmp_path):
    """`fit`'s workers get SIGTERM when the command dies (killed with SIGKILL, it cannot clean up after itself)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing, os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from encoderec.pipeline.runs import stop_with_parent\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'), "
        "initializer=stop_with_parent)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 600)\n"
        "    time.sleep(600)\n")
    here = str(Path(__file__).resolve().parents[1])  # this checkout's encoderec, for the parent and its worker
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": here})
    worker = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    for _ in range(300):  # the worker's SIGTERM comes at once; allow a slow machine 30 s
        if not Path(f"/proc/{worker}").exists() or "Z" in Path(f"/proc/{worker}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail(f"worker {worker} still runs after its parent was killed")


def test_every_committed_archive_entry_is_keyed_as_todays_code_keys_its_unit():
    """The archive is read by identity: an entry whose result versions differ from those today's code puts in the
    identity of its kind would silently turn its unit pending. Entries of older code (keyed by "code") stay unread."""
    folder = paths.project_root() / "results" / "paper" / "runs"
    checked = 0
    for path in sorted(folder.glob("*/*/*.json.gz")):
        identity = json.loads(gzip.decompress(path.read_bytes()))["identity"]
        if identity["kind"] == "encoderec" or "code" in identity:
            continue
        encoded = identity.get("text", "no text key: an encoder") is not None
        computed_by = runs.computed_by(identity["kind"], identity.get("variant"))
        assert identity["versions"] == runs.versions(computed_by, encoded), path.relative_to(folder)
        checked += 1
    assert checked >= 200 or not folder.exists()
