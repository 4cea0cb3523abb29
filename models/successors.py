"""Loading that AnimateLCM's successors add to the shared AnimateDiff assembly.

- A motion module given as a state-dict file, one per step count when the name holds
  ``{nfe}`` (AnimateDiff-Lightning: ``animatediff_lightning_{nfe}step_diffusers.safetensors``
  loaded into a default ``MotionAdapter``, as its model card does).
- A PEFT LoRA merged into the whole motion UNet (MCM: ``PeftModel.from_pretrained(unet,
  repo, subfolder=...).merge_and_unload()``, as its model card does), scaled by
  ``lora_scale``.

Tiny runs write seeded tiny files in the same formats and load them through the same
code, so the loading is exercised without a download.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from safetensors.torch import save_file

from common.errors import InputError
from common.files import atomic_path

from models.specs import ModelSpec, step_specific
from models.weights import check_sha256, load_state_dict, load_with_clear_error, looks_local, resolve_file


def motion_file_name(spec: ModelSpec, nfe: Optional[int]) -> str:
    if step_specific(spec) and nfe is None:
        raise InputError(f"model '{spec.name}' has one motion module per step count ({spec.motion_adapter_file}): "
                         f"build it for a step count (models.build(..., nfe=K)).")
    return spec.motion_adapter_file.format(nfe=nfe) if step_specific(spec) else spec.motion_adapter_file


def _tiny_motion_file(adapter, spec: ModelSpec, nfe: Optional[int], cache_dir: Path, seed: int) -> Path:
    """A seeded tiny motion state dict named like the real file (one per step count)."""
    name = motion_file_name(spec, nfe)
    path = cache_dir / "tiny" / f"seed{seed}" / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        g = torch.Generator().manual_seed(seed * 1009 + (nfe or 0))
        state = {k: (v + 0.05 * torch.randn(v.shape, generator=g) * (v.std() if v.numel() > 1 else 1.0))
                 if v.is_floating_point() else v for k, v in adapter.state_dict().items()}
        with atomic_path(path, ".safetensors") as tmp:
            save_file({k: t.contiguous() for k, t in state.items()}, str(tmp))
    return path


def load_motion_file(adapter, spec: ModelSpec, weights: str, nfe: Optional[int], cache_dir: Path,
                     seed: int, allow_unsafe_pickle: bool = False) -> Dict[str, Any]:
    """Load ``spec.motion_adapter_file`` (for ``nfe``) into ``adapter`` in place; returns
    what was loaded. Random weights keep the random module (speed only)."""
    if weights == "random":
        return {"motion_file": None, "motion_file_note": "random weight mode: the architecture only"}
    if weights == "tiny" and not looks_local(spec.motion_adapter):
        path = _tiny_motion_file(adapter, spec, nfe, cache_dir, seed)
    else:
        path = resolve_file(spec.motion_adapter, motion_file_name(spec, nfe), "model.motion_adapter_file",
                            spec.revision)
    missing, unexpected = adapter.load_state_dict(load_state_dict(path, allow_unsafe_pickle), strict=False)
    if missing or unexpected:
        raise InputError(f"{path} does not match a MotionAdapter ({len(missing)} missing keys, e.g. "
                         f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]}). Check "
                         f"model.motion_adapter_file.")
    seeded = weights == "tiny" and not looks_local(spec.motion_adapter)
    return {"motion_file": f"tiny {path.name}" if seeded else motion_file_name(spec, nfe),
            "motion_file_sha256": check_sha256(path, None), "motion_file_nfe": nfe}


def _tiny_peft_folder(unet, cache_dir: Path, seed: int) -> Path:
    """A seeded tiny PEFT LoRA on the UNet's attention projections, saved as PEFT does."""
    from peft import LoraConfig, get_peft_model  # heavy: peft, only for a PEFT LoRA (MCM)

    folder = cache_dir / "tiny" / f"peft_lora_seed{seed}"
    if (folder / "adapter_config.json").is_file():
        return folder
    model = get_peft_model(copy.deepcopy(unet), LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                                           target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    with atomic_path(folder) as tmp:
        model.save_pretrained(str(tmp))
    return folder


def merge_peft_lora(unet, spec: ModelSpec, weights: str, cache_dir: Path, seed: int):
    """The UNet with the PEFT adapter ``spec.lora`` (subfolder ``spec.lora_file``) merged
    in at ``lora_scale``; returns (unet, record)."""
    from peft import PeftModel  # heavy: as above
    from peft.tuners.lora import LoraLayer  # heavy: as above

    if weights == "random":
        return unet, {"lora": None, "lora_note": "random weight mode: PEFT LoRA skipped (merged weights do not "
                                                 "change speed)"}
    if weights == "tiny" and not looks_local(spec.lora):
        source, kw, label = str(_tiny_peft_folder(unet, cache_dir, seed)), {}, "tiny seeded PEFT LoRA"
    else:
        local = looks_local(spec.lora)
        source = str(Path(os.path.expanduser(spec.lora)) / spec.lora_file) if local else spec.lora
        kw = {} if local else {"subfolder": spec.lora_file, "revision": spec.revision}
        label = f"{spec.lora}/{spec.lora_file}"
    model = load_with_clear_error(lambda: PeftModel.from_pretrained(unet, source, **kw), spec.lora, "model.lora",
                                  spec.lora_file)
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    if float(spec.lora_scale) != 1.0:
        for layer in layers:
            layer.scale_layer(float(spec.lora_scale))
    merged = model.merge_and_unload()
    return merged, {"lora": label, "lora_fusion": {"convention": "peft", "lora_scale": float(spec.lora_scale),
                                                   "layers": len(layers),
                                                   "note": f"PEFT adapter merged into {len(layers)} layers "
                                                           f"(merge_and_unload), scaled by {spec.lora_scale:g}"}}
