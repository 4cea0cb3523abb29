"""The leaderboard of few-step generators: each generator's settings from its model
card, its loading in tiny mode, the offline preflight of every Hub file, and the
experiment end to end with a generator added by a config file alone."""
import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

import models
from models.registry import spec_with_overrides
from models.schedulers import make_scheduler, resolve_sampler, timesteps
from models.specs import SamplerSpec
from results.leaderboard import pareto_front
from tests.conftest import REPO, compose

# What each card's scheduler gives at 1/2/4/8 steps.
CARD_TIMESTEPS = {
    # EulerDiscreteScheduler(timestep_spacing="trailing"): round(arange(1000, 0, -1000/n)) - 1
    "animatediff_lightning": {1: [999], 2: [999, 499], 4: [999, 749, 499, 249],
                              8: [999, 874, 749, 624, 499, 374, 249, 124]},
    # MCM's demo.py: LCMScheduler(timestep_scaling=4.0, timestep_spacing="linspace"): 50 original steps
    "mcm": {1: [999], 2: [999, 499], 4: [999, 759, 499, 259], 8: [999, 879, 759, 639, 499, 379, 259, 139]},
    # AnimateLCM's own LCM settings (original_inference_steps 100), with or without CFG
    "animatelcm": {1: [999], 2: [999, 499], 4: [999, 749, 499, 249], 8: [999, 879, 749, 629, 499, 379, 249, 129]},
    # DDIM, leading spacing with steps_offset 1, for both teachers
    "ddim_v3": {1: [1], 2: [501, 1], 4: [751, 501, 251, 1], 8: [876, 751, 626, 501, 376, 251, 126, 1]},
}


@pytest.mark.parametrize("name", sorted(CARD_TIMESTEPS))
@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_each_generators_timesteps_follow_its_card(name, steps):
    spec = spec_with_overrides(name, {})        # the registry's own sampler
    assert timesteps(resolve_sampler(spec.sampler), steps) == CARD_TIMESTEPS[name][steps]


def test_card_settings_are_the_registry_defaults():
    lightning = spec_with_overrides("animatediff_lightning", {})
    assert lightning.motion_adapter == "ByteDance/AnimateDiff-Lightning" and lightning.guidance_scale == 1.0
    assert lightning.motion_adapter_file == "animatediff_lightning_{nfe}step_diffusers.safetensors"
    assert resolve_sampler(lightning.sampler)["timestep_spacing"] == "trailing"
    mcm = spec_with_overrides("mcm", {})
    assert (mcm.lora, mcm.lora_file, mcm.lora_convention) == ("yhzhai/mcm", "animatediff-laion", "peft")
    assert mcm.motion_adapter == "guoyww/animatediff-motion-adapter-v1-5-2" and mcm.guidance_scale == 1.0
    assert spec_with_overrides("ddim_v3", {}).motion_adapter == "guoyww/animatediff-motion-adapter-v1-5-3"


def _mcm_demo_scheduler():
    """The scheduler MCM's demo.py (yhZhai/mcm, get_animatediff_pipeline) builds:
    LCMScheduler.from_pretrained(<base>, subfolder="scheduler", ...) with these arguments, over
    an SD1.5 scheduler config (set_alpha_to_one false; no original_inference_steps, so 50)."""
    from diffusers import LCMScheduler

    return LCMScheduler(timestep_scaling=4.0, clip_sample=False, timestep_spacing="linspace", beta_schedule="linear",
                        beta_start=0.00085, beta_end=0.012, steps_offset=1, set_alpha_to_one=False)


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_mcm_scheduler_is_its_demos(steps):
    ours = make_scheduler(resolve_sampler(spec_with_overrides("mcm", {}).sampler))
    demo = _mcm_demo_scheduler()
    assert ours.config.timestep_scaling == 4.0 and ours.config.timestep_spacing == "linspace"
    for s in (ours, demo):
        s.set_timesteps(steps)
    assert ours.timesteps.tolist() == demo.timesteps.tolist()
    for t in [int(t) for t in demo.timesteps] + [0, 1, 20]:
        assert ours.get_scalings_for_boundary_condition_discrete(t) == demo.get_scalings_for_boundary_condition_discrete(t)
    # a whole trajectory: the same denoised sample at every step
    g = torch.Generator().manual_seed(0)
    x_ours = x_demo = torch.randn(1, 4, 2, 4, 4, generator=g)
    for t in demo.timesteps:
        eps = torch.randn(x_ours.shape, generator=g)
        x_ours = ours.step(eps, t, x_ours, generator=torch.Generator().manual_seed(int(t))).prev_sample
        x_demo = demo.step(eps, t, x_demo, generator=torch.Generator().manual_seed(int(t))).prev_sample
    torch.testing.assert_close(x_ours, x_demo, rtol=0, atol=0)
    # diffusers' default scaling (10.0), which the config used to inherit, is another c_skip / c_out
    assert make_scheduler(resolve_sampler(SamplerSpec(kind="lcm"))).get_scalings_for_boundary_condition_discrete(
        259) != demo.get_scalings_for_boundary_condition_discrete(259)


