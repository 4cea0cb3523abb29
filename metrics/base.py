"""The contract between the runner and every per-clip metric.

The runner hands each batch of freshly generated clips to ``ClipMetric.extract``
and stores the returned per-clip features next to the clip, so raw frames never
have to be kept. Scoring a (method, NFE) cell later only needs those features.
"""
from __future__ import annotations

import abc
from typing import Any, Dict, Sequence

import numpy as np


class ClipMetric(abc.ABC):
    """A metric computed from per-clip features.

    Subclasses set ``name`` (registry name, e.g. ``"fvd"``) and ``feature_key``
    (the key the per-clip features are stored under; it must change whenever the
    features would change, e.g. it includes the protocol name and version).
    """

    name: str = ""
    feature_key: str = ""

    def describe(self) -> Dict[str, Any]:
        """Provenance written into the results: protocol, version, weights, mode."""
        return {"name": self.name, "feature_key": self.feature_key}

    def prepare(self, cache_dir: str) -> None:
        """Load or compute reference data (e.g. real-video statistics) before any
        generation starts. ``cache_dir`` is a directory shared across runs."""

    @abc.abstractmethod
    def extract(self, frames: "np.ndarray", prompts: Sequence[str]) -> np.ndarray:
        """Per-clip features for a batch.

        frames: uint8 array [B, F, H, W, 3]; prompts: the B captions.
        Returns a float array whose first axis is B.
        """

    @abc.abstractmethod
    def score(self, features: np.ndarray, prompts: Sequence[str]) -> Dict[str, Any]:
        """Score one set of clips from their stacked features [N, ...].

        Returns at least ``{"value": float, "n": int}``; more keys are kept.
        """

    def per_clip(self, features: np.ndarray) -> "np.ndarray | None":
        """Per-clip scalar values when the metric is a mean over clips (CLIPSIM),
        else None (set-level metrics such as FVD)."""
        return None
