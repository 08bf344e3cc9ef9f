"""UniSRec on frozen text embeddings, and ID-only SASRec, with one trainer and full-ranking evaluation.

    model = SequentialRecommender(UniSRecConfig(mode="inductive")).fit(split, n_items, text_embeddings)
    ranks, _ = model.rank(split.test)              # 0-based rank of each user's next item among ALL items

Item representation e_i, by `mode`:

    inductive     e_i = MoE(t_i)                     t_i = the item's frozen text embedding
    transductive  e_i = MoE(t_i) + v_i               v_i = a learned item-ID embedding
    id            e_i = v_i                          (SASRec: no text at all)

The adaptor's input t_i is the encoder's embedding after `text_norm`, fitted on all the catalogue's items (their
text only, so nothing of the interactions leaks; `normalise_text`):

    none      x_i                                    as the encoder gives it (ours are L2-normalised: |x_i| = 1)
    scaled    x_i sqrt(d)                            the same directions, each coordinate of unit mean square
    standard  (x_i - mean) / std, per coordinate     centred, unit variance (a coordinate whose std is below 1e-6
                                                     of the largest is only centred)
    whiten    (x_i - mean) V diag(lambda)^(-1/2)     PCA whitening (Su et al. 2021, "BERT-whitening"): centred,
                                                     decorrelated, unit variance; components with lambda below
                                                     1e-6 of the largest are dropped

UniSRec learns its whitening (the bias b_k below) from zero; a sentence encoder's embeddings are anisotropic (they
share a large mean direction and few directions carry most of their variance), so `text_norm` asks whether the
adaptor needs help to undo that.

MoE is UniSRec's adaptor: `experts` parametric-whitening experts, expert k = (drop(t) - b_k) W_k (b_k learned,
W_k text_dim x hidden without bias), mixed by a gate softmax(t W_g + noise), the noise N(0, 1) scaled by
softplus(t W_n) + 0.01 in training only.

Sequence encoder (SASRec): s = LayerNorm(e_{i_1..i_T} + p_{1..T}), dropout, `layers` post-norm transformer layers
with causal attention (GELU, `inner_size` feed-forward), and the user's vector u = the output at the last item.

Loss: cross-entropy of the next item over all items on cos(u, e_i) / temperature, for every prefix of every
training sequence (history cut to its last `max_len` items). Adam; after each epoch, NDCG@10 on the validation
examples; training stops after `patience` epochs without a better one and keeps the best epoch's weights.

Differences from RecBole's UniSRec, chosen for speed on a CPU and stated here: the adaptor is applied once per
step to all items, so an item in a history and the same item as a candidate share one dropout draw, and the experts
share one dropout mask (RecBole draws one per expert: drawing the masks took a third of a training step); batches are
built from examples of similar length (shuffled within buckets) so a batch is padded to its own longest history,
not to max_len. The ID-only SASRec uses the same cosine / temperature scoring, so only the item representation
differs between the three modes.

`fast` (off by default; what every run before it computed): two CPU shortcuts that change no formula but the
numbers. Dropout keeps an element where u >= p for u ~ U(0, 1) (`UniformDropout`: the same Bernoulli(1 - p)
masks as torch's dropout, from another random stream, drawn about 4x faster on a CPU than its bernoulli_), in every
dropout module but the attention's own; and the training logits cos(u, e_i) / temperature are a bf16 matrix
product under bf16 autocast (the loss itself in fp32). Ranking is the same in both: fp32 scores.

Ranking (the protocol, `exclude_history`): every item scores and rank = number of the items scoring above the
target, among all items but the user's history items (True, the default: an item the user has already bought is no
recommendation) or among all items (False: RecBole 1.0's full sort for sequential models, the UniSRec paper's
protocol, where a history item the model still scores high pushes the target down). The same protocol ranks the
validation examples of early stopping; `fit_and_rank` also ranks the test examples of a run that excludes the
history with the history kept ("test_ranks_history_kept"), so every run is read under both protocols.

Repeated items (Amazon 2023 without a k-core filter has users who buy an item again) are kept as they are: in the splits, in training prefixes (as history and as targets), and in evaluation, where a target
that is also in the user's history is still ranked, against the items outside the history (excluding it with the
history would make every repeat purchase a certain miss). TIGER needs no rule: it does not mask the history.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from encoderec.core.errors import Checked, EncoderecError, is_fraction, is_int, is_number, positive_ints
from encoderec.core.io import KEYED_WHEN_SET, sha256_array, sha256_text
from encoderec.core.precision import PRECISIONS, autocast
from encoderec.data.dataset import (
    Example,
    Split,
    check_example_items,
    length_batches,
    prefix_examples,
    right_padded,
)
from encoderec.models import fitting
from encoderec.models.fitting import (
    device_of,
    precision_of,
    run_epoch,
    seeded,
    train_with_early_stopping,
    validation_scores,
)

# The version of what this module computes: part of the key of every cached or archived result of it. Bump it
# when a change moves its outputs (tests/test_golden.py fails until you do and re-record); a change that
# moves nothing (a refactor, a docstring, a speed-up with the same numbers) keeps it, and the archive with it.
RESULT_VERSION = 1
MODES = ("inductive", "transductive", "id")
TEXT_NORMS = ("none", "scaled", "standard", "whiten")


@dataclass
class UniSRecConfig(Checked):
    """Defaults are UniSRec's (reference-settings.md, UniSRec section)."""

    mode: str = "inductive"
    hidden_size: int = 300
    layers: int = 2
    heads: int = 2
    inner_size: int = 256
    dropout: float = 0.5  # hidden and attention
    adaptor_dropout: float = 0.2
    experts: int = 8
    temperature: float = 0.07
    max_len: int = 50
    lr: float = 1e-3
    batch_size: int = 2048
    epochs: int = 300
    patience: int = 10
    eval_batch_size: int = 1024
    exclude_history: bool = True  # the ranking protocol (module docstring); False: RecBole's, the UniSRec paper's
    text_norm: str = "none"  # what the adaptor sees of the text embeddings: one of TEXT_NORMS (module docstring)
    fast: bool = field(default=False, metadata=KEYED_WHEN_SET)  # the CPU shortcuts of the module docstring
    seed: int = 0
    device: str | None = None  # None: CUDA when available
    precision: str = "auto"  # "bf16" autocast, "fp32", or "auto": bf16 where the device computes it natively

    def _rules(self):
        """(field, whether its value is valid, what a valid value is), in order."""
        yield "mode", self.mode in MODES, f"one of {', '.join(MODES)}"
        yield from positive_ints(self, ("layers", "heads", "inner_size", "experts", "max_len", "batch_size", "epochs",
                                        "patience", "eval_batch_size", "hidden_size"))
        yield "hidden_size", self.hidden_size % self.heads == 0, "a multiple of heads"
        yield "temperature", is_number(self.temperature) and self.temperature > 0, "a positive number"
        yield "lr", is_number(self.lr) and self.lr > 0, "a positive number"
        yield "dropout", is_fraction(self.dropout), "in [0, 1)"
        yield "adaptor_dropout", is_fraction(self.adaptor_dropout), "in [0, 1)"
        yield "exclude_history", isinstance(self.exclude_history, bool), "true or false"
        yield "text_norm", self.text_norm in TEXT_NORMS, f"one of {', '.join(TEXT_NORMS)}"
        yield "fast", isinstance(self.fast, bool), "true or false"
        yield "seed", is_int(self.seed), "an integer"
        yield "precision", self.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}"


