"""Parity with the authors' pipeline, checked on tiny components (no download):
per-frame motion norm, the authors' LoRA fusion, the personalized VAE, truncating
uint8 conversion, the DPM++ final step. Against the authors' code itself:
tests/test_parity_official.py."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from safetensors.torch import save_file

import models
from models import lora, tiny
from models.animatediff import to_uint8
from models.motion_norm import PerFrameGroupNorm, apply_motion_norm
from models.schedulers import make_scheduler, resolve_sampler
from models.specs import SamplerSpec


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return tiny.tiny_components(0, tmp_path_factory.mktemp("tok"))


def _motion_unet(parts, mode):
    from diffusers import UNetMotionModel

    unet = UNetMotionModel.from_unet2d(copy.deepcopy(parts["unet"]), parts["motion_adapter"])
    apply_motion_norm(unet, mode)
    return unet.eval()


def test_per_frame_group_norm_normalises_each_frame_alone():
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(2, 8, eps=1e-6)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    per_frame = PerFrameGroupNorm(2, 8, eps=1e-6)
    per_frame.weight, per_frame.bias = norm.weight, norm.bias
    x = torch.randn(2, 8, 5, 3, 4) * torch.arange(1, 6).view(1, 1, 5, 1, 1)   # frames of different scale
    expected = torch.stack([norm(x[:, :, t]) for t in range(5)], dim=2)
    torch.testing.assert_close(per_frame(x), expected, rtol=0, atol=1e-6)
    assert not torch.allclose(norm(x), expected, atol=1e-3)       # diffusers' joint norm pools the frames
    assert per_frame.state_dict().keys() == norm.state_dict().keys()


def test_motion_modules_use_per_frame_statistics_in_the_unet(parts):
    """Inside a tiny UNetMotionModel each motion module's norm output equals a per-frame
    GroupNorm of its input, computed directly; 'joint' is plain diffusers."""
    unet = _motion_unet(parts, "per_frame")
    modules = [m for m in unet.modules() if isinstance(m, AnimateDiffTransformer3D)]
    assert modules and all(isinstance(m.norm, PerFrameGroupNorm) for m in modules)
    seen = []

    def hook(module, args, out):
        x = args[0]
        ref = torch.stack([F.group_norm(x[:, :, t], module.num_groups, module.weight, module.bias, module.eps)
                           for t in range(x.shape[2])], dim=2)
        seen.append(float((out - ref).abs().max()))

    for m in modules:
        m.norm.register_forward_hook(hook)
    sample = torch.randn(2, 4, 4, 8, 8)
    text = torch.randn(2, 7, 32).repeat_interleave(4, dim=0)   # the pipeline repeats prompts per frame
    with torch.no_grad():
        out_pf = unet(sample, 500, text).sample
    assert len(seen) == len(modules) and max(seen) < 1e-5
    joint = _motion_unet(parts, "joint")
    assert not any(isinstance(m.norm, PerFrameGroupNorm) for m in joint.modules()
                   if isinstance(m, AnimateDiffTransformer3D))
    with torch.no_grad():
        out_joint = joint(sample, 500, text).sample
        alone = unet(sample[:1], 500, text[:4]).sample
    assert float((out_pf - out_joint).abs().max()) > 1e-4           # the two norms are different networks
    torch.testing.assert_close(alone, out_pf[:1], rtol=1e-4, atol=1e-5)   # batching does not mix clips


@pytest.mark.slow
def test_per_frame_norm_compiles(parts):
    norm = PerFrameGroupNorm(2, 8)
    x = torch.randn(1, 8, 4, 6, 6)
    torch.testing.assert_close(torch.compile(norm)(x), norm(x), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def _pair_delta(before, after, name):
    return dict(after.named_modules())[name].weight - dict(before.named_modules())[name].weight


def test_authors_lora_fusion_is_one_eighth_of_scale_times_up_down(parts, tmp_path):
    unet2d = parts["unet"]
    state = tiny.tiny_lora_state_dict(unet2d, seed=3)
    fused = copy.deepcopy(unet2d)
    record = lora.fuse_authors(fused, state, 0.8)
    assert record["applied_factor"] == pytest.approx(0.1) and record["layers"] == len(state) // 2
    for name in ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", "down_blocks.0.attentions.0.proj_in"):
        stem = "lora_unet_" + name.replace(".", "_")
        up, down = state[f"{stem}.lora_up.weight"], state[f"{stem}.lora_down.weight"]
        expected = (0.8 / 8) * (up.flatten(1) @ down.flatten(1)).reshape(_pair_delta(unet2d, fused, name).shape)
        torch.testing.assert_close(_pair_delta(unet2d, fused, name), expected, rtol=1e-5, atol=1e-7)
    # alpha keys in the file change nothing for the authors' convention
    with_alpha = dict(state, **{k.replace(".lora_down.weight", ".alpha"): torch.tensor(2.0)
                                for k in state if k.endswith(".lora_down.weight")})
    other = copy.deepcopy(unet2d)
    rec2 = lora.fuse_authors(other, with_alpha, 0.8)
    for (a, b) in zip(fused.parameters(), other.parameters()):
        assert torch.equal(a, b)
    assert rec2["file_scale_per_layer"] == {"0.5": record["layers"]}          # alpha 2 / rank 4, recorded


def test_diffusers_convention_applies_eight_times_the_authors_delta(parts, tmp_path):
    """Measured through diffusers' own loader, on a file without alpha keys."""
    state = tiny.tiny_lora_state_dict(parts["unet"], seed=4)
    save_file(state, str(tmp_path / "lora.safetensors"))
    kw = dict(weights="tiny", device="cpu", cache_dir=str(tmp_path), lora=str(tmp_path / "lora.safetensors"))
    base = models.build("animatelcm", lora="none", cache_dir=str(tmp_path), weights="tiny", device="cpu")
    ours = models.build("animatelcm", lora_convention="authors", **kw)
    plain = models.build("animatelcm", lora_convention="diffusers", **kw)
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v"
    d_ours = _pair_delta(base.pipeline.unet, ours.pipeline.unet, name)
    d_plain = _pair_delta(base.pipeline.unet, plain.pipeline.unet, name)
    assert float(d_ours.abs().max()) > 0
    torch.testing.assert_close(d_plain, 8 * d_ours, rtol=1e-4, atol=1e-7)
    assert ours.provenance["lora_fusion"]["convention"] == "authors"
    assert "8x the authors' delta" in ours.provenance["lora_fusion"]["note"]
    assert plain.provenance["lora_fusion"]["applied_factor"] == pytest.approx(1.0)


