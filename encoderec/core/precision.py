"""Where and in what precision torch computes: the default device, and bfloat16 where it is native.

    precision = resolve_precision(config.precision, device)     # "bf16" or "fp32"
    with autocast(device, precision):                           # bf16 matrix products, fp32 weights and optimiser
        loss = model(batch)

Setting: "auto" (the default) gives "bf16" where the device computes bfloat16 matrix products natively (a CUDA device
that supports it; a CPU whose flags list avx512_bf16 or amx_bf16), else "fp32"; "bf16" or "fp32" force either, and
$ENCODEREC_PRECISION, when set, stands in for "auto". On a CPU without native bf16, autocast emulates it and runs
slower than fp32, hence the detection.

Mixed precision, not bf16 weights: parameters, gradients and optimiser state stay float32 and autocast runs the
matrix products (linear layers, attention) in bfloat16, so no loss scaling is needed (bf16 has fp32's exponent
range). Callers that compare or rank scores compute them in float32. Autocast goes around each training step's
forward pass, never around a loop of steps: it keeps the bf16 copy of every weight until the context exits, so
weights updated inside one context would be used stale.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path

import torch

from encoderec.core.errors import EncoderecError

PRECISIONS = ("auto", "bf16", "fp32")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str | None = None, device: str | torch.device | None = None) -> str:
    """"bf16" or "fp32": `precision` unless it is None or "auto", else $ENCODEREC_PRECISION, else bf16 where
    `device` computes it natively."""
    setting = precision if precision not in (None, "auto") else os.environ.get("ENCODEREC_PRECISION") or "auto"
    if setting not in PRECISIONS:
        source = "$ENCODEREC_PRECISION" if precision in (None, "auto") else "precision"
        raise EncoderecError(f"{source} is {setting!r}: use one of {', '.join(PRECISIONS)}")
    if setting != "auto":
        return setting
    return "bf16" if native_bf16(str(device or default_device())) else "fp32"


@functools.cache
def native_bf16(device: str = "cpu") -> bool:
    """Whether `device` computes bfloat16 matrix products natively (not emulated, which is slower than fp32)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def autocast(device: str | torch.device, precision: str) -> torch.autocast:
    """bfloat16 autocast on `device` when `precision` (already resolved) is "bf16"; a no-op context for "fp32"."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """torch's deterministic kernels inside the block, the caller's setting restored after. With several CPU threads
    some backward kernels (the accumulating index_put_ behind `codebook[idx]`) add in an order that depends on the
    threads' timing, so two fits of one seed drift apart from the second epoch; the deterministic kernel adds in a
    fixed order, so a fit repeats itself on the same machine and thread count (not always bit for bit across thread
    counts: on some CPUs the matrix products split their sums by thread). Where an op has no deterministic kernel
    (some CUDA ops) torch warns instead of failing."""
    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def check_device(device: str | None) -> None:
    """An EncoderecError saying how to fix it when `device` names CUDA and this torch cannot use it."""
    if device and device.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderecError(f"--device {device}: torch {torch.__version__} sees no CUDA GPU here; on a GPU machine "
                             f"install torch's CUDA build of the same version over the lock (see the README)")
