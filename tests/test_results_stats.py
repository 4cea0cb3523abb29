"""results.stats: bootstrap intervals over clips and paired differences."""
import numpy as np
import pytest
import scipy.linalg

from metrics.frechet import FrechetToReference, frechet_distance
from results import stats
from results.stats import (Mean, bootstrap_ci, bootstrap_indices,
                           paired_difference)


def _classic_fd(x, mu_ref, sigma_ref):
    """Textbook Fréchet distance with scipy's sqrtm (reference implementation)."""
    mu, sigma = x.mean(axis=0), np.cov(x, rowvar=False)
    covmean = scipy.linalg.sqrtm(sigma @ sigma_ref).real
    return float(np.sum((mu - mu_ref) ** 2) + np.trace(sigma) + np.trace(sigma_ref) - 2 * np.trace(covmean))


@pytest.fixture(scope="module")
def ref():
    rng = np.random.default_rng(123)
    r = rng.normal(size=(400, 12))
    return r.mean(axis=0), np.cov(r, rowvar=False)


def test_bootstrap_is_reproducible_with_the_seed():
    v = np.random.default_rng(0).normal(25, 3, size=60)
    a = bootstrap_ci(v, n_boot=500, seed=7)
    b = bootstrap_ci(v, n_boot=500, seed=7)
    c = bootstrap_ci(v, n_boot=500, seed=8)
    assert a == b
    assert (a.lo, a.hi) != (c.lo, c.hi)
    assert a.point == pytest.approx(v.mean())
    assert a.lo < a.point < a.hi


def test_interval_shrinks_with_more_clips():
    rng = np.random.default_rng(1)
    small = bootstrap_ci(rng.normal(25, 3, size=30), n_boot=800, seed=0)
    large = bootstrap_ci(rng.normal(25, 3, size=480), n_boot=800, seed=0)
    assert large.half_width < small.half_width / 2.5  # ~ sqrt(16) = 4 times narrower


def test_mean_interval_has_nominal_coverage():
    # 95% percentile intervals of a mean should cover the true mean about 95% of the time.
    rng = np.random.default_rng(2)
    hits = 0
    for i in range(200):
        iv = bootstrap_ci(rng.normal(10.0, 2.0, size=80), n_boot=400, seed=i)
        hits += iv.lo <= 10.0 <= iv.hi
    assert 0.88 <= hits / 200 <= 0.99


def test_frechet_matches_the_textbook_formula(ref):
    mu, sigma = ref
    rng = np.random.default_rng(3)
    for n in (8, 200):  # N < D and N > D take different eigenproblems
        x = rng.normal(0.3, 1.2, size=(n, 12))
        assert FrechetToReference(mu, sigma)(x) == pytest.approx(_classic_fd(x, mu, sigma), rel=1e-6, abs=1e-8)
    x = rng.normal(size=(50, 12))
    assert frechet_distance(x.mean(0), np.cov(x, rowvar=False), mu, sigma) == pytest.approx(
        _classic_fd(x, mu, sigma), rel=1e-6)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_vectorised_statistic_equals_resampling_rows(ref):
    mu, sigma = ref
    x = np.random.default_rng(4).normal(size=(40, 12))
    stat = FrechetToReference(mu, sigma)
    fast = bootstrap_ci(x, stat, n_boot=64, seed=5)

    class Plain:  # same statistic without the vectorised path
        def __call__(self, rows):
            return stat(rows)

    slow = bootstrap_ci(x, Plain(), n_boot=64, seed=5)
    assert fast.point == pytest.approx(slow.point)
    assert fast.lo == pytest.approx(slow.lo, rel=1e-9) and fast.hi == pytest.approx(slow.hi, rel=1e-9)
    v = x[:, 0]
    assert bootstrap_ci(v, Mean(), n_boot=100, seed=1) == pytest.approx(
        tuple(bootstrap_ci(v, lambda r: float(np.mean(r)), n_boot=100, seed=1)))


