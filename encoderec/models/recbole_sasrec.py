"""RecBole's SASRec, run on our splits and read with our metric code: a peer implementation of our ID-only SASRec.

    model = RecBoleSASRec(RecBoleSASRecConfig(seed=0)).fit(split, n_items)
    ranks, _ = model.rank(split.test)        # 0-based rank of each user's next item among ALL items (history kept)

RecBole (Zhao et al. 2021; the `recbole` package, version 1.2.1, an optional extra: `make recbole`) is the library
that produced the UniSRec paper's tables and the SASRec rows many later papers copy. Its SASRec (Kang & McAuley
2018) here is trained by RecBole's own `Trainer` on RecBole's own data pipeline, with the hyperparameters of our
ID-only SASRec (`UniSRecConfig`'s names: hidden_size, layers, heads, inner_size, dropout for hidden and attention,
max_len, lr, batch_size, epochs, patience):

    s = LayerNorm(E_{i_1..i_T} + P_{1..T}), dropout, `layers` post-norm transformer layers (causal attention, GELU)
    u = the output at the last item;   score(i) = u . E_i   (inner product)
    loss = cross-entropy of the next item over all items, for every prefix of every training sequence

How the split stays ours: a leave-one-out `Split` is written as RecBole atomic files (<name>.inter with each user's
sequence, the timestamp being the position in it, and <name>.item listing every catalogue item, so items no one
bought are candidates too), and RecBole's "LS" split ordered by time ("TO") cuts the same last item for test and the
one before for validation, for every user with at least four items (every user of a 5-core catalogue). RecBole
keeps at least one training example per user, so a user with three items has no validation example there and
trains on what is our validation target ([a] -> b); their test example is the same ([a, b] -> c), and the result
counts them ("users_without_recbole_validation"). RecBole's early stopping ranks the validation users among all items with their history
kept (its full sort does not mask the history of sequential models), so a run's config says `exclude_history:
false`; the read-out (`rank`) scores every item with the trained model's `full_sort_predict` and ranks like our
models, by the number of items scoring above the target, so the metrics are ours (`encoderec.models.metrics`).

Differences from our ID-only SASRec (`unisrec`, mode "id"), stated so a gap between the two has its candidates:
inner-product scores (ours: cosine / temperature 0.07); RecBole's initialisation (normal(0, 0.02) for every linear
layer too), Adam without our bucketed batches (RecBole pads every batch to max_len); fp32 (RecBole's CPU training has
no autocast); its own random streams (the same seed is not the same draw as ours).

Compatibility, stated: RecBole 1.2.1 predates numpy 2 and pandas 3. Its `Config` aliases numpy names numpy 2
removed (np.float_, ...): `_Config` sets the aliases numpy 2 still has. Its `Dataset` fills missing values of float
fields with chained in-place `fillna`, a no-op under pandas 3's copy-on-write; our files have no missing values.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

from encoderec.core.errors import Checked, EncoderecError, is_fraction, is_int, is_number, positive_ints
from encoderec.core.io import sha256_text
from encoderec.data.dataset import Example, Split, check_example_items, length_batches
from encoderec.models import fitting
from encoderec.models.unisrec import UniSRecConfig, collate

# The version of what this module computes: part of every cached or archived result's key (see `unisrec`).
RESULT_VERSION = 1
RECBOLE_VERSION = "1.2.1"  # the version this adapter is written against (make recbole installs it)
_DATASET = "encoderec"  # the name of the atomic files written for RecBole
_OURS = UniSRecConfig(mode="id")  # our ID-only SASRec, whose defaults RecBole's run takes


@dataclass
class RecBoleSASRecConfig(Checked):
    """Defaults are our ID-only SASRec's (`UniSRecConfig`), so the two differ only where the module docstring says."""

    hidden_size: int = _OURS.hidden_size
    layers: int = _OURS.layers
    heads: int = _OURS.heads
    inner_size: int = _OURS.inner_size
    dropout: float = _OURS.dropout  # hidden and attention
    max_len: int = _OURS.max_len
    lr: float = _OURS.lr
    batch_size: int = _OURS.batch_size
    epochs: int = _OURS.epochs
    patience: int = _OURS.patience
    eval_batch_size: int = _OURS.eval_batch_size
    exclude_history: bool = False  # RecBole's validation keeps the history; no other value is valid
    seed: int = 0
    device: str | None = None  # None: CUDA when available
    precision: str = "fp32"  # RecBole trains in fp32 on a CPU; no other value is valid

    def _rules(self):
        """(field, whether its value is valid, what a valid value is), in order."""
        yield from positive_ints(self, ("hidden_size", "layers", "heads", "inner_size", "max_len", "batch_size",
                                        "epochs", "patience", "eval_batch_size"))
        yield "hidden_size", self.hidden_size % self.heads == 0, "a multiple of heads"
        yield "dropout", is_fraction(self.dropout), "in [0, 1)"
        yield "lr", is_number(self.lr) and self.lr > 0, "a positive number"
        yield "exclude_history", self.exclude_history is False, "false (RecBole's early stopping keeps the history)"
        yield "seed", is_int(self.seed), "an integer"
        yield "precision", self.precision == "fp32", "fp32 (RecBole trains in fp32)"

    def recbole(self, data_path: Path, device: torch.device) -> dict[str, Any]:
        """RecBole's config dict for this config: SASRec's hyperparameters, the data files and the protocol."""
        return {
            "data_path": str(data_path), "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
            "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
            "metrics": ["Recall", "NDCG"], "topk": [10], "valid_metric": "NDCG@10", "metric_decimal_place": 8,
            "n_layers": self.layers, "n_heads": self.heads, "hidden_size": self.hidden_size,
            "inner_size": self.inner_size, "hidden_dropout_prob": self.dropout, "attn_dropout_prob": self.dropout,
            "MAX_ITEM_LIST_LENGTH": self.max_len, "loss_type": "CE", "train_neg_sample_args": None,
            "learning_rate": self.lr, "train_batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
            "epochs": self.epochs, "stopping_step": self.patience, "seed": self.seed, "reproducibility": True,
            "device": str(device), "use_gpu": device.type == "cuda", "show_progress": False, "log_wandb": False,
            "checkpoint_dir": str(data_path / "checkpoints"), "state": "WARNING",
        }


