"""JEDi against the videojedi package (1.1.0) and the vjepa package (0.1.2) it builds its
network from: position table, features of the same weights on the same clips, the MMD,
the bootstrap statistic, checkpoint loading and the plug-in's checks. The network tests
run both implementations at a reduced width (same architecture code, 2 blocks); the full
ViT-H/16 runs in the slow test. Weights "tiny" (the contract options) are built, run
against real clips and labelled in one fast test.

Both packages are the reference here, not dependencies of the project (videojedi pins
torch 2.4); the Makefile installs them with --no-deps. Without them the parity tests skip."""
from __future__ import annotations

import os
import time
import types
import warnings
from functools import partial

import numpy as np
import pytest
import torch

try:   # the parity reference, installed with --no-deps (Makefile); without it these tests skip
    import vjepa.datasets.utils.video.transforms as video_transforms
    from videojedi.JEDi import JEDiMetric as PackageJEDi
    from videojedi.V_JEPA import VJEPA
    from videojedi.V_JEPA_utils import ClipAggregation
    from videojedi.mmd_polynomial import mmd_poly   # noqa: F401 - what compute_metric runs (scikit-learn)
    from vjepa.models.attentive_pooler import AttentiveClassifier
    from vjepa.models.utils.pos_embs import get_3d_sincos_pos_embed
    from vjepa.models.vision_transformer import VisionTransformer, vit_huge
    MISSING_REFERENCE = ""
except ImportError as err:
    MISSING_REFERENCE = str(err)

from metrics import jedi
from metrics.feature_stats import FeatureStats
from metrics.jedi import JEDiMetric, JEDiToReference, jedi_from_stats
from metrics.jedi_plugin import JEDi
from metrics.plugin import RunFacts
from metrics.vjepa import VJEPAConfig, VJEPAFeatures, load_pretrained, sincos_3d

SMALL = VJEPAConfig(embed_dim=48, depth=2, num_heads=4)
parity = pytest.mark.skipif(bool(MISSING_REFERENCE), reason=f"the JEDi parity reference is not installed "
                            f"({MISSING_REFERENCE}): pip install --no-deps vjepa==0.1.2 videojedi==1.1.0")


def package_model(encoder: torch.nn.Module, classifier: torch.nn.Module) -> VJEPA:
    """videojedi's VJEPA around given modules, as its get_default_vjepa wires them for the
    vith16_ssv2_16x2x3 config (clip aggregation across segments, the probe's pooler),
    without the download and the process group its constructor needs."""
    model = object.__new__(VJEPA)
    model.encoder = ClipAggregation(encoder, tubelet_size=2, attend_across_segments=True).eval()
    model.classifier = types.SimpleNamespace(module=classifier.eval())   # stands for the DDP wrapper
    model.transforms = video_transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    model.finetuned = True
    return model


def small_pair(seed: int = 0):
    """The package's network at SMALL's size with its own init, and ours with its weights
    loaded from checkpoint-shaped dicts (DDP and backbone prefixes included)."""
    torch.manual_seed(seed)
    encoder = VisionTransformer(img_size=224, patch_size=16, num_frames=16, tubelet_size=2, embed_dim=SMALL.embed_dim,
                                depth=SMALL.depth, num_heads=SMALL.num_heads, mlp_ratio=4, qkv_bias=True,
                                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), uniform_power=True)
    classifier = AttentiveClassifier(embed_dim=SMALL.embed_dim, num_heads=SMALL.num_heads, depth=1, num_classes=174)
    ours = load_pretrained(VJEPAFeatures(SMALL), *checkpoints(encoder, classifier))
    return package_model(encoder, classifier), ours


def checkpoints(encoder, classifier):
    return ({"target_encoder": {f"module.backbone.{k}": v for k, v in encoder.state_dict().items()}, "epoch": 1},
            {"classifier": {f"module.{k}": v for k, v in classifier.state_dict().items()}, "epoch": 1})