def test_fvd_interval_variants(ref):
    mu, sigma = ref
    x = np.random.default_rng(6).normal(0.5, 1.0, size=(60, 12))
    stat = FrechetToReference(mu, sigma)
    pct = bootstrap_ci(x, stat, n_boot=300, seed=0)
    bc = bootstrap_ci(x, stat, n_boot=300, seed=0, interval="bias_corrected")
    basic = bootstrap_ci(x, stat, n_boot=300, seed=0, interval="basic")
    # Duplicated clips inflate FVD: the percentile interval sits high, the corrected one is centred.
    assert pct.lo > bc.lo and pct.hi > bc.hi
    assert bc.hi - bc.lo == pytest.approx(pct.hi - pct.lo)
    assert basic.hi - basic.lo == pytest.approx(pct.hi - pct.lo)
    assert bc.lo < bc.point < bc.hi


def test_paired_difference_of_identical_runs_is_exactly_zero(ref):
    rng = np.random.default_rng(7)
    vals = {(i, 0): float(v) for i, v in enumerate(rng.normal(28, 3, size=50))}
    d = paired_difference(vals, dict(vals), n_boot=500, seed=3)
    assert (d.difference, d.lo, d.hi, d.n) == (0.0, 0.0, 0.0, 50)
    feats = {(i, 0): f for i, f in enumerate(rng.normal(size=(30, 12)))}
    df = paired_difference(feats, {k: v.copy() for k, v in feats.items()}, FrechetToReference(*ref), n_boot=200, seed=1)
    assert (df.difference, df.lo, df.hi) == (0.0, 0.0, 0.0)


def test_paired_difference_uses_common_clips_and_same_resamples():
    rng = np.random.default_rng(8)
    base = rng.normal(25, 4, size=100)  # large clip-to-clip spread, shared by both runs
    a = {i: float(v + 0.5) for i, v in enumerate(base)}
    b = {i: float(v) for i, v in enumerate(base)}
    b.update({1000 + i: 99.0 for i in range(5)})  # clips only b has are ignored
    d = paired_difference(a, b, n_boot=400, seed=0)
    assert d.n == 100
    assert d.difference == pytest.approx(0.5)
    # Same resampled clips for both: the shared spread cancels, so the interval is tight.
    assert d.hi - d.lo < 1e-9
    unpaired = bootstrap_ci(base, n_boot=400, seed=0)
    assert unpaired.hi - unpaired.lo > 1.0


def test_paired_difference_without_shared_clips_is_a_clear_error():
    with pytest.raises(ValueError, match="share no clip keys"):
        paired_difference({"a": 1.0, "b": 2.0}, {"c": 1.0, "d": 2.0}, n_boot=10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(values_or_features=[1.0]), "at least 2 clips"),
    (dict(values_or_features=[1.0, float("nan"), 2.0]), "NaN or inf"),
    (dict(values_or_features=np.ones((5, 3))), "pass a statistic for features"),
    (dict(values_or_features=[1.0, 2.0], alpha=0.0), "alpha"),
    (dict(values_or_features=[1.0, 2.0], n_boot=-1), "n_boot"),
    (dict(values_or_features=[1.0, 2.0], interval="bca"), "interval"),
])
def test_bad_input_is_rejected_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(**kwargs)


def test_no_resamples_gives_point_only():
    iv = bootstrap_ci([1.0, 2.0, 3.0], n_boot=0)
    assert iv.point == 2.0 and iv.lo is None and iv.hi is None


def test_indices_come_from_the_seeded_generator():
    idx = bootstrap_indices(10, 3, seed=42)
    assert idx.shape == (3, 10)
    np.testing.assert_array_equal(idx, np.random.default_rng(42).integers(0, 10, size=(3, 10)))