def test_mcm_config_file_is_the_registry_card():
    cfg = compose(["experiment=leaderboard"])
    sampler = OmegaConf.to_container(cfg.methods.mcm.sampler)
    assert resolve_sampler(SamplerSpec(**sampler)) == resolve_sampler(spec_with_overrides("mcm", {}).sampler)
    with pytest.raises(ValueError, match="Sampler 'ddim' has no setting 'timestep_scaling'"):
        resolve_sampler(SamplerSpec(kind="ddim", timestep_scaling=4.0))


def test_lightning_loads_one_motion_module_per_step_count(tmp_path):
    one = models.build("animatediff_lightning", weights="tiny", device="cpu", cache_dir=str(tmp_path), nfe=1)
    four = models.build("animatediff_lightning", weights="tiny", device="cpu", cache_dir=str(tmp_path), nfe=4)
    assert one.provenance["motion_file"].endswith("animatediff_lightning_1step_diffusers.safetensors")
    assert four.provenance["motion_file"].endswith("animatediff_lightning_4step_diffusers.safetensors")
    w = lambda m: next(p for n, p in m.pipeline.unet.named_parameters()   # noqa: E731
                       if "motion_modules" in n and n.endswith("to_q.weight"))
    assert not torch.equal(w(one), w(four))
    with pytest.raises(ValueError, match="one motion module per step count"):
        models.build("animatediff_lightning", weights="tiny", device="cpu", cache_dir=str(tmp_path))


def test_mcm_merges_a_peft_lora_scaled_by_lora_scale(tmp_path):
    base = models.build("ddim", weights="tiny", device="cpu", cache_dir=str(tmp_path),
                        sampler={"kind": "lcm"}, guidance_scale=1.0)
    full = models.build("mcm", weights="tiny", device="cpu", cache_dir=str(tmp_path))
    half = models.build("mcm", weights="tiny", device="cpu", cache_dir=str(tmp_path), lora_scale=0.5)
    assert full.provenance["lora_fusion"]["convention"] == "peft" and full.provenance["lora_fusion"]["layers"] > 0
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    w = lambda m: dict(m.pipeline.unet.named_parameters())[name].detach()   # noqa: E731
    d_full, d_half = w(full) - w(base), w(half) - w(base)
    assert float(d_full.abs().max()) > 0
    torch.testing.assert_close(d_half, 0.5 * d_full, rtol=1e-4, atol=1e-7)


def test_pareto_front():
    pts = [("a", 10, 5.0), ("b", 20, 4.0), ("c", 30, 6.0), ("d", 15, 3.0)]
    assert pareto_front(pts, higher=False) == ["a", "d"]          # lower value is better: b and c are dominated
    assert pareto_front(pts, higher=True) == ["a", "c"]