def clips(n, f=16, h=224, w=224, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    t = np.arange(f)[:, None, None]
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0.02, 0.2, 3)
        base = np.stack([127 + 100 * np.sin(a * xx + c * t + k) * np.cos(b * yy) for k in range(3)], -1)
        out.append(np.clip(base + rng.normal(0, 12, base.shape), 0, 255))
    return np.stack(out).astype(np.uint8)


def package_features(model: VJEPA, frames: np.ndarray) -> np.ndarray:
    """The package's get_feats on our 224x224 clips as its loaders give them: (B, T, C, H, W) in [0, 1]."""
    videos = torch.from_numpy(frames).permute(0, 1, 4, 2, 3).float() / 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # its sdp_kernel context is deprecated
        return model.get_feats(videos)


def metric_on(network, num_frames=16):
    return JEDiMetric(network, weights="random", weights_id="test", weights_label="test network",
                      num_frames=num_frames, batch_size=3)


@parity
@pytest.mark.parametrize("uniform_power", [True, False])
@pytest.mark.parametrize("dim,grid,depth", [(1280, 14, 8), (48, 14, 8), (96, 7, 4)])
def test_position_table_is_vjepas(dim, grid, depth, uniform_power):
    np.testing.assert_allclose(sincos_3d(dim, grid, depth, uniform_power),
                               get_3d_sincos_pos_embed(dim, grid, depth, uniform_power=uniform_power),
                               rtol=0, atol=1e-12)


@parity
@pytest.mark.parametrize("num_frames", [16, 8])
def test_features_match_the_package_on_the_same_weights(one_thread, num_frames):
    reference, ours = small_pair()   # 8 frames: both interpolate the position table
    frames = clips(4, f=num_frames, seed=num_frames)
    mine = metric_on(ours, num_frames).extract(frames, ["a prompt"] * 4)
    theirs = package_features(reference, frames)
    assert mine.shape == theirs.shape == (4, SMALL.embed_dim) and mine.dtype == np.float32
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-5)
    assert np.abs(mine).max() > 1e-2


@parity
def test_other_sizes_go_through_the_real_clip_reader(one_thread):
    """Generated clips of another size are brought to 224 as the real clips are."""
    from metrics.video_io import resize_short_side_center_crop

    reference, ours = small_pair(1)
    frames = clips(2, h=96, w=128, seed=5)
    resized = np.stack([resize_short_side_center_crop(c, 224) for c in frames])
    np.testing.assert_array_equal(jedi.to_network_size(frames), resized)
    np.testing.assert_allclose(metric_on(ours).extract(frames, None), package_features(reference, resized),
                               rtol=0, atol=1e-5)


@parity
def test_distance_is_the_packages_mmd():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(120, 40)), rng.normal(size=(90, 40)) * 1.2 + 0.15
    package = PackageJEDi()
    package.train_features, package.test_features = real, fake
    theirs = package.compute_metric()
    ours = jedi_from_stats(FeatureStats.from_features(fake), FeatureStats.from_features(real))
    assert ours == pytest.approx(theirs, rel=1e-6) and ours > 0.1


@parity
def test_score_matches_the_package_end_to_end(one_thread):
    """Same clips, same weights: the package's features and MMD against our extract + score.
    (The package would take the MMD of its float32 features in float32; they are given to it
    in float64 so the comparison measures the definitions, not float32 rounding.)"""
    reference, ours = small_pair(2)
    real, fake = clips(12, seed=1), clips(10, seed=2)
    package = PackageJEDi()
    package.train_features = package_features(reference, real).astype(np.float64)
    package.test_features = package_features(reference, fake).astype(np.float64)
    metric = metric_on(ours)
    metric.use_reference(FeatureStats.from_features(metric.extract(real, None)))
    with pytest.warns(UserWarning, match="below the 328 clips"):
        out = metric.score(metric.extract(fake, None), None)
    assert out["value"] == pytest.approx(package.compute_metric(), rel=1e-6)
    assert (out["n"], out["n_real"], out["protocol"]) == (10, 12, "jedi-vjepa-v1")
    assert metric.describe()["protocol_spec"]["min_clips"] == 328


