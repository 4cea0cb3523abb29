"""Resolving, checking and fusing weights.

Every weight is named by a Hub id or a local path. Hub ids go through the Hugging
Face cache (so HF_HUB_OFFLINE and HF_HOME are honoured); a weight that cannot be
found raises WeightsNotFound naming the exact id and how to get it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from huggingface_hub import hf_hub_download
from huggingface_hub.utils import HFValidationError, validate_repo_id

from common.errors import InputError, LcmbenchError
from common.files import sha256_file
from common.names import env_flag


class WeightsNotFound(LcmbenchError, FileNotFoundError):
    """A model weight is neither a local path nor in the Hugging Face cache."""


class UnsafeWeights(LcmbenchError, ValueError):
    """A pickle checkpoint was refused."""


def hub_cache_dir() -> str:
    """The Hugging Face hub cache, resolved from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return os.path.expanduser(os.environ["HUGGINGFACE_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    xdg = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    return os.path.join(xdg, "huggingface", "hub")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), parsed as huggingface_hub parses them but
    read now: its own constant is frozen when it is first imported."""
    return env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE")


def check_sha256(path: str | os.PathLike, expected: Optional[str]) -> str:
    """Hash a file and compare with the expected value when one is given (the hash is
    recorded in the results either way)."""
    actual = sha256_file(path)
    if expected and actual != expected:
        raise InputError(f"Checksum mismatch for {path}: sha256 {actual}, expected {expected}. "
                         f"The file is corrupt or a different version: delete it and fetch it again.")
    return actual


# single weight files: a ref ending like this is a path even when it could spell a repo id
WEIGHT_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def looks_local(ref: str) -> bool:
    """A path rather than a Hub id: it starts like a path, exists, names a weight file, or
    cannot be a repo id ('org/name' at most: checkpoints/run/step100 is a path)."""
    if ref.startswith(("/", "./", "../", "~")) or os.path.exists(os.path.expanduser(ref)):
        return True
    if ref.endswith(WEIGHT_FILE_SUFFIXES):
        return True
    try:
        validate_repo_id(ref)
    except HFValidationError:
        return True
    return False


def _how_to_get(ref: str, filename: Optional[str], field: str) -> str:
    target = f"{ref} {filename}" if filename else ref
    return (f"Download it on a machine with network access with `huggingface-cli download {target}` "
            f"(or `python -m bench.prefetch experiment=...`) and copy the HF cache over, "
            f"or point {field} at a local copy.")


def load_with_clear_error(loader: Callable[[], Any], ref: str, field: str, filename: Optional[str] = None) -> Any:
    """Run a diffusers/transformers from_pretrained call and turn a missing weight
    into one clear WeightsNotFound."""
    if looks_local(ref) and not os.path.exists(os.path.expanduser(ref)):
        raise WeightsNotFound(f"{field}: local path '{ref}' does not exist. Fix the path or use a Hub id.")
    try:
        return loader()
    except (OSError, EnvironmentError, ValueError) as err:
        text = str(err)
        missing = any(s in text for s in ("does not appear to have", "not found", "Can't load", "couldn't connect",
                                          "offline", "Cannot find", "No such file", "is not a local folder",
                                          "LocalEntryNotFound", "cannot find the requested files"))
        if not missing:
            raise
        mode = " (HF_HUB_OFFLINE=1)" if hub_offline() else ""
        raise WeightsNotFound(f"{field}: weights '{ref}'{' file ' + filename if filename else ''} are not in the "
                              f"local Hugging Face cache and could not be downloaded{mode}. "
                              + _how_to_get(ref, filename, field)) from None


def resolve_file(ref: str, filename: Optional[str], field: str, revision: Optional[str] = None) -> Path:
    """A single file: a local file, a file inside a local folder, or a file of a Hub repo."""
    local = Path(os.path.expanduser(ref))
    if local.is_file():
        return local
    if local.is_dir():
        if not filename:
            raise InputError(f"{field}: '{ref}' is a folder; also give the file name inside it.")
        path = local / filename
        if not path.is_file():
            raise WeightsNotFound(f"{field}: file '{path}' does not exist.")
        return path
    if looks_local(ref):
        raise WeightsNotFound(f"{field}: local path '{ref}' does not exist. Fix the path or use a Hub id.")
    if not filename:
        raise InputError(f"{field}: '{ref}' looks like a Hub repo id; also give the file name inside it.")
    return Path(load_with_clear_error(
        lambda: hf_hub_download(ref, filename, revision=revision, local_files_only=hub_offline()),
        ref, field, filename))


def load_state_dict(path: str | os.PathLike, allow_unsafe_pickle: bool = False) -> Dict[str, Any]:
    """safetensors by default; pickle checkpoints only as weights_only tensors unless
    the user explicitly allows arbitrary pickles."""
    import torch  # heavy: torch: the command line imports this module for its error types

    path = Path(path)
    if path.suffix == ".safetensors":
        # heavy: as above
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix in (".ckpt", ".pt", ".pth", ".bin"):
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # the weights_only unpickler refuses arbitrary objects
            if not allow_unsafe_pickle:
                raise UnsafeWeights(
                    f"{path} is a pickle checkpoint that holds more than tensors ({type(err).__name__}). "
                    f"Convert it to .safetensors, or if you trust its source run with runner.allow_unsafe_pickle=true (models.build(..., allow_unsafe_pickle=True) in Python).") from None
            state = torch.load(str(path), map_location="cpu", weights_only=False)
        return state.get("state_dict", state) if isinstance(state, dict) else state
    raise InputError(f"Unsupported weight file type '{path.suffix}' for {path}: use .safetensors "
                     f"(or .ckpt/.pt/.bin pickle checkpoints, loaded as tensors only).")


def fuse_residual(base, personalized, alpha: float) -> int:
    """w <- w0 + alpha * (w_p - w0), in place on ``base`` (equation 2's alpha term).

    Both modules must have the same architecture; returns the number of tensors changed."""
    import torch  # heavy: as above

    base_state = base.state_dict()
    pers_state = personalized.state_dict()
    missing = set(base_state) ^ set(pers_state)
    if missing:
        raise InputError(f"Personalized weights do not match the base architecture ({len(missing)} differing "
                         f"keys, e.g. {sorted(missing)[:3]}). Use an SD1.5-family checkpoint.")
    changed = 0
    with torch.no_grad():
        for name, w0 in base_state.items():
            wp = pers_state[name].to(w0.device, w0.dtype)
            if not torch.is_floating_point(w0) or torch.equal(w0, wp):
                continue
            w0.add_(alpha * (wp - w0))
            changed += 1
    return changed


def scale_motion_residual(unet, gamma: float) -> int:
    """Equation 2's gamma: scale what each motion module adds to its input, by scaling
    the output projection of every temporal transformer (its residual branch)."""
    import torch  # heavy: as above

    if gamma == 1.0:
        return 0
    count = 0
    with torch.no_grad():
        for name, module in unet.named_modules():
            if "motion_modules" in name and name.endswith("proj_out") and isinstance(module, torch.nn.Linear):
                module.weight.mul_(gamma)
                if module.bias is not None:
                    module.bias.mul_(gamma)
                count += 1
    if count == 0:
        raise InputError("motion_scale was set but the UNet has no motion modules to scale.")
    return count
