"""TIGER's semantic-ID tokenizer: an RQ-VAE over frozen item embeddings, and residual k-means as the baseline.

    tokenizer = RQVAE(RQVAEConfig()).fit(train_embeddings)   # fit on the training-split items only
    codes = tokenizer.transform(item_embeddings)               # (n, 3) ints in [0, 256): one semantic ID per item

The model. An MLP encoder maps an item embedding x to a latent z (input -> 512 -> 256 -> 128 -> 32, ReLU
between layers). `levels` codebooks C_1..C_L of `codebook_size` x latent_dim quantise z residually:

    r_1 = z,   c_l = argmin_k ||r_l - C_l[k]||^2,   e_l = C_l[c_l],   r_{l+1} = r_l - e_l,   z_q = e_1 + ... + e_L

(c_1, ..., c_L) is the item's semantic ID. The mirrored decoder reconstructs x_hat = dec(z_q). Per item,

    L = ||x - x_hat||^2  +  sum_l ( ||sg[r_l] - e_l||^2 + beta ||r_l - sg[e_l]||^2 )

averaged over the batch, sg = stop-gradient. The reconstruction term is SUMMED over dimensions: averaging it
divides it by input_dim (384 for MiniLM), the codebook terms then dominate and the codebooks collapse (a
reimplementation's known fix). The codebook term pulls codes towards the residuals, the commitment term pulls the
encoder towards its codes. argmin has no gradient, so the decoder is fed z + sg[z_q - z] (straight-through):
z_q in the forward pass, while the reconstruction gradient reaches the encoder as if quantisation were identity.

Training. Adam, lr 1e-3 (some reference implementations use Adagrad with lr 0.4; Adam at 1e-3 is the common choice
and needed no tuning here), 100 epochs of mini-batches of 1024 shuffled by a seeded generator. On Beauty the loss
levels off after about 70 epochs; training longer lowers the reconstruction error but adds collisions.
Before the first step each level's codebook is set to the k-means centroids (faiss, seeded) of that level's
residuals under the freshly initialised encoder, so every code starts in use. After each epoch but the last,
codes that no item chose in that epoch (dead codes) are moved onto random residuals of the epoch's last batch.
On CPU a fit is deterministic for a seed, whatever the thread count: the same data and config give the same codes
(torch's deterministic kernels are on during the fit: with two threads the accumulating backward of `codebook[idx]`
otherwise made two fits drift apart in the 6th digit from the second epoch).

`ResidualKMeans` is the same residual quantisation without a network: k-means on the embeddings, then on the
residuals, level by level. Both expose `last_level_distances` for encoderec.models.semantic_ids.collision_free_last_level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from encoderec.core.errors import Checked, EncoderecError, check_fields, is_int, is_number, is_positive_int
from encoderec.core.precision import default_device, deterministic

KMEANS_ITERATIONS = 25
TRANSFORM_BATCH = 8192  # rows per forward pass when assigning codes; only memory depends on it


# --------------------------------------------------------------------------- configuration


@dataclass
class RQVAEConfig(Checked):
    """The RQ-VAE's architecture and training; defaults are TIGER's (reference-settings.md, TIGER section)."""

    input_dim: int | None = None  # inferred from the embeddings at fit
    hidden_dims: tuple[int, ...] = (512, 256, 128)
    latent_dim: int = 32
    levels: int = 3
    codebook_size: int = 256
    beta: float = 0.25  # commitment weight
    lr: float = 1e-3  # Adam
    epochs: int = 100  # Beauty's 12,101 items: 12 steps an epoch, 1,200 in all, 1.5 min on one busy CPU thread
    batch_size: int = 1024
    kmeans_init: bool = True
    dead_code_reset: bool = True
    seed: int = 0
    device: str | None = None  # None: CUDA when available, else CPU

    def __post_init__(self) -> None:
        if isinstance(self.hidden_dims, list):  # from YAML or JSON
            self.hidden_dims = tuple(self.hidden_dims)
        super().__post_init__()

    def _rules(self):
        """(field, whether its value is valid, what a valid value is)."""
        yield "input_dim", self.input_dim is None or is_positive_int(self.input_dim), "a positive integer or None"
        hidden_ok = isinstance(self.hidden_dims, tuple) and all(is_positive_int(h) for h in self.hidden_dims)
        yield "hidden_dims", hidden_ok, "a tuple of positive integers (may be empty)"
        yield "latent_dim", is_positive_int(self.latent_dim), "a positive integer"
        yield "levels", is_positive_int(self.levels), "a positive integer"
        yield "codebook_size", is_positive_int(self.codebook_size) and self.codebook_size > 1, "an integer >= 2"
        yield "beta", is_number(self.beta) and self.beta >= 0, "a number >= 0"
        yield "lr", is_number(self.lr) and self.lr > 0, "a positive number"
        yield "epochs", is_positive_int(self.epochs), "a positive integer"
        yield "batch_size", is_positive_int(self.batch_size), "a positive integer"
        yield "kmeans_init", isinstance(self.kmeans_init, bool), "True or False"
        yield "dead_code_reset", isinstance(self.dead_code_reset, bool), "True or False"
        yield "seed", is_int(self.seed), "an integer"
        yield "device", self.device is None or (isinstance(self.device, str) and self.device), "a torch device or None"


def check_embeddings(x: Any, *, min_rows: int = 1, dim: int | None = None, what: str = "embeddings") -> np.ndarray:
    """`x` as a C-contiguous float32 (n, d) array, or an EncoderecError saying what is wrong with it."""
    array = np.asarray(x)
    if array.ndim != 2:
        raise EncoderecError(f"{what}: expected a 2-d array (items x dimensions), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise EncoderecError(f"{what}: expected real numbers, got dtype {array.dtype}")
    if dim is not None and array.shape[1] != dim:
        raise EncoderecError(f"{what}: expected {dim} dimensions, got {array.shape[1]}")
    if len(array) < min_rows:
        raise EncoderecError(
            f"{what}: {len(array)} rows, but k-means with {min_rows} codes needs at least {min_rows}; "
            "pass more items or lower codebook_size"
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise EncoderecError(f"{what}: row {bad} holds NaN or infinity; every embedding must be finite")
    return array


# --------------------------------------------------------------------------- k-means (shared by both tokenizers)


def kmeans(x: np.ndarray, k: int, seed: int, niter: int = KMEANS_ITERATIONS) -> np.ndarray:
    """k centroids of the rows of float32 `x` (faiss, seeded: the same input gives the same centroids)."""
    import faiss  # here, not at the top: the models that only read semantic IDs run where faiss is not installed

    # min_points_per_centroid=1: small inputs are fine here, and faiss would otherwise warn on stderr
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, min_points_per_centroid=1)
    km.train(np.ascontiguousarray(x, dtype=np.float32))
    return km.centroids.copy()


def squared_distances(x: Tensor, codebook: Tensor) -> Tensor:
    """||x_i - c_k||^2 for every row and code, (n, K); one formula everywhere so argmins agree."""
    return x.pow(2).sum(1, keepdim=True) - 2 * x @ codebook.T + codebook.pow(2).sum(1)


# --------------------------------------------------------------------------- the model


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers through `dims` with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Quantised(NamedTuple):
    z_q: Tensor  # sum of the chosen codes, (n, latent_dim)
    codes: Tensor  # (n, levels)
    loss: Tensor  # sum over levels of the codebook + beta * commitment terms, averaged over items
    commit: Tensor  # sum_l ||r_l - e_l||^2 averaged over items (no gradient): the value of both terms above
    residuals: list[Tensor]  # r_1 .. r_L


class RQVAEModel(nn.Module):
    """Encoder, `levels` residual codebooks and decoder; `forward` returns x_hat, the codes and the loss terms."""

    def __init__(self, cfg: RQVAEConfig, input_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = mlp([input_dim, *cfg.hidden_dims, cfg.latent_dim])
        self.decoder = mlp([cfg.latent_dim, *reversed(cfg.hidden_dims), input_dim])
        k = cfg.codebook_size
        # the VQ-VAE init; k-means replaces it unless kmeans_init is off
        self.codebooks = nn.Parameter(torch.empty(cfg.levels, k, cfg.latent_dim).uniform_(-1 / k, 1 / k))

    def quantise(self, z: Tensor) -> Quantised:
        residual, z_q = z, torch.zeros_like(z)
        codes, residuals, loss, commit = [], [], z.new_zeros(()), z.new_zeros(())
        for codebook in self.codebooks:
            residuals.append(residual)
            idx = squared_distances(residual.detach(), codebook.detach()).argmin(1)
            e = codebook[idx]
            codebook_term = (residual.detach() - e).pow(2).sum(1).mean()
            commitment_term = (residual - e.detach()).pow(2).sum(1).mean()
            loss = loss + codebook_term + self.cfg.beta * commitment_term
            commit = commit + commitment_term.detach()
            z_q = z_q + e
            residual = residual - e.detach()  # deeper levels still train the encoder through their commitment
            codes.append(idx)
        return Quantised(z_q, torch.stack(codes, 1), loss, commit, residuals)

    def forward(self, x: Tensor) -> dict[str, Any]:
        z = self.encoder(x)
        q = self.quantise(z)
        x_hat = self.decoder(z + (q.z_q - z).detach())  # straight-through estimator
        recon = (x_hat - x).pow(2).sum(1).mean()  # summed over dimensions: see the module docstring
        return {"loss": recon + q.loss, "recon": recon, "commit": q.commit, "codes": q.codes, "residuals": q.residuals}

    def decode(self, codes: Tensor) -> Tensor:
        z_q = sum(self.codebooks[level][codes[:, level]] for level in range(codes.shape[1]))
        return self.decoder(z_q)


# --------------------------------------------------------------------------- the scikit-learn-style tokenizer


class RQVAE:
    """Fit on training-item embeddings, then `transform` any embeddings into (n, levels) semantic IDs.

    After `fit`, `history` holds one dict per epoch: loss, recon and commit (sum_l ||r_l - e_l||^2), each per item;
    usage (per level, the share of codes some item chose in the epoch) and reset (per level, dead codes re-seeded
    after the epoch).
    """

    def __init__(self, config: RQVAEConfig | None = None) -> None:
        self.config = config or RQVAEConfig()
        self.model: RQVAEModel | None = None
        self.history: list[dict[str, Any]] = []

    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device or default_device())

    def fit(self, embeddings: np.ndarray, progress: bool = True) -> RQVAE:
        cfg = self.config
        x = check_embeddings(
            embeddings,
            min_rows=cfg.codebook_size if cfg.kmeans_init else 1,
            dim=cfg.input_dim,
            what="RQVAE.fit embeddings",
        )
        x = torch.from_numpy(x).to(self.device)
        # a private RNG stream: the fit is reproducible and the caller's global torch state is left alone
        cuda = [self.device.index or torch.cuda.current_device()] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), deterministic():
            torch.manual_seed(cfg.seed)
            self.model = RQVAEModel(cfg, x.shape[1]).to(self.device)
            generator = torch.Generator().manual_seed(cfg.seed)  # CPU: shuffling and resets, any device
            if cfg.kmeans_init:
                self._kmeans_init(x)
            self.history = self._train(x, generator, progress)
        return self

    @torch.no_grad()
    def _kmeans_init(self, x: Tensor) -> None:
        """Each level's codebook = k-means centroids of that level's residuals of the training items."""
        residual = torch.cat([self.model.encoder(batch) for batch in x.split(TRANSFORM_BATCH)])
        for level in range(self.config.levels):
            centroids = kmeans(residual.cpu().numpy(), self.config.codebook_size, seed=self.config.seed + level)
            codebook = torch.from_numpy(centroids).to(residual)
            self.model.codebooks[level] = codebook
            residual = residual - codebook[squared_distances(residual, codebook).argmin(1)]

    def _train(self, x: Tensor, generator: torch.Generator, progress: bool) -> list[dict[str, Any]]:
        cfg, model = self.config, self.model
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        history = []
        model.train()
        bar = tqdm(range(cfg.epochs), desc="RQ-VAE", disable=not progress, leave=False)
        for epoch in bar:
            totals = dict.fromkeys(("loss", "recon", "commit"), torch.zeros((), device=x.device))
            counts = torch.zeros(cfg.levels, cfg.codebook_size, dtype=torch.long, device=x.device)
            for idx in torch.randperm(len(x), generator=generator).split(cfg.batch_size):
                out = model(x[idx.to(x.device)])
                optimizer.zero_grad(set_to_none=True)
                out["loss"].backward()
                optimizer.step()
                for name in totals:  # summed on the device: no GPU sync per step
                    totals[name] = totals[name] + out[name].detach() * len(idx)
                counts += torch.stack([torch.bincount(c, minlength=cfg.codebook_size) for c in out["codes"].T])
            record = {"epoch": epoch, **{k: v.item() / len(x) for k, v in totals.items()}}
            record["usage"] = ((counts > 0).sum(1) / cfg.codebook_size).tolist()
            last_epoch = epoch == cfg.epochs - 1
            # not after the last epoch: the model returned is the one that was trained
            dead = counts == 0 if cfg.dead_code_reset and not last_epoch else torch.zeros_like(counts, dtype=bool)
            record["reset"] = reset_dead_codes(model.codebooks, dead, out["residuals"], generator)
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", usage=f"{record['usage'][0]:.2f}")
        model.eval()
        return history

    # ----------------------------------------------------------------------- after fit

    def _fitted(self, embeddings: np.ndarray, what: str) -> Tensor:
        if self.model is None:
            raise EncoderecError(f"RQVAE.{what}: the tokenizer is not fitted; call fit(train_embeddings) first")
        dim = self.model.encoder[0].in_features
        return torch.from_numpy(check_embeddings(embeddings, dim=dim, what=f"RQVAE.{what} embeddings"))

    @torch.no_grad()
    def _quantise(self, embeddings: np.ndarray, what: str) -> tuple[Tensor, Tensor]:
        """(codes, last level's residuals r_L) of every row, on the CPU, in batches."""
        codes, last = [], []
        for batch in self._fitted(embeddings, what).split(TRANSFORM_BATCH):
            q = self.model.quantise(self.model.encoder(batch.to(self.device)))
            codes.append(q.codes.cpu())
            last.append(q.residuals[-1].cpu())
        return torch.cat(codes), torch.cat(last)

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, levels) int64 codes, each in [0, codebook_size)."""
        return self._quantise(embeddings, "transform")[0].numpy().astype(np.int64)

    def fit_transform(self, embeddings: np.ndarray, progress: bool = True) -> np.ndarray:
        return self.fit(embeddings, progress).transform(embeddings)

    @torch.no_grad()
    def last_level_distances(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, codebook_size) squared distances of each item's last residual r_L to every last-level code."""
        residual = self._quantise(embeddings, "last_level_distances")[1]
        return squared_distances(residual, self.model.codebooks[-1].detach().cpu()).numpy()

    @torch.no_grad()
    def reconstruct(self, embeddings: np.ndarray) -> np.ndarray:
        """dec(z_q): what the semantic IDs alone say about each item."""
        codes = self._quantise(embeddings, "reconstruct")[0]
        x_hat = [self.model.decode(batch.to(self.device)).cpu() for batch in codes.split(TRANSFORM_BATCH)]
        return torch.cat(x_hat).numpy()

    def reconstruction_error(self, embeddings: np.ndarray, relative: bool = False) -> float:
        """Mean over items of ||x - dec(z_q)||^2; relative=True divides by the mean ||x - mean(x)||^2 (1 = no better
        than predicting the mean)."""
        return reconstruction_error(embeddings, self.reconstruct(embeddings), relative)


