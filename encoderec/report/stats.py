"""Uncertainty for a comparison of two models: over training runs (seeds) and over users (or queries) at once.

A comparison has per-user values of a metric for each seed of a model, `m[s, u]`, and of its base, `b[s, u]`
(paired: seed s of both sides, the same users; a frozen base encoder has one row, used for every seed). Its estimate
is the relative change of the means,

    r = mean(m) / mean(b) - 1.

**Interval.** Linearised around r (the delta method), each cell contributes

    z[s, u] = (m[s, u] - (1 + r) b[s, u]) / mean(b),        r - r_true ≈ mean(z),

and z is a two-way crossed layout of users and seeds (every seed ranks every user):
z[s, u] = a_u + e_s + eps_su. Its mean's variance,

    Var(mean z) = sigma2_user / n + sigma2_seed / S + sigma2_resid / (n S),

is estimated without bias from the mean squares of the two-way ANOVA (MS_user = S var_u(mean_s z),
MS_seed = n var_s(mean_u z), MS_resid): V = (MS_user + MS_seed - MS_resid) / (n S), and the 95 % interval is
r ± t_nu sqrt(V) with Satterthwaite's (1946) degrees of freedom nu for that sum of mean squares. With two or three
seeds nu is small and the interval wide: that is the point. It errs on the safe side: where runs barely differ, the
seed mean square still carries only S - 1 degrees of freedom, and the interval covers more than 95 %. A two-level bootstrap (resampling seeds, then users;
Owen 2007's pigeonhole bootstrap for crossed factors) estimates the same variance, but resampling 2-3 seeds
understates the seed term by (S - 1) / S and treats it as normal, so its 95 % interval covers well below 95 % when
runs differ (see tests/test_stats.py); the moment estimator with t_nu does not. With one seed the seed term cannot be
estimated: `seed_variance_known` is False and the caller decides (the summary grades such a setting inconclusive).

**Per-user test.** The paired randomization (sign-flip) test of the mean per-user difference, each user's values
first averaged over the seeds (two-sided, `PERMUTATIONS` flips, p = (hits + 1) / (flips + 1), Phipson & Smyth 2010).
It tests the mean that the relative change describes, needs no distributional assumption, and a user whose
difference is zero (both models miss, the common case) adds nothing whichever way it is flipped, so there is no
zero-handling choice to make (the Wilcoxon signed-rank test's p moved from 0.003 to 0.07 with it); Smucker, Allan and
Carterette (CIKM 2007) recommend it for IR evaluation over the Wilcoxon and sign tests. It is blind to run variance
by design; the interval is not, and a verdict needs both (`encoderec.report.summary`).

**Multiplicity.** `holm` adjusts the p-values of a family of tests (Holm 1979): the k-th smallest of m is multiplied
by (m - k + 1), made monotone, capped at 1. It controls the family-wise error rate at alpha under any dependence.

**Power.** `detectable_change`: the smallest relative change this design finds with probability `POWER` at level
alpha, (t_{nu, 1 - alpha/2} + z_POWER) sqrt(V); `seeds_needed`: the fewest seeds (same users) for which it falls to a
given effect, from the estimated variance components, or None when more seeds alone cannot get there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

ALPHA = 0.05
POWER = 0.8
PERMUTATIONS = 10_000
MAX_SEEDS = 20  # `seeds_needed` looks no further


@dataclass(frozen=True)
class Change:
    """A relative change with its uncertainty (see the module docstring); variances are on the relative scale."""

    estimate: float
    low: float
    high: float
    se: float
    df: float
    seeds: int
    users: int
    sigma2_user: float
    sigma2_seed: float | None  # None: one seed, the run variance is unknown
    sigma2_resid: float | None

    @property
    def seed_variance_known(self) -> bool:
        return self.sigma2_seed is not None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def relative_change(model: np.ndarray, base: np.ndarray, level: float = 1 - ALPHA) -> Change:
    """The relative change of `model` over `base` with its interval over seeds and users; both (seeds, users) arrays
    of per-user values, paired by row (seed) and column (user); `base` may have one row (a frozen encoder)."""
    from scipy import stats as st

    m, b = np.atleast_2d(np.asarray(model, dtype=np.float64)), np.atleast_2d(np.asarray(base, dtype=np.float64))
    if b.shape[0] == 1:
        b = np.repeat(b, m.shape[0], axis=0)
    if m.shape != b.shape:
        raise ValueError(f"relative_change needs the same seeds and users on both sides: {m.shape} vs {b.shape}")
    seeds, users = m.shape
    if users < 2:
        raise ValueError(f"relative_change needs at least 2 users, got {users}")
    base_mean = b.mean()
    if base_mean == 0:
        nan = float("nan")
        return Change(nan, nan, nan, nan, nan, seeds, users, nan, None, None)
    r = m.mean() / base_mean - 1
    z = (m - (1 + r) * b) / base_mean
    by_user, by_seed = z.mean(axis=0), z.mean(axis=1)
    ms_user = seeds * by_user.var(ddof=1)
    if seeds == 1:
        variance, df = ms_user / users, users - 1.0
        sigma2_seed = sigma2_resid = None
    else:
        ms_seed = users * by_seed.var(ddof=1)
        resid = z - by_user[None, :] - by_seed[:, None] + z.mean()
        df_resid = (users - 1) * (seeds - 1)
        ms_resid = float((resid ** 2).sum() / df_resid)
        terms = [(ms_user, users - 1), (ms_seed, seeds - 1), (-ms_resid, df_resid)]
        variance = max(sum(t for t, _ in terms), ms_user) / (users * seeds)  # never below the users' own term
        df = satterthwaite(terms)
        sigma2_seed = max((ms_seed - ms_resid) / users, 0.0)
        sigma2_resid = ms_resid
    sigma2_user = max((ms_user - (sigma2_resid or 0.0)) / seeds, 0.0)
    se = float(np.sqrt(variance))
    half = float(st.t.ppf(0.5 + level / 2, df)) * se
    return Change(float(r), float(r - half), float(r + half), se, float(df), seeds, users, float(sigma2_user),
                  sigma2_seed, sigma2_resid)


def satterthwaite(terms: Sequence[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of mean squares, each (signed mean square, its degrees of freedom)."""
    total = sum(ms for ms, _ in terms)
    denominator = sum(ms ** 2 / df for ms, df in terms if df > 0)
    return float(max(total ** 2 / denominator, 1.0)) if denominator > 0 else float("inf")


