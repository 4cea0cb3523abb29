"""Inflated Inception-V1 (I3D) video classifier used as the FVD feature detector.

The module tree and parameter names follow the widely used PyTorch port of the
Kinetics-400 I3D (the ``piergiaj/pytorch-i3d`` layout that VideoGPT, TATS and the
official AnimateLCM metrics use), so ``i3d_pretrained_400.pt`` loads into
:class:`InceptionI3d` with ``load_state_dict(strict=True)``. Padding reproduces
TensorFlow's "SAME" rule, computed from the actual input size for every conv and
max-pool, because the weights were converted from a TensorFlow model.

:func:`load_detector` loads either that state dict or StyleGAN-V's TorchScript
detector ``i3d_torchscript.pt`` and records the file's sha256.
:func:`calibrate_batchnorm` refits BatchNorm running statistics of a randomly
initialised network to real footage (a random I3D otherwise maps every clip to
almost the same logits: FVD between two different real videos falls to about 1e-11;
docs/parity.md, "The detector").
"""
from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import InputError, MissingInput, UnusableFile
from common.files import sha256_file
from metrics.detector_files import PUBLISHED_AT, STATE_DICT_FILE, TORCHSCRIPT_FILE

NUM_CLASSES = 400
# TF / Sonnet's BatchNorm epsilon, which the weights were trained with. It is not in
# the weights file: each FVD protocol sets its own (the AnimateLCM authors' port: 1e-5).
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
INPUT_SIZE = 224
# Three stride-2 stages in time and a final temporal average pool of width 2:
# fewer input frames leave nothing to pool.
MIN_FRAMES = 9

# Output channels of each Inception block, in the order
# (b0, b1a, b1b, b2a, b2b, b3b) as in the original Inception-V1 table.
MIXED_BLOCKS: Tuple[Tuple[str, Tuple[int, int, int, int, int, int]], ...] = (
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)


def _triple(v) -> Tuple[int, int, int]:
    if isinstance(v, int):
        return (v, v, v)
    t = tuple(int(x) for x in v)
    if len(t) != 3:
        raise InputError(f"expected 3 values (t, h, w), got {v!r}")
    return t  # type: ignore[return-value]