def test_lora_file_for_another_network_is_refused(parts):
    with pytest.raises(ValueError, match="match no UNet layer.*lora_unet_nope"):
        lora.fuse_authors(copy.deepcopy(parts["unet"]), {"lora_unet_nope.lora_down.weight": torch.zeros(1, 1),
                                                         "lora_unet_nope.lora_up.weight": torch.zeros(1, 1)}, 1.0)
    with pytest.raises(ValueError, match="lora_convention must be one of authors, diffusers, peft"):
        models.build("animatelcm", weights="tiny", device="cpu", lora_convention="kohya")


def test_personalized_base_swaps_the_vae_too(tmp_path):
    r = models.build("animatelcm_r", weights="tiny", device="cpu", cache_dir=str(tmp_path))
    keep = models.build("animatelcm_r", weights="tiny", device="cpu", cache_dir=str(tmp_path), personalized_vae=False)
    base = models.build("animatelcm", weights="tiny", device="cpu", cache_dir=str(tmp_path))
    assert r.provenance["personalized"]["parts"] == ["unet", "vae"]       # tiny mode has no personalized text encoder
    assert keep.provenance["personalized"]["parts"] == ["unet"]
    w = lambda m: m.pipeline.vae.decoder.conv_out.weight                 # noqa: E731
    assert torch.equal(w(keep), w(base)) and not torch.equal(w(r), w(base))


def test_frames_are_truncated_as_the_authors_write_them():
    x = np.array([0.0, 0.5, 0.999, 1.0, 254.6 / 255], np.float32)
    assert to_uint8(x).tolist() == [0, 127, 254, 255, 254]
    assert to_uint8(x, "round").tolist() == [0, 128, 255, 255, 255]
    assert models.resolve_spec(models.ModelSpec(name="ddim")).quantize == "truncate"
    with pytest.raises(ValueError, match="quantize must be one of truncate, round"):
        to_uint8(x, "ceil")


def test_dpmpp_last_step_ends_at_the_first_training_sigma():
    """diffusers 0.11.1 (the authors' pin) ended the last DPM++ step at t=0
    (alpha_cumprod[0]); 0.42 defaults to sigma 0. sigma_min is the former."""
    resolved = resolve_sampler(SamplerSpec(kind="dpmpp"))
    assert resolved["final_sigmas_type"] == "sigma_min"
    sched = make_scheduler(resolved)
    sched.set_timesteps(4)
    ac0 = float(sched.alphas_cumprod[0])
    assert float(sched.sigmas[-1]) == pytest.approx(((1 - ac0) / ac0) ** 0.5, rel=1e-6)
    zero = make_scheduler(resolve_sampler(SamplerSpec(kind="dpmpp", final_sigmas_type="zero")))
    zero.set_timesteps(4)
    assert float(zero.sigmas[-1]) == 0.0
    with pytest.raises(ValueError, match="final_sigmas_type must be sigma_min or zero"):
        resolve_sampler(SamplerSpec(kind="dpmpp", final_sigmas_type="last"))
    with pytest.raises(ValueError, match="has no setting 'final_sigmas_type'"):
        resolve_sampler(SamplerSpec(kind="lcm", final_sigmas_type="zero"))
