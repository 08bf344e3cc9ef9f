"""Results tables shared by the notebooks and the summary."""

from __future__ import annotations

from typing import Any


def seed_summary(table: Any, by: list[str], columns: dict[str, str], digits: int | dict[str, int] = 4) -> Any:
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