def reset_dead_codes(
    codebooks: nn.Parameter, dead: Tensor, residuals: list[Tensor], generator: torch.Generator
) -> list[int]:
    """Move each level's dead codes (a (levels, K) mask) onto distinct random rows of that level's residuals.

    A code no item is nearest to gets no codebook gradient and would stay dead; on a current residual it is
    nearest to at least that item next time. Returns the number of codes reset per level.
    """
    reset = []
    with torch.no_grad():
        for level, r in enumerate(residuals):
            slots = dead[level].nonzero().squeeze(1)
            if len(slots):
                n = len(r)
                rows = (
                    torch.randperm(n, generator=generator)[: len(slots)]
                    if len(slots) <= n
                    else torch.randint(n, (len(slots),), generator=generator)
                )
                codebooks[level, slots] = r.detach()[rows.to(r.device)].to(codebooks.dtype)
            reset.append(len(slots))
    return reset


def reconstruction_error(x: np.ndarray, x_hat: np.ndarray, relative: bool = False) -> float:
    """Mean over items of the squared error summed over dimensions, optionally over the data's total variance."""
    x = np.asarray(x, dtype=np.float64)
    error = float(((x - np.asarray(x_hat, dtype=np.float64)) ** 2).sum(1).mean())
    if not relative:
        return error
    variance = float(((x - x.mean(0)) ** 2).sum(1).mean())
    return error / variance if variance > 0 else math.nan


