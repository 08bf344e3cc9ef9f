import pytest
import torch

from encoderec.core import precision
from encoderec.core.errors import EncoderecError


def test_precision_is_resolved_from_the_argument_the_environment_and_the_hardware(monkeypatch):
    monkeypatch.delenv("ENCODEREC_PRECISION", raising=False)
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert precision.resolve_precision() == "bf16" and precision.resolve_precision("fp32") == "fp32"
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert precision.resolve_precision("auto") == "fp32" and precision.resolve_precision("bf16") == "bf16"
    monkeypatch.setenv("ENCODEREC_PRECISION", "bf16")
    assert precision.resolve_precision() == "bf16" and precision.resolve_precision("fp32") == "fp32"
    monkeypatch.setenv("ENCODEREC_PRECISION", "half")
    with pytest.raises(EncoderecError, match=r"\$ENCODEREC_PRECISION is 'half': use one of auto, bf16, fp32"):
        precision.resolve_precision()
    with pytest.raises(EncoderecError, match=r"precision is 'fp16': use one of"):
        precision.resolve_precision("fp16")


def test_autocast_computes_matrix_products_in_bf16_only_when_asked():
    x = torch.ones(2, 2)
    with precision.autocast("cpu", "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    with precision.autocast("cpu", "fp32"):
        assert (x @ x).dtype == torch.float32
