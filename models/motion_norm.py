"""Where the motion module's GroupNorm takes its statistics.

The network the AnimateDiff / AnimateLCM motion modules were trained as (AnimateDiff's
``TemporalTransformer3DModel``, also in the AnimateLCM release) rearranges
``b c f h w -> (b f) c h w`` before its GroupNorm: statistics per frame. diffusers
0.42's ``AnimateDiffTransformer3D`` normalises ``(b, c, f, h, w)``: statistics pooled
over all frames of a clip. ``motion_norm="per_frame"`` (the default) swaps each motion
module's GroupNorm for :class:`PerFrameGroupNorm`, which shares its parameters and
normalises each frame on its own; ``"joint"`` keeps plain diffusers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from torch import nn

from common.errors import InputError
from models.specs import MOTION_NORMS


class PerFrameGroupNorm(nn.GroupNorm):
    """GroupNorm of a ``(b, c, f, h, w)`` tensor with statistics per frame (4-D input
    is normalised as usual). Same parameters and state dict as ``nn.GroupNorm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        b, c, f, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * f, c, h, w)
        y = F.group_norm(frames, self.num_groups, self.weight, self.bias, self.eps)
        return y.reshape(b, f, c, h, w).transpose(1, 2)


def check_motion_norm(mode: str) -> str:
    if mode not in MOTION_NORMS:
        raise InputError(f"motion_norm must be one of {', '.join(MOTION_NORMS)}, got {mode!r}: 'per_frame' is the "
                         f"authors' motion module, 'joint' plain diffusers.")
    return mode


def apply_motion_norm(unet: nn.Module, mode: str) -> int:
    """Set every motion module of ``unet`` (a diffusers UNetMotionModel) to ``mode``;
    returns how many norms were swapped. Parameters are shared, not copied."""
    check_motion_norm(mode)
    swapped = 0
    for module in unet.modules():
        if not isinstance(module, AnimateDiffTransformer3D):
            continue
        norm = module.norm
        if mode == "per_frame" and type(norm) is nn.GroupNorm:
            new = PerFrameGroupNorm(norm.num_groups, norm.num_channels, norm.eps, norm.affine)
            new.weight, new.bias = norm.weight, norm.bias
            module.norm = new
            swapped += 1
        elif mode == "joint" and isinstance(norm, PerFrameGroupNorm):
            new = nn.GroupNorm(norm.num_groups, norm.num_channels, norm.eps, norm.affine)
            new.weight, new.bias = norm.weight, norm.bias
            module.norm = new
            swapped += 1
    return swapped
