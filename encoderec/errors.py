"""The one exception type users see: a one-line message naming the file, the key or line, and the fix."""


class EncoderecError(Exception):
    """Bad input or configuration. The CLI prints it as one line and exits non-zero."""


def check_config(config: object, checks: dict[str, tuple[bool, str]] | None = None, positive: tuple[str, ...] = ()) -> None:
    """Raise an EncoderecError naming the first invalid field of a config dataclass: each `positive` field must be a
    positive integer, and each of `checks` (field -> (whether it is valid, what a valid value is)) must hold."""
    for name in positive:
        value = getattr(config, name)
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise _invalid(config, name, "a positive integer")
    for name, (valid, expected) in (checks or {}).items():
        if not valid:
            raise _invalid(config, name, expected)


def _invalid(config: object, name: str, expected: str) -> EncoderecError:
    return EncoderecError(f"{type(config).__name__}.{name}: expected {expected}, got {getattr(config, name)!r}")
