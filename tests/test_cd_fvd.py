"""Content-debiased FVD against the cd-fvd package (0.1.1): preprocessing, features on the
same network and clips, the distance, the bootstrap statistic, weights loading and the
plug-in's checks. The network tests run the package's VideoMAE-v2 code at a reduced width
(same architecture code, 2 blocks); the full ViT-g runs in the slow test. Weights "tiny"
(the contract options) are built, run against real clips and labelled in one fast test."""
from __future__ import annotations

import os
import time
import warnings
from functools import partial

import numpy as np
import pytest
import torch
from cdfvd.fvd import cdfvd, get_videomae_features
from cdfvd.third_party.VideoMAEv2.utils import preprocess_videomae
from cdfvd.third_party.VideoMAEv2.videomaev2_finetune import VisionTransformer
from cdfvd.utils.metric_utils import FeatureStats as PackageStats

from common.files import sha256_file
from metrics import cd_fvd
from metrics.cd_fvd import BiasedFrechetToReference, CDFVDMetric, cd_fvd_from_stats, preprocess
from metrics.cd_fvd_plugin import CDFVD
from metrics.feature_stats import FeatureStats
from metrics.plugin import RunFacts


def small_videomae(num_frames: int = 16, seed: int = 0) -> torch.nn.Module:
    """The package's VideoMAE-v2 ViT at 32 wide and 2 deep (ViT-g: 1408 x 40), patch 14."""
    torch.manual_seed(seed)
    return VisionTransformer(img_size=224, patch_size=14, embed_dim=32, depth=2, num_heads=4, mlp_ratio=48 / 11,
                             qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_classes=174,
                             all_frames=num_frames, tubelet_size=2, use_mean_pooling=True).eval()


def clips(n, f=16, h=64, w=80, seed=0):
    """Smooth moving colour ramps plus noise, uint8 [n, f, h, w, 3]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    t = np.arange(f)[:, None, None]
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0.02, 0.2, 3)
        base = np.stack([127 + 100 * np.sin(a * xx + c * t + k) * np.cos(b * yy) for k in range(3)], -1)
        out.append(np.clip(base + rng.normal(0, 12, base.shape), 0, 255))
    return np.stack(out).astype(np.uint8)


def package_features(network, frames, batchsize=16):
    stats = PackageStats(capture_all=True, capture_mean_cov=True)
    return get_videomae_features(stats, network, frames, batchsize=batchsize, device="cpu")


def metric_on(network, num_frames=16, batch_size=3):
    return CDFVDMetric(network, weights="random", weights_id="test", weights_label="test network",
                       num_frames=num_frames, batch_size=batch_size)


@pytest.mark.parametrize("shape", [(2, 16, 64, 80), (1, 16, 224, 224), (2, 8, 240, 320), (1, 16, 300, 200)])
def test_preprocess_is_the_package_preprocessing(shape):
    frames = clips(*shape)
    ours, theirs = preprocess(frames), preprocess_videomae(frames)
    assert ours.shape == theirs.shape == (shape[0], 3, shape[1], 224, 224)
    assert ours.dtype == theirs.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("num_frames", [16, 8])
def test_features_match_the_package_on_the_same_network(one_thread, num_frames):
    network = small_videomae(num_frames=16)   # 8 frames: the package's position interpolation
    frames = clips(5, f=num_frames, seed=num_frames)
    ours = metric_on(network, num_frames).extract(frames, ["a prompt"] * 5)
    theirs = package_features(network, frames).get_all()
    assert ours.shape == theirs.shape == (5, 32) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    assert np.abs(ours).max() > 1e-2   # not a collapsed network


def test_distance_is_the_packages_biased_frechet_distance():
    rng = np.random.default_rng(0)
    fake, real = rng.normal(size=(300, 24)), rng.normal(size=(260, 24)) @ rng.normal(size=(24, 24)) * 0.4 + 0.3
    theirs_fake, theirs_real = PackageStats(capture_mean_cov=True), PackageStats(capture_mean_cov=True)
    theirs_fake.append(fake)
    theirs_real.append(real)
    evaluator = object.__new__(cdfvd)   # its distance reads only the statistics it is given
    theirs = float(evaluator.compute_fvd_from_stats(theirs_fake, theirs_real))
    # the package's statistics go through float32 features; give ours the same numbers
    ours = cd_fvd_from_stats(FeatureStats.from_features(fake.astype(np.float32)),
                             FeatureStats.from_features(real.astype(np.float32)))
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert ours > 1.0


def test_score_matches_the_package_end_to_end(one_thread):
    """Same clips, same network: the package's compute_fvd and our extract + score."""
    network = small_videomae()
    real, fake = clips(40, seed=1), clips(36, seed=2)
    evaluator = object.__new__(cdfvd)
    evaluator.model, evaluator.device, evaluator.model_dtype = network, "cpu", torch.float32
    evaluator.feature_fn = get_videomae_features
    evaluator.real_stats = PackageStats(capture_mean_cov=True)
    evaluator.fake_stats = PackageStats(capture_mean_cov=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = float(evaluator.compute_fvd(real, fake))
    metric = metric_on(network)
    metric.use_reference(FeatureStats.from_features(metric.extract(real, None)))
    with pytest.warns(UserWarning, match="below the 2048 clips"):
        out = metric.score(metric.extract(fake, None), None)
    assert out["value"] == pytest.approx(theirs, rel=1e-6)
    assert (out["n"], out["n_real"], out["protocol"]) == (36, 40, "cdfvd-videomae-v1")
    assert out["feature_key"] == "cd_fvd/cdfvd-videomae-v1/test/16f"
    described = metric.describe()
    assert (described["name"], described["version"], described["comparable_to_paper"]) == ("cd_fvd", "1", False)
    assert described["reference"]["prepared"] and described["protocol_spec"]["covariance"] == "biased (N)"


def test_bootstrap_statistic_is_the_score_on_each_resample():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 10))
    real = FeatureStats.from_features(rng.normal(size=(70, 10)) * 1.2 + 0.1)
    statistic = BiasedFrechetToReference(real)
    idx = rng.integers(0, 50, size=(6, 50))
    counts = np.stack([np.bincount(i, minlength=50) for i in idx])
    loop = [cd_fvd_from_stats(FeatureStats.from_features(x[i]), real) for i in idx]
    np.testing.assert_allclose(statistic.weighted(x, counts), loop, rtol=1e-9)
    assert statistic(x) == pytest.approx(cd_fvd_from_stats(FeatureStats.from_features(x), real), rel=1e-12)


