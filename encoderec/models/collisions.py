"""How well a set of semantic IDs separates the items: collisions, codebook usage, and what no encoder can fix.

For n items with codes c (n x L) and an ID made of the first l levels, ID_l(i) = (c_i1, ..., c_il):

    collision rate @ l   = (n - number of distinct ID_l) / n           (0 = every item has its own ID)
    max group            = the most items sharing one ID_d, d = max(levels_used) (the full ID)
    share extra code     = share of items whose TIGER 4th code (semantic_ids.with_dedup_code) is non-zero;
                           every group keeps one item at 0, so this equals the collision rate @ d
    share in collisions  = share of items in a group of two or more at depth d
    usage @ l            = distinct codes used at level l / codebook_size
    entropy @ l          = -sum_k p_k log p_k / log(codebook_size), p_k = share of items with code k at level l
                           (1 = all codes equally used, 0 = a single code)

Given the item texts, the items in collision groups split into those whose text equals another item's of the same
group (duplicates no encoder can tell apart) and the rest, and

    avoidable collision rate = (number of distinct (ID_d, text) - number of distinct ID_d) / n

is the collision rate left once identical texts are allowed to share an ID. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from encoderec.core.errors import EncoderecError
from encoderec.models.semantic_ids import check_codes, group_ids


def group_sizes(codes: Any) -> np.ndarray:
    """Items per distinct ID (all levels of `codes`), largest first: the histogram of collision group sizes."""
    codes = check_codes(codes)
    return np.sort(np.bincount(group_ids(codes)))[::-1] if len(codes) else np.zeros(0, dtype=np.int64)


def collision_report(
    codes: Any,
    texts: Sequence[str] | None = None,
    levels_used: Sequence[int] = (1, 2, 3),
    codebook_size: int | None = None,
    reconstruction_error: Any = None,
) -> dict[str, Any]:
    """The numbers of the module docstring for one set of IDs, as a flat JSON-ready dict.

    Keys: items, depth, codebook_size, collision_rate@l (each l in levels_used), distinct_ids, max_group,
    share_extra_code, share_in_collisions, usage@l and entropy@l (l = 1..depth), reconstruction_error (passed
    through), and with texts colliding_identical_text, colliding_different_text (item counts) and
    avoidable_collision_rate. codebook_size defaults to the largest code + 1.
    """
    codes = check_codes(codes)
    n = len(codes)
    if n == 0:
        raise EncoderecError("collision_report: no items")
    levels_used = sorted(set(levels_used))
    if not levels_used or not all(
        isinstance(level, (int, np.integer)) and 1 <= level <= codes.shape[1] for level in levels_used
    ):
        raise EncoderecError(f"levels_used: expected levels between 1 and {codes.shape[1]}, got {levels_used}")
    depth = levels_used[-1]
    ids = codes[:, :depth]
    if codebook_size is None:
        codebook_size = int(ids.max()) + 1
    elif ids.max() >= codebook_size:
        raise EncoderecError(f"codebook_size: {codebook_size}, but code {int(ids.max())} occurs")

    groups = group_ids(ids)
    sizes = np.bincount(groups)
    report: dict[str, Any] = {"items": n, "depth": depth, "codebook_size": codebook_size}
    for level in levels_used:
        report[f"collision_rate@{level}"] = (n - len(np.unique(codes[:, :level], axis=0))) / n
    report["distinct_ids"] = len(sizes)
    report["max_group"] = int(sizes.max())
    report["share_extra_code"] = (n - len(sizes)) / n
    report["share_in_collisions"] = float((sizes[groups] > 1).mean())
    for level in range(1, depth + 1):
        counts = np.bincount(codes[:, level - 1], minlength=codebook_size)
        report[f"usage@{level}"] = np.count_nonzero(counts) / codebook_size
        report[f"entropy@{level}"] = normalised_entropy(counts)
    report["reconstruction_error"] = reconstruction_error
    if texts is not None:
        report.update(_text_split(groups, sizes, texts))
    return report


def normalised_entropy(counts: np.ndarray) -> float:
    """Entropy of the distribution `counts` over log(len(counts)): 1 when uniform, 0 when one bin holds all."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(len(counts))) if len(counts) > 1 else float("nan")


def _text_split(groups: np.ndarray, sizes: np.ndarray, texts: Sequence[str]) -> dict[str, Any]:
    """Colliding items whose text repeats inside their group vs the rest, and the avoidable collision rate."""
    texts = list(texts)
    if len(texts) != len(groups):
        raise EncoderecError(f"texts: {len(texts)} texts for {len(groups)} items; pass one text per item")
    text_ids = np.unique(np.array(texts, dtype=object).astype(str), return_inverse=True)[1].reshape(-1)
    pairs = groups * (text_ids.max() + 1) + text_ids  # one integer per (ID, text)
    pair_groups, pair_of_item, pair_sizes = np.unique(pairs, return_inverse=True, return_counts=True)
    colliding = sizes[groups] > 1
    identical = colliding & (pair_sizes[pair_of_item.reshape(-1)] > 1)
    return {
        "colliding_identical_text": int(identical.sum()),
        "colliding_different_text": int((colliding & ~identical).sum()),
        "avoidable_collision_rate": (len(pair_groups) - len(sizes)) / len(groups),
    }


def elimination(table: pd.DataFrame, base_of: dict[str, str | None]) -> list[dict[str, Any]]:
    """Does a fine-tuned model eliminate collisions? One row per catalogue and model of `base_of` (model -> the
    encoder it was fine-tuned from; None for the others, which get no row, as does a model not tokenized on that
    catalogue), from the RQ-VAE rows of `table` (one per
    dataset, backbone, tokenizer and seed, with collision_rate@3 and avoidable_collision_rate):

    - eliminated (all seeds): every item has its own 3-code ID, collision rate @ 3 = 0, for every seed;
    - eliminated apart from identical texts: the same, once items with identical text may share an ID;
    - fewer than base (seeds): the seeds on which it collides less than its base encoder (when the base was run);
      "base coll@3" is None when it was not.
    """
    rq = table[table.tokenizer == "rqvae"]
    rows = []
    for model, base in base_of.items():
        if base is None:
            continue
        for dataset in dict.fromkeys(rq.dataset):
            ours = rq[(rq.dataset == dataset) & (rq.backbone == model)].set_index("seed").sort_index()
            if ours.empty:  # not tokenized (pending): no row, rather than an "eliminated" that all() of nothing gives
                continue
            theirs = rq[(rq.dataset == dataset) & (rq.backbone == base)].set_index("seed").sort_index()
            row = {"dataset": dataset, "model": model, "base": base,
                   "EncodeRec coll@3": ours["collision_rate@3"].mean(),
                   "EncodeRec avoidable": ours["avoidable_collision_rate"].mean(),
                   "eliminated (all seeds)": bool((ours["collision_rate@3"] == 0).all()),
                   "eliminated apart from identical texts": bool((ours["avoidable_collision_rate"] == 0).all()),
                   "base coll@3": theirs["collision_rate@3"].mean() if len(theirs) else None,
                   "fewer than base (seeds)": None}
            if len(theirs):
                fewer = ours["collision_rate@3"] < theirs["collision_rate@3"].reindex(ours.index)
                row["fewer than base (seeds)"] = f"{int(fewer.sum())}/{len(ours)}"
            rows.append(row)
    return rows