# --------------------------------------------------------------------------- residual k-means baseline


class ResidualKMeans:
    """Semantic IDs without a network: level l's codebook = k-means centroids of the residuals left by levels < l.

    `centroids` is (levels, codebook_size, dim) after fit; `history` one dict per level (relative reconstruction
    error of the training rows using levels 1..l, and the share of that level's codes in use).
    """

    def __init__(self, levels: int = 3, codebook_size: int = 256, seed: int = 0, niter: int = KMEANS_ITERATIONS):
        self.levels, self.codebook_size, self.seed, self.niter = levels, codebook_size, seed, niter
        check_fields(self, [("levels", is_positive_int(levels), "a positive integer"),
                            ("codebook_size", is_positive_int(codebook_size) and codebook_size > 1, "an integer >= 2"),
                            ("seed", is_int(seed), "an integer"),
                            ("niter", is_positive_int(niter), "a positive integer")])
        self.centroids: np.ndarray | None = None
        self.history: list[dict[str, Any]] = []

    def fit(self, embeddings: np.ndarray, progress: bool = True) -> ResidualKMeans:
        x = check_embeddings(embeddings, min_rows=self.codebook_size, what="ResidualKMeans.fit embeddings")
        residual, centroids, self.history = x.copy(), [], []
        for level in tqdm(range(self.levels), desc="residual k-means", disable=not progress, leave=False):
            c = kmeans(residual, self.codebook_size, seed=self.seed + level, niter=self.niter)
            codes = _nearest(residual, c)
            residual -= c[codes]
            centroids.append(c)
            self.history.append(
                {
                    "level": level + 1,
                    "relative_error": reconstruction_error(x, x - residual, relative=True),
                    "usage": len(np.unique(codes)) / self.codebook_size,
                }
            )
        self.centroids = np.stack(centroids)
        return self

    def _assign(self, embeddings: np.ndarray, what: str, levels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(codes (n, levels), residual after them)."""
        if self.centroids is None:
            raise EncoderecError(f"ResidualKMeans.{what}: not fitted; call fit(train_embeddings) first")
        x = check_embeddings(embeddings, dim=self.centroids.shape[2], what=f"ResidualKMeans.{what} embeddings")
        residual, codes = x.copy(), []
        for c in self.centroids[: self.levels if levels is None else levels]:
            codes.append(_nearest(residual, c))
            residual -= c[codes[-1]]
        return np.stack(codes, 1) if codes else np.zeros((len(x), 0), dtype=np.int64), residual

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, levels) int64 codes, each in [0, codebook_size)."""
        return self._assign(embeddings, "transform")[0]

    def fit_transform(self, embeddings: np.ndarray, progress: bool = True) -> np.ndarray:
        return self.fit(embeddings, progress).transform(embeddings)

    def last_level_distances(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, codebook_size) squared distances of each item's residual before the last level to its codes."""
        residual = self._assign(embeddings, "last_level_distances", levels=self.levels - 1)[1]
        return squared_distances(torch.from_numpy(residual), torch.from_numpy(self.centroids[-1])).numpy()

    def reconstruction_error(self, embeddings: np.ndarray, relative: bool = False, levels: int | None = None) -> float:
        """As RQVAE.reconstruction_error, the reconstruction being the sum of the first `levels` centroids."""
        x = check_embeddings(embeddings, what="ResidualKMeans.reconstruction_error embeddings")
        residual = self._assign(x, "reconstruction_error", levels)[1]
        return reconstruction_error(x, x - residual, relative)


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of every row (exact search)."""
    import faiss

    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index.search(x, 1)[1][:, 0].astype(np.int64)
