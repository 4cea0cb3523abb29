"""JEDi (Luo et al., ICLR 2025) as the ``videojedi`` package (1.1.0) computes it.

- Network: V-JEPA ViT-H/16 and the attentive pooler of its SSv2 probe
  (:mod:`metrics.vjepa`, the project's implementation; see there why the package is not a
  dependency). Files ``vith16.pth.tar`` and ``ssv2-probe.pth.tar``.
- Preprocessing, as ``VJEPA.get_feats``: frames in [0, 1] (uint8 / 255), each frame
  normalised with the ImageNet mean and std, [B, 3, T, H, W]. The package takes frames at
  whatever size it is given; here every clip is first brought to 224x224 with the reader
  the real clips go through (short side 224, bilinear with antialias, centre crop), so real
  and generated clips are treated alike and the network sees its training size.
- Features: the pooler's output, float32 [B, 1280].
- Distance: the package's ``mmd_poly(X, Y, degree=2, coef0=0) * 100`` with gamma = 1/d.
  For this kernel the biased MMD is exactly ||M_X - M_Y||_F^2 / d^2 with M the mean of
  x x^T (:func:`jedi_from_stats`), so it is computed from the same float64 sufficient
  statistics as FVD's (count, sum of outer products) and the real clips' statistics are
  cached like FVD's.
- Weights "tiny": the same encoder and pooler at
  :attr:`metrics.jedi_plugin.JEDi.tiny_vit` (2 blocks of 64, 64-d features), seeded, with
  the same preprocessing; for fast plumbing checks, its numbers mean nothing.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import numpy as np
import torch

from common.errors import InputError
from metrics.feature_distance import (FeatureDistanceMetric, check_frames, read_checkpoint, torch_device,
                                      weights_identity)
from metrics.feature_distance_plugin import FILELESS_MODES, ViTShape, weights_path
from metrics.feature_stats import FeatureStats
from metrics.jedi_plugin import JEDi, JEDiFacts, JEDiOptions
from metrics.options import parse_options
from metrics.video_io import resize_short_side_center_crop
from metrics.vjepa import VIT_HUGE_16, VJEPAConfig, VJEPAFeatures, init_random, load_pretrained

log = logging.getLogger("lcmbench.jedi")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENCODER_FILE, PROBE_FILE = JEDi.weight_files


def to_network_size(frames_uint8: np.ndarray, size: int = 224) -> np.ndarray:
    """Every clip at size x size by the real clips' reader (no-op when already there)."""
    frames = check_frames(frames_uint8, JEDiFacts.display_name)
    if frames.shape[2:4] == (size, size):
        return frames
    return np.stack([resize_short_side_center_crop(clip, size) for clip in frames])


def normalize(videos: torch.Tensor) -> torch.Tensor:
    """[B, 3, T, H, W] in [0, 1] -> ImageNet-normalised, as the package's per-frame Normalize."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=videos.dtype, device=videos.device)[:, None, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=videos.dtype, device=videos.device)[:, None, None, None]
    return (videos - mean) / std


def preprocess(frames_uint8: np.ndarray, device: Optional[torch.device] = None, size: int = 224) -> torch.Tensor:
    """uint8 [B, F, H, W, 3] -> float32 [B, 3, F, size, size], normalised."""
    x = torch.from_numpy(np.ascontiguousarray(to_network_size(frames_uint8, size)))
    if device is not None:
        x = x.to(device)
    return normalize(x.permute(0, 4, 1, 2, 3).to(torch.float32) / 255)


def jedi_from_stats(fake: FeatureStats, real: FeatureStats) -> float:
    """100 * MMD^2 with k(x, y) = (x.y / d)^2, biased estimate: 100 ||M_f - M_r||_F^2 / d^2,
    M the mean outer product of each set's features."""
    if fake.dim != real.dim:
        raise InputError(f"feature dimensions differ: generated {fake.dim} vs real {real.dim}.")
    if fake.count < 1 or real.count < 1:
        raise InputError("JEDi needs at least one clip on each side.")
    diff = fake.sum_outer / fake.count - real.sum_outer / real.count
    return float(100.0 * np.sum(diff * diff) / fake.dim ** 2)


