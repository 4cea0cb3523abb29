"""CLIPSIM on the tiny open_clip model: definition, preprocessing, caching, errors."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch

import metrics
from metrics import clipsim
from metrics.clipsim import DEFINITION, CLIPWeightsNotFound

HUB_ID = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


@pytest.fixture(scope="module")
def metric():
    return metrics.build("clipsim", weights="tiny", seed=0)


def _frames(b, f, h, w, seed=0):
    """Smooth moving colour patterns plus noise: natural-ish content for resizing."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((b, f, h, w, 3), dtype=np.uint8)
    for i in range(b):
        for t in range(f):
            base = np.stack([
                128 + 100 * np.sin(xx / (7 + i) + t / 3),
                128 + 100 * np.cos(yy / (5 + t % 4) - i),
                (xx + yy + 9 * t + 40 * i) % 256,
            ], axis=-1)
            out[i, t] = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return out


def _reference_scores(model, frames, prompts):
    """Independent CLIPSIM: open_clip's PIL eval transform, tokenizer and encoders."""
    import open_clip
    from PIL import Image

    preprocess = open_clip.image_transform(224, is_train=False)
    with torch.no_grad():
        text = model.encode_text(open_clip.tokenize(prompts)).double()
        text = text / text.norm(dim=-1, keepdim=True)
        out = np.zeros(frames.shape[:2])
        for b in range(frames.shape[0]):
            x = torch.stack([preprocess(Image.fromarray(fr)) for fr in frames[b]])
            img = model.encode_image(x).double()
            img = img / img.norm(dim=-1, keepdim=True)
            out[b] = (100.0 * img @ text[b]).numpy()
    return out


def test_equals_independent_computation_without_resize(metric):
    # 224x224 frames are not resized, so preprocessing is identical and only float
    # summation order can differ.
    frames = _frames(2, 3, 224, 224)
    prompts = ["a person playing the violin", "a dog surfing a wave"]
    got = metric.extract(frames, prompts)
    ref = _reference_scores(metric.model, frames, prompts)
    assert got.shape == (2, 3) and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    # the two captions must actually score differently, or the comparison proves little
    assert abs(got[0].mean() - got[1].mean()) > 1e-3


def test_equals_independent_computation_with_resize(metric):
    # Non-square, smaller and larger than 224: bicubic resize + center crop.
    for shape in [(64, 96), (300, 200)]:
        frames = _frames(2, 2, *shape, seed=sum(shape))
        prompts = ["riding a bike", "playing the cello"]
        got = metric.extract(frames, prompts)
        ref = _reference_scores(metric.model, frames, prompts)
        np.testing.assert_allclose(got, ref, atol=0.05, rtol=0)


def test_preprocessing_matches_open_clip_eval_transform(metric):
    import open_clip
    from PIL import Image

    preprocess = open_clip.image_transform(224, is_train=False)
    std_min = min(open_clip.OPENAI_DATASET_STD)
    for shape in [(64, 64), (512, 512), (240, 320), (100, 500)]:
        frames = _frames(1, 2, *shape, seed=shape[0])[0]
        ours = metric.preprocess(frames)
        ref = torch.stack([preprocess(Image.fromarray(f)) for f in frames])
        assert ours.shape == ref.shape == (2, 3, 224, 224)
        diff = (ours - ref).abs()
        # documented bound: at most 2 uint8 levels after resizing
        assert diff.max().item() <= 2.0 / 255 / std_min + 1e-5
        assert diff.mean().item() < 0.5 / 255 / std_min
    exact = _frames(1, 1, 224, 224)[0]
    ref = torch.stack([preprocess(Image.fromarray(f)) for f in exact])
    assert torch.allclose(metric.preprocess(exact), ref, atol=1e-6)


class _FixedEncoders:
    """Swap the encoders for ones returning chosen vectors (scale is irrelevant to a cosine)."""

    def __init__(self, metric, image_vec, text_vec):
        self.metric, self.image_vec, self.text_vec = metric, image_vec, text_vec

    def __enter__(self):
        model = self.metric.model
        self.saved = (model.encode_image, model.encode_text)
        model.encode_image = lambda x: torch.tensor(self.image_vec, dtype=torch.float32).repeat(x.shape[0], 1)
        model.encode_text = lambda t: torch.tensor(self.text_vec, dtype=torch.float32).repeat(t.shape[0], 1)
        self.metric._text_cache.clear()
        return self.metric

    def __exit__(self, *exc):
        self.metric.model.encode_image, self.metric.model.encode_text = self.saved
        self.metric._text_cache.clear()