def test_clip_length_and_frames_are_checked():
    metric = metric_on(small_videomae())
    with pytest.raises(ValueError, match="expects 16-frame clips, got 8"):
        metric.extract(clips(1, f=8), None)
    with pytest.raises(ValueError, match="uint8"):
        metric.extract(clips(1).astype(np.float32), None)
    with pytest.raises(RuntimeError, match="call prepare"):
        metric.score(np.zeros((3, 32), np.float32), None)


def test_load_network_reads_the_checkpoint_as_the_package_does(tmp_path, monkeypatch):
    monkeypatch.setattr(cd_fvd, "videomae_network", lambda num_frames=16: small_videomae(num_frames, seed=5))
    source = small_videomae(seed=9)
    path = tmp_path / "vit_g_hybrid_pt_1200e_ssv2_ft.pth"
    torch.save({"module": source.state_dict()}, path)
    loaded = cd_fvd.load_network(str(path), sha256=sha256_file(path))
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="expected 0+"):
        cd_fvd.load_network(str(path), sha256="0" * 64)
    torch.save({"model": {"head.weight": torch.zeros(3)}}, path)
    with pytest.raises(RuntimeError, match="not a checkpoint of the VideoMAE-v2"):
        cd_fvd.load_network(str(path))
    with pytest.raises(FileNotFoundError, match="pjlab-gvm-data"):
        cd_fvd.load_network(str(tmp_path / "absent.pth"))


def test_build_refuses_what_cannot_work(tmp_path):
    with pytest.raises(ValueError, match="unknown option"):
        cd_fvd.build(weights="random", widht=3)
    with pytest.raises(ValueError, match="reads no file"):
        cd_fvd.build(weights="random", path=str(tmp_path / "x.pth"))
    with pytest.raises(ValueError, match="even number of frames"):
        cd_fvd.build(weights="random", num_frames=15)
    with pytest.raises(FileNotFoundError, match="vit_g_hybrid_pt_1200e_ssv2_ft.pth"):
        cd_fvd.build(weights="pretrained", cache_dir=str(tmp_path))


# ----------------------------------------------------------------------------- plug-in


def test_plugin_names_the_missing_weights_and_reference(tmp_path):
    run = RunFacts(cache_dir=str(tmp_path), num_frames=16, clips_per_cell=24)
    checked = CDFVD.check({"weights": "pretrained", "reference": str(tmp_path / "UCF-101")}, run)
    whats = " ".join(p.what for p in checked.problems)
    assert "vit_g_hybrid_pt_1200e_ssv2_ft.pth not found" in whats and "UCF-101" in whats
    fixes = " ".join(p.fix for p in checked.problems)
    assert CDFVD.weight_files[0].url in fixes
    assert any("below the 2048" in n for n in checked.notes)
    # the file in place: no problem left
    (tmp_path / "UCF-101").mkdir()
    (tmp_path / "vit_g_hybrid_pt_1200e_ssv2_ft.pth").write_bytes(b"weights")
    checked = CDFVD.check({"weights": "pretrained", "reference": str(tmp_path / "UCF-101")}, run)
    assert checked.problems == [] and {a.status for a in checked.assets} == {"ok"}
    # random weights read no file; a misspelt option is one problem
    assert CDFVD.files({"weights": "random"}, run) == []
    bad = CDFVD.check({"wieghts": "random"}, run)
    assert len(bad.problems) == 1 and "did you mean 'weights'" in bad.problems[0].what


