"""InceptionI3d layout, TF "SAME" padding, loading and BatchNorm calibration."""
from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from metrics import i3d
from metrics.i3d import InceptionI3d, calibrate_batchnorm, load_detector, random_i3d, tf_same_padding

MIXED = ["Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "Mixed_5b", "Mixed_5c"]


def expected_keys():
    """The piergiaj/pytorch-i3d state-dict keys, written out from the architecture table."""
    units = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"]
    units += [f"{m}.{b}" for m in MIXED for b in ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")]
    keys = set()
    for u in units:
        keys.add(f"{u}.conv3d.weight")
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            keys.add(f"{u}.bn.{p}")
    keys |= {"logits.conv3d.weight", "logits.conv3d.bias"}
    return keys


@pytest.fixture(scope="module")
def model():
    return random_i3d(seed=3)


def test_state_dict_layout(model):
    sd = model.state_dict()
    assert set(sd) == expected_keys()
    assert tuple(sd["Conv3d_1a_7x7.conv3d.weight"].shape) == (64, 3, 7, 7, 7)
    assert tuple(sd["Conv3d_2c_3x3.conv3d.weight"].shape) == (192, 64, 3, 3, 3)
    assert tuple(sd["Mixed_3b.b1b.conv3d.weight"].shape) == (128, 96, 3, 3, 3)
    assert tuple(sd["Mixed_5c.b0.conv3d.weight"].shape) == (384, 832, 1, 1, 1)
    assert tuple(sd["logits.conv3d.weight"].shape) == (400, 1024, 1, 1, 1)
    assert tuple(sd["logits.conv3d.bias"].shape) == (400,)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    assert len(bns) == 57
    # the class default is TF/Sonnet's eps; FVD protocols pass their own (animatelcm: 1e-5)
    assert all(bn.eps == pytest.approx(1e-3) and bn.momentum == pytest.approx(0.01) for bn in bns)
    assert {m.eps for m in InceptionI3d(bn_eps=1e-5).modules() if isinstance(m, nn.BatchNorm3d)} == {1e-5}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    assert [c.bias is None for c in convs].count(False) == 1  # only the logits conv has a bias


@pytest.mark.parametrize("size,k,s,expect", [
    (224, 7, 2, (2, 3)), (16, 7, 2, (2, 3)), (112, 3, 2, (0, 1)), (56, 3, 1, (1, 1)),
    (8, 1, 1, (0, 0)), (2, 2, 2, (0, 0)), (3, 2, 2, (0, 1)), (4, 3, 2, (0, 1)), (5, 3, 2, (1, 1)),
])
def test_tf_same_padding_values(size, k, s, expect):
    assert tf_same_padding(size, k, s) == expect
    lo, hi = expect
    assert (size + lo + hi - k) // s + 1 == -(-size // s)  # TF "SAME" output length


def test_unit_and_pool_match_explicit_tf_padding():
    torch.manual_seed(0)
    unit = i3d.Unit3D(3, 4, kernel=(3, 7, 7), stride=(2, 2, 2), use_batch_norm=False, use_bias=True)
    x = torch.randn(2, 3, 5, 13, 10)
    pads = []
    for axis, (k, s) in zip((4, 3, 2), ((7, 2), (7, 2), (3, 2))):
        pads += list(tf_same_padding(x.shape[axis], k, s))
    ref = F.relu(F.conv3d(F.pad(x, pads), unit.conv3d.weight, unit.conv3d.bias, stride=2))
    torch.testing.assert_close(unit(x), ref)
    assert unit(x).shape[2:] == (3, 7, 5)

    pool = i3d.MaxPool3dSame((1, 3, 3), (1, 2, 2))
    y = torch.randn(1, 2, 3, 9, 8) - 5.0  # all negative: zero padding would win, -inf must not
    pads = [*tf_same_padding(8, 3, 2), *tf_same_padding(9, 3, 2), 0, 0]
    ref = F.max_pool3d(F.pad(y, pads, value=float("-inf")), (1, 3, 3), (1, 2, 2))
    torch.testing.assert_close(pool(y), ref)
    assert (pool(y) < 0).all()


CL = torch.channels_last_3d  # the layout FVDMetric runs in (faster on CPU)


def test_forward_shapes_and_input_errors(model):
    x = (torch.rand(1, 3, 9, 224, 224) * 2 - 1).contiguous(memory_format=CL)
    seen = {}

    def record(module, inputs, output):
        seen["shape"] = tuple(output.shape)  # returns None: output unchanged

    hook = model.Mixed_5c.register_forward_hook(record)
    try:
        with torch.no_grad():
            out = model.to(memory_format=CL)(x)
    finally:
        hook.remove()
    # 9 frames: ceil(9/2)=5 -> ceil(5/2)=3 -> ceil(3/2)=2 time steps before the final pool.
    assert seen["shape"] == (1, 1024, 2, 7, 7)
    assert out.shape == (1, 400) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="at least 9 frames"):
        model(torch.zeros(1, 3, 8, 224, 224))
    with pytest.raises(ValueError, match="224x224"):
        model(torch.zeros(1, 3, 16, 112, 112))
    with pytest.raises(ValueError, match=r"\[B, 3, T"):
        model(torch.zeros(1, 16, 3, 224, 224))


def test_state_dict_roundtrip_and_load_detector(model, tmp_path):
    sd = model.state_dict()
    fresh = InceptionI3d()
    fresh.load_state_dict(sd, strict=True)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, sd[k]), k

    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save(sd, path)
    det = load_detector(str(path))
    assert det.kind == "i3d" and isinstance(det.module, InceptionI3d)
    assert det.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert det.identity() == f"i3d-{det.sha256[:12]}"
    assert not det.module.training
    for k, v in det.module.state_dict().items():
        assert torch.equal(v, sd[k]), k

    # The expected checksum is enforced.
    assert load_detector(str(path), sha256=det.sha256.upper()).sha256 == det.sha256
    with pytest.raises(RuntimeError, match="sha256"):
        load_detector(str(path), sha256="0" * 64)


