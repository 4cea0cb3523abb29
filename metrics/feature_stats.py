"""Float64 sufficient statistics of a feature set (count, sum, sum of outer products):
shards merge exactly, and a saved file carries what it was computed from."""
from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, Optional

import numpy as np

from common.errors import InputError, MissingInput, UnusableFile
from common.files import write_atomic


# ----------------------------------------------------------------------------- statistics

_STATS_FORMAT = "lcmbench-featurestats-1"


class FeatureStats:
    """Float64 sufficient statistics of a feature set: count, sum and sum of outer
    products. Shards merge exactly (sums add), so statistics never depend on how
    clips were split across GPUs or runs."""

    def __init__(self, dim: int, meta: Optional[Dict[str, Any]] = None):
        if int(dim) < 1:
            raise InputError(f"FeatureStats needs a positive feature dimension, got {dim}.")
        self.dim = int(dim)
        self.count = 0
        self.sum = np.zeros(self.dim, dtype=np.float64)
        self.sum_outer = np.zeros((self.dim, self.dim), dtype=np.float64)
        self.meta: Dict[str, Any] = dict(meta or {})

    @classmethod
    def from_features(cls, features: np.ndarray, meta: Optional[Dict[str, Any]] = None) -> "FeatureStats":
        features = np.asarray(features)
        if features.ndim != 2:
            raise InputError(f"features must be [N, D], got shape {features.shape}.")
        stats = cls(features.shape[1], meta)
        stats.update(features)
        return stats

    def update(self, features: np.ndarray) -> "FeatureStats":
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InputError(f"features must be [N, {self.dim}], got shape {x.shape}.")
        x = x.astype(np.float64, copy=False)
        if not np.isfinite(x).all():
            raise InputError("features contain NaN or inf; the detector or its input is broken.")
        self.count += x.shape[0]
        self.sum += x.sum(axis=0)
        self.sum_outer += x.T @ x
        return self

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        if not isinstance(other, FeatureStats) or other.dim != self.dim:
            raise InputError("can only merge FeatureStats of the same feature dimension.")
        for key in ("feature_key", "protocol"):
            a, b = self.meta.get(key), other.meta.get(key)
            if a is not None and b is not None and a != b:
                raise InputError(f"refusing to merge statistics with different {key}: {a!r} vs {b!r}.")
        self.count += other.count
        self.sum += other.sum
        self.sum_outer += other.sum_outer
        return self

    def mean(self) -> np.ndarray:
        if self.count < 1:
            raise InputError("FeatureStats is empty: no features were added.")
        return self.sum / self.count

    def cov(self, unbiased: bool = True) -> np.ndarray:
        n = self.count
        if n < (2 if unbiased else 1):
            raise InputError(f"a covariance needs at least {2 if unbiased else 1} samples, got {n}.")
        mu = self.mean()
        c = (self.sum_outer - n * np.outer(mu, mu)) / (n - 1 if unbiased else n)
        return (c + c.T) / 2

    def save(self, path: str, extra: Optional[Dict[str, np.ndarray]] = None) -> str:
        """Write atomically (readers never see half a file). ``extra``: further arrays kept
        in the same file (an FVD reference file's per-clip features); ``load`` ignores them."""
        buf = io.BytesIO()
        np.savez(buf, format=np.array(_STATS_FORMAT), count=np.array(self.count, dtype=np.int64),
                 sum=self.sum, sum_outer=self.sum_outer,
                 meta=np.array(json.dumps(self.meta, sort_keys=True, default=str)), **(extra or {}))
        write_atomic(path, buf.getvalue())
        return os.fspath(path)

    @classmethod
    def load(cls, path: str) -> "FeatureStats":
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise MissingInput(f"feature statistics file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                fmt = str(z["format"])
                count, s, so, meta = int(z["count"]), z["sum"], z["sum_outer"], json.loads(str(z["meta"]))
        except Exception as e:  # noqa: BLE001
            raise UnusableFile(f"cannot read feature statistics {path} ({type(e).__name__}: {e}); "
                               f"delete it to recompute.") from e
        if fmt != _STATS_FORMAT or s.ndim != 1 or so.shape != (s.shape[0], s.shape[0]):
            raise UnusableFile(f"{path} is not a {_STATS_FORMAT} file (format {fmt!r}); delete it to recompute.")
        stats = cls(s.shape[0], meta)
        stats.count, stats.sum, stats.sum_outer = count, s.astype(np.float64), so.astype(np.float64)
        return stats