# --------------------------------------------------------------------------- the model


class UniformDropout(nn.Dropout):
    """Dropout whose mask is u >= p, u ~ U(0, 1): torch's Bernoulli(1 - p) mask from uniform draws, which a CPU
    makes about 4x faster than torch's bernoulli_ (`fast` in the module docstring)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        return x * torch.rand(x.shape, device=x.device).ge_(self.p).mul_(1 / (1 - self.p)).to(x.dtype)


class MoEAdaptor(nn.Module):
    """UniSRec's mixture of parametric-whitening experts: text_dim -> hidden."""

    def __init__(self, text_dim: int, hidden: int, experts: int, dropout: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(experts, text_dim))
        self.weight = nn.Parameter(torch.randn(experts, text_dim, hidden) * 0.02)
        self.gate = nn.Parameter(torch.zeros(text_dim, experts))
        self.noise = nn.Parameter(torch.zeros(text_dim, experts))
        self.dropout = nn.Dropout(dropout)

    def forward(self, t: Tensor) -> Tensor:
        logits = t @ self.gate
        if self.training:
            logits = logits + torch.randn_like(logits) * (F.softplus(t @ self.noise) + 1e-2)
        gates = logits.softmax(-1)  # (n, experts)
        experts, text_dim, hidden = self.weight.shape
        # (drop(t) - b_k) W_k = drop(t) W_k - b_k W_k: one matrix product for all experts
        projected = (self.dropout(t) @ self.weight.transpose(0, 1).reshape(text_dim, experts * hidden))
        shifts = torch.einsum("ed,edh->eh", self.bias, self.weight)
        return torch.einsum("ne,neh->nh", gates, projected.view(-1, experts, hidden) - shifts)