def randomization_test(differences: Sequence[float] | np.ndarray, permutations: int = PERMUTATIONS,
                       seed: int = 0) -> float:
    """Two-sided paired randomization test of mean(differences) = 0 by random sign flips (module docstring)."""
    d = np.asarray(differences, dtype=np.float64)
    observed = abs(d.sum())
    if not np.any(d):
        return 1.0
    rng = np.random.default_rng(seed)
    hits, done, chunk = 0, 0, max(1, min(permutations, 2_000_000 // max(len(d), 1)))
    while done < permutations:
        size = min(chunk, permutations - done)
        signs = rng.integers(0, 2, size=(size, len(d)), dtype=np.int8) * 2 - 1
        hits += int(np.sum(np.abs(signs @ d) >= observed - 1e-12 * max(observed, 1.0)))
        done += size
    return (hits + 1) / (permutations + 1)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None: no test, left out of the family and as None)."""
    tested = [(p, i) for i, p in enumerate(pvalues) if p is not None and p == p]
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for k, (p, i) in enumerate(sorted(tested)):
        running = max(running, min(1.0, (len(tested) - k) * p))
        out[i] = running
    return out


def detectable_change(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest relative change a design with standard error `se` (relative) and `df` degrees of freedom detects
    with probability `power` in a two-sided test at `alpha`."""
    from scipy import stats as st

    return float((st.t.ppf(1 - alpha / 2, df) + st.norm.ppf(power)) * se)


def seeds_needed(change: Change, effect: float, alpha: float = ALPHA, power: float = POWER,
                 most: int = MAX_SEEDS) -> int | None:
    """The fewest seeds (the same users) whose `detectable_change` is at most `effect`, from `change`'s variance
    components; None when the run variance is unknown or `most` seeds are not enough."""
    if not change.seed_variance_known or not effect > 0:
        return None
    n = change.users
    for seeds in range(2, most + 1):
        variance = change.sigma2_user / n + change.sigma2_seed / seeds + change.sigma2_resid / (n * seeds)
        df = satterthwaite([(seeds * change.sigma2_user + change.sigma2_resid, n - 1),
                            (n * change.sigma2_seed + change.sigma2_resid, seeds - 1),
                            (-change.sigma2_resid, (n - 1) * (seeds - 1))])
        if detectable_change(float(np.sqrt(variance)), df, alpha, power) <= effect:
            return seeds
    return None