def test_the_fvd_value_and_its_resamples_come_from_one_frechet_distance():
    """FrechetToReference (the bootstrap's statistic) on all clips equals frechet_distance
    (the FVD value) on the same clips' statistics, also for a rank-deficient reference."""
    rng = np.random.default_rng(3)
    for n_ref, n in ((50, 30), (8, 12)):          # the second reference has rank 7 < dim 16
        ref = rng.normal(size=(n_ref, 16))
        mu, sigma = ref.mean(0), np.cov(ref, rowvar=False)
        x = rng.normal(size=(n, 16)) + 0.3
        point = frechet_distance(x.mean(0), np.cov(x, rowvar=False), mu, sigma)
        assert FrechetToReference(mu, sigma)(x) == pytest.approx(point, rel=1e-7)


@pytest.mark.parametrize("n, dim", [(300, 40), (20, 40)])   # more clips than dimensions, and fewer
def test_batched_fvd_resamples_equal_the_straightforward_loop(n, dim):
    """The count-weighted path (threads on the host, or torch batches) gives the
    straightforward per-resample loop's values, hence its interval, to 1e-6."""
    rng = np.random.default_rng(11)
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    ref_rows = rng.normal(size=(500, dim)) @ mix
    stat = FrechetToReference(ref_rows.mean(0), np.cov(ref_rows, rowvar=False))
    x = rng.normal(0.2, 1.1, size=(n, dim)) @ mix
    idx = bootstrap_indices(n, 50, seed=4)
    counts = np.stack([np.bincount(i, minlength=n) for i in idx]).astype(float)
    loop = stat.resample_loop(x, idx)
    # rel 1e-6, not 1e-9: with fewer clips than dimensions the loop's D x D eigenproblem
    # adds the square roots of its rounding-level eigenvalues (~1e-8 relative)
    assert stat.weighted(x, counts) == pytest.approx(loop, rel=1e-6)
    assert stat.weighted(x, counts, device="cpu") == pytest.approx(loop, rel=1e-6)
    lo, hi = np.quantile(loop, [0.025, 0.975])
    iv = bootstrap_ci(x, stat, n_boot=50, seed=4)
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi), rel=1e-6)
    assert iv.point == pytest.approx(stat.resample_loop(x, np.arange(n)[None])[0], rel=1e-6)


class CountingFrechet(FrechetToReference):
    """FrechetToReference that counts the resamples it evaluates (not the point estimates)."""
    evaluated = 0

    def weighted(self, x, w, device=None):
        rows = np.atleast_2d(w).shape[0]
        CountingFrechet.evaluated += rows if rows > 1 else 0
        return super().weighted(x, w, device)


def test_a_cells_resamples_serve_its_paired_differences(ref):
    """The leaderboard's case: both cells' intervals first, then their paired difference on
    the same clips and draws costs no resample; other clips or draws are computed afresh."""
    stats.clear_memo()
    mu, sigma = ref
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((40, mu.shape[0])), rng.standard_normal((40, mu.shape[0])) + 0.2
    stat = CountingFrechet(mu, sigma)
    CountingFrechet.evaluated = 0
    cell_a = stats.bootstrap_ci(a, stat, n_boot=50, seed=3, interval="bias_corrected")
    stats.bootstrap_ci(b, CountingFrechet(mu, sigma), n_boot=50, seed=3, interval="bias_corrected")
    assert CountingFrechet.evaluated == 100
    paired = stats.paired_difference(dict(enumerate(a)), dict(enumerate(b)), CountingFrechet(mu, sigma),
                                     n_boot=50, seed=3, interval="bias_corrected")
    assert CountingFrechet.evaluated == 100   # both sides came from the cells
    stats.clear_memo()
    cold = stats.paired_difference(dict(enumerate(a)), dict(enumerate(b)), stat, n_boot=50, seed=3,
                                   interval="bias_corrected")
    assert CountingFrechet.evaluated == 200 and cold == paired   # the same numbers computed afresh
    stats.bootstrap_ci(a, stat, n_boot=50, seed=4, interval="bias_corrected")
    assert CountingFrechet.evaluated == 250   # other draws: computed
    assert stats.bootstrap_ci(a, stat, n_boot=50, seed=3, interval="bias_corrected") == cell_a
    other = FrechetToReference(mu + 1.0, sigma)   # another reference: another statistic
    assert other.memo_key != stat.memo_key
