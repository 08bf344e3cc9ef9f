"""Fine-tune a sentence encoder the EncodeRec way: item title = query, its description and attributes = positive.

    cfg = TrainConfig(datasets=("Scientific",), max_pairs=2048)
    path = train(cfg)                 # <cache dir>/encoderec/<name>-<fingerprint>/final
    SentenceTransformer(path)         # the fine-tuned, frozen item encoder

Every batch of `batch_size` (title, document) pairs is one in-batch InfoNCE problem: each title must pick its
own document among the batch's documents (encoderec.models.loss). With `mini_batch_size` the loss runs through
GradCache, so a 2-core CPU trains with the paper's 512 negatives in the memory of a 32-pair forward pass.

What is trained on: every item of the configured datasets except the held-out ones (a hash of the normalised
title, so a product held out in one dataset is held out in all of them), items whose document equals a
held-out item's document, items with an empty title or document, and repeated (title, document) pairs.
The held-out items are the retrieval evaluation at the end (title -> its document among the held-out
documents), reported in the model card and in `final/encoderec_config.json`.

Runs are cached and resumable: the output folder is named by the config's fingerprint, checkpoints are
written every `save_steps` and resumed from, and a finished `final/` whose record matches is returned as is.

Distributed: `torchrun --nproc_per_node N -m encoderec train cfg.yaml` works unchanged. Each process gets
batch_size / N pairs per step, so one optimizer step still sees batch_size pairs, and the GradCache loss
gathers the embeddings of all processes, so every title still competes against batch_size documents.
(NO_DUPLICATES keeps repeated texts apart within each process's share only: two processes may rarely hold
the same text in one step.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import re
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.base.evaluation import SequentialEvaluator
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from sentence_transformers.sentence_transformer.training_args import BatchSamplers

from encoderec.core import paths
from encoderec.core.errors import Checked, EncoderecError, is_int, is_positive_int
from encoderec.core.io import read_json, read_yaml, sha256_text, write_json
from encoderec.core.precision import PRECISIONS, resolve_precision
from encoderec.data import dataset as data
from encoderec.models import embeddings, loss

logger = logging.getLogger(__name__)

RECORD_FILE = "encoderec_config.json"
LOG_POINTS = 50  # about this many training-loss points per run, whatever its length

_DEFAULT_VIEW = data.TextView()


# --------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig(Checked):
    """Everything that determines a fine-tuned model; its fingerprint names the output folder."""

    name: str = "EncodeRec-22M"
    backbone: str = "all-MiniLM-L6-v2"
    datasets: tuple[str, ...] = ("Scientific", "Office", "Industrial2018", "Office2018")
    held_out_fraction: float = 0.2
    query_fields: tuple[str, ...] = _DEFAULT_VIEW.query_fields
    document_fields: tuple[str, ...] = _DEFAULT_VIEW.document_fields
    batch_size: int = 512
    mini_batch_size: int | None = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    epochs: float = 1.0
    temperature: float = 0.05
    symmetric: bool = False
    max_seq_length: int | None = None
    max_pairs: int | None = None
    seed: int = 0
    save_steps: int = 10
    eval_at_end: bool = True
    precision: str = "auto"  # "bf16" autocast, "fp32"; "auto" is resolved on construction (encoderec.core.precision)
    interaction_ratio: float = 0.0  # EncodeRec+: interaction pairs per metadata pair (0: the paper's recipe)

    def __post_init__(self) -> None:
        # YAML gives lists and sometimes numeric strings: normalise them before checking
        for field in ("datasets", "query_fields", "document_fields"):
            setattr(self, field, _names(field, getattr(self, field)))
        for field in ("held_out_fraction", "learning_rate", "warmup_ratio", "epochs", "temperature", "interaction_ratio"):
            setattr(self, field, _number(field, getattr(self, field)))
        super().__post_init__()
        # resolved here, so the fingerprint names the precision the model was trained in
        self.precision = resolve_precision(self.precision)

    def _rules(self) -> Iterator[tuple[str, Any, str]]:
        """(field, whether its value is valid, what a valid value is); a rule may rely on the ones before it."""
        yield "name", isinstance(self.name, str) and re.fullmatch(r"[\w.+-]+", self.name), "a folder-safe name"
        yield "backbone", isinstance(self.backbone, str) and self.backbone, "an alias, folder or Hugging Face id"
        yield "datasets", len(set(self.datasets)) == len(self.datasets), "distinct names"
        yield "held_out_fraction", 0 <= self.held_out_fraction < 1, "a fraction in [0, 1)"
        yield "warmup_ratio", 0 <= self.warmup_ratio < 1, "a fraction in [0, 1)"
        yield "learning_rate", self.learning_rate > 0, "a positive number"
        yield "epochs", self.epochs > 0, "a positive number"
        yield "temperature", self.temperature > 0, "a positive number"
        yield "batch_size", is_positive_int(self.batch_size) and self.batch_size > 1, "an integer of at least 2"
        yield "save_steps", is_positive_int(self.save_steps), "a positive integer"
        yield "mini_batch_size", _positive_int_or_none(self.mini_batch_size), "a positive integer or null"
        yield "mini_batch_size", (self.mini_batch_size or 0) <= self.batch_size, f"at most batch_size {self.batch_size}"
        yield "max_seq_length", _positive_int_or_none(self.max_seq_length), "a positive integer or null"
        yield "max_pairs", _positive_int_or_none(self.max_pairs), "a positive integer or null"
        yield "seed", is_int(self.seed), "an integer"
        yield "symmetric", isinstance(self.symmetric, bool), "true or false"
        yield "eval_at_end", isinstance(self.eval_at_end, bool), "true or false"
        yield "precision", self.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}"
        yield "interaction_ratio", self.interaction_ratio >= 0, "a number >= 0"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists, so the dict equals itself after a round trip through JSON)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def fingerprint(self) -> str:
        fields = self.to_dict()
        if not fields["interaction_ratio"]:  # the paper's recipe keeps the folder it had before EncodeRec+ existed
            del fields["interaction_ratio"]
        return sha256_text(json.dumps(fields, sort_keys=True))

    def view(self) -> data.TextView:
        return data.TextView(self.query_fields, self.document_fields)


def _positive_int_or_none(value: Any) -> bool:
    return value is None or is_positive_int(value)


def _names(field: str, value: Any) -> tuple[str, ...]:
    if not (isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value)):
        raise EncoderecError(f"TrainConfig.{field}: expected a non-empty list of names, got {value!r}")
    return tuple(value)


def _number(field: str, value: Any) -> float:
    # PyYAML reads 5e-5 (no dot) as a string, so numeric strings are accepted rather than rejected
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise EncoderecError(f"TrainConfig.{field}: expected a number, got {value!r}")
    return number


def load_config(path: str | os.PathLike) -> TrainConfig:
    """A TrainConfig from a YAML file of its fields; syntax errors and unknown keys name the file."""
    path = Path(path)
    if not path.is_file():
        raise EncoderecError(f"{path}: file not found; write a YAML mapping of TrainConfig fields")
    return TrainConfig.from_dict(read_yaml(path), source=str(path))


# --------------------------------------------------------------------------- training pairs


def training_pairs(cfg: TrainConfig, data_dir: str | os.PathLike | None = None) -> tuple[datasets.Dataset, dict]:
    """The ("query", "document") pairs to train on, and counts of what was kept and dropped per dataset.

    The returned dict is {"datasets": {name: {items, held_out, document_match, empty, duplicate, kept}},
    "pairs": number of pairs returned (after max_pairs, interaction pairs included), "sha256": hash of the pairs},
    and with `interaction_ratio` "interactions" (`interaction_pairs`).
    """
    view = cfg.view()
    texts = {}  # dataset name -> (dataset, queries, documents)
    for name in cfg.datasets:
        ds = data.load_dataset(name, data_dir)
        texts[name] = (ds, view.queries(ds), view.documents(ds))
    held_out_documents = {
        document
        for ds, _, documents in texts.values()
        for item, document in zip(ds.items, documents)
        if document and data.is_held_out(item["title"], cfg.held_out_fraction)
    }
    kept: dict[tuple[str, str], None] = {}  # an ordered set: corpus order, fast duplicate checks
    counts = {}
    for name, (ds, queries, documents) in texts.items():
        counts[name] = dict.fromkeys(("items", "held_out", "document_match", "empty", "duplicate", "kept"), 0)
        counts[name]["items"] = len(ds.items)
        for item, query, document in zip(ds.items, queries, documents):
            reason = _exclusion(item, query, document, cfg.held_out_fraction, held_out_documents, kept)
            counts[name][reason or "kept"] += 1
            if reason is None:
                kept[query, document] = None
    pairs = list(kept)
    if cfg.max_pairs is not None and cfg.max_pairs < len(pairs):
        # seeded, so a config always trains on the same subset; sorted, so the subset keeps the corpus order
        pairs = [pairs[i] for i in sorted(random.Random(cfg.seed).sample(range(len(pairs)), cfg.max_pairs))]
    extra = {}
    if cfg.interaction_ratio:
        interactions, extra["interactions"] = interaction_pairs(cfg, texts, held_out_documents, set(pairs))
        pairs += interactions
    corpus = {"datasets": counts, "pairs": len(pairs), "sha256": sha256_text(*(q + "\0" + d for q, d in pairs)),
              **extra}
    return datasets.Dataset.from_dict({"query": [q for q, _ in pairs], "document": [d for _, d in pairs]}), corpus


def interaction_pairs(cfg: TrainConfig, texts: dict[str, tuple[data.Dataset, list[str], list[str]]],
                      held_out_documents: set[str], metadata_pairs: set[tuple[str, str]]
                      ) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """EncodeRec+: (title of an item, document of the item a user bought next) from the training part of every
    sequence of the datasets that have interactions (leave-one-out: a user's validation and test interactions are
    never used), `interaction_ratio` of them per metadata pair (a seeded sample of the distinct pairs, in corpus
    order), to be mixed with the metadata pairs in the same batches.

    A pair is dropped when either item is held out (its text stays out of training, as in the metadata pairs), when
    its document is a held-out item's document, when a text is empty, when the two items are the same, or when it
    repeats a pair already kept. Returns the pairs and {"ratio", "candidates", "pairs", "per dataset": transitions
    seen, held-out, other exclusions}."""
    fraction = cfg.held_out_fraction
    candidates: dict[tuple[str, str], None] = {}
    seen: dict[str, dict[str, int]] = {}
    for name, (ds, queries, documents) in texts.items():
        if not ds.has_interactions:
            continue
        count = seen[name] = {"transitions": 0, "held_out": 0, "excluded": 0}
        for sequence in data.split(ds, "leave_one_out").train:
            for a, b in zip(sequence, sequence[1:]):
                count["transitions"] += 1
                query, document = queries[a], documents[b]
                if data.is_held_out(ds.items[a]["title"], fraction) or data.is_held_out(ds.items[b]["title"], fraction):
                    count["held_out"] += 1
                elif (a == b or not query or not document or document in held_out_documents
                      or (query, document) in metadata_pairs or (query, document) in candidates):
                    count["excluded"] += 1
                else:
                    candidates[query, document] = None
    pool = list(candidates)
    wanted = min(len(pool), round(cfg.interaction_ratio * len(metadata_pairs)))
    chosen = [pool[i] for i in sorted(random.Random(cfg.seed).sample(range(len(pool)), wanted))]
    if not chosen:
        raise EncoderecError(f"TrainConfig.interaction_ratio {cfg.interaction_ratio}: none of the datasets "
                             f"{', '.join(cfg.datasets)} has a training interaction to pair; add one with "
                             f"<name>.inter.json, or set interaction_ratio to 0")
    return chosen, {"ratio": cfg.interaction_ratio, "candidates": len(pool), "pairs": len(chosen),
                    "per dataset": seen}


def _exclusion(
    item: dict, query: str, document: str, fraction: float, held_out_documents: set[str], kept: dict
) -> str | None:
    """Why an item is not a training pair (a key of the counts), or None when it is one."""
    if data.is_held_out(item["title"], fraction):
        return "held_out"
    if not query or not document:
        return "empty"
    if document in held_out_documents:  # the held-out query's positive would be trained on under another title
        return "document_match"
    if (query, document) in kept:
        return "duplicate"
    return None


# --------------------------------------------------------------------------- training


def default_output_dir(cfg: TrainConfig) -> Path:
    return paths.cache_dir() / "encoderec" / f"{cfg.name}-{cfg.fingerprint()[:12]}"


def train(
    cfg: TrainConfig,
    data_dir: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Fine-tune `cfg.backbone` on the training pairs and return the folder of the final model.

    The folder loads with `SentenceTransformer(path)` and holds the model card (README.md) and
    `encoderec_config.json` (config, corpus counts, wall time, loss history, held-out metrics).
    """
    started = time.perf_counter()
    out = Path(output_dir) if output_dir is not None else default_output_dir(cfg)
    final = out / "final"
    pairs, corpus = training_pairs(cfg, data_dir)
    identity = {"config": cfg.to_dict(), "corpus": corpus}
    if _is_finished(final, identity):
        logger.info("%s: already trained with this config and corpus", final)
        return final
    _claim_output_dir(out, identity)

    trainer = build_trainer(cfg, pairs, out, data_dir, progress)
    checkpoint = _last_checkpoint(out)
    trainer.train(resume_from_checkpoint=checkpoint is not None or None)
    _rebuild_card_training_logs(trainer.model, trainer.state.log_history)
    _restore_inference_length(trainer.model, cfg)
    metrics = _held_out_metrics(trainer, cfg) if cfg.eval_at_end else {}

    if trainer.is_world_process_zero():
        record = {
            **identity,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "resumed_from": checkpoint.name if checkpoint else None,
            "world_size": trainer.args.world_size,
            "loss_history": _loss_history(trainer.state.log_history),
            "held_out_metrics": metrics,
        }
        _save_final(trainer.model, final, record)
        _remove_checkpoints(out)  # the final model supersedes them
    trainer.accelerator.wait_for_everyone()  # other processes return only once final/ exists
    return final


