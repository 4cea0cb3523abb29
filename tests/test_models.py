"""The model registry, schedulers and the tiny builders."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import models
from models.schedulers import resolve_sampler, timesteps
from models.specs import SamplerSpec
from tests.conftest import REPO

OFFICIAL_LCM_TIMESTEPS = {1: [999], 2: [999, 499], 4: [999, 749, 499, 249],
                          8: [999, 879, 749, 629, 499, 379, 249, 129]}


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_lcm_timesteps_match_official(steps):
    resolved = resolve_sampler(models.resolve_spec(models.ModelSpec(name="animatelcm")).sampler)
    assert resolved["original_inference_steps"] == 100
    assert timesteps(resolved, steps) == OFFICIAL_LCM_TIMESTEPS[steps]


def test_teacher_spacing_is_configurable_and_recorded():
    leading = resolve_sampler(SamplerSpec(kind="ddim"))
    trailing = resolve_sampler(SamplerSpec(kind="ddim", timestep_spacing="trailing"))
    assert leading["timestep_spacing"] == "leading" and timesteps(leading, 1) == [1]
    assert timesteps(trailing, 1) == [999]
    assert resolve_sampler(SamplerSpec(kind="dpmpp"))["algorithm_type"] == "dpmsolver++"
    with pytest.raises(ValueError, match="has no setting 'original_inference_steps'"):
        resolve_sampler(SamplerSpec(kind="ddim", original_inference_steps=50))


def test_listing_the_registry_imports_no_torch():
    code = ("import sys, models, metrics; print(models.describe()); "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'heavy import'")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "animatelcm_r" in out.stdout and "dpmpp" in out.stdout
    listing = subprocess.run([sys.executable, "run_bench.py", "list"], cwd=REPO, capture_output=True, text=True)
    assert listing.returncode == 0 and "experiment/: " in listing.stdout and "table1" in listing.stdout


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(ValueError, match="Did you mean 'animatelcm'"):
        models.build("animatelmc")


def test_registry_defaults_are_the_paper_settings():
    lcm = models.resolve_spec(models.ModelSpec(name="animatelcm"))
    teacher = models.resolve_spec(models.ModelSpec(name="ddim"))
    assert lcm.guidance_scale == 1.0 and teacher.guidance_scale == 7.5
    assert lcm.motion_adapter == "wangfuyun/AnimateLCM"
    assert lcm.lora_file == "AnimateLCM_sd15_t2v_lora.safetensors"
    assert teacher.motion_adapter == "guoyww/animatediff-motion-adapter-v1-5-2"
    assert models.resolve_spec(models.ModelSpec(name="animatelcm_r")).personalized


@pytest.mark.parametrize("name", ["animatelcm", "ddim"])
def test_generate_equals_calling_the_pipeline_directly(name, cache_dir):
    """The harness adds nothing to the model: same prompt, steps, guidance, seed."""
    model = models.build(name, weights="tiny", device="cpu", cache_dir=str(cache_dir))
    prompt, seed, steps = "A person playing a guitar.", 1234, 2
    ours = model.generate([prompt], [seed], steps, num_frames=8, height=64, width=64)
    direct = model.pipeline(prompt=prompt, num_frames=8, height=64, width=64, num_inference_steps=steps,
                            guidance_scale=model.guidance_scale,
                            negative_prompt=model.spec.negative_prompt if model.guidance_scale > 1 else None,
                            generator=torch.Generator().manual_seed(seed), output_type="np").frames
    direct = np.clip(np.round(np.asarray(direct, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
    assert ours.shape == (1, 8, 64, 64, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - direct.astype(int)).max() <= 1
    assert model.last_timing["denoise_s"] > 0 and "decode_s" in model.last_timing


def test_batching_does_not_change_a_clip(cache_dir):
    model = models.build("animatelcm", weights="tiny", device="cpu", cache_dir=str(cache_dir))
    both = model.generate(["a dog running", "a cat"], [7, 8], 2, num_frames=8, height=64, width=64)
    alone = model.generate(["a cat"], [8], 2, num_frames=8, height=64, width=64)
    assert np.abs(both[1].astype(int) - alone[0].astype(int)).max() <= 1


def test_personalized_alpha_and_lora_change_the_output(cache_dir):
    base = models.build("animatelcm", weights="tiny", device="cpu", cache_dir=str(cache_dir))
    pers = models.build("animatelcm_r", weights="tiny", device="cpu", cache_dir=str(cache_dir))
    no_alpha = models.build("animatelcm_r", weights="tiny", device="cpu", cache_dir=str(cache_dir),
                            personalized_alpha=0.0)
    args = (["a dog"], [3], 1)
    kw = dict(num_frames=4, height=64, width=64)
    a, b, c = base.generate(*args, **kw), pers.generate(*args, **kw), no_alpha.generate(*args, **kw)
    assert not np.array_equal(a, b)          # the personalized residual is applied
    assert np.array_equal(a, c)              # alpha = 0 is the base model
    assert pers.describe()["lora_sha256"]    # the LoRA went through the real loader and was hashed


def test_half_precision_on_cpu_is_refused():
    with pytest.raises(ValueError, match="dtype=float16 on the CPU"):
        models.build("animatelcm", weights="tiny", device="cpu", dtype="float16")


def test_missing_pretrained_weights_name_the_id(cache_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf"))
    from models.weights import WeightsNotFound

    with pytest.raises(WeightsNotFound, match="stable-diffusion-v1-5/stable-diffusion-v1-5"):
        models.build("animatelcm", weights="pretrained", device="cpu", cache_dir=str(cache_dir))


def test_offline_tokenizer_matches_open_clip(cache_dir):
    import open_clip

    from models.tiny import clip_tokenizer

    ours = clip_tokenizer(cache_dir)("A person playing a guitar.").input_ids
    reference = open_clip.get_tokenizer("ViT-B-32")(["A person playing a guitar."])[0]
    assert ours == [int(t) for t in reference if t != 0]
    assert len(clip_tokenizer(cache_dir)) == 49408


def test_tiny_components_use_the_authors_norm_groups(tmp_path):
    """32 groups in every GroupNorm of the tiny UNet and motion modules (the authors' motion
    module hard-codes 32; tests/test_parity_official.py builds it from their code); the tiny
    VAE (diffusers' AutoencoderKL for them too) keeps channels too narrow for 32."""
    from models.tiny import TINY_NORM_GROUPS, tiny_components

    parts = tiny_components(0, tmp_path)
    for part in ("unet", "motion_adapter"):
        norms = [m for m in parts[part].modules() if isinstance(m, torch.nn.GroupNorm)]
        assert norms and {m.num_groups for m in norms} == {TINY_NORM_GROUPS} == {32}, part
        assert all(m.num_channels % 32 == 0 for m in norms), part


def test_tiny_fingerprints_follow_the_tiny_architecture(monkeypatch):
    """A change to the tiny components changes tiny clips' fingerprints only."""
    from bench.plan.prompts import classname_captions
    import bench.run.pipeline
    from bench.run.pipeline import make_plans
    from tests.conftest import compose

    def fingerprints(weights):
        return {p.name: p.fingerprint for p in make_plans(compose([f"weights={weights}"]), classname_captions())}

    tiny, random = fingerprints("tiny"), fingerprints("random")
    monkeypatch.setattr(bench.run.pipeline, "TINY_ARCHITECTURE_VERSION", bench.run.pipeline.TINY_ARCHITECTURE_VERSION + 1)
    assert all(fingerprints("tiny")[m] != tiny[m] for m in tiny)
    assert fingerprints("random") == random
