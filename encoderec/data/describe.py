"""What 00_data shows of each catalogue besides `dataset.stats`: how skewed item popularity is, and how long the
title and document texts are in a model's word pieces."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from encoderec.data import dataset as data


def popularity_summary(popularity: dict[str, Sequence[int]]) -> pd.DataFrame:
    """Per dataset (`popularity`: each item's interactions): the Gini coefficient, the share of interactions that
    the top 10 % of items take, and the share of items with 5 interactions or fewer."""
    rows = {}
    for name, counts in popularity.items():
        c = np.asarray(counts)
        rows[name] = {"gini": data.gini(c),
                      "top 10% items' share of interactions": float(np.sort(c)[::-1][: max(1, len(c) // 10)].sum()
                                                                     / c.sum()),
                      "items with 5 interactions or fewer": float(np.mean(c <= 5))}
    return pd.DataFrame(rows).T


def token_lengths(loaded: dict[str, data.Dataset], tokenizer: Callable[..., Any],
                  view: data.TextView | None = None) -> pd.DataFrame:
    """One row per dataset, text ("title": the query, "document") and item: its length in `tokenizer`'s word
    pieces (no special tokens)."""
    view = view or data.TextView()
    rows = []
    for name, ds in loaded.items():
        for field_name, texts in (("title", view.queries(ds)), ("document", view.documents(ds))):
            rows += [(name, field_name, len(ids)) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    return pd.DataFrame(rows, columns=["dataset", "text", "tokens"])


def length_summary(tokens: pd.DataFrame, max_tokens: int) -> pd.DataFrame:
    """Per dataset and text: median and 90th percentile length, the share of empty texts and of those longer than
    `max_tokens` (what the encoder truncates)."""
    return tokens.groupby(["dataset", "text"])["tokens"].agg(
        median="median", p90=lambda s: s.quantile(0.9), empty=lambda s: float((s == 0).mean()),
        truncated=lambda s: float((s > max_tokens).mean()))
