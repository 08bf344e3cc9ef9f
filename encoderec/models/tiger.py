"""TIGER: generate the next item's semantic ID with a small T5, decoding only IDs that exist.

    ids = with_dedup_code(codes)                       # (items, 4): unique semantic IDs (encoderec.models.semantic_ids)
    model = Tiger(TigerConfig()).fit(split, ids)        # every training prefix, early stopping on validation
    top = model.recommend(split.test)                   # (users, 10) item lists, best first
    ranks, gains = model.rank(split.test)               # 0-based rank of the next item (metrics.MISSING if absent)

Tokens. One vocabulary: 0 pads and starts the decoder, 1 ends the input, then the codes of each level in their own
range (level l, code c -> offset_l + c), then `user_buckets` user tokens. A user's input is

    [user token] [c_1 c_2 c_3 c_4 of item 1] ... [of item T] [end]           (the last `max_history` items)

and the target is the next item's codes. The user token is user index * 2654435761 mod 2^32 mod user_buckets, so
users share buckets as in TIGER's hashing.

Training: cross-entropy of the target tokens given the input (teacher forcing), AdamW, batches of inputs of
similar length; after every `eval_every` epochs, Recall@10 / NDCG@10 of beam search on the validation examples
(a seeded sample of `valid_users` of them), keeping the best weights and stopping after `patience` evaluations
without improvement (`fitting.train_with_early_stopping`, the harness UniSRec shares).

Decoding: batched beam search over the trie of valid IDs. At step l every beam's prefix is a node of the trie; only
codes with a child node are allowed (log-probabilities of the full vocabulary, the rest set to -inf), and the
`beam_size` best partial IDs survive. After the last level every beam is a complete, existing ID: no invalid ID
is ever returned. IDs are sorted by their summed log-probability.

Repeated items (a user buying an item again) stay in the histories and targets; decoding masks nothing, so an item
the user already has can be recommended and a repeat purchase can be a hit (as in TIGER).

IDs without a 4th code may be shared by several items. Then an ID stands for its group of g items; a beam hit on
the target's ID counts 1/g (the faithful metric: a random pick inside the group), which `rank` returns as gains.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm
from transformers import T5Config, T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

from encoderec.core.errors import (
    Checked,
    EncoderecError,
    is_fraction,
    is_int,
    is_number,
    is_positive_int,
    positive_ints,
)
from encoderec.core.io import sha256_array
from encoderec.core.precision import PRECISIONS, autocast
from encoderec.data.dataset import (
    Example,
    Split,
    check_example_items,
    length_batches,
    prefix_examples,
    right_padded,
)
from encoderec.models import fitting, metrics
from encoderec.models.fitting import (
    device_of,
    precision_of,
    run_epoch,
    seeded,
    train_with_early_stopping,
    validation_scores,
)
from encoderec.models.semantic_ids import check_codes, group_ids

PAD, END, FIRST_CODE = 0, 1, 2
# The version of what this module computes: part of the key of every cached or archived result of it. Bump it
# when a change moves its outputs (tests/test_golden.py fails until you do and re-record); a change that
# moves nothing (a refactor, a docstring, a speed-up with the same numbers) keeps it, and the archive with it.
RESULT_VERSION = 1

HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash


@dataclass
class TigerConfig(Checked):
    """Defaults are TIGER's (reference-settings.md, TIGER section) where it gives them."""

    layers: int = 4  # encoder layers, and as many decoder layers
    d_model: int = 128
    heads: int = 6
    d_kv: int = 64
    d_ff: int = 1024
    dropout: float = 0.1
    user_buckets: int = 2000
    max_history: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 256
    epochs: int = 200
    eval_every: int = 5
    patience: int = 3  # evaluations without a better validation NDCG@10
    valid_users: int | None = 2000  # validation examples scored at each evaluation; None: all
    max_minutes: float | None = None  # stop after the epoch that passes this wall time (benchmarks); None: no limit
    beam_size: int = 20
    top_k: int = 10
    eval_batch_size: int = 256
    seed: int = 0
    device: str | None = None  # None: CUDA when available
    precision: str = "auto"  # "bf16" autocast, "fp32", or "auto": bf16 where the device computes it natively

    def _rules(self):
        """(field, whether its value is valid, what a valid value is), in order."""
        yield from positive_ints(self, ("layers", "d_model", "heads", "d_kv", "d_ff", "user_buckets", "max_history",
                                        "batch_size", "epochs", "eval_every", "patience", "beam_size", "top_k",
                                        "eval_batch_size"))
        yield "dropout", is_fraction(self.dropout), "in [0, 1)"
        yield "lr", is_number(self.lr) and self.lr > 0, "a positive number"
        yield "weight_decay", is_number(self.weight_decay) and self.weight_decay >= 0, "a number >= 0"
        yield "top_k", self.top_k <= self.beam_size, "a positive integer <= beam_size"
        yield "valid_users", self.valid_users is None or is_positive_int(self.valid_users), "a positive integer or None"
        yield "max_minutes", self.max_minutes is None or (is_number(self.max_minutes) and self.max_minutes > 0), \
            "a positive number or None"
        yield "seed", is_int(self.seed), "an integer"
        yield "precision", self.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}"