def test_preflight_offline_lists_every_hub_file_of_every_generator(monkeypatch, tmp_path):
    from bench.preflight.checklist import preflight

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    report = preflight(compose(["experiment=leaderboard", f"cache_dir={tmp_path}"]))
    text = " ".join(p.what for p in report.problems)
    for k in (1, 2, 4, 8):
        assert f"animatediff_lightning_{k}step_diffusers.safetensors" in text
    assert "'yhzhai/mcm'" in text and "animatediff-laion/adapter_config.json" in text
    for repo in ("guoyww/animatediff-motion-adapter-v1-5-3", "guoyww/animatediff-motion-adapter-v1-5-2",
                 "wangfuyun/AnimateLCM", "stable-diffusion-v1-5/stable-diffusion-v1-5"):
        assert f"'{repo}'" in text
    assert not report.ok


# A generator added with one config file in the user's own folder, no code: AnimateLCM at CFG 1.3.
OWN_MODEL = """\
defaults:
  - /sampler@sampler: lcm
name: animatelcm
display_name: My AnimateLCM (CFG 1.3)
guidance_scale: 1.3
color: "#000000"
"""

TINY_LEADERBOARD = ["experiment=leaderboard", "weights=tiny", "metric@metrics.fvd=fvd_kinetics",
                    "metric@metrics.clipsim=clipsim_tiny", "protocol.prompt_set=classnames", "protocol.num_classes=1",
                    "protocol.videos_per_prompt=2", "protocol.nfe=[1,4]", "protocol.height=64", "protocol.width=64",
                    "runner.device=cpu", "runner.dtype=float32", "runner.batch_size=2", "runner.progress=false",
                    "runner.timing.teacher_nfe=[4]", "runner.timing.repeats=1", "runner.timing.warmup=0",
                    "report.bootstrap=20"]


@pytest.mark.slow
def test_tiny_leaderboard_with_a_generator_from_a_config_file(tmp_path, cache_dir):
    own = tmp_path / "configs" / "model"
    own.mkdir(parents=True)
    (own / "my_lcm.yaml").write_text(OWN_MODEL)
    run_dir = tmp_path / "run"
    env = {**os.environ, "LCMBENCH_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "run_bench.py", *TINY_LEADERBOARD, f"hydra.run.dir={run_dir}",
                          f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "+model@methods.my_lcm=my_lcm"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    board = (run_dir / "tables" / "leaderboard.md").read_text()
    generators = ["DDIM", "DDIM (v3)", "Ours", "Ours (CFG 1.5)", "Ours (CFG 2.0)", "AnimateDiff-Lightning", "MCM",
                  "My AnimateLCM (CFG 1.3)"]
    for g in generators:
        assert f"| {g} | 1 |" in board and f"| {g} | 4 |" in board, g
    assert "TINY RANDOM WEIGHTS" in board and "reference" in board and "vs Ours" in board
    assert any(w in board for w in ("better", "worse", "no clear change"))
    # the config-only generator is everywhere the others are
    name = "My AnimateLCM (CFG 1.3)"
    for table in ("table1.md", "time_table.md", "leaderboard.md", "leaderboard.tex"):
        assert name in (run_dir / "tables" / table).read_text(), table
    report = (run_dir / "report.html").read_text()
    assert name in report and 'id="leaderboard"' in report and "Pareto" in report
    for plot in ("fvd_vs_time.png", "clipsim_vs_time.png", "fvd_vs_nfe.png", "contact_sheet.png"):
        assert (run_dir / "plots" / plot).stat().st_size > 0
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["methods"])[-1] == "my_lcm" and results["methods"]["my_lcm"]["guidance_scale"] == 1.3
    assert results["methods"]["animatediff_lightning"]["extra"]["motion_files"] == {
        "1": "animatediff_lightning_1step_diffusers.safetensors", "4": "animatediff_lightning_4step_diffusers.safetensors"}
    timed = {(t["method"], t["nfe"]): t for t in results["timing"]}
    assert timed[("my_lcm", 4)]["extra"]["source"] == "timing"            # timed in the same run
    cfg13 = next(r for r in results["rows"] if (r["method"], r["nfe"], r["metric"]) == ("my_lcm", 4, "clipsim"))
    assert cfg13["extra"]["paired"]["against"] == "animatelcm" and cfg13["extra"]["paired"]["n"] == 2
