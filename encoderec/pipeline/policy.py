"""Compute or read: the one policy by which every unit of work (an EncodeRec model, Table 1's ranks, a tokenization,
a UMAP, a recommender run) is obtained.

    policy = Policy(archive=Path("results/paper/runs"), read_only=("Beauty", "Toys"))
    record = policy.obtain("tiger", "Scientific", "EncodeRec-22M-dedup-seed0", identity, compute)

A unit is read from the `archive` folder when there is one and it holds the unit (no encoder or model is needed
for it); else `compute(read_only)` gives it: it reads this machine's caches (embeddings, semantic IDs, fits) and,
unless `read_only`, computes what they lack. A unit computed here is archived. `read_only` is True (compute
nothing: `report --read-only`, a campaign's listing) or the datasets whose units are read only (the GPU set's,
trained elsewhere); a unit that neither the archive nor the caches hold is then None: *pending*.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoderec.pipeline import archive as store


@dataclass(frozen=True)
class Policy:
    archive: Path | None = None
    read_only: bool | tuple[str, ...] = False

    @classmethod
    def of(cls, archive: Path | None, read_only: bool | list[str] | tuple[str, ...] = False) -> Policy:
        """From a notebook's parameters (`read_only`: a bool or a list of datasets)."""
        return cls(archive, read_only if isinstance(read_only, bool) else tuple(read_only))

    def reads_only(self, dataset: str | None = None) -> bool:
        """Whether nothing may be computed (for `dataset`'s units)."""
        return self.read_only is True or (bool(self.read_only) and dataset in self.read_only)

    def obtain(self, kind: str, dataset: str, name: str, identity: dict[str, Any],
               compute: Callable[[bool], Any]) -> Any | None:
        """The unit's archived record, else `compute(read only?)`'s (archived when it is not None and was computed
        under a policy that may compute)."""
        read_only = self.reads_only(dataset)
        if self.archive is None:
            return compute(read_only)
        found = store.read(self.archive, kind, dataset, name, identity)
        if found is not None:
            return found
        record = compute(read_only)
        if record is not None and not read_only:
            store.write(self.archive, kind, dataset, name, identity, record)
        return record


COMPUTE = Policy()  # no archive, compute what the caches lack
READ = Policy(read_only=True)  # no archive, read the caches only
