"""The model registry: name -> lazy builder and the official defaults.

Pure Python on purpose: listing models imports neither torch nor diffusers.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, fields, replace
from typing import Dict

from .specs import ModelSpec, SamplerSpec

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # maintained copy of runwayml/stable-diffusion-v1-5
ANIMATELCM_REPO = "wangfuyun/AnimateLCM"
ANIMATELCM_LORA = "AnimateLCM_sd15_t2v_lora.safetensors"
TEACHER_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
PERSONALIZED_DEFAULT = "emilianJR/epiCRealism"


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
                        ModelSpec(name="animatelcm", display_name="Ours", **_LCM_COMMON)),
    "animatelcm_r": Entry("models.animatediff:build_model",
                          "AnimateLCM on a personalized base (equation 2: alpha, beta, gamma), no CFG",
                          ModelSpec(name="animatelcm_r", display_name="Ours-R", personalized=PERSONALIZED_DEFAULT,
                                    **_LCM_COMMON)),
    "ddim": Entry("models.animatediff:build_model",
                  "Teacher: AnimateDiff v1-5-2 motion adapter, DDIM, CFG 7.5",
                  ModelSpec(name="ddim", display_name="DDIM", sampler=SamplerSpec(kind="ddim"), **_TEACHER_COMMON)),
    "dpmpp": Entry("models.animatediff:build_model",
                   "Teacher: AnimateDiff v1-5-2 motion adapter, DPM-Solver++ (multistep), CFG 7.5",
                   ModelSpec(name="dpmpp", display_name="DPM++", sampler=SamplerSpec(kind="dpmpp"), **_TEACHER_COMMON)),
}

WEIGHT_MODES = ("pretrained", "random", "tiny")


def available() -> list:
    return list(MODELS)


def entry(name: str) -> Entry:
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"Unknown model '{name}'.{hint} Available: {', '.join(MODELS)}.")
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
