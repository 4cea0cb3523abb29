"""The model registry: name -> lazy builder and the official defaults.

Pure Python on purpose: listing models imports neither torch nor diffusers.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Dict

from common.errors import InputError
from common.names import did_you_mean

from models.specs import ModelSpec, SamplerSpec

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # maintained copy of runwayml/stable-diffusion-v1-5
ANIMATELCM_REPO = "wangfuyun/AnimateLCM"
ANIMATELCM_LORA = "AnimateLCM_sd15_t2v_lora.safetensors"
TEACHER_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
TEACHER_ADAPTER_V3 = "guoyww/animatediff-motion-adapter-v1-5-3"
PERSONALIZED_DEFAULT = "emilianJR/epiCRealism"
LIGHTNING_REPO = "ByteDance/AnimateDiff-Lightning"
LIGHTNING_FILE = "animatediff_lightning_{nfe}step_diffusers.safetensors"
MCM_REPO = "yhzhai/mcm"


@dataclass(frozen=True)
class Entry:
    builder: str        # "module:function"
    summary: str
    defaults: ModelSpec


# The authors' pipeline, stage by stage (docs/parity.md): per-frame motion norm, their
# LoRA fusion, the personalized VAE swapped in, truncating uint8 conversion.
_PARITY = dict(motion_norm="per_frame", lora_convention="authors", personalized_vae=True, quantize="truncate")
# lora_scale 1.0: the authors' batch script (batch_inference.py), closest to how many
# clips were made; their demo (app.py) uses 0.8 (model=animatelcm_demo_lora).
_LCM_COMMON = dict(base=SD15, motion_adapter=ANIMATELCM_REPO, lora=ANIMATELCM_REPO, lora_file=ANIMATELCM_LORA,
                   lora_scale=1.0, personalized_alpha=1.0, motion_scale=1.0, guidance_scale=1.0,
                   negative_prompt="", sampler=SamplerSpec(kind="lcm"), **_PARITY)
_TEACHER_COMMON = dict(base=SD15, motion_adapter=TEACHER_ADAPTER, lora="none", lora_scale=0.0,
                       personalized_alpha=1.0, motion_scale=1.0, guidance_scale=7.5, negative_prompt="", **_PARITY)

MODELS: Dict[str, Entry] = {
    "animatelcm": Entry("models.animatediff:build_model",
                        "AnimateLCM: SD1.5 + spatial LCM LoRA + consistency-distilled motion module, no CFG",
                        ModelSpec(name="animatelcm", display_name="Ours", color="#d62728", **_LCM_COMMON)),
    "animatelcm_r": Entry("models.animatediff:build_model",
                          "AnimateLCM on a personalized base (equation 2: alpha, beta, gamma), no CFG",
                          ModelSpec(name="animatelcm_r", display_name="Ours-R", personalized=PERSONALIZED_DEFAULT,
                                    color="#ff7f0e", **_LCM_COMMON)),
    "ddim": Entry("models.animatediff:build_model",
                  "Teacher: AnimateDiff v1-5-2 motion adapter, DDIM, CFG 7.5",
                  ModelSpec(name="ddim", display_name="DDIM", sampler=SamplerSpec(kind="ddim"), color="#7f7f7f",
                            **_TEACHER_COMMON)),
    "dpmpp": Entry("models.animatediff:build_model",
                   "Teacher: AnimateDiff v1-5-2 motion adapter, DPM-Solver++ (multistep), CFG 7.5",
                   ModelSpec(name="dpmpp", display_name="DPM++", sampler=SamplerSpec(kind="dpmpp"), color="#1f77b4",
                             **_TEACHER_COMMON)),
    # Successors and other teachers, settings from their model cards (docs/adding-a-model.md)
    "animatediff_lightning": Entry(
        "models.animatediff:build_model",
        "AnimateDiff-Lightning: a distilled motion module per step count, Euler (trailing), no CFG",
        ModelSpec(name="animatediff_lightning", display_name="AnimateDiff-Lightning", base=SD15, color="#2ca02c",
                  motion_adapter=LIGHTNING_REPO, motion_adapter_file=LIGHTNING_FILE, lora="none", lora_scale=0.0,
                  personalized_alpha=1.0, motion_scale=1.0, guidance_scale=1.0, negative_prompt="",
                  sampler=SamplerSpec(kind="euler"), **_PARITY)),
    "mcm": Entry(
        "models.animatediff:build_model",
        "MCM (motion consistency model): a PEFT LoRA merged into the AnimateDiff v1-5-2 UNet, LCM, no CFG",
        ModelSpec(name="mcm", display_name="MCM", base=SD15, motion_adapter=TEACHER_ADAPTER, lora=MCM_REPO, color="#e377c2",
                  lora_file="animatediff-laion", lora_scale=1.0, personalized_alpha=1.0, motion_scale=1.0,
                  guidance_scale=1.0, negative_prompt="",
                  # MCM's demo.py: LCMScheduler(timestep_scaling=4.0, timestep_spacing="linspace", steps_offset=1)
                  # on SD1.5's scheduler config, which leaves diffusers' 50 original steps
                  sampler=SamplerSpec(kind="lcm", original_inference_steps=50, timestep_spacing="linspace",
                                      timestep_scaling=4.0),
                  **dict(_PARITY, lora_convention="peft"))),
    "ddim_v3": Entry("models.animatediff:build_model",
                     "Teacher: AnimateDiff v3 (v1-5-3) motion adapter, DDIM, CFG 7.5",
                     ModelSpec(name="ddim_v3", display_name="DDIM (v3)", sampler=SamplerSpec(kind="ddim"), color="#17becf",
                               **dict(_TEACHER_COMMON, motion_adapter=TEACHER_ADAPTER_V3))),
}

WEIGHT_MODES = ("pretrained", "random", "tiny")


def available() -> list:
    return list(MODELS)


def entry(name: str) -> Entry:
    if name not in MODELS:
        raise InputError(f"Unknown model '{name}'.{did_you_mean(name, MODELS)} Available: {', '.join(MODELS)}.")
    return MODELS[name]


def resolve_spec(spec: ModelSpec) -> ModelSpec:
    """Fill every None field from the registry defaults of spec.name (sampler too)."""
    defaults = entry(spec.name).defaults
    values = {}
    for f in fields(ModelSpec):
        if f.name == "sampler":
            continue
        value = getattr(spec, f.name)
        values[f.name] = getattr(defaults, f.name) if value is None else value
    sampler = spec.sampler if spec.sampler is not None else defaults.sampler
    if sampler.kind is None:
        sampler = replace(sampler, kind=defaults.sampler.kind)
    if sampler.kind == defaults.sampler.kind:   # the registry's own sampler settings fill what is unset
        sampler = replace(sampler, **{f.name: getattr(defaults.sampler, f.name) for f in fields(SamplerSpec)
                                      if getattr(sampler, f.name) is None and getattr(defaults.sampler, f.name)
                                      is not None})
    return replace(ModelSpec(**values), sampler=sampler)


def describe() -> str:
    width = max(len(n) for n in MODELS)
    return "\n".join(f"  {name:<{width}}  {e.summary}" for name, e in MODELS.items())


def spec_with_overrides(name: str, overrides: Dict) -> ModelSpec:
    """The resolved spec of method ``name`` with keyword overrides of its fields; the
    sampler may be given as a SamplerSpec or a dict of its fields."""
    overrides = dict(overrides)
    sampler = overrides.pop("sampler", None)
    if isinstance(sampler, dict):
        sampler = SamplerSpec(**sampler)
    return resolve_spec(replace(ModelSpec(name=name), **overrides, sampler=sampler or SamplerSpec(kind=None)))
