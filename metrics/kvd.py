"""Kernel Video Distance (KVD): the squared maximum mean discrepancy between the generated
and the real clips' I3D features (the logits FVD uses), with the cubic polynomial kernel

    k(x, y) = (x . y / d + 1) ** 3          (d: the feature dimension, 400)

(scikit-learn's ``polynomial_kernel`` defaults: degree 3, gamma 1/d, coef0 1), estimated
without bias: the within-set means leave out each clip's kernel with itself,

    KVD = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j).

This is what the AnimateLCM authors' ``polynomial_mmd`` (metrics/fvd.py of their code)
computes; here in float64 with matrix products. Unlike FVD it assumes no Gaussian and
has no bias in N, so it may be slightly negative for sets from one distribution.

Optionally (``subsets`` > 0) the value is the mean over random subsets of
``subset_size`` clips from each set, as StyleGAN-V's (StyleGAN2-ADA's) KID code does,
seeded by ``subset_seed``. The metric wraps an FVD metric built from the same options:
one detector, one reference (whose per-clip features the reference file and cache keep),
one feature key.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from common.errors import InputError
from common.files import array_digest
from metrics import fvd, resample_pool
from metrics.base import ClipMetric
from metrics.kvd_plugin import KVD, KVDScore
from metrics.options import parse_options

KERNEL = "polynomial: (x.y / d + 1)^3 (scikit-learn defaults: degree 3, gamma 1/d, coef0 1)"
_CHUNK = 256   # resamples per kernel product in the vectorised bootstrap


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x_i, y_j) = (x_i . y_j / d + 1)^3 for every pair, float64 [len(x), len(y)]."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _check_sets(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise InputError(f"KVD needs two feature sets [N, D] of one dimension, got {x.shape} and {y.shape}.")
    if min(x.shape[0], y.shape[0]) < 2:
        raise InputError(f"KVD needs at least 2 clips in each set (the within-set means leave out the "
                         f"diagonal), got {x.shape[0]} and {y.shape[0]}.")


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased squared MMD of two feature sets under :func:`polynomial_kernel`."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _check_sets(x, y)
    return float(KernelDistanceToReference(y)(x))


class KernelDistanceToReference:
    """Unbiased squared MMD from a clip set to fixed reference features (KVD's statistic).

    The reference's within-set mean is computed once. ``weighted`` evaluates many
    bootstrap resamples given as count rows [B, N]: a resample holding clip i c_i times
    has the within-set sum c' K c - c . diag(K) over its positions (a duplicated clip's
    pairs with itself count, as they would in the resampled array) and the cross sum
    c' K_xy 1, so every resample is one row times the clips' kernel matrix.
    """

    name = "kvd"

    def __init__(self, reference: np.ndarray):
        self.reference = np.asarray(reference, dtype=np.float64)
        if self.reference.ndim != 2 or self.reference.shape[0] < 2:
            raise InputError(f"reference features must be [N >= 2, D], got {self.reference.shape}.")
        if not np.isfinite(self.reference).all():
            raise InputError("reference features contain NaN or inf.")
        n = self.reference.shape[0]
        with threadpool_limits(1, user_api="blas"):   # small GEMMs: one BLAS thread beats a busy pool
            k_yy = polynomial_kernel(self.reference, self.reference)
        self._within_ref = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
        self.memo_key = (self.name, array_digest(self.reference))   # its values depend on these only
        self._last: Optional[tuple] = None   # (digest of the clips' features, their kernels)

    def __call__(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=np.float64)
        return float(self.weighted(x, np.ones((1, x.shape[0])))[0])

    def _kernels(self, x: np.ndarray):
        """The clips' kernel matrix and each clip's kernel sum over the reference, kept for the
        last clip set: a cell's point estimate and its resamples read the same ones."""
        digest = array_digest(x)
        if self._last is None or self._last[0] != digest:
            k_xx = polynomial_kernel(x, x)
            cross_rows = polynomial_kernel(x, self.reference).sum(axis=1)   # [N]: sum over the reference
            self._last = (digest, k_xx, cross_rows)
        return self._last[1], self._last[2]

    def weighted(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The statistic for each row of resampling counts ``w`` [B, N]."""
        x = np.asarray(x, dtype=np.float64)
        _check_sets(x, self.reference)
        w = np.atleast_2d(np.asarray(w, dtype=np.float64))
        if w.shape[1] != x.shape[0]:
            raise InputError(f"resampling counts must be [B, {x.shape[0]}], got {w.shape}.")
        tot = w.sum(axis=1)
        if (tot < 2).any():
            raise InputError("every resample needs at least 2 clips.")
        with threadpool_limits(resample_pool.cores(), user_api="blas"):   # large GEMMs: every core
            k_xx, cross_rows = self._kernels(x)
            diag = np.diag(k_xx)
            within = np.concatenate([np.einsum("bn,bn->b", w[i:i + _CHUNK] @ k_xx, w[i:i + _CHUNK])
                                     for i in range(0, w.shape[0], _CHUNK)])
        within = (within - w @ diag) / (tot * (tot - 1.0))
        cross = (w @ cross_rows) / (tot * self.reference.shape[0])
        return within + self._within_ref - 2.0 * cross


def subset_mmd2(x: np.ndarray, y: np.ndarray, subsets: int, subset_size: int, seed: int) -> Dict[str, Any]:
    """The mean unbiased squared MMD over ``subsets`` pairs of random subsets (without
    replacement) of min(subset_size, len(x), len(y)) clips each, drawn from
    ``numpy.random.default_rng(seed)`` from the feature rows sorted; with the subsets' spread."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _check_sets(x, y)
    # subsets of the rows in sorted order: the value depends on the sets, not their order
    x, y = x[np.lexsort(x.T[::-1])], y[np.lexsort(y.T[::-1])]
    if int(subsets) < 1 or int(subset_size) < 2:
        raise InputError(f"subsets must be >= 1 and subset_size >= 2, got {subsets} and {subset_size}.")
    m = min(int(subset_size), x.shape[0], y.shape[0])
    rng = np.random.default_rng(int(seed))
    values = []
    for _ in range(int(subsets)):
        xs = x[rng.choice(x.shape[0], m, replace=False)]
        ys = y[rng.choice(y.shape[0], m, replace=False)]
        values.append(mmd2_unbiased(xs, ys))
    return {"value": float(np.mean(values)), "subset_size": m, "subset_std": float(np.std(values)),
            "subsets": int(subsets), "subset_seed": int(seed)}


class KVDMetric(KVDScore, ClipMetric):
    """KVD as a per-clip feature metric: FVD's I3D features (same feature key), scored
    against the reference clips' features."""

    def __init__(self, fvd_metric: "fvd.FVDMetric", subsets: int = 0, subset_size: int = 1000,
                 subset_seed: int = 0):
        if int(subsets) < 0 or int(subset_size) < 2:
            raise InputError(f"KVD: subsets must be >= 0 and subset_size >= 2, got {subsets} and {subset_size}.")
        self.fvd = fvd_metric
        self.feature_key = fvd_metric.feature_key
        self.subsets = int(subsets)
        self.subset_size = int(subset_size)
        self.subset_seed = int(subset_seed)
        self._statistic: Optional[KernelDistanceToReference] = None

    def describe(self) -> Dict[str, Any]:
        return {**self.fvd.describe(), "name": self.name,
                "kvd": {"kernel": KERNEL, "estimator": "unbiased squared MMD (diagonal left out of the within-set "
                                                      "means)",
                        "subsets": self.subsets, "subset_size": self.subset_size, "subset_seed": self.subset_seed}}

    def prepare(self, cache_dir: str) -> None:
        self.fvd.prepare(cache_dir)
        self._statistic = KernelDistanceToReference(self.fvd.reference_features())

    def extract(self, frames: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        return self.fvd.extract(frames, prompts)

    def bootstrap_statistic(self) -> Optional[KernelDistanceToReference]:
        """The vectorised statistic for bootstrap resampling (all clips at once), or None
        with subsets (each resample then reruns :meth:`score`)."""
        return self._statistic if self.subsets == 0 else None

    def score(self, features: np.ndarray, prompts: Sequence[str]) -> Dict[str, Any]:
        if self._statistic is None:
            raise RuntimeError("KVDMetric.score needs the reference features: call prepare(cache_dir) first.")
        x = np.asarray(features, dtype=np.float64)
        ref = self._statistic.reference
        if x.ndim != 2 or x.shape[1] != ref.shape[1]:
            raise InputError(f"KVD features must be [N, {ref.shape[1]}], got {x.shape}; were they extracted with "
                             f"feature key {self.feature_key}?")
        out: Dict[str, Any] = {"n": int(x.shape[0]), "n_real": int(ref.shape[0]), "kernel": KERNEL}
        if self.subsets:
            out.update(subset_mmd2(x, ref, self.subsets, self.subset_size, self.subset_seed))
        else:
            out["value"] = self._statistic(x)
        notes = [] if self.fvd.weights == "pretrained" else [
            "detector weights are random (" + self.fvd._weights_label() + ")"]
        out.update({"warnings": notes, "protocol": self.fvd.protocol.tag, "feature_key": self.feature_key,
                    "reference": self.fvd.reference_info.get("source"),
                    "reference_file": self.fvd.reference_info.get("cache_file")})
        return out


def build(**options: Any) -> KVDMetric:
    """Build KVD (registry entry ``metrics.build("kvd", ...)``): FVD's options (see
    :func:`metrics.fvd.build`; the detector is shared with an FVD built alike) plus
    ``subsets``, ``subset_size`` and ``subset_seed``."""
    fvd_options, own = KVD.split(options)
    o = parse_options(KVD.options_schema, own, KVD.name)
    return KVDMetric(fvd.build(**fvd_options), o.subsets, o.subset_size, o.subset_seed)