class JEDiToReference:
    """:func:`jedi_from_stats` against fixed real statistics as a statistic of the features,
    vectorised over bootstrap resamples (count rows w): with K = (X X^T)^2 and
    q_i = x_i^T M_r x_i, ||M_w||_F^2 = w^T K w / n^2 and <M_w, M_r> = w.q / n."""

    def __init__(self, real: FeatureStats):
        self.second_moment = real.sum_outer / real.count
        self.dim = real.dim
        self._ref_sq = float(np.sum(self.second_moment ** 2))

    def __call__(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=np.float64)
        return float(self.weighted(x, np.ones((1, x.shape[0])))[0])

    def weighted(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        w = np.atleast_2d(np.asarray(w, dtype=np.float64))
        tot = w.sum(axis=1)
        kernel = (x @ x.T) ** 2
        q = np.einsum("nd,de,ne->n", x, self.second_moment, x)
        own = np.sum((w @ kernel) * w, axis=1) / tot ** 2
        return 100.0 * (own - 2.0 * (w @ q) / tot + self._ref_sq) / self.dim ** 2


def vjepa_config(shape: ViTShape) -> VJEPAConfig:
    """V-JEPA's configuration at another size (ViT-H/16's positions, eps and frame count)."""
    return VJEPAConfig(embed_dim=shape.embed_dim, depth=shape.depth, num_heads=shape.num_heads,
                       mlp_ratio=shape.mlp_hidden / shape.embed_dim, patch_size=shape.patch_size,
                       tubelet_size=shape.tubelet_size, image_size=shape.image_size)


def random_network(seed: int, cfg: VJEPAConfig = VIT_HUGE_16) -> VJEPAFeatures:
    with torch.random.fork_rng(devices=[]):   # the constructor's own init draws too
        model = VJEPAFeatures(cfg)
    return init_random(model, seed)


def load_network(encoder_path: str, probe_path: str, *, sha256: Optional[str] = None,
                 probe_sha256: Optional[str] = None, allow_unsafe_pickle: bool = False) -> VJEPAFeatures:
    encoder = read_checkpoint(encoder_path, f"JEDi encoder {ENCODER_FILE.file_name}", sha256, allow_unsafe_pickle,
                              ENCODER_FILE.url)
    probe = read_checkpoint(probe_path, f"JEDi probe {PROBE_FILE.file_name}", probe_sha256, allow_unsafe_pickle,
                            PROBE_FILE.url)
    with torch.random.fork_rng(devices=[]):   # the init is overwritten; keep the caller's RNG where it was
        model = VJEPAFeatures(VIT_HUGE_16)
    return load_pretrained(model, encoder, probe, encoder_path, probe_path)


class JEDiMetric(JEDiFacts, FeatureDistanceMetric):
    """JEDi per clip: ``extract`` keeps each clip's V-JEPA features, ``score`` compares a
    cell's features with the real clips' second moments."""

    protocol = JEDi.protocol
    sample_size = JEDi.sample_size
    min_clips = JEDi.min_clips

    def forward_batch(self, frames: np.ndarray) -> torch.Tensor:
        return self.network(preprocess(frames, self._dev, self.network.cfg.image_size))

    def distance(self, fake: FeatureStats, real: FeatureStats) -> float:
        return jedi_from_stats(fake, real)

    def bootstrap_statistic(self) -> Optional[JEDiToReference]:
        """The score as a statistic of the features, vectorised over bootstrap resamples."""
        return None if self.reference is None else JEDiToReference(self.reference)

    def protocol_spec(self) -> Dict[str, Any]:
        if self.weights == "tiny":
            cfg = self.network.cfg
            network = (f"tiny V-JEPA ViT/{cfg.patch_size} ({cfg.depth} blocks of {cfg.embed_dim}, {cfg.num_heads} "
                       f"heads) + attentive pooler, seeded init, no pre-training; {cfg.embed_dim}-d")
        else:
            network = ("V-JEPA ViT-H/16 (vith16.pth.tar) + SSv2 attentive probe pooler (ssv2-probe.pth.tar), "
                       "1280-d")
        return {"tag": self.protocol, "package": "videojedi 1.1.0 (vjepa 0.1.2)", "network": network,
                "preprocess": "short side 224 + centre crop (real-clip reader), /255, ImageNet mean/std",
                "kernel": "polynomial, degree 2, gamma 1/d, coef0 0; biased MMD x 100",
                "min_clips": self.min_clips}


def build(**options: Any) -> JEDiMetric:
    """Build JEDi (registry entry ``metrics.build("jedi", ...)``); options as
    :class:`metrics.jedi_plugin.JEDiOptions`. weights "pretrained" reads
    ``vith16.pth.tar`` and ``ssv2-probe.pth.tar`` from ``path`` / ``probe_path`` or the
    cache folder; "random" is the real architecture at a seeded init, "tiny" the same
    network code at 2 blocks of 64 (its own protocol tag; built in a second): both for
    plumbing only, their numbers mean nothing."""
    o = parse_options(JEDiOptions, options, JEDi.name)
    torch_device(o.device)   # before reading several GB
    num_frames = int(o.num_frames or VIT_HUGE_16.num_frames)
    if num_frames < 2 or num_frames % 2:
        raise InputError(f"jedi needs clips of an even number of frames (tubelet 2), got {num_frames}.")
    if o.weights == "pretrained":
        encoder = weights_path(o.path, o.cache_dir, ENCODER_FILE.file_name)
        probe = weights_path(o.probe_path, o.cache_dir, PROBE_FILE.file_name)
        network = load_network(encoder, probe, sha256=o.sha256, probe_sha256=o.probe_sha256,
                               allow_unsafe_pickle=o.allow_unsafe_pickle)
        weights_id = f"{weights_identity(encoder, o.sha256)}+{weights_identity(probe, o.probe_sha256)}"
        label = f"pretrained V-JEPA ViT-H/16 + SSv2 probe ({encoder}, {probe})"
    elif o.weights in FILELESS_MODES:
        if o.path or o.sha256 or o.probe_path or o.probe_sha256:
            raise InputError(f"jedi: weights '{o.weights}' reads no file; drop the paths/pins or use "
                             f"weights: pretrained.")
        shape = JEDi.shape(o.weights) if o.weights == "tiny" else None
        network = random_network(o.seed, vjepa_config(shape) if shape else VIT_HUGE_16)
        weights_id = f"{o.weights}-seed{o.seed}"
        size = f"ViT/16 {shape.label}" if shape else "ViT-H/16"
        label = f"{'tiny ' if shape else ''}random-init V-JEPA {size} (seed {o.seed}): numbers are meaningless"
    else:
        raise InputError(f"jedi: weights must be 'pretrained', 'random' or 'tiny', got '{o.weights}'.")
    return JEDiMetric(network, weights=o.weights, weights_id=weights_id, weights_label=label, device=o.device,
                      num_frames=num_frames, batch_size=o.batch_size, reference=o.reference, seed=o.seed,
                      real_stride=o.real_stride, real_clips=o.real_clips, clips_per_video=o.clips_per_video,
                      protocol=JEDi.protocol_tag(o.weights))
