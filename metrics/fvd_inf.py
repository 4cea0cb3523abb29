"""FVD-inf: FVD extrapolated to infinitely many generated clips (Chong and Forsyth,
"Effectively Unbiased FID and Inception Score and where to find them", CVPR 2020).

FVD of N clips is biased upward, by about c / N: numbers from cells of different sizes do
not compare. FVD-inf computes FVD on random subsets of the cell's clips at ``points``
sizes evenly spaced from ``min_n`` to N (the subset of size n is the first n of
``numpy.random.default_rng([subset_seed, n]).permutation(N)`` of the clips in canonical
order: their feature rows sorted, so the order they come in does not matter), fits the least-squares
line FVD = FVD_inf + slope / n and reports its intercept. The sizes, seeds, the FVDs, the
slope, the residuals and the intercept's standard error go with the value. The reference
(real) set stays whole; its own finite size is not extrapolated away.

A cell with fewer than ``min_n`` clips (or too few for 3 distinct sizes) is not scored:
:meth:`FVDInfMetric.score` returns ``{"skip": reason}`` instead of a value.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from common.errors import InputError
from metrics import fvd
from metrics.base import ClipMetric
from metrics.feature_stats import FeatureStats
from metrics.frechet import FrechetToReference
from metrics.fvd_inf_plugin import FVDInf, FVDInfScore
from metrics.options import parse_options


def subset_sizes(min_n: int, n: int, points: int) -> List[int]:
    """The distinct subset sizes, evenly spaced from ``min_n`` to ``n`` (both included)."""
    if n < min_n:
        return []
    return sorted({int(round(s)) for s in np.linspace(int(min_n), int(n), int(points))})


def subset(n: int, size: int, seed: int) -> np.ndarray:
    """Positions of the subset of ``size`` out of ``n`` clips."""
    return np.random.default_rng([int(seed), int(size)]).permutation(int(n))[:int(size)]


def line_fit(sizes: Sequence[int], values: np.ndarray) -> Dict[str, Any]:
    """Least squares of ``values`` [..., S] on 1 / sizes: intercept, slope, residuals,
    their root mean square and the intercept's standard error (rows fitted at once)."""
    x = 1.0 / np.asarray(sizes, dtype=np.float64)
    design = np.stack([np.ones_like(x), x], axis=1)
    y = np.atleast_2d(np.asarray(values, dtype=np.float64))
    coef, *_ = np.linalg.lstsq(design, y.T, rcond=None)
    residuals = y - (design @ coef).T
    m = x.shape[0]
    rss = np.sum(residuals ** 2, axis=1)
    sxx = np.sum((x - x.mean()) ** 2)
    se = np.sqrt(rss / max(m - 2, 1) * (1.0 / m + x.mean() ** 2 / sxx))
    return {"intercept": coef[0], "slope": coef[1], "residuals": residuals,
            "residual_rms": np.sqrt(rss / m), "intercept_se": se}


def canonical_order(x: np.ndarray) -> np.ndarray:
    """The clips' feature rows sorted (lexicographically): subsets are drawn in this order,
    so FVD-inf depends on the set of clips, not on the order they are listed in."""
    x = np.asarray(x)
    return np.lexsort(x.T[::-1])


