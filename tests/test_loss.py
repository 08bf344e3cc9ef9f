"""The InfoNCE loss: the formula, its equivalence with sentence-transformers' MNRL, and GradCache exactness."""

from __future__ import annotations

import math

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from encoderec.models import embeddings
from encoderec.models.loss import SYMMETRIC_DIRECTIONS, InfoNCELoss, contrastive_loss, info_nce
from tests.conftest import WORDS

# texts from the tiny_bert vocabulary; each document shares words with its title, so the loss is far from log(8)
PAIRS = [(f"w{i} {WORDS[i]}", f"{WORDS[i]} w{i} w{i + 40}") for i in range(8)]


def naive_info_nce(queries: torch.Tensor, documents: torch.Tensor, temperature: float, symmetric: bool) -> float:
    """L = -1/N sum_i log(exp(s_ii / tau) / sum_j exp(s_ij / tau)), s_ij = cos(q_i, d_j), written out in Python."""
    q, d = queries.tolist(), documents.tolist()
    forward = _one_direction(q, d, temperature)
    return (forward + _one_direction(d, q, temperature)) / 2 if symmetric else forward


def _one_direction(anchors: list[list[float]], candidates: list[list[float]], temperature: float) -> float:
    total = 0.0
    for i, anchor in enumerate(anchors):
        logits = [_cosine(anchor, candidate) / temperature for candidate in candidates]
        total -= logits[i] - math.log(sum(math.exp(logit) for logit in logits))
    return total / len(anchors)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("temperature", [0.02, 0.05, 0.3, 1.0])
def test_info_nce_is_the_formula(temperature, symmetric):
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    documents = torch.randn(6, 5, generator=generator, dtype=torch.float64)

    got = info_nce(queries, documents, temperature, symmetric).item()

    assert got == pytest.approx(naive_info_nce(queries, documents, temperature, symmetric), rel=1e-10)


def test_symmetric_differs_from_one_direction():
    generator = torch.Generator().manual_seed(1)
    queries, documents = torch.randn(2, 4, 3, generator=generator, dtype=torch.float64)
    assert info_nce(queries, documents, symmetric=True).item() != pytest.approx(info_nce(queries, documents).item())


@pytest.fixture
def model(tiny_st_model):
    return embeddings.load_encoder(tiny_st_model, device="cpu")


def features(model, pairs=PAIRS) -> list[dict[str, torch.Tensor]]:
    """The (queries, documents) inputs a sentence-transformers loss receives from the trainer."""
    return [model.preprocess([q for q, _ in pairs]), model.preprocess([d for _, d in pairs])]


@pytest.mark.parametrize("symmetric", [False, True])
def test_info_nce_loss_equals_multiple_negatives_ranking_loss(model, symmetric):
    mnrl_kwargs = {"directions": SYMMETRIC_DIRECTIONS, "partition_mode": "per_direction"} if symmetric else {}
    with torch.no_grad():
        ours = InfoNCELoss(model, temperature=0.05, symmetric=symmetric)(features(model)).item()
        theirs = MultipleNegativesRankingLoss(model, scale=1 / 0.05, **mnrl_kwargs)(features(model), None).item()

    assert ours == pytest.approx(theirs, abs=1e-6)
    assert abs(ours - math.log(len(PAIRS))) > 0.1  # distinct embeddings, so the comparison is not vacuous


def test_temperature_must_be_positive(model):
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(model, temperature=0)


def loss_and_gradients(model, mini_batch_size: int | None, symmetric: bool) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    value = contrastive_loss(model, 0.05, symmetric, mini_batch_size)(features(model), None)
    value.backward()
    return value.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("symmetric", [False, True])
def test_gradcache_loss_has_the_value_and_gradients_of_the_plain_loss(model, symmetric):
    plain_value, plain_grads = loss_and_gradients(model, None, symmetric)
    cached_value, cached_grads = loss_and_gradients(model, 2, symmetric)

    assert cached_value == pytest.approx(plain_value, abs=1e-5)
    assert plain_grads and cached_grads.keys() == plain_grads.keys()
    assert any(g.abs().max() > 1e-4 for g in plain_grads.values())
    for name, grad in plain_grads.items():
        torch.testing.assert_close(cached_grads[name], grad, atol=1e-5, rtol=0, msg=name)