class UniSRec(nn.Module):
    """Item representations (by mode) and the SASRec sequence encoder; item ids are 1..n, 0 pads."""

    def __init__(self, cfg: UniSRecConfig, n_items: int, text: Tensor | None) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.mode != "id":
            self.register_buffer("text", text)  # (n_items, text_dim), frozen
            self.adaptor = MoEAdaptor(text.shape[1], cfg.hidden_size, cfg.experts, cfg.adaptor_dropout)
        if cfg.mode != "inductive":
            self.item_id = nn.Embedding(n_items, cfg.hidden_size)
            nn.init.normal_(self.item_id.weight, std=0.02)
        self.position = nn.Embedding(cfg.max_len, cfg.hidden_size)
        nn.init.normal_(self.position.weight, std=0.02)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=1e-12)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.hidden_size, cfg.heads, cfg.inner_size, cfg.dropout,
                                           activation="gelu", layer_norm_eps=1e-12, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        if cfg.fast:
            for module in list(self.modules()):
                for name, child in module.named_children():
                    if type(child) is nn.Dropout:
                        setattr(module, name, UniformDropout(child.p))

    def items(self) -> Tensor:
        """(n_items, hidden): every item's representation e_i."""
        if self.cfg.mode == "id":
            return self.item_id.weight
        e = self.adaptor(self.text)
        return e + self.item_id.weight if self.cfg.mode == "transductive" else e

    def users(self, histories: Tensor, lengths: Tensor, items: Tensor) -> Tensor:
        """(batch, hidden) user vectors from right-padded item histories (0-based item ids, -1 pads)."""
        steps = histories.shape[1]
        x = items[histories.clamp(min=0)] + self.position.weight[:steps]
        x = self.dropout(self.norm(x))
        causal = nn.Transformer.generate_square_subsequent_mask(steps, device=x.device)
        out = self.encoder(x, mask=causal, is_causal=True)  # right padding: real items never see a pad
        return out[torch.arange(len(out), device=out.device), lengths - 1]

    def logits(self, histories: Tensor, lengths: Tensor) -> Tensor:
        """(batch, n_items) cos(u, e_i) / temperature."""
        items = self.items()
        users = self.users(histories, lengths, items)
        if self.cfg.fast and self.training:  # the autocast's precision: a loss needs no exact order of scores
            return (F.normalize(users, dim=-1) @ F.normalize(items, dim=-1).T / self.cfg.temperature).float()
        # float32 even under bf16 autocast: with bf16's 8-bit mantissa, nearby items' scores would tie in ranking
        with torch.autocast(users.device.type, enabled=False):
            return F.normalize(users.float(), dim=-1) @ F.normalize(items.float(), dim=-1).T / self.cfg.temperature


