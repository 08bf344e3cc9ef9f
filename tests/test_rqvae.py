import numpy as np
import pytest
import torch

from encoderec.core.errors import EncoderecError
from encoderec.models.rqvae import RQVAE, ResidualKMeans, RQVAEConfig, RQVAEModel, reset_dead_codes
from encoderec.models.semantic_ids import collision_free_last_level

SMALL = dict(hidden_dims=(64, 32), latent_dim=8, codebook_size=64, epochs=12, batch_size=128, lr=3e-3, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mixture() -> np.ndarray:
    """2,000 x 32 points around 20 centres: structure for the codebooks to find."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 32))
    return (centres[rng.integers(20, size=2000)] + 0.3 * rng.normal(size=(2000, 32))).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(mixture) -> RQVAE:
    return RQVAE(RQVAEConfig(**SMALL)).fit(mixture, progress=False)


def test_fit_reduces_the_loss_and_uses_most_of_the_codebook(fitted, mixture):
    history = fitted.history
    assert len(history) == SMALL["epochs"]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["recon"] < history[0]["recon"]
    codes = fitted.transform(mixture)
    assert len(np.unique(codes[:, 0])) / SMALL["codebook_size"] > 0.5
    assert all(0 < u <= 1 for u in history[-1]["usage"])


def test_transform_gives_int_codes_in_range(fitted, mixture):
    codes = fitted.transform(mixture[:100])
    assert codes.shape == (100, 3) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < SMALL["codebook_size"]
    assert np.array_equal(codes, fitted.transform(mixture)[:100])  # batching does not change a row's code


def test_fit_is_deterministic_for_a_seed(fitted, mixture):
    state = torch.random.get_rng_state()
    again = RQVAE(RQVAEConfig(**SMALL)).fit(mixture, progress=False)
    assert np.array_equal(again.transform(mixture), fitted.transform(mixture))
    assert [h["loss"] for h in again.history] == [h["loss"] for h in fitted.history]
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    other = RQVAE(RQVAEConfig(**{**SMALL, "seed": 1})).fit(mixture, progress=False)
    assert not np.array_equal(other.transform(mixture), fitted.transform(mixture))


def test_fit_is_deterministic_with_several_threads():
    """TIGER's RQ-VAE on 6,000 items: two threads split the backward's accumulation (tensors this size are split,
    SMALL's are not), yet the fit repeats itself exactly, stays within float rounding of the one-thread fit (equal on
    some CPUs; on a Xeon with AMX the matrix products split their sums by thread count: 1e-7 apart), and leaves
    torch's deterministic-algorithms setting as it found it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    config = RQVAEConfig(epochs=3, device="cpu")
    one = RQVAE(config).fit(x, progress=False)
    torch.set_num_threads(2)  # the one_thread fixture restores the count after the test
    fits = [RQVAE(config).fit(x, progress=False) for _ in range(2)]
    assert [h["loss"] for h in fits[0].history] == [h["loss"] for h in fits[1].history]
    assert np.array_equal(fits[0].transform(x), fits[1].transform(x))
    np.testing.assert_allclose([h["loss"] for h in fits[0].history], [h["loss"] for h in one.history], rtol=1e-5)
    assert not torch.are_deterministic_algorithms_enabled()


def test_reconstruction_error_is_absolute_and_relative(fitted, mixture):
    absolute = fitted.reconstruction_error(mixture)
    variance = ((mixture - mixture.mean(0)) ** 2).sum(1).mean()
    assert fitted.reconstruction_error(mixture, relative=True) == pytest.approx(absolute / variance, rel=1e-5)
    assert 0 < absolute / variance < 0.5


def test_straight_through_sends_the_reconstruction_gradient_to_the_encoder(mixture):
    torch.manual_seed(0)
    model = RQVAEModel(RQVAEConfig(**SMALL), input_dim=32)
    model(torch.from_numpy(mixture[:256]))["recon"].backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0
    assert model.codebooks.grad is None  # the codes learn from the codebook term only

    model.zero_grad()
    out = model(torch.from_numpy(mixture[:256]))
    (out["loss"] - out["recon"]).backward()  # codebook + commitment terms: both the codes and the encoder move
    assert model.codebooks.grad.abs().sum() > 0 and model.encoder[0].weight.grad.abs().sum() > 0
    assert model.decoder[0].weight.grad is None or model.decoder[0].weight.grad.abs().sum() == 0


def test_reset_dead_codes_moves_them_onto_residuals():
    codebooks = torch.nn.Parameter(torch.zeros(2, 4, 3))
    residuals = [torch.arange(15.0).reshape(5, 3), -torch.arange(15.0).reshape(5, 3)]
    dead = torch.tensor([[False, True, False, True], [False, False, False, False]])
    reset = reset_dead_codes(codebooks, dead, residuals, torch.Generator().manual_seed(0))
    assert reset == [2, 0]
    moved = codebooks[0, [1, 3]].detach()
    assert all(any(torch.equal(row, r) for r in residuals[0]) for row in moved)
    assert not torch.equal(moved[0], moved[1])  # distinct rows when the batch has enough
    assert torch.equal(codebooks[0, [0, 2]], torch.zeros(2, 3)) and torch.equal(codebooks[1], torch.zeros(4, 3))


def test_dead_code_reset_revives_unused_codes(mixture):
    # without k-means the codes start in a tiny ball at the origin: most of them are never chosen
    cfg = dict(SMALL, kmeans_init=False, epochs=6)
    plain = RQVAE(RQVAEConfig(**cfg, dead_code_reset=False)).fit(mixture, progress=False)
    revived = RQVAE(RQVAEConfig(**cfg, dead_code_reset=True)).fit(mixture, progress=False)
    assert sum(revived.history[0]["reset"]) > 0 and sum(plain.history[0]["reset"]) == 0
    assert revived.history[-1]["reset"] == [0, 0, 0]  # never after the last epoch
    used = [len(np.unique(m.transform(mixture)[:, 0])) for m in (plain, revived)]
    assert used[1] > 2 * used[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latent_dim", 0),
        ("levels", -1),
        ("codebook_size", 1),
        ("beta", -0.1),
        ("lr", 0),
        ("epochs", 2.5),
        ("batch_size", None),
        ("hidden_dims", (64, 0)),
        ("kmeans_init", 1),
        ("seed", "0"),
        ("input_dim", 0),
        ("beta", float("nan")),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(EncoderecError, match=f"RQVAEConfig.{field}: expected"):
        RQVAEConfig(**{field: value})


def test_config_accepts_a_list_of_hidden_dims():
    assert RQVAEConfig(hidden_dims=[8, 4]).hidden_dims == (8, 4)


def test_inputs_are_validated(fitted, mixture):
    small = RQVAE(RQVAEConfig(**SMALL))
    with pytest.raises(EncoderecError, match="2-d array"):
        small.fit(mixture[0])
    with pytest.raises(EncoderecError, match="at least 64"):
        small.fit(mixture[:10])
    bad = mixture[:200].copy()
    bad[7, 3] = np.nan
    with pytest.raises(EncoderecError, match="row 7"):
        small.fit(bad)
    with pytest.raises(EncoderecError, match="not fitted"):
        small.transform(mixture)
    with pytest.raises(EncoderecError, match="expected 32 dimensions"):
        fitted.transform(mixture[:, :16])
    with pytest.raises(EncoderecError, match="input_dim|expected 16 dimensions"):
        RQVAE(RQVAEConfig(**SMALL, input_dim=16)).fit(mixture)


def test_last_level_distances_agree_with_the_codes_and_make_ids_unique(fitted, mixture):
    codes = fitted.transform(mixture)
    distances = fitted.last_level_distances(mixture)
    assert distances.shape == (len(mixture), SMALL["codebook_size"])
    assert np.array_equal(distances.argmin(1), codes[:, -1])
    unique = collision_free_last_level(codes, distances)
    assert len(np.unique(unique, axis=0)) == len(mixture)
    assert np.array_equal(unique[:, :-1], codes[:, :-1])


def test_residual_kmeans_improves_with_each_level(mixture):
    tokenizer = ResidualKMeans(levels=3, codebook_size=32, seed=0).fit(mixture)
    codes = tokenizer.transform(mixture)
    assert codes.shape == (2000, 3) and codes.dtype == np.int64 and codes.max() < 32
    errors = [tokenizer.reconstruction_error(mixture, relative=True, levels=level) for level in (0, 1, 2, 3)]
    variance = ((mixture - mixture.mean(0)) ** 2).sum(1).mean()
    assert errors[0] == pytest.approx((mixture**2).sum(1).mean() / variance, rel=1e-5)  # no level: x_hat = 0
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert [h["relative_error"] for h in tokenizer.history] == pytest.approx(errors[1:], rel=1e-4)
    assert np.array_equal(ResidualKMeans(3, 32, seed=0).fit(mixture).transform(mixture), codes)
    assert np.array_equal(tokenizer.last_level_distances(mixture).argmin(1), codes[:, -1])


def test_residual_kmeans_validates(mixture):
    with pytest.raises(EncoderecError, match="ResidualKMeans.codebook_size"):
        ResidualKMeans(codebook_size=1)
    with pytest.raises(EncoderecError, match="not fitted"):
        ResidualKMeans().transform(mixture)
    with pytest.raises(EncoderecError, match="at least 256"):
        ResidualKMeans().fit(mixture[:100])


# --------------------------------------------------------------------------- the cached pipeline (semantic_ids.tokenize)


def test_tokenize_fits_on_the_given_items_and_caches(mixture, tmp_path):
    from encoderec.models.semantic_ids import tokenize

    config = RQVAEConfig(**SMALL)
    fit_items = np.flatnonzero(np.arange(2000) % 10)  # 1,800 of the 2,000 items
    first = tokenize(mixture, fit_items, "rqvae", config, cache_dir=tmp_path, progress=False)
    expected = RQVAE(config).fit(mixture[fit_items], progress=False).transform(mixture)
    assert np.array_equal(first.codes, expected)
    assert first.info["fit_items"] == 1800 and first.info["items"] == 2000
    # What the fit guarantees: the collision-free level exists exactly when no prefix group outgrows the codebook
    # (which groups form depends on the fit's numerics, so both outcomes are checked for what they must give).
    _, group_sizes = np.unique(first.codes[:, :2], axis=0, return_counts=True)
    assert first.info["hungarian"]["possible"] == (group_sizes.max() <= SMALL["codebook_size"])
    if first.unique is not None:
        assert len(np.unique(first.unique, axis=0)) == 2000
        assert np.array_equal(first.unique[:, :2], first.codes[:, :2])  # only the last level moves
    else:
        assert "more than the 64 last-level codes" in first.info["hungarian"]["why"]
    assert len(first.info["history"]) == SMALL["epochs"]

    cached = tokenize(mixture, fit_items, "rqvae", config, cache_dir=tmp_path, progress=False)
    assert np.array_equal(cached.codes, first.codes) and cached.info == first.info
    assert (cached.unique is None) == (first.unique is None)
    assert first.unique is None or np.array_equal(cached.unique, first.unique)
    entries = 1 + (first.unique is not None)  # the codes, and the collision-free codes when they exist
    assert len(list((tmp_path / "semantic_ids").glob("*.json"))) == entries

    other = tokenize(mixture, fit_items, "rqvae", RQVAEConfig(**{**SMALL, "seed": 1}), cache_dir=tmp_path,
                     progress=False)
    assert not np.array_equal(other.codes, first.codes)  # a new key, not the cached entry
    assert len(list((tmp_path / "semantic_ids").glob("*.json"))) == entries + 1 + (other.unique is not None)


def test_tokenize_makes_colliding_ids_unique_when_every_group_fits(tmp_path):
    """16 points, each twice: the copies must collide, and no prefix group can exceed the 32 last-level codes."""
    from encoderec.models.semantic_ids import tokenize

    x = np.repeat(np.random.default_rng(0).normal(size=(16, 8)), 2, axis=0).astype(np.float32)
    result = tokenize(x, np.arange(32), "rkmeans", RQVAEConfig(levels=2, codebook_size=32), cache_dir=tmp_path,
                      progress=False)
    assert len(np.unique(result.codes, axis=0)) <= 16 and result.info["hungarian"]["possible"]
    assert len(np.unique(result.unique, axis=0)) == 32 and result.info["hungarian"]["changed"] >= 16
    assert np.array_equal(result.unique[:, 0], result.codes[:, 0])


def test_a_new_result_version_of_the_tokenizer_is_a_new_fit(tmp_path, monkeypatch):
    from encoderec.models import semantic_ids

    x = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)
    args = (x, np.arange(32), "rkmeans", RQVAEConfig(levels=2, codebook_size=32))
    semantic_ids.tokenize(*args, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(semantic_ids, "RESULT_VERSION", 2)
    semantic_ids.tokenize(*args, cache_dir=tmp_path, progress=False)
    codes_files = [p for p in (tmp_path / "semantic_ids").glob("*.json") if not p.name.endswith(".unique.json")]
    assert len(codes_files) == 2


def test_tokenize_with_residual_kmeans_and_an_impossible_collision_free_level(tmp_path):
    from encoderec.models.semantic_ids import tokenize

    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(4, 8)), 10, axis=0).astype(np.float32)  # 4 points, 10 copies each
    result = tokenize(x, np.arange(40), "rkmeans", RQVAEConfig(levels=2, codebook_size=4), cache_dir=tmp_path,
                      progress=False)
    assert result.codes.shape == (40, 2) and result.info["tokenizer"] == "rkmeans"
    assert result.unique is None and not result.info["hungarian"]["possible"]  # 10 copies > 4 last codes
    assert "more than the 4 last-level codes" in result.info["hungarian"]["why"]
    assert tokenize(x, np.arange(40), "rkmeans", RQVAEConfig(levels=2, codebook_size=4),
                    cache_dir=tmp_path).unique is None


@pytest.mark.parametrize(
    "kind, fit_items, message",
    [("vq", np.arange(10), "tokenizer 'vq': expected one of rqvae, rkmeans"),
     ("rqvae", np.array([0, 99]), r"fit_items: expected item indices in \[0, 40\)"),
     ("rqvae", np.array([], dtype=int), "fit_items")],
)
def test_tokenize_rejects_bad_arguments(kind, fit_items, message, tmp_path):
    from encoderec.models.semantic_ids import tokenize

    with pytest.raises(EncoderecError, match=message):
        tokenize(np.zeros((40, 4), np.float32), fit_items, kind, cache_dir=tmp_path)