def tf_same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """(before, after) padding of TensorFlow's "SAME" rule for one axis.

    Output length is ceil(size / stride); the extra element, when the total is
    odd, goes after (TensorFlow's convention)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _same_split(x: torch.Tensor, kernel, stride) -> Tuple[Tuple[int, int, int], List[int]]:
    """Split TF "SAME" padding into a symmetric part (handed to the conv/pool op,
    which is faster than a separate pad) and the leftover after-side cells
    (F.pad order: w, h, t)."""
    sym: List[int] = []
    extra: List[int] = []
    for axis in (2, 3, 4):
        lo, hi = tf_same_padding(x.shape[axis], kernel[axis - 2], stride[axis - 2])
        sym.append(lo)
        extra = [0, hi - lo] + extra
    return (sym[0], sym[1], sym[2]), extra


class Unit3D(nn.Module):
    """Conv3d (no bias unless asked) + BatchNorm3d + ReLU with TF "SAME" padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel=(1, 1, 1), stride=(1, 1, 1),
                 activation: bool = True, use_batch_norm: bool = True, use_bias: bool = False,
                 bn_eps: float = BN_EPS):
        super().__init__()
        self.kernel = _triple(kernel)
        self.stride = _triple(stride)
        self.activation = activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride,
                                padding=0, bias=use_bias)
        if use_batch_norm:
            self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=BN_MOMENTUM)
        else:
            self.bn = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sym, extra = _same_split(x, self.kernel, self.stride)
        if any(extra):
            x = F.pad(x, extra)
        x = F.conv3d(x, self.conv3d.weight, self.conv3d.bias, self.stride, sym)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max-pool with TF "SAME" padding; padded cells never win (TF semantics)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel = _triple(kernel)
        self.stride = _triple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sym, extra = _same_split(x, self.kernel, self.stride)
        if any(extra):
            x = F.pad(x, extra, value=float("-inf"))
        # Built-in max-pool padding is -inf too, so padded cells never win.
        return F.max_pool3d(x, self.kernel, self.stride, sym)


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels (names b0, b1a/b1b, b2a/b2b, b3a/b3b)."""

    def __init__(self, in_channels: int, out: Sequence[int], bn_eps: float = BN_EPS):
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0], 1, bn_eps=bn_eps)
        self.b1a = Unit3D(in_channels, out[1], 1, bn_eps=bn_eps)
        self.b1b = Unit3D(out[1], out[2], 3, bn_eps=bn_eps)
        self.b2a = Unit3D(in_channels, out[3], 1, bn_eps=bn_eps)
        self.b2b = Unit3D(out[3], out[4], 3, bn_eps=bn_eps)
        self.b3a = MaxPool3dSame(3, 1)
        self.b3b = Unit3D(in_channels, out[5], 1, bn_eps=bn_eps)
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.b0(x),
            self.b1b(self.b1a(x)),
            self.b2b(self.b2a(x)),
            self.b3b(self.b3a(x)),
        ], dim=1)


class InceptionI3d(nn.Module):
    """Kinetics-400 I3D. ``forward(x)``: x float [B, 3, T, 224, 224] in [-1, 1]
    (T >= 9) -> logits [B, num_classes] averaged over the remaining time steps.
    ``bn_eps``: every BatchNorm's epsilon (an FVD protocol setting, see metrics.fvd)."""

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3,
                 dropout_keep_prob: float = 0.5, bn_eps: float = BN_EPS):
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.bn_eps = float(bn_eps)
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, 7, 2, bn_eps=bn_eps)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, 1, bn_eps=bn_eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, 3, bn_eps=bn_eps)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        for name, out in MIXED_BLOCKS:
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame(3, 2)
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame(2, 2)
            block = InceptionBlock(channels, out, bn_eps=bn_eps)
            setattr(self, name, block)
            channels = block.out_channels
        self.feature_channels = channels  # 1024
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=1)
        self.dropout = nn.Dropout(1.0 - dropout_keep_prob)
        self.logits = Unit3D(channels, num_classes, 1, activation=False,
                             use_batch_norm=False, use_bias=True)
        # Module registration order above is the forward order.
        self._trunk = [n for n, _ in self.named_children()
                       if n not in ("avg_pool", "dropout", "logits")]

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise InputError(
                f"InceptionI3d expects [B, {self.in_channels}, T, {INPUT_SIZE}, {INPUT_SIZE}], got "
                f"{tuple(x.shape)}; convert frames with metrics.fvd.preprocess first.")
        if x.shape[2] < MIN_FRAMES:
            raise InputError(f"InceptionI3d needs at least {MIN_FRAMES} frames, got {x.shape[2]}.")
        if tuple(x.shape[3:]) != (INPUT_SIZE, INPUT_SIZE):
            raise InputError(
                f"InceptionI3d expects {INPUT_SIZE}x{INPUT_SIZE} frames, got "
                f"{x.shape[3]}x{x.shape[4]}; resize with metrics.fvd.preprocess first.")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Mixed_5c activations [B, 1024, T', 7, 7]."""
        self._check_input(x)
        for name in self._trunk:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.logits(self.dropout(self.avg_pool(self.features(x))))
        return x.mean(dim=(2, 3, 4))


# ----------------------------------------------------------------------------- loading


def _is_torchscript_archive(path: str) -> bool:
    # TorchScript archives are zip files holding a code/ folder and constants.pkl;
    # torch.save zips hold only data.pkl + data/; legacy torch.save files are not zips.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _unwrap_state_dict(obj: Any, path: str) -> Dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict) and not torch.is_tensor(obj[key]):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise InputError(
            f"{path} does not hold a tensor state dict (got {type(obj).__name__}). "
            f"Pass the I3D state dict {STATE_DICT_FILE}, or kind='torchscript' for {TORCHSCRIPT_FILE}.")
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def check_state_dict(model: nn.Module, state_dict: Dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Raise ValueError naming missing/unexpected/mis-shaped keys before loading."""
    expected = model.state_dict()
    # Files saved before PyTorch 0.4.1 have no BN batch counters; BatchNorm fills them in.
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(k for k in expected if k not in state_dict and k not in optional)
    unexpected = sorted(k for k in state_dict if k not in expected)
    shape = sorted(k for k in expected if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or shape:
        def few(keys: List[str]) -> str:
            return ", ".join(keys[:5]) + (f" ... (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {few(unexpected)}")
        if shape:
            parts.append("shape mismatch: " + few(
                [f"{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}" for k in shape]))
        raise InputError(
            f"{source} does not match the InceptionI3d (piergiaj/pytorch-i3d) layout: "
            + "; ".join(parts)
            + f". Expected keys like 'Conv3d_1a_7x7.conv3d.weight' and 'logits.conv3d.bias' "
            f"({NUM_CLASSES} classes); use {STATE_DICT_FILE} from {PUBLISHED_AT[STATE_DICT_FILE]}.")


@dataclass
class Detector:
    """A loaded feature detector and where it came from.

    kind "i3d": ``module`` is an :class:`InceptionI3d`; call it on [B,3,T,224,224]
    floats in [-1, 1]. kind "torchscript": StyleGAN-V's scripted I3D; call it on
    [B,3,T,H,W] floats in [0, 255] with ``rescale=True, resize=True,
    return_features=True`` (see :meth:`__call__`).
    """

    module: nn.Module
    kind: str
    path: Optional[str] = None
    sha256: Optional[str] = None
    info: Dict[str, Any] = field(default_factory=dict)

    TORCHSCRIPT_KWARGS = {"rescale": True, "resize": True, "return_features": True}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "torchscript":
            return self.module(x, **self.TORCHSCRIPT_KWARGS)
        return self.module(x)

    def to(self, device) -> "Detector":
        self.module = self.module.to(device)
        return self

    def identity(self) -> str:
        """Short stable id of the weights (goes into feature keys and cache names)."""
        if self.sha256:
            return f"{self.kind}-{self.sha256[:12]}"
        return str(self.info.get("identity", self.kind))


def load_detector(path: str, kind: Optional[str] = None, sha256: Optional[str] = None,
                  bn_eps: float = BN_EPS, allow_unsafe_pickle: bool = False) -> Detector:
    """Load an FVD detector file.

    bn_eps: the BatchNorm epsilon of an "i3d" state dict (not stored in the file; the
    FVD protocol decides it). A TorchScript detector carries its own.
    kind: "i3d" (a state dict such as ``i3d_pretrained_400.pt``, loaded with
    ``weights_only=True`` into :class:`InceptionI3d`, strict), "torchscript"
    (StyleGAN-V's ``i3d_torchscript.pt``, via ``torch.jit.load``) or None to
    detect it from the file. sha256: when given, the file must match it.
    allow_unsafe_pickle: a state dict whose pickle holds more than tensors is loaded
    anyway (runner.allow_unsafe_pickle); otherwise it is refused.
    The file's sha256 is always recorded on the returned :class:`Detector`.
    """
    if kind not in (None, "i3d", "torchscript"):
        raise InputError(f"kind must be 'i3d', 'torchscript' or None (auto), got {kind!r}.")
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise MissingInput(
            f"FVD detector file not found: {path}. Download {STATE_DICT_FILE} from "
            f"{PUBLISHED_AT[STATE_DICT_FILE]}, or {TORCHSCRIPT_FILE} from "
            f"{PUBLISHED_AT[TORCHSCRIPT_FILE]}, and pass its path (or put it in $LCMBENCH_CACHE).")
    digest = sha256_file(path)
    if sha256 is not None and digest.lower() != sha256.lower():
        raise UnusableFile(
            f"sha256 of {path} is {digest}, expected {sha256}: the file is corrupt or a different "
            f"release; download it again or fix the expected checksum.")
    if kind is None:
        kind = "torchscript" if _is_torchscript_archive(path) else "i3d"
    if kind == "torchscript":
        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated upstream, but it is the format StyleGAN-V published.
                warnings.filterwarnings("ignore", category=FutureWarning)
                module = torch.jit.load(path, map_location="cpu").eval()
        except Exception as e:  # noqa: BLE001 - re-raised with the path and a hint
            raise UnusableFile(
                f"could not load {path} as a TorchScript detector ({type(e).__name__}: {e}); "
                f"for a state dict such as {STATE_DICT_FILE} pass kind='i3d'.") from e
        return Detector(module, "torchscript", path, digest)
    if _is_torchscript_archive(path):
        raise InputError(f"{path} is a TorchScript archive, not a state dict: pass kind='torchscript'.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle)
    except Exception as e:  # noqa: BLE001
        hint = "" if allow_unsafe_pickle else (" If it is a pickle that holds more than tensors and you trust its "
                                               "source, run with runner.allow_unsafe_pickle=true.")
        raise UnusableFile(f"could not read {path} as a PyTorch state dict ({type(e).__name__}: {e}).{hint}") from e
    sd = _unwrap_state_dict(obj, path)
    model = InceptionI3d(bn_eps=bn_eps)
    check_state_dict(model, sd, source=path)
    model.load_state_dict(sd, strict=True)
    return Detector(model.eval(), "i3d", path, digest, info={"bn_eps": float(bn_eps)})


def random_i3d(seed: int = 0, bn_eps: float = BN_EPS) -> InceptionI3d:
    """The real architecture with PyTorch's default init, reproducible from ``seed``
    without touching the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = InceptionI3d(bn_eps=bn_eps)
    return model.eval()


def _batchnorms(model: nn.Module) -> Iterable[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, clips: torch.Tensor, batch_size: Optional[int] = None) -> nn.Module:
    """Refit every BatchNorm's running mean/var to ``clips`` (preprocessed model
    inputs, e.g. [N,3,T,224,224] in [-1,1]).

    With one batch (the default) this is one train-mode forward with momentum 1,
    so the running statistics become that batch's statistics. With ``batch_size``
    smaller than N the batches are averaged exactly (cumulative moving average).
    Only BatchNorm layers switch to train mode (dropout stays off); training
    flags and momenta are restored afterwards. Returns ``model``.
    """
    if not torch.is_tensor(clips) or clips.ndim < 2 or clips.shape[0] < 1:
        raise InputError("calibrate_batchnorm needs a non-empty tensor of preprocessed clips [N, ...].")
    bns = list(_batchnorms(model))
    if not bns:
        raise InputError("calibrate_batchnorm: the model has no BatchNorm layers.")
    n = clips.shape[0]
    bs = n if batch_size is None else max(1, min(int(batch_size), n))
    saved_modes = {m: m.training for m in model.modules()}
    saved_momenta = {bn: bn.momentum for bn in bns}
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = 1.0 if bs >= n else None  # None = exact cumulative average
            bn.train()
        device = next(model.parameters()).device
        for i in range(0, n, bs):
            model(clips[i:i + bs].to(device))
    finally:
        for m, mode in saved_modes.items():
            m.training = mode
        for bn, mom in saved_momenta.items():
            bn.momentum = mom
    return model
