"""Schedulers with the official AnimateLCM / AnimateDiff settings.

Timestep spacing changes results a lot at 1-4 steps (DDIM "leading" at one step is
t=1, almost no denoising), so every field is resolved explicitly and recorded.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Dict, Tuple

from common.errors import InputError
from models.specs import SamplerSpec

_SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="linear")

# Official values: AnimateLCM inference-t2v.yaml / app.py (LCM) and the original
# AnimateDiff inference configs (DDIM); DPM++ is diffusers' multistep solver.
SAMPLER_DEFAULTS: Dict[str, Dict[str, Any]] = {
    # timestep_scaling 10.0: the authors' lcm_scheduler.py and diffusers' default (MCM's demo: 4.0)
    "lcm": dict(_SD_BETAS, original_inference_steps=100, steps_offset=1, clip_sample=False,
                timestep_spacing="leading", timestep_scaling=10.0),
    "ddim": dict(_SD_BETAS, steps_offset=1, clip_sample=False, timestep_spacing="leading"),
    # final_sigmas_type sigma_min: the last step lands on t=0's sigma, as diffusers 0.11.1 (the
    # authors' pin) did; diffusers 0.42 defaults to "zero" (a full denoise at the last step)
    "dpmpp": dict(_SD_BETAS, steps_offset=1, algorithm_type="dpmsolver++", timestep_spacing="linspace",
                  final_sigmas_type="sigma_min"),
    # AnimateDiff-Lightning's card: EulerDiscreteScheduler(timestep_spacing="trailing", beta_schedule="linear")
    # on SD1.5's scheduler config
    "euler": dict(_SD_BETAS, steps_offset=1, timestep_spacing="trailing"),
}
_ALLOWED = {
    "lcm": {"beta_start", "beta_end", "beta_schedule", "original_inference_steps", "steps_offset",
            "clip_sample", "timestep_spacing", "timestep_scaling"},
    "ddim": {"beta_start", "beta_end", "beta_schedule", "steps_offset", "clip_sample", "timestep_spacing"},
    "dpmpp": {"beta_start", "beta_end", "beta_schedule", "steps_offset", "algorithm_type", "timestep_spacing",
              "final_sigmas_type"},
    "euler": {"beta_start", "beta_end", "beta_schedule", "steps_offset", "timestep_spacing"},
}


def resolve_sampler(spec: SamplerSpec) -> Dict[str, Any]:
    """Fill the spec's unset fields from the official defaults; refuse fields the
    scheduler does not have."""
    if spec.kind not in SAMPLER_DEFAULTS:
        raise InputError(f"Unknown sampler kind '{spec.kind}'. Use one of: {', '.join(SAMPLER_DEFAULTS)}.")
    resolved = dict(SAMPLER_DEFAULTS[spec.kind])
    for f in fields(spec):
        value = getattr(spec, f.name)
        if f.name == "kind" or value is None:
            continue
        if f.name not in _ALLOWED[spec.kind]:
            raise InputError(f"Sampler '{spec.kind}' has no setting '{f.name}'. "
                             f"Settable: {', '.join(sorted(_ALLOWED[spec.kind]))}.")
        resolved[f.name] = value
    if resolved.get("final_sigmas_type", "zero") not in ("zero", "sigma_min"):
        raise InputError(f"final_sigmas_type must be sigma_min or zero, got '{resolved['final_sigmas_type']}'.")
    if resolved["timestep_spacing"] not in ("leading", "trailing", "linspace"):
        raise InputError(f"timestep_spacing must be leading, trailing or linspace, got "
                         f"'{resolved['timestep_spacing']}'.")
    return {"kind": spec.kind, **resolved}


def make_scheduler(resolved: Dict[str, Any]):
    # heavy: diffusers: the registry and the command line read sampler defaults without it
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, LCMScheduler

    kwargs = {k: v for k, v in resolved.items() if k != "kind"}
    cls = {"lcm": LCMScheduler, "ddim": DDIMScheduler, "dpmpp": DPMSolverMultistepScheduler,
           "euler": EulerDiscreteScheduler}[resolved["kind"]]
    return cls(**kwargs)


def timesteps(resolved: Dict[str, Any], num_inference_steps: int) -> list:
    scheduler = make_scheduler(resolved)
    scheduler.set_timesteps(num_inference_steps)
    return [int(t) for t in scheduler.timesteps]


def spec_dict(spec: SamplerSpec) -> Dict[str, Any]:
    return asdict(spec)


NUM_TRAIN_TIMESTEPS = 1000   # diffusers' default and SD1.5's scheduler config


def step_limit(resolved: Dict[str, Any]) -> Tuple[int, str]:
    """The most inference steps a resolved sampler can take, and why."""
    if resolved["kind"] == "lcm":
        steps = int(resolved["original_inference_steps"])
        return steps, f"its LCM sampler picks steps from original_inference_steps={steps} timesteps"
    offset = int(resolved.get("steps_offset") or 0)
    if resolved.get("timestep_spacing") == "leading" and offset:
        # leading spacing shifts every timestep by the offset: at 1000 steps the last is t=1000, past the table
        return (NUM_TRAIN_TIMESTEPS - offset, f"its {resolved['kind']} sampler's leading spacing shifts "
                                              f"{NUM_TRAIN_TIMESTEPS} train timesteps by steps_offset={offset}")
    if resolved.get("timestep_spacing") == "linspace":
        # linspace spreads n + 1 points over t = 0..999: at 1000 steps two round to the same timestep
        return (NUM_TRAIN_TIMESTEPS - 1, f"its {resolved['kind']} sampler's linspace spacing has "
                                         f"{NUM_TRAIN_TIMESTEPS - 1} distinct timesteps to give")
    return NUM_TRAIN_TIMESTEPS, f"its {resolved['kind']} sampler has {NUM_TRAIN_TIMESTEPS} train timesteps"