# --------------------------------------------------------------------------- the ID trie


class IDTrie:
    """The valid semantic IDs as a trie of integer nodes, for constrained decoding.

    Level l has nodes 0..n_l - 1 (node 0 of level 0 is the empty prefix); `children[l][node, code]` is the node of
    level l + 1 reached by `code`, or -1. A leaf (level = depth) is one distinct ID; `leaf_of_item[i]` is item i's
    leaf and `group_size[leaf]` how many items share it.
    """

    def __init__(self, codes: Any) -> None:
        codes = check_codes(codes, what="semantic IDs")
        self.depth = codes.shape[1]
        self.sizes = (codes.max(0) + 1).tolist()  # codes per level
        parent = np.zeros(len(codes), dtype=np.int64)
        self.children: list[np.ndarray] = []
        for level in range(self.depth):
            node = group_ids(codes[:, : level + 1])
            table = np.full((parent.max() + 1, self.sizes[level]), -1, dtype=np.int64)
            table[parent, codes[:, level]] = node
            self.children.append(table)
            parent = node
        self.leaf_of_item = parent
        self.group_size = np.bincount(parent)
        self.items_of_leaf = [[] for _ in self.group_size]
        for item, leaf in enumerate(parent):
            self.items_of_leaf[leaf].append(item)


# --------------------------------------------------------------------------- the model


