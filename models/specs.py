"""Plain dataclasses describing a method (model + sampler). Pure Python: the Hydra
schemas in bench/plan/config.py reuse them, and listing the registry imports no torch.

A field left as None means "the registry default for this model" (models/registry.py);
the resolved values are what the results record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# The allowed values of the parity settings (docs/parity.md), first = the authors' way.
MOTION_NORMS = ("per_frame", "joint")
# "peft": a PEFT adapter folder merged into the motion UNet (MCM's loading); not a spatial-LoRA choice
LORA_CONVENTIONS = ("authors", "diffusers", "peft")
QUANTIZE = ("truncate", "round")


@dataclass
class SamplerSpec:
    kind: str = "lcm"                              # lcm | ddim | dpmpp | euler
    timestep_spacing: Optional[str] = None         # leading | trailing | linspace
    steps_offset: Optional[int] = None
    original_inference_steps: Optional[int] = None  # LCM only: 100 in the official code
    timestep_scaling: Optional[float] = None       # LCM only: t's factor in c_skip/c_out (10.0; MCM's demo 4.0)
    beta_start: Optional[float] = None
    beta_end: Optional[float] = None
    beta_schedule: Optional[str] = None
    clip_sample: Optional[bool] = None
    algorithm_type: Optional[str] = None           # DPM-Solver only: dpmsolver++
    final_sigmas_type: Optional[str] = None        # DPM-Solver only: sigma_min (diffusers 0.11, the authors' pin) | zero


@dataclass
class ModelSpec:
    name: str = "animatelcm"                 # registry name
    display_name: Optional[str] = None
    base: Optional[str] = None               # SD1.5: Hub id or local diffusers folder
    motion_adapter: Optional[str] = None     # Hub id or local folder (diffusers MotionAdapter)
    # a MotionAdapter state dict inside motion_adapter's repo / folder; "{nfe}" in the name picks
    # a file per step count (AnimateDiff-Lightning: animatediff_lightning_{nfe}step_diffusers.safetensors)
    motion_adapter_file: Optional[str] = None
    lora: Optional[str] = None               # spatial LCM LoRA: Hub repo id, local folder or file; "none" to skip
    lora_file: Optional[str] = None          # file name inside the repo / folder
    lora_scale: Optional[float] = None       # beta in the paper's equation (2)
    personalized: Optional[str] = None       # personalized base: Hub id, diffusers folder or .safetensors file
    personalized_alpha: Optional[float] = None  # alpha in equation (2)
    motion_scale: Optional[float] = None     # gamma in equation (2): scales the motion modules' residual
    guidance_scale: Optional[float] = None   # CFG is on only when > 1
    negative_prompt: Optional[str] = None
    revision: Optional[str] = None           # Hub revision for every Hub id of this model
    color: Optional[str] = None              # plot colour (matplotlib colour); None: the next of the palette
    # Parity with the authors' pipeline (docs/parity.md); each alternative is plain diffusers'
    motion_norm: Optional[str] = None        # per_frame (authors' motion module) | joint (diffusers 0.42)
    lora_convention: Optional[str] = None    # authors: W += lora_scale/8 * up@down | diffusers: alpha/rank
    personalized_vae: Optional[bool] = None  # a personalized base brings its own VAE (authors) or keeps SD1.5's
    quantize: Optional[str] = None           # float frames -> uint8: truncate (authors' save_videos_grid) | round
    sampler: SamplerSpec = field(default_factory=SamplerSpec)


def step_specific(spec: "ModelSpec") -> bool:
    """Whether the weights depend on the step count (one model per NFE)."""
    return bool(spec.motion_adapter_file) and "{nfe}" in spec.motion_adapter_file