def recbole_modules() -> Any:
    """The recbole package, or a one-line error saying how to install it."""
    try:
        import recbole
        import recbole.config  # noqa: F401
    except ImportError as error:
        raise EncoderecError(f"RecBole's SASRec needs the recbole extra ({error}); install it with `make recbole`") from None
    if recbole.__version__ != RECBOLE_VERSION:
        raise EncoderecError(f"recbole {recbole.__version__} is installed; this adapter is written against "
                             f"{RECBOLE_VERSION}: `make recbole` installs it")
    return recbole


def sequences_of(split: Split) -> list[list[int]]:
    """Each user's whole sequence, from a leave-one-out split (test history + test target); an error for any other
    split, since RecBole's "LS" split is leave-one-out."""
    sequences = []
    for user, (train, valid, test) in enumerate(zip(split.train, split.valid, split.test)):
        if not (valid.user == test.user == user and valid.history == train and test.history == [*train, valid.target]):
            raise EncoderecError(f"RecBole's SASRec runs on leave-one-out splits only; user {user} is not split "
                                 "that way (use data.split(dataset, 'leave_one_out'))")
        sequences.append([*test.history, test.target])
    if len(split.train) != len(split.test) or len(split.valid) != len(split.test):
        raise EncoderecError("RecBole's SASRec runs on leave-one-out splits only: one validation and one test "
                             "example per user")
    return sequences


