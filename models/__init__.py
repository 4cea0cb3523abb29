"""Models: a small registry of video generators built on diffusers.

``models.build(name, weights=..., **overrides)`` returns a VideoModel with
``.pipeline`` and ``generate(prompts, seeds, num_inference_steps)``. Importing this
package imports no torch; building does.
"""
from __future__ import annotations

import importlib
from typing import Any

from models.registry import MODELS, WEIGHT_MODES, available, describe, entry, resolve_spec
from models.specs import ModelSpec, SamplerSpec


def build(name: str, weights: str = "tiny", **overrides: Any):
    """Build a registered model. ``overrides`` are ModelSpec fields (e.g. lora_scale=1.0,
    sampler=SamplerSpec(kind="lcm", timestep_spacing="trailing")) or build options
    (device, dtype, cache_dir, seed, allow_unsafe_pickle)."""
    module_name, attr = entry(name).builder.split(":")
    return getattr(importlib.import_module(module_name), attr)(name, weights=weights, **overrides)


__all__ = ["MODELS", "WEIGHT_MODES", "ModelSpec", "SamplerSpec", "available", "build", "describe", "entry",
           "resolve_spec"]
