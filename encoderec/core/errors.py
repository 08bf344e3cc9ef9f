"""The one exception type users see: a one-line message naming the file, the key or line, and the fix; and the one
way a config dataclass validates its fields:

    @dataclass
    class MyConfig(Checked):
        epochs: int = 10

        def _rules(self):  # (field, whether its value is valid, what a valid value is), checked in order
            yield "epochs", is_positive_int(self.epochs), "a positive integer"
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np


class EncoderecError(Exception):
    """Bad input or configuration. The CLI prints it as one line and exits non-zero."""


class Checked:
    """Base of the config dataclasses: after __init__, `check_fields` runs the config's `_rules()`; `from_dict` builds
    one from a mapping (parsed YAML), naming where it came from in every error."""

    def __post_init__(self) -> None:
        check_fields(self, self._rules())

    @classmethod
    def from_dict(cls, values: Any, source: str = "config") -> Any:
        """A config from a mapping of field names (e.g. parsed YAML); errors name `source` and the key."""
        import dataclasses

        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise EncoderecError(f"{source}: expected a mapping of {cls.__name__} fields, got {type(values).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [key for key in values if key not in known]
        if unknown:
            raise EncoderecError(f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(known)}")
        try:
            return cls(**values)
        except EncoderecError as e:
            raise EncoderecError(f"{source}: {e}") from None

    def _rules(self) -> Iterator[tuple[str, Any, str]]:
        return iter(())


def check_fields(config: object, rules: Iterable[tuple[str, Any, str]]) -> None:
    """Raise an EncoderecError naming the first field of `config` whose rule fails, its value and what a valid one
    is. Rules are checked in order, lazily, so a rule may rely on the fields checked before it."""
    for name, valid, expected in rules:
        if not valid:
            raise EncoderecError(f"{type(config).__name__}.{name}: expected {expected}, got {getattr(config, name)!r}")


def positive_ints(config: object, names: Iterable[str]) -> Iterator[tuple[str, bool, str]]:
    """The rule "a positive integer" for each of the fields `names`."""
    return ((name, is_positive_int(getattr(config, name)), "a positive integer") for name in names)


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_positive_int(value: Any) -> bool:
    return is_int(value) and value > 0


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def is_fraction(value: Any) -> bool:
    """A number in [0, 1)."""
    return is_number(value) and 0 <= value < 1