# --------------------------------------------------------------------------- batches


def collate(examples: Sequence[Example], max_len: int) -> tuple[Tensor, Tensor, Tensor]:
    """(histories right-padded with -1 to the batch's longest, their lengths, targets) for a batch."""
    histories = [e.history[-max_len:] for e in examples]
    lengths = torch.tensor([len(h) for h in histories])
    if lengths.min() < 1:
        raise EncoderecError("an example has an empty history; every example needs at least one earlier item")
    return torch.from_numpy(right_padded(histories, -1)), lengths, torch.tensor([e.target for e in examples])


# --------------------------------------------------------------------------- training and ranking


class SequentialRecommender:
    """Fit with early stopping on validation NDCG@10 (`fitting.train_with_early_stopping`), then rank the next item
    of any examples.

    After `fit`, `history` holds one dict per epoch (loss, seconds, valid Recall@10 / NDCG@10) and `best_epoch`
    the epoch whose weights the model keeps.
    """

    def __init__(self, config: UniSRecConfig | None = None) -> None:
        self.config = config or UniSRecConfig()
        self.model: UniSRec | None = None
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None

    @property
    def device(self) -> torch.device:
        return device_of(self.config)

    def fit(self, split: Split, n_items: int, text_embeddings: np.ndarray | None = None,
            progress: bool = True) -> SequentialRecommender:
        cfg = self.config
        text = self._text(text_embeddings, n_items)
        train = prefix_examples(split.train)
        if not train or not split.valid:
            raise EncoderecError("fit: the split has no training prefixes or no validation examples")
        check_example_items(train + list(split.valid), n_items)
        rng = np.random.default_rng(cfg.seed)
        with seeded(cfg.seed, self.device):
            self.model = UniSRec(cfg, n_items, text).to(self.device)
            optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
            lengths = _lengths(train, cfg.max_len)
            self.history, self.best_epoch = train_with_early_stopping(
                self.model, lambda: run_epoch(length_batches(lengths, cfg.batch_size, rng),
                                              lambda idx: self._loss([train[i] for i in idx]), optimizer),
                lambda: validation_scores(self.rank(split.valid)), cfg.epochs, cfg.patience,
                desc=f"UniSRec ({cfg.mode})", progress=progress)
        return self

    def _text(self, text_embeddings: np.ndarray | None, n_items: int) -> Tensor | None:
        if self.config.mode == "id":
            return None
        if text_embeddings is None:
            raise EncoderecError(f"mode {self.config.mode!r} needs text embeddings; pass one row per item")
        text = np.asarray(text_embeddings, dtype=np.float32)
        if text.ndim != 2 or len(text) != n_items or not np.isfinite(text).all():
            raise EncoderecError(f"text embeddings: expected {n_items} finite rows (one per item), got shape "
                                 f"{text.shape}")
        return torch.from_numpy(normalise_text(text, self.config.text_norm))

    def _loss(self, batch: list[Example]) -> Tensor:
        """Cross-entropy of each example's next item over all items."""
        histories, lengths, targets = (t.to(self.device) for t in collate(batch, self.config.max_len))
        # autocast around each step, never around the epoch: it caches the bf16 copy of each weight until it exits
        with autocast(self.device, precision_of(self.config)):
            return F.cross_entropy(self.model.logits(histories, lengths), targets)

    @torch.no_grad()
    def rank(self, examples: Sequence[Example], progress: bool = False,
             exclude_history: bool | None = None) -> tuple[np.ndarray, None]:
        """(ranks, None): the 0-based rank of each example's target among all items, with its history items excluded
        when `exclude_history` (default: the config's protocol; the target itself is always ranked, also when it
        repeats a history item); every hit counts 1."""
        if self.model is None:
            raise EncoderecError("rank: the model is not fitted; call fit(split, n_items, text_embeddings) first")
        was_training = self.model.training
        self.model.eval()
        ranks = np.empty(len(examples), dtype=np.int64)
        parts = length_batches(_lengths(examples, self.config.max_len), self.config.eval_batch_size)
        for idx in tqdm(parts, desc="ranking", disable=not progress, leave=False):
            batch = [examples[i] for i in idx]
            histories, lengths, targets = (t.to(self.device) for t in collate(batch, self.config.max_len))
            with autocast(self.device, precision_of(self.config)):
                scores = self.model.logits(histories, lengths)
            target_scores = scores.gather(1, targets[:, None])  # before the mask: a repeated target still counts
            if self.config.exclude_history if exclude_history is None else exclude_history:
                scores = self._without_history(scores, batch)
            ranks[idx] = (scores > target_scores).sum(1).cpu().numpy()
        self.model.train(was_training)
        return ranks, None

    def _without_history(self, scores: Tensor, batch: list[Example]) -> Tensor:
        """`scores` with every history item of each row at -inf: the whole history, also beyond max_len, in one
        indexing operation (a loop of per-user assignments was most of a validation pass on a GPU)."""
        rows = torch.repeat_interleave(torch.arange(len(batch)), torch.tensor([len(e.history) for e in batch]))
        items = torch.tensor([i for e in batch for i in e.history])
        return scores.index_put((rows.to(self.device), items.to(self.device)),
                                torch.tensor(-math.inf, device=self.device))