class Tiger:
    """Fit a T5 on semantic-ID sequences, then recommend by constrained beam search (see the module docstring).

    After `fit`, `history` holds one dict per epoch (loss, seconds, and at evaluations valid Recall@10 / NDCG@10)
    and `best_epoch` the epoch whose weights are kept.
    """

    def __init__(self, config: TigerConfig | None = None) -> None:
        self.config = config or TigerConfig()
        self.model: T5ForConditionalGeneration | None = None
        self.trie: IDTrie | None = None
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None

    @property
    def device(self) -> torch.device:
        return device_of(self.config)

    # ----------------------------------------------------------------------- tokens

    def _setup(self, ids: Any) -> None:
        self.trie = IDTrie(ids)
        self.codes = check_codes(ids)
        self.offsets = FIRST_CODE + np.concatenate([[0], np.cumsum(self.trie.sizes)[:-1]])
        self.user_offset = FIRST_CODE + sum(self.trie.sizes)
        self.item_tokens = self.codes + self.offsets  # (items, depth) token ids
        self.vocab_size = self.user_offset + self.config.user_buckets

    def user_token(self, user: int) -> int:
        return self.user_offset + (user * HASH_MULTIPLIER) % 2**32 % self.config.user_buckets

    def encode_inputs(self, examples: Sequence[Example]) -> tuple[Tensor, Tensor]:
        """(input ids right-padded with 0, attention mask) for a batch of examples."""
        rows = [[self.user_token(e.user), *self.item_tokens[e.history[-self.config.max_history:]].reshape(-1), END]
                for e in examples]
        ids = torch.from_numpy(right_padded(rows, PAD))
        return ids, (ids != PAD).long()

    def _input_lengths(self, examples: Sequence[Example]) -> np.ndarray:
        return np.array([min(len(e.history), self.config.max_history) for e in examples])

    # ----------------------------------------------------------------------- training

    def fit(self, split: Split, ids: Any, progress: bool = True) -> Tiger:
        cfg = self.config
        n_items = len(check_codes(ids))
        train = prefix_examples(split.train)
        if not train or not split.valid:
            raise EncoderecError("fit: the split has no training prefixes or no validation examples")
        check_example_items([*train, *split.valid], n_items, "semantic IDs")
        self._setup(ids)
        rng = np.random.default_rng(cfg.seed)
        valid = list(split.valid)
        if cfg.valid_users and cfg.valid_users < len(valid):
            valid = [valid[i] for i in np.sort(rng.choice(len(valid), cfg.valid_users, replace=False))]
        targets = torch.from_numpy(self.item_tokens)
        with seeded(cfg.seed, self.device):
            self.model = T5ForConditionalGeneration(self._t5_config()).to(self.device)
            optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            lengths = self._input_lengths(train)
            self.history, self.best_epoch = train_with_early_stopping(
                self.model, lambda: run_epoch(length_batches(lengths, cfg.batch_size, rng),
                                              lambda idx: self._loss([train[i] for i in idx], targets), optimizer),
                lambda: validation_scores(self.rank(valid)), cfg.epochs, cfg.patience, cfg.eval_every,
                cfg.max_minutes, desc="TIGER", progress=progress)
        return self

    def _t5_config(self) -> T5Config:
        cfg = self.config
        return T5Config(vocab_size=self.vocab_size, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff,
                        num_layers=cfg.layers, num_decoder_layers=cfg.layers, num_heads=cfg.heads,
                        dropout_rate=cfg.dropout, feed_forward_proj="relu", pad_token_id=PAD, eos_token_id=END,
                        decoder_start_token_id=PAD, tie_word_embeddings=True)

    def _loss(self, batch: list[Example], targets: Tensor) -> Tensor:
        """Cross-entropy of the target item's tokens given each example's input (teacher forcing)."""
        inputs, mask = self.encode_inputs(batch)
        labels = targets[[e.target for e in batch]]
        # autocast around each step, never around the epoch: it caches the bf16 copy of each weight until it exits
        with autocast(self.device, precision_of(self.config)):
            return self.model(input_ids=inputs.to(self.device), attention_mask=mask.to(self.device),
                              labels=labels.to(self.device)).loss

    # ----------------------------------------------------------------------- decoding

    @torch.no_grad()
    def beam_search(self, examples: Sequence[Example], progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(leaves, scores), each (examples, beam_size): the best complete IDs (trie leaves) of each example, best
        first, and their summed log-probabilities (-inf where fewer than beam_size IDs exist)."""
        self._require_fitted("beam_search")
        was_training = self.model.training
        self.model.eval()
        leaves = np.empty((len(examples), self.config.beam_size), dtype=np.int64)
        scores = np.empty((len(examples), self.config.beam_size))
        parts = length_batches(self._input_lengths(examples), self.config.eval_batch_size)
        with autocast(self.device, precision_of(self.config)):
            for idx in tqdm(parts, desc="beam search", disable=not progress, leave=False):
                leaves[idx], scores[idx] = (t.cpu().numpy() for t in self._beam_batch([examples[i] for i in idx]))
        self.model.train(was_training)
        return leaves, scores

    def _beam_batch(self, batch: list[Example]) -> tuple[Tensor, Tensor]:
        beam, device, n = self.config.beam_size, self.device, len(batch)
        inputs, mask = (t.to(device) for t in self.encode_inputs(batch))
        encoded = self.model.encoder(input_ids=inputs, attention_mask=mask).last_hidden_state
        rows = torch.arange(n, device=device)
        node = torch.zeros((n, 1), dtype=torch.long, device=device)  # one empty prefix per user to start from
        score = torch.zeros((n, 1), device=device)
        token = torch.full((n, 1), PAD, dtype=torch.long, device=device)  # the decoder's start token
        cache = None
        for level, table in enumerate(self.trie.children):
            width = node.shape[1]  # 1 at the first level, then beam_size
            # the cross-attention keys and values are computed once, at the first level, for one row per user, and
            # then copied with the beams (cache.reorder_cache); each later level feeds only the newest token
            out = self.model(encoder_outputs=BaseModelOutput(last_hidden_state=encoded.repeat_interleave(width, 0)),
                             attention_mask=mask.repeat_interleave(width, 0), decoder_input_ids=token,
                             cache=cache, use_cache=True)
            cache = out.cache
            start = self.offsets[level]
            logp = F.log_softmax(out.logits[:, -1].float(), -1)[:, start: start + self.trie.sizes[level]]
            logp = logp.view(n, width, -1)
            child = torch.from_numpy(table).to(device)[node]  # (n, width, codes): next node, -1 if no such ID
            candidate = (score.unsqueeze(-1) + logp).masked_fill(child < 0, -math.inf).view(n, -1)
            score, flat = candidate.topk(min(beam, candidate.shape[1]), dim=1)
            parent, code = flat // logp.shape[-1], flat % logp.shape[-1]
            node = child.view(n, -1).gather(1, flat)
            cache.reorder_cache((rows[:, None] * width + parent).view(-1))
            token = (code + start).view(-1, 1)
        if node.shape[1] < beam:  # fewer IDs than beams in the whole trie
            pad = beam - node.shape[1]
            node = F.pad(node, (0, pad), value=-1)
            score = F.pad(score, (0, pad), value=-math.inf)
        return node.masked_fill(score == -math.inf, -1), score

    def recommend(self, examples: Sequence[Example], progress: bool = False) -> np.ndarray:
        """(examples, top_k) item ids, best first; for a shared ID, its first item (-1 where none)."""
        leaves = self.beam_search(examples, progress)[0][:, : self.config.top_k]
        first = np.array([items[0] for items in self.trie.items_of_leaf] + [-1])
        return first[leaves]  # leaf -1 indexes the trailing -1

    def rank(self, examples: Sequence[Example], progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(ranks, gains): the 0-based position of the target's ID among the top_k IDs (metrics.MISSING when not
        there) and 1 / (items sharing that ID), the faithful credit for a hit."""
        leaves = self.beam_search(examples, progress)[0][:, : self.config.top_k]
        target_leaf = self.trie.leaf_of_item[[e.target for e in examples]]
        hit = leaves == target_leaf[:, None]
        ranks = np.where(hit.any(1), hit.argmax(1), metrics.MISSING)
        return ranks, 1.0 / self.trie.group_size[target_leaf]

    def _require_fitted(self, what: str) -> None:
        if self.model is None:
            raise EncoderecError(f"Tiger.{what}: the model is not fitted; call fit(split, ids) first")


def fit_and_rank(split: Split, ids: Any, config: TigerConfig, cache_dir: str | os.PathLike | None = None,
                 progress: bool = True, read_only: bool = False) -> dict[str, Any] | None:
    """Fit, then rank the validation and test examples, cached in <cache dir>/tiger/ (`fitting.fit_and_rank`: the
    key hashes RESULT_VERSION, the config without the device, the IDs and the split). The result has the gains of every
    rank beside it ("valid_gains", "test_gains"). `read_only`: read the cache, train nothing (None if absent)."""
    return fitting.fit_and_rank(Tiger(config), "tiger", RESULT_VERSION, split, (ids,), sha256_array(check_codes(ids)), cache_dir,
                                progress, read_only)