def test_bootstrap_statistic_is_the_score_on_each_resample():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 12))
    real = FeatureStats.from_features(rng.normal(size=(60, 12)) * 1.3)
    statistic = JEDiToReference(real)
    idx = rng.integers(0, 40, size=(6, 40))
    counts = np.stack([np.bincount(i, minlength=40) for i in idx])
    loop = [jedi_from_stats(FeatureStats.from_features(x[i]), real) for i in idx]
    np.testing.assert_allclose(statistic.weighted(x, counts), loop, rtol=1e-9)


@parity
def test_loading_names_what_does_not_fit(tmp_path, monkeypatch):
    reference, ours = small_pair(4)
    encoder_ckpt, probe_ckpt = checkpoints(reference.encoder.model, reference.classifier.module)
    torch.save(encoder_ckpt, tmp_path / "vith16.pth.tar")
    torch.save(probe_ckpt, tmp_path / "ssv2-probe.pth.tar")
    monkeypatch.setattr(jedi, "VIT_HUGE_16", SMALL)   # load_network builds the configured size
    loaded = jedi.load_network(str(tmp_path / "vith16.pth.tar"), str(tmp_path / "ssv2-probe.pth.tar"))
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    del probe_ckpt["classifier"]["module.pooler.query_tokens"]
    with pytest.raises(RuntimeError, match="V-JEPA probe pooler.*query_tokens"):
        load_pretrained(VJEPAFeatures(SMALL), encoder_ckpt, probe_ckpt)
    with pytest.raises(ValueError, match="no 'target_encoder'"):
        load_pretrained(VJEPAFeatures(SMALL), {"model": {}}, probe_ckpt)
    with pytest.raises(FileNotFoundError, match="dl.fbaipublicfiles.com/jepa/vith16/ssv2-probe.pth.tar"):
        jedi.load_network(str(tmp_path / "vith16.pth.tar"), str(tmp_path / "absent.pth.tar"))


def test_build_refuses_what_cannot_work(tmp_path):
    with pytest.raises(ValueError, match="reads no file"):
        jedi.build(weights="random", probe_path=str(tmp_path / "p.tar"))
    with pytest.raises(ValueError, match="even number of frames"):
        jedi.build(weights="random", num_frames=9)
    with pytest.raises(FileNotFoundError, match="vith16.pth.tar"):
        jedi.build(weights="pretrained", cache_dir=str(tmp_path))


# ----------------------------------------------------------------------------- plug-in


def test_plugin_names_both_missing_files_and_the_sample_size_advice(tmp_path):
    run = RunFacts(cache_dir=str(tmp_path), num_frames=16, clips_per_cell=100)
    checked = JEDi.check({}, run)
    whats = " ".join(p.what for p in checked.problems)
    assert "vith16.pth.tar not found" in whats and "ssv2-probe.pth.tar not found" in whats
    assert any("below the 328" in n for n in checked.notes)
    for name in ("vith16.pth.tar", "ssv2-probe.pth.tar"):
        (tmp_path / name).write_bytes(b"weights")
    assert JEDi.check({}, RunFacts(cache_dir=str(tmp_path), clips_per_cell=400)).problems == []
    assert not JEDi.check({}, RunFacts(cache_dir=str(tmp_path), clips_per_cell=400)).notes
    assert JEDi.files({"weights": "random"}, run) == []
    settings = {n.setting for n in JEDi.files({}, run)}
    assert settings == {"metrics.jedi.options.path", "metrics.jedi.options.probe_path"}


def test_plugin_facts_and_cost():
    assert JEDi.min_clips == int(np.ceil(JEDi.sample_fraction_of_fvd * 2048))
    assert (JEDi.name, JEDi.higher_is_better, JEDi.kind) == ("jedi", False, "clip")
    cost = JEDi.cost({}, RunFacts(num_frames=16))
    assert 2.0 < cost.tflop_per_clip < 2.8   # ViT-H/16 on 1,568 tokens
    assert cost.features == {"jedi/jedi-vjepa-v1": ((1280,), "float32")}


