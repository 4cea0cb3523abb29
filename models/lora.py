"""Fusing the spatial LCM LoRA into the UNet, with the scale convention recorded.

The authors fuse it as ``W += (1/8) * s * up @ down`` for every pair in the file and
ignore any alpha keys (animatelcm_sd15/animatelcm/utils/lcm_utils.py), with ``s = 1.0``
in their batch script and 0.8 in their demo. diffusers scales each pair by
``alpha / rank`` from the file, or by 1.0 when the file has no alpha keys: eight times
the authors' delta. ``lora_convention="authors"`` (the default) applies the authors'
factor whatever the file holds; ``"diffusers"`` fuses through diffusers' own loader.
Either way the record says, per layer, what the file implies and what was applied.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from common.errors import InputError
from models.specs import LORA_CONVENTIONS
from models.weights import load_state_dict

log = logging.getLogger("lcmbench.models")

AUTHORS_FACTOR = 1.0 / 8.0   # lcm_utils.convert_lcm_lora: 1/8 * alpha * up @ down


def check_convention(convention: str) -> str:
    if convention not in LORA_CONVENTIONS:
        raise InputError(f"lora_convention must be one of {', '.join(LORA_CONVENTIONS)}, got {convention!r}: "
                         f"'authors' fuses (1/8) * lora_scale * up @ down as AnimateLCM's code does, "
                         f"'diffusers' uses diffusers' loader (alpha / rank from the file), 'peft' merges a PEFT "
                         f"adapter folder into the whole motion UNet (MCM).")
    return convention


def _module_index(unet: nn.Module) -> Dict[str, Tuple[str, nn.Module]]:
    """Kohya-style flattened names ("down_blocks_0_attentions_0_proj_in") -> (name, module)."""
    return {name.replace(".", "_"): (name, m) for name, m in unet.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))}


def lora_pairs(state: Dict[str, torch.Tensor], unet: nn.Module) -> List[Tuple[str, nn.Module, torch.Tensor,
                                                                                torch.Tensor, Optional[float]]]:
    """(module name, module, down, up, alpha or None) for every LoRA pair in ``state``.

    Accepts kohya keys (``lora_unet_<name>.lora_down.weight`` / ``lora_up.weight`` /
    ``.alpha``, the AnimateLCM release's format) and diffusers/PEFT keys
    (``unet.<name>.lora_A.weight`` / ``lora_B.weight``). Keys for the text encoder are
    not part of the spatial LoRA and are refused with the key named."""
    index = _module_index(unet)
    named = dict(unet.named_modules())
    pairs = []
    unknown = []
    for key in sorted(state):
        if key.endswith(".lora_down.weight"):
            stem = key[: -len(".lora_down.weight")]
            if not stem.startswith("lora_unet_"):
                unknown.append(key)
                continue
            found = index.get(stem[len("lora_unet_"):])
            if found is None:
                unknown.append(key)
                continue
            name, module = found
            alpha = state.get(f"{stem}.alpha")
            pairs.append((name, module, state[key], state[f"{stem}.lora_up.weight"],
                          None if alpha is None else float(alpha)))
        elif key.endswith(".lora_A.weight"):
            stem = key[: -len(".lora_A.weight")]
            name = stem[len("unet."):] if stem.startswith("unet.") else stem
            module = named.get(name)
            if not isinstance(module, (nn.Linear, nn.Conv2d)):
                unknown.append(key)
                continue
            alpha = state.get(f"{stem}.alpha")
            pairs.append((name, module, state[key], state[f"{stem}.lora_B.weight"],
                          None if alpha is None else float(alpha)))
    if unknown:
        raise InputError(f"{len(unknown)} LoRA key(s) match no UNet layer (e.g. {unknown[0]!r}); the file is not an "
                         f"SD1.5 spatial LoRA in kohya (lora_unet_...) or diffusers (unet....lora_A) format.")
    if not pairs:
        raise InputError("the LoRA file holds no lora_down/lora_up (or lora_A/lora_B) pairs.")
    return pairs


def file_scale(down: torch.Tensor, alpha: Optional[float]) -> float:
    """The scale diffusers applies to a pair: alpha / rank from the file, 1.0 without alpha."""
    return 1.0 if alpha is None else alpha / down.shape[0]


def delta(down: torch.Tensor, up: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if up.ndim == 2:
        return (up.float() @ down.float()).reshape(shape)
    return (up.flatten(1).float() @ down.flatten(1).float()).reshape(shape)


def fuse_authors(unet: nn.Module, state: Dict[str, torch.Tensor], scale: float) -> Dict[str, Any]:
    """``W += (1/8) * scale * up @ down`` for every pair, alpha keys ignored, in place.
    Returns the record of what the file implied and what was applied."""
    pairs = lora_pairs(state, unet)
    applied = AUTHORS_FACTOR * float(scale)
    implied = Counter()
    with torch.no_grad():
        for _name, module, down, up, alpha in pairs:
            implied[round(file_scale(down, alpha), 8)] += 1
            w = module.weight
            w.add_((applied * delta(down, up, w.shape)).to(w.device, w.dtype))
    return _record("authors", scale, applied, implied, len(pairs))


def _record(convention: str, scale: float, applied: float, implied: Counter, layers: int) -> Dict[str, Any]:
    per_layer = {f"{k:g}": v for k, v in sorted(implied.items())}
    diffusers_factor = [float(scale) * k for k in implied]
    note = (f"fused {layers} LoRA layers with the {convention} convention: W += {applied:g} * up @ down "
            f"(lora_scale {scale:g})")
    if convention == "authors" and diffusers_factor:
        ratios = sorted({round(d / applied, 6) for d in diffusers_factor}) if applied else []
        note += (f"; diffusers would apply lora_scale * alpha/rank = {', '.join(f'{d:g}' for d in sorted(set(diffusers_factor)))}"
                 f" ({', '.join(f'{r:g}x' for r in ratios)} the authors' delta)")
    log.info("LoRA: %s", note)
    return {"convention": convention, "lora_scale": float(scale), "applied_factor": applied,
            "file_scale_per_layer": per_layer, "layers": layers, "note": note}


def diffusers_record(state: Dict[str, torch.Tensor], unet: nn.Module, scale: float) -> Dict[str, Any]:
    """What diffusers' loader applies to this file (recorded beside the diffusers convention)."""
    pairs = lora_pairs(state, unet)
    implied = Counter(round(file_scale(down, alpha), 8) for _n, _m, down, _u, alpha in pairs)
    factors = {float(scale) * k for k in implied}
    applied = factors.pop() if len(factors) == 1 else float("nan")
    return _record("diffusers", scale, applied, implied, len(pairs))


def read_lora(path: "str | Path", allow_unsafe_pickle: bool = False) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in load_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle).items()
            if torch.is_tensor(v)}