def build_trainer(
    cfg: TrainConfig,
    pairs: datasets.Dataset,
    output_dir: Path,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> SentenceTransformerTrainer:
    """The sentence-transformers trainer that `train` runs (model, loss, arguments, held-out evaluator)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    model = _load_model(cfg)
    train_loss = loss.contrastive_loss(model, cfg.temperature, cfg.symmetric, cfg.mini_batch_size)
    _share_negatives_across_processes(train_loss, world_size)
    return SentenceTransformerTrainer(
        model=model,
        args=_training_arguments(cfg, output_dir, pairs, world_size, progress),
        train_dataset=pairs,
        loss=train_loss,
        evaluator=held_out_evaluator(cfg, data_dir, progress) if cfg.eval_at_end else None,
    )


def _is_finished(final: Path, identity: dict) -> bool:
    """Whether final/ holds a model of this config and corpus; an error if it holds one of another."""
    record_path = final / RECORD_FILE
    if not record_path.is_file():
        return False
    record = read_json(record_path)
    if {key: record.get(key) for key in identity} != identity:
        raise EncoderecError(
            f"{record_path}: a model trained with another config or corpus is already there; "
            f"delete {final.parent} or pass another --output-dir"
        )
    return True


def _claim_output_dir(out: Path, identity: dict) -> None:
    """Record what the folder's checkpoints belong to, so a resume never continues another config's run."""
    run_file = out / "encoderec_run.json"
    if _last_checkpoint(out) and (not run_file.is_file() or read_json(run_file) != identity):
        raise EncoderecError(
            f"{out}: its checkpoints belong to another config or corpus (see {run_file.name}); "
            f"delete the folder or pass another --output-dir"
        )
    if _is_main_process():
        write_json(run_file, identity)


def _is_main_process() -> bool:
    """Rank 0 of a torchrun launch, or the only process; usable before torch.distributed is set up."""
    return int(os.environ.get("RANK", "0")) == 0


def _load_model(cfg: TrainConfig) -> SentenceTransformer:
    try:
        model = embeddings.load_encoder(cfg.backbone)  # on CUDA when there is one
    except OSError as e:  # not a folder, and not a Hugging Face id that is cached (or reachable)
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EncoderecError(
            f"TrainConfig.backbone: cannot load {cfg.backbone!r} ({first_line}); "
            "use an alias (all-MiniLM-L6-v2, all-mpnet-base-v2), a model folder or a cached Hugging Face id"
        ) from None
    if cfg.max_seq_length is not None:
        model.max_seq_length = cfg.max_seq_length
    card = model.model_card_data
    card.set_language("en")
    card.model_name = f"{cfg.name}: EncodeRec fine-tune of {cfg.backbone}"
    card.train_datasets = [{"name": f"amazon item metadata ({', '.join(cfg.datasets)})"}]
    card.local_files_only = True  # never look the backbone or the data up on the Hub
    return model


def _restore_inference_length(model: SentenceTransformer, cfg: TrainConfig) -> None:
    """Give the saved model its backbone's max_seq_length back.

    `max_seq_length` shortens training on a CPU; at inference the fine-tuned encoder then reads as much of each
    document as its base does, so the two are compared on the same text (and held-out metrics use it too).
    """
    source = embeddings.resolve_backbone(cfg.backbone)
    native = embeddings.configured_max_seq_length(source) if isinstance(source, Path) else None
    if cfg.max_seq_length is not None and native is not None:
        model.max_seq_length = native


def _share_negatives_across_processes(train_loss: torch.nn.Module, world_size: int) -> None:
    if world_size == 1:
        return
    if hasattr(train_loss, "gather_across_devices"):
        train_loss.gather_across_devices = True
    else:
        warnings.warn(
            f"mini_batch_size is null: under {world_size} processes each title only sees the "
            f"{world_size}-th part of the batch as negatives; set mini_batch_size to keep all of them",
            stacklevel=3,
        )


def _training_arguments(
    cfg: TrainConfig, out: Path, pairs: datasets.Dataset, world_size: int, progress: bool
) -> SentenceTransformerTrainingArguments:
    batch_size = _global_batch_size(cfg, pairs, world_size)
    steps = max(1, int(len(pairs) // batch_size * cfg.epochs))
    distributed_on_cpu = world_size > 1 and not torch.cuda.is_available()
    return SentenceTransformerTrainingArguments(
        output_dir=str(out),
        # accelerate hands each process whole batches, so per-device batch * processes = cfg.batch_size
        per_device_train_batch_size=batch_size // world_size,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a fraction of the total steps
        seed=cfg.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # a repeated text in a batch would be a false negative
        dataloader_drop_last=True,  # every step gets a full batch of negatives
        dataloader_pin_memory=torch.cuda.is_available(),
        logging_steps=max(1, steps // LOG_POINTS),
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        eval_strategy="no",
        report_to="none",
        bf16=cfg.precision == "bf16",  # autocast around each forward pass (accelerate), weights kept in float32
        use_cpu=not torch.cuda.is_available(),  # transformers refuses bf16 without a GPU unless told it is a CPU
        disable_tqdm=not progress,
        ddp_backend="gloo" if distributed_on_cpu else None,
    )


def _global_batch_size(cfg: TrainConfig, pairs: datasets.Dataset, world_size: int) -> int:
    """cfg.batch_size, or less (with a warning) when the pairs cannot fill one batch."""
    batch_size = cfg.batch_size
    # NO_DUPLICATES never puts two pairs sharing a text into one batch, so only the pairs whose texts occur
    # nowhere else are sure to fit together: with fewer of them than a batch, no batch might ever fill up
    fitting = _pairs_with_unique_texts(pairs)
    if fitting < batch_size:
        batch_size = fitting - fitting % world_size
        warnings.warn(
            f"only {fitting} training pairs fit in one batch ({len(pairs)} pairs, {len(pairs) - fitting} of them "
            f"sharing a text), fewer than batch_size {cfg.batch_size}: training with batches of {batch_size}, "
            "so each title sees fewer negatives than configured",
            stacklevel=3,
        )
    if batch_size < max(world_size, 2):
        raise EncoderecError(
            f"{len(pairs)} training pairs for datasets {', '.join(cfg.datasets)}: too few for in-batch negatives "
            "(check the data directory, held_out_fraction and max_pairs)"
        )
    if batch_size % world_size:
        raise EncoderecError(
            f"TrainConfig.batch_size: {batch_size} pairs cannot be split over {world_size} processes; "
            f"use a multiple of {world_size}"
        )
    return batch_size


def _pairs_with_unique_texts(pairs: datasets.Dataset) -> int:
    occurrences = Counter(pairs["query"]) + Counter(pairs["document"])
    return sum(occurrences[q] == 1 and occurrences[d] == 1 for q, d in zip(pairs["query"], pairs["document"]))


def _last_checkpoint(out: Path) -> Path | None:
    checkpoints = [p for p in out.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(checkpoints, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _rebuild_card_training_logs(model: SentenceTransformer, log_history: list[dict]) -> None:
    """The card's loss table from the trainer state, which (unlike the card) survives a resume."""
    model.model_card_data.training_logs = [
        {"Epoch": entry.get("epoch", 0), "Step": entry["step"], "Training Loss": entry["loss"]}
        for entry in log_history
        if "loss" in entry
    ]


def _loss_history(log_history: list[dict]) -> list[dict]:
    return [{"step": entry["step"], "loss": entry["loss"]} for entry in log_history if "loss" in entry]


# --------------------------------------------------------------------------- held-out evaluation


def held_out_evaluator(
    cfg: TrainConfig, data_dir: str | os.PathLike | None = None, progress: bool = False
) -> SequentialEvaluator | None:
    """Title -> document retrieval among the held-out items, one evaluator per dataset with descriptions."""
    view = cfg.view()
    evaluators = []
    for name in cfg.datasets:
        ds = data.load_dataset(name, data_dir)
        if not any(data.clean_text(item.get("description")) for item in ds.items):
            continue
        chosen = data.held_out_items(ds, cfg.held_out_fraction, view)
        if not chosen:
            continue
        queries, documents = view.queries(ds), view.documents(ds)
        evaluators.append(
            InformationRetrievalEvaluator(
                queries={f"q{i}": queries[i] for i in chosen},
                corpus={f"d{i}": documents[i] for i in chosen},
                relevant_docs={f"q{i}": {f"d{i}"} for i in chosen},
                name=name,
                show_progress_bar=progress,
                batch_size=64,
            )
        )
    return SequentialEvaluator(evaluators) if evaluators else None


def _held_out_metrics(trainer: SentenceTransformerTrainer, cfg: TrainConfig) -> dict[str, float]:
    """Run the evaluator (all processes take part under torchrun) and keep its per-dataset metrics."""
    if trainer.evaluator is None:
        return {}
    metrics = trainer.evaluate()
    prefixes = tuple(f"eval_{name}_" for name in cfg.datasets)
    return {key.removeprefix("eval_"): value for key, value in metrics.items() if key.startswith(prefixes)}


# --------------------------------------------------------------------------- the final folder


def _save_final(model: SentenceTransformer, final: Path, record: dict) -> None:
    """Write the model, its card and the record into a temporary sibling, then rename it into place."""
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        model.save_pretrained(str(tmp))  # also renders the model card: data, hyperparameters, loss, metrics
        write_json(tmp / RECORD_FILE, record)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_checkpoints(out: Path) -> None:
    for checkpoint in out.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