def test_plugin_declares_the_published_file_and_settings(tmp_path):
    run = RunFacts(cache_dir=str(tmp_path), num_frames=16)
    (need,) = CDFVD.files({}, run)
    assert need.path == os.path.join(str(tmp_path), "vit_g_hybrid_pt_1200e_ssv2_ft.pth")
    assert need.url.startswith("https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/internvideo/videomaev2/")
    assert need.setting == "metrics.cd_fvd.options.path" and not need.user_file
    (given,) = CDFVD.files({"path": str(tmp_path / "mine.pth"), "sha256": "ab" * 32}, run)
    assert given.user_file and given.sha256 == "ab" * 32 and given.root == "abs"
    assert CDFVD.resolve_options({}, RunFacts(num_frames=8, cache_dir="/c"))["num_frames"] == 8
    assert CDFVD.settings_problems({"num_frames": 15}, run) and not CDFVD.settings_problems({}, run)
    assert CDFVD.settings_problems({"weights": "tinyy"}, run)
    cost = CDFVD.cost({}, run)
    assert 4.5 < cost.tflop_per_clip < 5.5   # ViT-g/14 on 2,048 tokens
    assert cost.features == {"cd_fvd/cdfvd-videomae-v1": ((1408,), "float32")}
    assert (CDFVD.name, CDFVD.higher_is_better, CDFVD.kind) == ("cd_fvd", False, "clip")


# ----------------------------------------------------------------------------- tiny weights


def test_tiny_weights_build_offline_extract_and_score_against_real_clips(tmp_path, one_thread):
    """The contract options: the package's network at 2 blocks of 64, seeded, no file; two
    16-frame 64x64 clips in well under 10 s; real clips through the same tiny network."""
    start = time.perf_counter()
    metric = cd_fvd.build(**CDFVD.contract_options)
    frames = clips(2, f=16, h=64, w=64, seed=5)
    features = metric.extract(frames, None)
    assert time.perf_counter() - start < 10
    assert isinstance(metric.network, VisionTransformer) and len(metric.network.blocks) == 2
    assert features.shape == (2, 64)
    np.testing.assert_allclose(features, package_features(metric.network, frames).get_all(), rtol=0, atol=1e-5)
    assert np.array_equal(cd_fvd.build(**CDFVD.contract_options).extract(frames, None), features)   # seeded

    assert metric.feature_key == "cd_fvd/cdfvd-videomae-tiny-d2w64-v1/tiny-seed0/16f"
    assert cd_fvd.build(**CDFVD.contract_variant).feature_key != metric.feature_key
    metric.prepare(str(tmp_path))
    assert metric.reference.dim == 64 and metric.reference.count == 4
    assert "tiny-d2w64" in os.path.basename(metric.reference_info["cache_file"])
    with pytest.warns(UserWarning, match="network weights are tiny"):
        out = metric.score(features, None)
    assert np.isfinite(out["value"]) and out["value"] > 0 and (out["n"], out["n_real"]) == (2, 4)
    described = metric.describe()
    assert described["weights_mode"] == "tiny" and "tiny" in described["weights"]
    assert "meaningless" in described["note"] and described["protocol"] != CDFVD.protocol
    assert described["protocol_spec"]["network"].startswith("tiny VideoMAE-v2 ViT/14 (2 blocks of 64")
    assert not described["comparable_to_published"]


def test_plugin_accepts_tiny_weights_without_files(tmp_path):
    run = RunFacts(cache_dir=str(tmp_path), num_frames=16, clips_per_cell=24)
    tiny = {"weights": "tiny"}
    assert CDFVD.settings_problems(tiny, run) == [] and CDFVD.files(tiny, run) == []
    checked = CDFVD.check(tiny, run)
    assert checked.problems == [] and any("mean nothing" in n for n in checked.notes)
    assert CDFVD.settings_problems({"weights": "tiny", "path": str(tmp_path / "x.pth")}, run)
    cost = CDFVD.cost(tiny, run)
    assert cost.features == {"cd_fvd/cdfvd-videomae-tiny-d2w64-v1": ((64,), "float32")}
    assert 0 < cost.tflop_per_clip < 0.01 < CDFVD.cost({}, run).tflop_per_clip
    with pytest.raises(ValueError, match="reads no file"):
        cd_fvd.build(weights="tiny", path=str(tmp_path / "x.pth"))


# ----------------------------------------------------------------------------- full size


@pytest.mark.slow
@pytest.mark.heavy
def test_full_size_random_vitg_matches_the_package():
    """The real ViT-g/14 (1.0 B parameters, ~4 GB) from build(weights="random"), one clip
    through our extract and through the package's feature function."""
    metric = cd_fvd.build(weights="random", seed=0, batch_size=1)
    assert sum(p.numel() for p in metric.network.parameters()) > 1.0e9
    frames = clips(1, h=96, w=128, seed=4)
    ours = metric.extract(frames, None)
    theirs = package_features(metric.network, frames).get_all()
    assert ours.shape == theirs.shape == (1, 1408)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