def fit_and_rank(split: Split, n_items: int, text_embeddings: np.ndarray | None, config: UniSRecConfig,
                 cache_dir: str | os.PathLike | None = None, progress: bool = True,
                 read_only: bool = False) -> dict[str, Any] | None:
    """Fit, then rank the validation and test examples, cached in <cache dir>/unisrec/ (`fitting.fit_and_rank`:
    the key hashes RESULT_VERSION, the config without the device, the item count, the text embeddings and the split).
    `read_only`: read the cache, train nothing (None if absent). A run that excludes the history also gives its
    test ranks with the history kept ("test_ranks_history_kept": the reference protocol on the same model)."""
    text_key = "none" if config.mode == "id" or text_embeddings is None else sha256_array(text_embeddings)

    def history_kept(recommender: SequentialRecommender) -> dict[str, list[int]]:
        if not config.exclude_history:
            return {}
        return {"test_ranks_history_kept": recommender.rank(split.test, exclude_history=False)[0].tolist()}

    return fitting.fit_and_rank(SequentialRecommender(config), "unisrec", RESULT_VERSION, split, (n_items, text_embeddings),
                                sha256_text(text_key, str(n_items)), cache_dir, progress, read_only,
                                also=history_kept)


def normalise_text(x: np.ndarray, how: str) -> np.ndarray:
    """The text embeddings (one row per item) as the adaptor sees them, by `how` (module docstring), float32."""
    if how not in TEXT_NORMS:
        raise EncoderecError(f"text_norm {how!r}: use one of {', '.join(TEXT_NORMS)}")
    x = np.asarray(x, dtype=np.float64)
    if how == "none":
        return x.astype(np.float32)
    if how == "scaled":
        return (x * math.sqrt(x.shape[1])).astype(np.float32)
    centred = x - x.mean(0)
    if how == "standard":
        std = centred.std(0)
        return (centred / np.where(std > 1e-6 * std.max(), std, 1.0)).astype(np.float32)
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred / len(x))
    keep = eigenvalues > 1e-6 * eigenvalues.max()
    return (centred @ (vectors[:, keep] / np.sqrt(eigenvalues[keep]))).astype(np.float32)


def _lengths(examples: Sequence[Example], max_len: int) -> np.ndarray:
    return np.array([min(len(e.history), max_len) for e in examples])