def test_identical_embeddings_score_100_and_no_clamping(metric):
    frames = _frames(2, 4, 32, 32)
    v = np.linspace(-1, 2, 32)
    with _FixedEncoders(metric, 3.0 * v, 0.5 * v) as m:
        s = m.extract(frames, ["x", "y"])
        np.testing.assert_allclose(s, 100.0, atol=1e-9)
        assert m.score(s)["value"] == pytest.approx(100.0, abs=1e-9)
    with _FixedEncoders(metric, v, -v) as m:  # opposite: -100, not clamped to 0
        np.testing.assert_allclose(m.extract(frames, ["x", "y"]), -100.0, atol=1e-9)
    a = np.zeros(32)
    a[0] = 1.0
    b = np.zeros(32)
    b[1] = 5.0
    with _FixedEncoders(metric, a, b) as m:  # orthogonal: 0
        np.testing.assert_allclose(m.extract(frames, ["x", "y"]), 0.0, atol=1e-9)


def test_caption_encoded_once_per_distinct_prompt(metric):
    metric._text_cache.clear()
    seen = []
    original = metric.model.encode_text

    def counting(tokens):
        seen.append(tokens.shape[0])
        return original(tokens)

    metric.model.encode_text = counting
    try:
        frames = _frames(3, 2, 32, 32)
        first = metric.extract(frames, ["a cat", "a dog", "a cat"])
        second = metric.extract(frames[:2], ["a dog", "a horse"])
    finally:
        metric.model.encode_text = original
    assert seen == [1, 1, 1]  # "a cat", "a dog"; then only "a horse" (one per call: batch-independent)
    metric._text_cache.clear()  # cached and freshly encoded captions give the same scores
    np.testing.assert_allclose(metric.extract(frames[:2], ["a dog", "a horse"]), second, atol=1e-9)
    np.testing.assert_allclose(metric.extract(frames, ["a cat", "a dog", "a cat"]), first, atol=1e-9)


def test_frame_batching_does_not_change_scores(metric):
    frames = _frames(3, 5, 48, 64, seed=3)
    prompts = ["one", "two", "three"]
    small = metrics.build("clipsim", weights="tiny", seed=0, batch_size=4)
    np.testing.assert_allclose(small.extract(frames, prompts), metric.extract(frames, prompts), atol=1e-4)


def test_tiny_model_is_deterministic_per_seed(metric):
    frames = _frames(1, 2, 32, 32)
    again = metrics.build("clipsim", weights="tiny", seed=0)
    other = metrics.build("clipsim", weights="tiny", seed=1)
    s0 = metric.extract(frames, ["a"])
    np.testing.assert_array_equal(again.extract(frames, ["a"]), s0)
    assert np.abs(other.extract(frames, ["a"]) - s0).max() > 1e-3
    assert other.feature_key != metric.feature_key


def test_score_per_clip_and_definition(metric):
    feats = np.array([[10.0, 20.0, 30.0], [1.0, 2.0, 3.0]])
    out = metric.score(feats, ["p", "q"])
    assert out["value"] == pytest.approx((20.0 + 2.0) / 2)
    assert out["n"] == 2 and out["n_frames"] == 3
    assert out["per_clip"] == pytest.approx([20.0, 2.0])
    assert out["definition"] == DEFINITION
    np.testing.assert_allclose(metric.per_clip(feats), [20.0, 2.0])
    with pytest.raises(ValueError, match="2 feature rows but 1 prompts"):
        metric.score(feats, ["p"])
    with pytest.raises(ValueError, match=r"\[N clips, F frames\]"):
        metric.score(np.zeros(3), None)
    with pytest.raises(ValueError, match="NaN"):
        metric.score(np.array([[1.0, np.nan]]))


def test_extract_rejects_bad_input(metric):
    good = _frames(1, 2, 32, 32)
    with pytest.raises(ValueError, match="uint8"):
        metric.extract(good.astype(np.float32) / 255, ["a"])
    with pytest.raises(ValueError, match=r"\[B, F, H, W, 3\]"):
        metric.extract(good[0], ["a"])
    with pytest.raises(ValueError, match="1 clips but 2 prompts"):
        metric.extract(good, ["a", "b"])
    with pytest.raises(TypeError, match="single string"):
        metric.extract(good, "a")
    with pytest.raises(TypeError, match="numpy"):
        metric.extract(torch.from_numpy(good), ["a"])


def test_describe_and_feature_key(metric):
    d = metric.describe()
    assert d["name"] == "clipsim" and d["feature_key"] == metric.feature_key == "clipsim/tiny-seed0"
    assert d["definition"] == ("CLIPSIM = mean over clips of the mean over frames of 100*cos(CLIP image emb, "
                               "CLIP text emb); no clamping")
    assert d["weights"] == "tiny" and d["model"] == "tiny" and d["dtype"] == "fp32"
    assert d["tiny_config"]["vision_cfg"]["image_size"] == 224