# ----------------------------------------------------------------------------- tiny weights


def test_tiny_weights_build_offline_extract_and_score_against_real_clips(tmp_path, one_thread):
    """The contract options: V-JEPA at 2 blocks of 64 with its pooler, seeded, no file; two
    16-frame 64x64 clips in well under 10 s; real clips through the same tiny network."""
    start = time.perf_counter()
    metric = jedi.build(**JEDi.contract_options)
    frames = clips(2, f=16, h=64, w=64, seed=5)
    features = metric.extract(frames, None)
    assert time.perf_counter() - start < 10
    cfg = metric.network.cfg
    assert (cfg.embed_dim, cfg.depth, cfg.patch_size, cfg.tubelet_size, cfg.image_size) == (64, 2, 16, 2, 224)
    assert len(metric.network.encoder.blocks) == 2 and features.shape == (2, 64)
    assert np.array_equal(jedi.build(**JEDi.contract_options).extract(frames, None), features)   # seeded

    assert metric.feature_key == "jedi/jedi-vjepa-tiny-d2w64-v1/tiny-seed0/16f"
    assert jedi.build(**JEDi.contract_variant).feature_key != metric.feature_key
    metric.prepare(str(tmp_path))
    assert metric.reference.dim == 64 and metric.reference.count == 4
    assert "tiny-d2w64" in os.path.basename(metric.reference_info["cache_file"])
    with pytest.warns(UserWarning, match="network weights are tiny"):
        out = metric.score(features, None)
    assert np.isfinite(out["value"]) and out["value"] > 0 and (out["n"], out["n_real"]) == (2, 4)
    described = metric.describe()
    assert described["weights_mode"] == "tiny" and "tiny" in described["weights"]
    assert "meaningless" in described["note"] and described["protocol"] != JEDi.protocol
    assert described["protocol_spec"]["network"].startswith("tiny V-JEPA ViT/16 (2 blocks of 64")


def test_plugin_accepts_tiny_weights_without_files(tmp_path):
    run = RunFacts(cache_dir=str(tmp_path), num_frames=16, clips_per_cell=100)
    tiny = {"weights": "tiny"}
    assert JEDi.settings_problems(tiny, run) == [] and JEDi.files(tiny, run) == []
    checked = JEDi.check(tiny, run)
    assert checked.problems == [] and any("mean nothing" in n for n in checked.notes)
    assert JEDi.settings_problems({"weights": "tiny", "probe_path": str(tmp_path / "p.tar")}, run)
    cost = JEDi.cost(tiny, run)
    assert cost.features == {"jedi/jedi-vjepa-tiny-d2w64-v1": ((64,), "float32")}
    assert 0 < cost.tflop_per_clip < 0.01 < JEDi.cost({}, run).tflop_per_clip
    with pytest.raises(ValueError, match="reads no file"):
        jedi.build(weights="tiny", path=str(tmp_path / "v.tar"))


# ----------------------------------------------------------------------------- full size


@pytest.mark.slow
@pytest.mark.heavy
@parity
def test_full_size_random_vith_matches_the_package():
    """The real ViT-H/16 (630 M parameters) and probe pooler as vjepa builds them for the
    vith16_ssv2_16x2x3 config, one clip through both implementations on the same weights."""
    torch.manual_seed(0)
    encoder = vit_huge(img_size=224, patch_size=16, num_frames=16, tubelet_size=2, uniform_power=True)
    classifier = AttentiveClassifier(embed_dim=1280, num_heads=16, depth=1, num_classes=174)
    ours = load_pretrained(VJEPAFeatures(), *checkpoints(encoder, classifier))
    frames = clips(1, seed=7)
    mine = metric_on(ours).extract(frames, None)
    theirs = package_features(package_model(encoder, classifier), frames)
    assert mine.shape == theirs.shape == (1, 1280)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-5)