def write_atomic_files(sequences: Sequence[Sequence[int]], n_items: int, folder: Path) -> Path:
    """RecBole's atomic files for `sequences` in folder/<_DATASET>/: the interactions (timestamp = position) and
    every catalogue item. Returns the data path RecBole's config takes."""
    target = folder / _DATASET
    target.mkdir(parents=True, exist_ok=True)
    with open(target / f"{_DATASET}.inter", "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        f.writelines(f"{user}\t{item}\t{t}\n" for user, seq in enumerate(sequences) for t, item in enumerate(seq))
    with open(target / f"{_DATASET}.item", "w") as f:
        f.write("item_id:token\n")
        f.writelines(f"{item}\n" for item in range(n_items))
    return folder


class RecBoleSASRec:
    """RecBole's SASRec fitted by RecBole's trainer (early stopping on its validation NDCG@10), ranked by us.

    After `fit`, `history` holds one dict per epoch (loss, seconds, valid Recall@10 / NDCG@10 as RecBole computed
    them) and `best_epoch` the epoch whose weights the model keeps."""

    def __init__(self, config: RecBoleSASRecConfig | None = None) -> None:
        self.config = config or RecBoleSASRecConfig()
        self.model: torch.nn.Module | None = None
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self._to_recbole: torch.Tensor | None = None  # our item id + 1 (0: padding) -> RecBole's item id
        self._order: torch.Tensor | None = None  # RecBole's id of each of our items, in our order

    @property
    def device(self) -> torch.device:
        return fitting.device_of(self.config)

    def fit(self, split: Split, n_items: int, progress: bool = True) -> RecBoleSASRec:
        recbole_modules()
        from recbole.data import create_dataset, data_preparation
        from recbole.model.sequential_recommender import SASRec
        from recbole.utils import init_seed

        sequences = sequences_of(split)
        check_example_items(list(split.test), n_items)
        # RecBole writes its logs, TensorBoard events and data caches into the working directory, and reads
        # --key=value arguments of the command line as settings (ours are not its); its warnings are those of the
        # module docstring's compatibility notes and of deprecations in torch
        with (tempfile.TemporaryDirectory(prefix="recbole-") as tmp, contextlib.chdir(tmp),
              mock.patch.object(sys, "argv", sys.argv[:1]), warnings.catch_warnings()):
            warnings.filterwarnings("ignore", module=r"recbole\.")
            config = _config_class()(model="SASRec", dataset=_DATASET,
                                     config_dict=self.config.recbole(write_atomic_files(sequences, n_items, Path(tmp)),
                                                                     self.device))
            init_seed(config["seed"], config["reproducibility"])
            dataset = create_dataset(config)
            train, valid, _ = data_preparation(config, dataset)
            init_seed(config["seed"], config["reproducibility"])
            self.model = SASRec(config, train.dataset).to(self.device)
            trainer = _trainer_class()(config, self.model)
            trainer.fit(train, valid, verbose=False, saved=True, show_progress=progress)
        self.model.load_state_dict(trainer.best_state)
        self.model.eval()
        self.history, self.best_epoch = trainer.history, trainer.best_epoch
        order = dataset.token2id("item_id", [str(i) for i in range(n_items)])
        self._order = torch.as_tensor(order, device=self.device)
        self._to_recbole = torch.cat([torch.zeros(1, dtype=torch.long, device=self.device), self._order])
        return self

    @torch.no_grad()
    def rank(self, examples: Sequence[Example], progress: bool = False) -> tuple[np.ndarray, None]:
        """(ranks, None): the 0-based rank of each example's target among all our items by RecBole's scores, the
        history kept (the protocol its early stopping used); every hit counts 1."""
        if self.model is None:
            raise EncoderecError("rank: the model is not fitted; call fit(split, n_items) first")
        from recbole.data.interaction import Interaction

        model, ranks = self.model, np.empty(len(examples), dtype=np.int64)
        lengths = np.array([min(len(e.history), self.config.max_len) for e in examples])
        for idx in length_batches(lengths, self.config.eval_batch_size):
            histories, seq_lengths, targets = collate([examples[i] for i in idx], self.config.max_len)
            # collate pads with -1: +1 makes padding 0, which RecBole's id table maps to its own padding id 0
            items = self._to_recbole[(histories + 1).to(self.device)]
            scores = model.full_sort_predict(Interaction({model.ITEM_SEQ: items,
                                                          model.ITEM_SEQ_LEN: seq_lengths.to(self.device)}))
            scores = scores[:, self._order]  # our items, in our order (RecBole's padding id dropped)
            target_scores = scores.gather(1, targets.to(self.device)[:, None])
            ranks[idx] = (scores > target_scores).sum(1).cpu().numpy()
        return ranks, None


def fit_and_rank(split: Split, n_items: int, config: RecBoleSASRecConfig, cache_dir: str | os.PathLike | None = None,
                 progress: bool = True, read_only: bool = False) -> dict[str, Any] | None:
    """Fit, then rank the validation and test examples, cached in <cache dir>/recbole_sasrec/ (`fitting.fit_and_rank`;
    the key adds RecBole's version). The result also counts the users RecBole validates on less than we do (module
    docstring)."""
    if not read_only:
        recbole_modules()
    short = sum(len(train) < 2 for train in split.train)
    return fitting.fit_and_rank(RecBoleSASRec(config), "recbole_sasrec", RESULT_VERSION, split, (n_items,),
                                sha256_text(f"recbole {RECBOLE_VERSION}", str(n_items)), cache_dir, progress,
                                read_only, also=lambda _: {"users_without_recbole_validation": short})


# --------------------------------------------------------------------------- RecBole under numpy 2


def _numpy2_aliases() -> None:
    """The numpy aliases RecBole 1.2.1 uses (np.float, np.bool, ...), pointing at what numpy 2 still has."""
    for alias, name in (("bool", "bool_"), ("int", "int_"), ("float", "float64"), ("complex", "complex128"),
                        ("object", "object_"), ("str", "str_"), ("long", "int_"), ("unicode", "str_")):
        if alias not in np.__dict__:
            setattr(np, alias, getattr(np, name))


def _config_class() -> type:
    from recbole.config import Config

    class Config2(Config):
        def compatibility_settings(self) -> None:  # RecBole's own one reads np.float_, gone in numpy 2
            _numpy2_aliases()

    return Config2


def _trainer_class() -> type:
    from recbole.trainer import Trainer

    class Trainer2(Trainer):
        """RecBole's trainer that keeps the best epoch's weights in memory (its own checkpoint file needs
        torch.load(weights_only=False)) and a per-epoch history in our format."""

        def __init__(self, config: Any, model: torch.nn.Module) -> None:
            super().__init__(config, model)
            self.history: list[dict[str, Any]] = []
            self.best_state: dict[str, Any] | None = None
            self.best_epoch = -1

        def _train_epoch(self, train_data: Any, epoch_idx: int, loss_func: Any = None,
                         show_progress: bool = False) -> float:
            start = time.perf_counter()
            loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
            self.history.append({"epoch": epoch_idx, "loss": float(loss) / len(train_data),
                                 "seconds": time.perf_counter() - start})
            return loss

        def _valid_epoch(self, valid_data: Any, show_progress: bool = False) -> tuple[float, dict[str, float]]:
            start = time.perf_counter()
            score, result = super()._valid_epoch(valid_data, show_progress)
            self.history[-1] |= {"valid Recall@10": float(result["recall@10"]),
                                 "valid NDCG@10": float(result["ndcg@10"]),
                                 "valid seconds": time.perf_counter() - start}
            return score, result

        def _save_checkpoint(self, epoch: int, verbose: bool = True, **kwargs: Any) -> None:
            self.best_state, self.best_epoch = copy.deepcopy(self.model.state_dict()), epoch

    return Trainer2
