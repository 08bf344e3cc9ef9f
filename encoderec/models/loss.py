"""EncodeRec's in-batch InfoNCE loss (title = query, its document = positive, the batch's other documents = negatives).

For a batch of N (title, document) pairs with L2-normalised embeddings q_i, d_i and temperature tau:

    L = -1/N sum_i log( exp(s_ii / tau) / sum_j exp(s_ij / tau) ),   s_ij = cos(q_i, d_j)

The symmetric variant averages it with the document -> title direction (swap q and d).

`InfoNCELoss` is that formula as a sentence-transformers loss module. It is exactly
`MultipleNegativesRankingLoss(scale=1/tau)`; `contrastive_loss` returns the GradCache version of it
(`CachedMultipleNegativesRankingLoss`) when the batch is larger than what fits in one forward pass, which is
how a 2-core CPU trains with the paper's 512 in-batch negatives.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer, losses
from torch import Tensor, nn

SYMMETRIC_DIRECTIONS = ("query_to_doc", "doc_to_query")


def info_nce(queries: Tensor, documents: Tensor, temperature: float = 0.05, symmetric: bool = False) -> Tensor:
    """The formula above on embeddings (normalised here, so raw encoder outputs are fine)."""
    scores = F.normalize(queries, dim=-1) @ F.normalize(documents, dim=-1).T / temperature
    labels = torch.arange(len(scores), device=scores.device)
    loss = F.cross_entropy(scores, labels)
    if symmetric:
        loss = (loss + F.cross_entropy(scores.T, labels)) / 2
    return loss


class InfoNCELoss(nn.Module):
    """In-batch InfoNCE over (title, document) pairs: L = -1/N sum_i log softmax_j(cos(q_i, d_j) / tau)_i."""

    def __init__(self, model: SentenceTransformer, temperature: float = 0.05, symmetric: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.model = model
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        queries, documents = (self.model(features)["sentence_embedding"] for features in sentence_features)
        return info_nce(queries, documents, self.temperature, self.symmetric)

    def get_config_dict(self) -> dict[str, float | bool]:
        return {"temperature": self.temperature, "symmetric": self.symmetric}


def contrastive_loss(model: SentenceTransformer, temperature: float = 0.05, symmetric: bool = False,
                     mini_batch_size: int | None = None) -> nn.Module:
    """InfoNCE, through GradCache when `mini_batch_size` is given: same loss and gradients, memory of a mini-batch."""
    if mini_batch_size is None:
        return InfoNCELoss(model, temperature, symmetric)
    directions = SYMMETRIC_DIRECTIONS if symmetric else ("query_to_doc",)
    return losses.CachedMultipleNegativesRankingLoss(
        model, scale=1 / temperature, mini_batch_size=mini_batch_size, directions=directions,
        partition_mode="per_direction",
    )
