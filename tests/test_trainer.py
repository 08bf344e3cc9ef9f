"""Fine-tuning: the training pairs, the config, a real (tiny) training run, its cache and resume, CLI and torchrun.

The runs train the tiny random BERT of tests/conftest.py on a 30-item dataset for 3 steps (batch 8, GradCache
mini-batch 4), a few seconds each on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

from encoderec import cli
from encoderec.core.errors import EncoderecError
from encoderec.core.io import read_json, sha256_text
from encoderec.data import dataset as data
from encoderec.models import trainer
from encoderec.models.trainer import TrainConfig
from encoderec.pipeline import runs
from encoderec.pipeline.policy import READ, Policy
from tests.conftest import WORDS, write_dataset

N_ITEMS = 30  # at a held-out fraction of 0.2, 5 are held out: 25 pairs, 3 full batches of 8


def titles(held_out: bool, n: int, fraction: float = 0.5) -> list[str]:
    """The first n titles "product w0", "product w1", ... that are (or are not) held out at `fraction`."""
    candidates = (f"product w{i}" for i in itertools.count())
    return list(itertools.islice((t for t in candidates if data.is_held_out(t, fraction) == held_out), n))


def tiny_config(backbone: Path, **overrides) -> TrainConfig:
    fields = {
        "name": "tiny",
        "backbone": str(backbone),
        "datasets": ("A",),
        "batch_size": 8,
        "mini_batch_size": 4,
        "learning_rate": 1e-3,  # large enough that 3 steps visibly move the weights
        "save_steps": 100,
    }
    return TrainConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    items = {
        str(i): {"title": f"w{i} {WORDS[i % len(WORDS)]}", "description": f"{WORDS[i % len(WORDS)]} w{i} w{i + 40}"}
        for i in range(N_ITEMS)
    }
    write_dataset(root, "A", items)
    return root


def encode(model_path: Path) -> np.ndarray:
    return SentenceTransformer(str(model_path), device="cpu").encode(["w1 the", "kids w5 w45"])


def spy(monkeypatch, cls, name: str) -> list[dict]:
    """Record the keyword arguments of every call of cls.name, still calling it."""
    calls: list[dict] = []
    original = getattr(cls, name)

    def recording(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, recording)
    return calls


# --------------------------------------------------------------------------- training pairs


def test_training_pairs_drop_held_out_items_their_documents_empties_and_duplicates(tmp_path):
    (held_1, held_2), (kept_1, kept_2, kept_3, kept_4, kept_5) = titles(True, 2), titles(False, 5)
    write_dataset(
        tmp_path,
        "A",
        {
            "0": {"title": held_1, "description": "held doc a"},
            "1": {"title": kept_1, "description": "kept doc"},
            "2": {"title": kept_2, "description": "held  doc\na"},  # cleans to the held-out item's document
            "3": {"title": kept_3, "description": ""},
            "4": {"title": "", "description": "no title"},
            "5": {"title": kept_1, "description": "kept doc"},
            "6": {"title": kept_4, "description": "held doc b"},  # the document of an item held out in B
        },
    )
    write_dataset(
        tmp_path,
        "B",
        {
            "0": {"title": held_1.upper() + "!", "description": "another text"},  # A's held-out product again
            "1": {"title": held_2, "description": "held doc b"},
            "2": {"title": kept_1, "description": "kept doc"},  # a duplicate of A's pair
            "3": {"title": kept_5, "description": "kept doc"},  # the same document under another title is a pair
            "4": {"title": kept_4, "description": "held doc a"},
        },
    )
    cfg = TrainConfig(datasets=("A", "B"), held_out_fraction=0.5)

    pairs, corpus = trainer.training_pairs(cfg, tmp_path)

    assert list(zip(pairs["query"], pairs["document"])) == [(kept_1, "kept doc"), (kept_5, "kept doc")]
    assert corpus["datasets"] == {
        "A": {"items": 7, "held_out": 1, "document_match": 2, "empty": 2, "duplicate": 1, "kept": 1},
        "B": {"items": 5, "held_out": 2, "document_match": 1, "empty": 0, "duplicate": 1, "kept": 1},
    }
    assert corpus["pairs"] == 2


def test_max_pairs_is_a_seeded_subset_in_corpus_order(data_dir):
    everything, _ = trainer.training_pairs(TrainConfig(datasets=("A",), held_out_fraction=0.0), data_dir)
    queries = everything["query"]

    def subset(seed):
        pairs, corpus = trainer.training_pairs(TrainConfig(datasets=("A",), max_pairs=10, seed=seed), data_dir)
        assert corpus["pairs"] == len(pairs) == 10
        return pairs["query"]

    first = subset(0)
    assert first == subset(0) != subset(1)
    assert sorted(first, key=queries.index) == first


def test_interaction_pairs_come_from_training_interactions_only(tmp_path):
    """EncodeRec+: (title of a, document of the next item b) from the training part of each sequence."""
    (held,), (*kept, meta) = titles(True, 1), titles(False, 8)
    items = {str(i): {"title": t, "description": f"doc {i}"} for i, t in enumerate(kept)}
    items["7"] = {"title": held, "description": "doc held"}
    sequences = {"0": [0, 1, 2, 3, 4],  # training part 0 1 2; 2 -> 3 is the validation interaction
                 "1": [5, 5, 6, 0, 1],  # 5 -> 5 repeats an item; 6 is its last training item
                 "2": [0, 7, 1, 2, 3]}  # 0 -> 7 and 7 -> 1 touch a held-out item
    write_dataset(tmp_path, "S", items, sequences)
    write_dataset(tmp_path, "M", {"0": {"title": meta, "description": "meta doc"}})  # no interactions
    cfg = TrainConfig(datasets=("S", "M"), held_out_fraction=0.5, interaction_ratio=10.0)

    pairs, corpus = trainer.training_pairs(cfg, tmp_path)

    metadata = [(t, f"doc {i}") for i, t in enumerate(kept)] + [(meta, "meta doc")]
    interactions = [(kept[0], "doc 1"), (kept[1], "doc 2"), (kept[5], "doc 6")]
    assert list(zip(pairs["query"], pairs["document"])) == metadata + interactions
    assert corpus["interactions"] == {"ratio": 10.0, "candidates": 3, "pairs": 3, "per dataset": {
        "S": {"transitions": 6, "held_out": 2, "excluded": 1}}}
    assert corpus["pairs"] == len(metadata) + 3

    few, corpus = trainer.training_pairs(dataclasses.replace(cfg, interaction_ratio=0.25), tmp_path)
    assert corpus["interactions"]["pairs"] == 2 and len(few) == len(metadata) + 2  # round(0.25 x 8) of the 3


def test_interaction_ratio_without_interactions_says_how_to_fix_it(data_dir):
    with pytest.raises(EncoderecError, match="interaction_ratio 0.5: none of the datasets A has a training"):
        trainer.training_pairs(TrainConfig(datasets=("A",), interaction_ratio=0.5), data_dir)


def test_the_papers_recipe_keeps_its_fingerprint_beside_encoderec_plus():
    fields = TrainConfig().to_dict()
    del fields["interaction_ratio"]
    assert TrainConfig().fingerprint() == sha256_text(json.dumps(fields, sort_keys=True))
    assert TrainConfig(interaction_ratio=0.5).fingerprint() != TrainConfig().fingerprint()
    assert TrainConfig(name="EncodeRec+-22M").name == "EncodeRec+-22M"


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch_size", 1),
        ("mini_batch_size", 1024),
        ("held_out_fraction", 1.0),
        ("warmup_ratio", -0.1),
        ("temperature", 0),
        ("epochs", "many"),
        ("datasets", []),
        ("max_pairs", 2.5),
        ("symmetric", "yes"),
        ("name", "a/b"),
        ("interaction_ratio", -1),
    ],
)
def test_invalid_config_values_name_the_field(field, value):
    with pytest.raises(EncoderecError, match=f"TrainConfig.{field}: expected"):
        TrainConfig(**{field: value})


def test_from_dict_names_the_source_and_the_unknown_key():
    with pytest.raises(EncoderecError, match=r"^cfg.yaml: unknown key 'batchsize'; known keys: name, "):
        TrainConfig.from_dict({"batchsize": 8}, source="cfg.yaml")


def test_from_dict_reads_yaml_values():
    # PyYAML parses 5e-5 as a string; lists stand for tuples
    cfg = TrainConfig.from_dict({"learning_rate": "5e-5", "datasets": ["Scientific"]})
    assert cfg.learning_rate == 5e-5 and cfg.datasets == ("Scientific",)


def test_fingerprint_depends_on_every_field_and_nothing_else():
    assert TrainConfig().fingerprint() == TrainConfig(datasets=list(TrainConfig().datasets)).fingerprint()
    assert TrainConfig().fingerprint() != TrainConfig(seed=1).fingerprint()
    assert trainer.default_output_dir(TrainConfig()).name == f"EncodeRec-22M-{TrainConfig().fingerprint()[:12]}"


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def finished(tiny_st_model, data_dir, tmp_path_factory) -> tuple[TrainConfig, Path, Path]:
    """One complete run: (config, output folder, final folder)."""
    cfg = tiny_config(tiny_st_model)
    out = tmp_path_factory.mktemp("run")
    return cfg, out, trainer.train(cfg, data_dir, out, progress=False)


def test_train_writes_a_loadable_model_with_its_record_and_card(finished, tiny_st_model):
    cfg, out, final = finished
    assert final == out / "final"
    record = read_json(final / trainer.RECORD_FILE)
    assert record["config"] == cfg.to_dict()
    assert record["corpus"]["datasets"]["A"] == {
        "items": N_ITEMS,
        "held_out": 5,
        "document_match": 0,
        "empty": 0,
        "duplicate": 0,
        "kept": 25,
    }
    assert [entry["step"] for entry in record["loss_history"]] == [1, 2, 3]
    assert 0 <= record["held_out_metrics"]["A_cosine_ndcg@10"] <= 1 and record["wall_seconds"] > 0

    card = (final / "README.md").read_text()
    for mention in (
        "amazon item metadata (A)",
        "Training Loss",
        "cosine_ndcg@10",
        "learning_rate`: 0.001",
        "CachedMultipleNegativesRankingLoss",
        '"mini_batch_size": 4',
    ):
        assert mention in card
    assert not list(out.glob("checkpoint-*")) and not list(out.glob(".final.*"))
    assert not np.allclose(encode(final), encode(tiny_st_model), atol=1e-4)  # the weights were trained


def test_a_finished_run_is_returned_without_training(finished, data_dir, monkeypatch):
    cfg, out, final = finished
    calls = spy(monkeypatch, SentenceTransformerTrainer, "__init__")
    assert trainer.train(cfg, data_dir, out, progress=False) == final
    assert calls == []


def test_a_folder_of_another_config_is_refused(finished, data_dir):
    cfg, out, _ = finished
    other = tiny_config(Path(cfg.backbone), learning_rate=2e-3)
    with pytest.raises(EncoderecError, match=r"final/encoderec_config.json: a model trained with another config"):
        trainer.train(other, data_dir, out, progress=False)


def test_an_interrupted_run_resumes_from_its_checkpoint(finished, data_dir, tmp_path, monkeypatch):
    cfg = tiny_config(Path(finished[0].backbone), save_steps=1, eval_at_end=False)
    save_checkpoint = SentenceTransformerTrainer._save_checkpoint

    def save_then_interrupt(self, *args, **kwargs):
        save_checkpoint(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(SentenceTransformerTrainer, "_save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, data_dir, tmp_path, progress=False)
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-1"]
    assert not (tmp_path / "final").exists()
    with pytest.raises(EncoderecError, match="its checkpoints belong to another config"):
        trainer.train(dataclasses.replace(cfg, seed=1), data_dir, tmp_path, progress=False)

    monkeypatch.setattr(SentenceTransformerTrainer, "_save_checkpoint", save_checkpoint)
    calls = spy(monkeypatch, SentenceTransformerTrainer, "train")
    final = trainer.train(cfg, data_dir, tmp_path, progress=False)

    assert calls == [{"resume_from_checkpoint": True}]
    record = read_json(final / trainer.RECORD_FILE)
    assert record["resumed_from"] == "checkpoint-1"
    assert [entry["step"] for entry in record["loss_history"]] == [1, 2, 3]  # step 1 logged before the interruption
    np.testing.assert_allclose(encode(final), encode(finished[2]), atol=1e-5)  # the same model as without a break


def test_fewer_pairs_than_a_batch_train_on_one_smaller_batch(tiny_st_model, data_dir, tmp_path):
    cfg = tiny_config(tiny_st_model, batch_size=64, eval_at_end=False)
    with pytest.warns(UserWarning, match=r"only 25 training pairs fit in one batch .* training with batches of 25,"):
        final = trainer.train(cfg, data_dir, tmp_path, progress=False)
    assert [entry["step"] for entry in read_json(final / trainer.RECORD_FILE)["loss_history"]] == [1]


def test_pairs_sharing_a_text_do_not_count_towards_a_full_batch(tiny_st_model, tmp_path):
    # NO_DUPLICATES never batches two pairs sharing a text: a batch of all 12 pairs could never be filled
    items = {str(i): {"title": f"w{i} kids", "description": f"toy w{i + 40}"} for i in range(12)}
    items["11"]["description"] = items["10"]["description"]
    write_dataset(tmp_path, "A", items)
    cfg = tiny_config(tiny_st_model, batch_size=12, held_out_fraction=0.0, eval_at_end=False)
    with pytest.warns(UserWarning, match=r"only 10 training pairs fit in one batch \(12 pairs, 2 of them sharing"):
        final = trainer.train(cfg, tmp_path, tmp_path / "out", progress=False)
    assert [entry["step"] for entry in read_json(final / trainer.RECORD_FILE)["loss_history"]] == [1]


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("batch_size: 8\nbatchsize: 8\n", "unknown key 'batchsize'"),
        ("batch_size: [8\n", "invalid YAML"),
        ("batch_size: -1\n", "TrainConfig.batch_size: expected an integer of at least 2"),
    ],
)
def test_cli_train_with_a_bad_config_exits_2_with_one_line(tmp_path, capsys, text, needle):
    config_file = tmp_path / "cfg.yaml"
    config_file.write_text(text)

    assert cli.main(["train", str(config_file)]) == 2

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1
    assert str(config_file) in lines[0] and needle in lines[0]


@pytest.mark.slow
def test_torchrun_with_two_processes_trains_one_model(tiny_st_model, data_dir, tmp_path):
    config_file = tmp_path / "cfg.yaml"
    config_file.write_text(
        f"name: tiny\nbackbone: {tiny_st_model}\ndatasets: [A]\nbatch_size: 8\nmini_batch_size: 4\nsave_steps: 100\n"
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "encoderec",
        "train",
        str(config_file),
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(out),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=170)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(out / "final")
    assert result.stdout.count(str(out / "final")) == 1  # printed by rank 0 only
    record = read_json(out / "final" / trainer.RECORD_FILE)
    assert record["world_size"] == 2 and [entry["step"] for entry in record["loss_history"]] == [1, 2, 3]
    assert encode(out / "final").shape == (2, 32)


def test_a_model_is_archived_and_read_back_where_it_was_never_trained(finished, data_dir, monkeypatch, tmp_path):
    """01_encoderec's unit (`runs.encoderec_model`): a trained model's record goes into the archive; a machine that
    never trained it (read only) reads the record, in whatever precision the model was trained, and trains
    nothing; without an archive, or for another recipe, the model is pending."""
    cfg, out, final = finished
    monkeypatch.setattr(trainer, "default_output_dir", lambda c: out if c == cfg else tmp_path / "untrained")
    folder = tmp_path / "archive"
    path, info = runs.encoderec_model(cfg, data_dir, policy=Policy(folder))  # trained already: read back and archived
    assert path == str(final) and info == read_json(final / trainer.RECORD_FILE)
    assert [p.parent for p in folder.rglob("*.json.gz")] == [folder / "encoderec" / cfg.name]

    calls = spy(monkeypatch, SentenceTransformerTrainer, "__init__")
    monkeypatch.setattr(trainer, "default_output_dir", lambda c: tmp_path / "another machine")
    assert runs.encoderec_model(cfg, data_dir, policy=Policy(folder, read_only=True)) == (str(final), info)
    other = "fp32" if cfg.precision == "bf16" else "bf16"
    assert runs.encoderec_model(dataclasses.replace(cfg, precision=other), data_dir,
                                Policy(folder, read_only=True)) == (str(final), info)  # the same recipe, other precision
    assert runs.encoderec_model(dataclasses.replace(cfg, seed=1), data_dir, policy=Policy(folder, read_only=True)) is None
    assert runs.encoderec_model(cfg, data_dir, READ) is None
    assert calls == []