def test_build_errors_are_actionable():
    with pytest.raises(ValueError, match=r"unknown option\(s\) 'batchsize' \(did you mean 'batch_size'\?\)"):
        metrics.build("clipsim", weights="tiny", batchsize=4)
    with pytest.raises(ValueError, match="weights must be one of"):
        metrics.build("clipsim", weights="random")
    with pytest.raises(ValueError, match="only used on CUDA"):
        metrics.build("clipsim", weights="tiny", dtype="fp16")
    with pytest.raises(ValueError, match="dtype must be one of"):
        metrics.build("clipsim", weights="tiny", dtype="half")
    with pytest.raises(ValueError, match="takes no path"):
        metrics.build("clipsim", weights="tiny", path="/tmp/x.bin")
    with pytest.raises(ValueError, match="batch_size"):
        metrics.build("clipsim", weights="tiny", batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            metrics.build("clipsim", weights="tiny", device="cuda")


def test_missing_weights_offline_names_hub_id_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub

    def no_download(*a, **k):
        raise AssertionError("a download was attempted while HF_HUB_OFFLINE=1")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    with pytest.raises(CLIPWeightsNotFound) as err:
        metrics.build("clipsim")
    msg = str(err.value)
    assert HUB_ID in msg and "open_clip_pytorch_model.bin" in msg and "open_clip_model.safetensors" in msg
    assert "huggingface-cli download" in msg and "HF_HUB_OFFLINE" in msg and str(tmp_path / "hub") in msg


def _fake_hub_cache(root, files):
    repo = root / ("models--" + HUB_ID.replace("/", "--"))
    rev = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    for name in files:
        (snap / name).write_bytes(b"weights")
    return snap


def test_resolves_weights_from_hf_cache_and_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snap = _fake_hub_cache(tmp_path / "hub", ["open_clip_pytorch_model.bin"])
    assert clipsim.resolve_weights_file() == snap / "open_clip_pytorch_model.bin"
    (snap / "open_clip_model.safetensors").write_bytes(b"w")  # open_clip prefers safetensors
    assert clipsim.resolve_weights_file() == snap / "open_clip_model.safetensors"
    assert clipsim.resolve_weights_file(path=str(snap)) == snap / "open_clip_model.safetensors"
    assert clipsim.resolve_weights_file(path=str(snap / "open_clip_pytorch_model.bin")).name.endswith(".bin")
    with pytest.raises(CLIPWeightsNotFound, match="does not exist"):
        clipsim.resolve_weights_file(path=str(tmp_path / "nope.bin"))
    with pytest.raises(CLIPWeightsNotFound, match="holds none of"):
        clipsim.resolve_weights_file(path=str(tmp_path))
    with pytest.raises(ValueError, match="no pretrained tag"):
        clipsim.resolve_weights_file("ViT-H-14", "not_a_tag")


def test_loads_weights_file_through_open_clip(tmp_path, monkeypatch, metric):
    """The pretrained path (resolve, sha256, open_clip.load_checkpoint) on tiny weights."""
    import open_clip

    file = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(clipsim.build_tiny_clip(seed=0).state_dict(), file)
    # The architecture comes from create_model; give it the tiny one with other weights.
    monkeypatch.setattr(open_clip, "create_model", lambda *a, **k: clipsim.build_tiny_clip(seed=5))
    loaded = metrics.build("clipsim", path=str(file))
    d = loaded.describe()
    assert d["weights_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert d["weights_file"] == str(file) and d["weights_source"] == "path"
    assert loaded.feature_key == f"clipsim/ViT-H-14-sha256-{d['weights_sha256'][:12]}"
    frames = _frames(1, 2, 32, 32)
    np.testing.assert_allclose(loaded.extract(frames, ["a"]), metric.extract(frames, ["a"]), atol=1e-6)

    bad = tmp_path / "bad.bin"
    torch.save({"nothing": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="does not fit open_clip model"):
        metrics.build("clipsim", path=str(bad))


def _cached_real_weights():
    try:
        old = os.environ.get("HF_HUB_OFFLINE")
        os.environ["HF_HUB_OFFLINE"] = "1"
        return clipsim.resolve_weights_file()
    except CLIPWeightsNotFound:
        return None
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


@pytest.mark.slow
@pytest.mark.skipif(_cached_real_weights() is None, reason="ViT-H-14 laion2b weights are not in the HF cache")
def test_real_vit_h14_builds_and_scores():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    m = metrics.build("clipsim", device=device)
    assert m.feature_key.startswith("clipsim/ViT-H-14-laion2b_s32b_b79k")
    assert len(m.describe()["weights_sha256"]) == 64
    s = m.extract(_frames(1, 2, 256, 256), ["a colourful abstract pattern"])
    assert s.shape == (1, 2) and np.all(np.abs(s) <= 100.0)