def test_load_variants_old_files_and_dataparallel(model, tmp_path):
    sd = model.state_dict()
    # Files written before BN batch counters existed, and DataParallel prefixes.
    old = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pt")
    assert load_detector(str(tmp_path / "old.pt"), kind="i3d").kind == "i3d"
    torch.save({"module." + k: v for k, v in sd.items()}, tmp_path / "dp.pt")
    torch.save({"state_dict": sd}, tmp_path / "wrapped.pt")
    for name in ("dp.pt", "wrapped.pt"):
        det = load_detector(str(tmp_path / name))
        assert torch.equal(det.module.state_dict()["logits.conv3d.bias"], sd["logits.conv3d.bias"])


def test_wrong_state_dicts_give_clear_errors(model, tmp_path):
    sd = model.state_dict()
    renamed = {k.replace("Mixed_4c", "Mixed_4x"): v for k, v in sd.items()}
    torch.save(renamed, tmp_path / "renamed.pt")
    with pytest.raises(ValueError, match=r"missing keys: .*Mixed_4c.*unexpected keys: .*Mixed_4x"):
        load_detector(str(tmp_path / "renamed.pt"))
    small = InceptionI3d(num_classes=101).state_dict()
    torch.save(small, tmp_path / "ucf101_head.pt")
    with pytest.raises(ValueError, match=r"shape mismatch: .*logits.conv3d.weight \(101"):
        load_detector(str(tmp_path / "ucf101_head.pt"))
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="state dict"):
        load_detector(str(tmp_path / "list.pt"))
    with pytest.raises(ValueError, match="kind"):
        load_detector(str(tmp_path / "list.pt"), kind="onnx")