class FVDInfinityStatistic:
    """FVD-inf against fixed reference statistics, for bootstrap resampling: ``weighted``
    turns each row of resampling counts into its clips' positions, takes the same
    subsets of those positions as :meth:`FVDInfMetric.score` takes of the clips, and
    evaluates every resample's FVD at one size in one :meth:`FrechetToReference.weighted`
    call (unbiased covariance, the protocols that use it)."""

    name = "fvd_inf"

    def __init__(self, frechet: FrechetToReference, min_n: int, points: int, seed: int):
        self.frechet, self.min_n, self.points, self.seed = frechet, int(min_n), int(points), int(seed)
        self.memo_key = (self.name, frechet.memo_key, self.min_n, self.points, self.seed)

    def __call__(self, x: np.ndarray) -> float:
        return float(self.weighted(x, np.ones((1, np.asarray(x).shape[0])))[0])

    def weighted(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(np.asarray(w))
        order = canonical_order(x)   # as score() sees the clips
        x, w = np.asarray(x)[order], w[:, order]
        n_clips = w.shape[1]
        if not np.array_equal(w, np.round(w)) or len(set(w.sum(axis=1).astype(int))) != 1:
            raise InputError("FVD-inf resamples must be whole counts, the same total in every row.")
        total = int(w[0].sum())
        sizes = subset_sizes(self.min_n, total, self.points)
        if len(sizes) < 3:
            raise InputError(f"FVD-inf needs 3 subset sizes from min_n={self.min_n} to {total} clips.")
        # position p of resample b holds clip positions[b, p]
        positions = np.stack([np.repeat(np.arange(n_clips), row.astype(int)) for row in w])
        rows = np.arange(w.shape[0])[:, None]
        values = np.empty((w.shape[0], len(sizes)))
        for j, size in enumerate(sizes):
            chosen = positions[:, subset(total, size, self.seed)]
            counts = np.zeros(w.shape, dtype=np.float64)
            np.add.at(counts, (np.broadcast_to(rows, chosen.shape), chosen), 1.0)
            values[:, j] = self.frechet.weighted(x, counts)
        return line_fit(sizes, values)["intercept"]


class FVDInfMetric(FVDInfScore, ClipMetric):
    """FVD-inf as a per-clip feature metric on FVD's I3D features (same feature key)."""

    def __init__(self, fvd_metric: "fvd.FVDMetric", min_n: int, points: int, subset_seed: int = 0,
                 bootstrap: bool = False):
        if int(min_n) < 2 or int(points) < 3:
            raise InputError(f"FVD-inf: min_n must be >= 2 and points >= 3, got {min_n} and {points}.")
        self.fvd = fvd_metric
        self.feature_key = fvd_metric.feature_key
        self.min_n, self.points, self.subset_seed = int(min_n), int(points), int(subset_seed)
        # a resample refits the line (points FVDs): off by default, the fit's intercept_se is recorded
        self.bootstraps = bool(bootstrap)

    def describe(self) -> Dict[str, Any]:
        return {**self.fvd.describe(), "name": self.name,
                "fvd_inf": {"fit": "least squares FVD = FVD_inf + slope / n (Chong and Forsyth 2020)",
                            "min_n": self.min_n, "points": self.points, "subset_seed": self.subset_seed,
                            "subsets": "default_rng([subset_seed, n]).permutation(N)[:n] of the feature rows sorted"}}

    def prepare(self, cache_dir: str) -> None:
        self.fvd.prepare(cache_dir)

    def extract(self, frames: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        return self.fvd.extract(frames, prompts)

    def bootstrap_statistic(self) -> Optional[FVDInfinityStatistic]:
        """The vectorised statistic for bootstrap resampling, or None when the protocol's
        covariance is biased (each resample then reruns :meth:`score`)."""
        frechet = self.fvd.bootstrap_statistic()
        return None if frechet is None else FVDInfinityStatistic(frechet, self.min_n, self.points, self.subset_seed)

    def _fvd(self, features: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # unequal sample sizes are the point here
            stats = FeatureStats.from_features(features)
            return float(fvd.fvd_from_stats(stats, self.fvd.reference, protocol=self.fvd.protocol)["value"])

    def score(self, features: np.ndarray, prompts: Sequence[str]) -> Dict[str, Any]:
        if self.fvd.reference is None:
            raise RuntimeError("FVDInfMetric.score needs reference statistics: call prepare(cache_dir) first.")
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.fvd.reference.dim:
            raise InputError(f"FVD-inf features must be [N, {self.fvd.reference.dim}], got {x.shape}; were they "
                             f"extracted with feature key {self.feature_key}?")
        # subsets are drawn from the clips in one canonical order (rows sorted), so the value
        # depends on the set of clips, not on the order they are listed in
        x = x[canonical_order(x)]
        n = x.shape[0]
        sizes = subset_sizes(self.min_n, n, self.points)
        if len(sizes) < 3:
            return {"skip": f"{n} clips, fewer than FVD-inf needs for 3 subset sizes from min_n={self.min_n} "
                            f"(lower metrics.fvd_inf.options.min_n or make more clips per cell)", "n": n}
        values = np.array([self._fvd(x[subset(n, size, self.subset_seed)]) for size in sizes])
        fit = line_fit(sizes, values)
        notes = [] if self.fvd.weights == "pretrained" else [
            "detector weights are random (" + self.fvd._weights_label() + ")"]
        return {"value": float(fit["intercept"][0]), "n": n, "n_real": self.fvd.reference.count,
                "fvd_at_n": float(values[-1]), "sizes": sizes, "fvd_at_sizes": [float(v) for v in values],
                "seeds": [[self.subset_seed, s] for s in sizes], "slope": float(fit["slope"][0]),
                "residuals": [float(r) for r in fit["residuals"][0]],
                "residual_rms": float(fit["residual_rms"][0]), "intercept_se": float(fit["intercept_se"][0]),
                "min_n": self.min_n, "points": self.points, "warnings": notes, "protocol": self.fvd.protocol.tag,
                "feature_key": self.feature_key, "reference": self.fvd.reference_info.get("source"),
                "reference_file": self.fvd.reference_info.get("cache_file")}


def build(**options: Any) -> FVDInfMetric:
    """Build FVD-inf (registry entry ``metrics.build("fvd_inf", ...)``): FVD's options (see
    :func:`metrics.fvd.build`; the detector is shared with an FVD built alike) plus
    ``min_n``, ``points`` and ``subset_seed``."""
    fvd_options, own = FVDInf.split(options)
    o = parse_options(FVDInf.options_schema, own, FVDInf.name)
    return FVDInfMetric(fvd.build(**fvd_options), o.min_n, o.points, o.subset_seed, bootstrap=o.bootstrap)