def test_missing_file_names_both_publication_sites(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_detector(str(tmp_path / "nope.pt"))
    msg = str(e.value)
    assert "i3d_pretrained_400.pt" in msg and "TATS" in msg
    assert "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1" in msg


class _ScriptedStandIn(nn.Module):
    """Same call convention as StyleGAN-V's scripted detector."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        y = x.mean(dim=(1, 2, 3, 4)).unsqueeze(1).repeat(1, 400)
        if not resize:
            y = y + 1000.0
        return y if return_features else y.softmax(dim=1)


def test_torchscript_detector_autodetected(tmp_path):
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(_ScriptedStandIn()), str(path))
    det = load_detector(str(path))
    assert det.kind == "torchscript" and det.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    x = torch.full((2, 3, 4, 8, 8), 255.0)
    out = det(x)  # StyleGAN-V flags: rescale=True, resize=True, return_features=True
    torch.testing.assert_close(out, torch.ones(2, 400))
    with pytest.raises(ValueError, match="TorchScript"):
        load_detector(str(path), kind="i3d")


def test_calibrate_batchnorm_fits_first_layer_and_restores_state():
    model = random_i3d(seed=5).to(memory_format=CL)
    torch.manual_seed(1)
    clips = (torch.rand(2, 3, 9, 224, 224) * 2 - 1).contiguous(memory_format=CL)
    with torch.no_grad():
        before = model(clips)
    calibrate_batchnorm(model, clips)
    bn = model.Conv3d_1a_7x7.bn
    # Running stats are exactly the batch stats of the first conv's output.
    with torch.no_grad():
        unit = model.Conv3d_1a_7x7
        sym, extra = i3d._same_split(clips, unit.kernel, unit.stride)
        z = F.conv3d(F.pad(clips, extra), unit.conv3d.weight, None, unit.stride, sym)
    torch.testing.assert_close(bn.running_mean, z.mean(dim=(0, 2, 3, 4)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, z.var(dim=(0, 2, 3, 4), unbiased=True), rtol=1e-3, atol=1e-6)
    assert not model.training and not any(m.training for m in model.modules())
    assert all(m.momentum == pytest.approx(0.01) for m in model.modules() if isinstance(m, nn.BatchNorm3d))
    with torch.no_grad():
        after = model(clips)
    assert not torch.allclose(before, after)
    # With the default init the logits barely depend on the input; after
    # calibration the two clips are told apart by orders of magnitude more.
    spread_before = (before[0] - before[1]).abs().max() / before.abs().max()
    spread_after = (after[0] - after[1]).abs().max() / after.abs().max()
    assert spread_after > 10 * spread_before
    with pytest.raises(ValueError):
        calibrate_batchnorm(model, torch.zeros(0, 3, 9, 224, 224))


class _Note:   # a non-tensor object: a weights_only load refuses it
    pass


def test_a_detector_pickle_with_more_than_tensors_needs_allow_unsafe_pickle(tmp_path):
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save({"state_dict": random_i3d(0).state_dict(), "note": _Note()}, path)
    with pytest.raises(RuntimeError, match="runner.allow_unsafe_pickle=true"):
        load_detector(str(path), kind="i3d")
    det = load_detector(str(path), kind="i3d", allow_unsafe_pickle=True)
    assert det.kind == "i3d"


def test_allow_unsafe_pickle_admits_a_personalized_ckpt_in_preflight():
    from models.files import method_files
    from models.registry import spec_with_overrides

    spec = spec_with_overrides("animatelcm_r", {"personalized": "/tmp/realistic.ckpt"})
    _, refused = method_files("animatelcm_r", spec, [4])
    assert any("pickle .ckpt" in p.what and "runner.allow_unsafe_pickle=true" in p.fix for p in refused)
    needs, allowed = method_files("animatelcm_r", spec, [4], allow_unsafe_pickle=True)
    assert not allowed and any(n.ref == "/tmp/realistic.ckpt" for n in needs)
