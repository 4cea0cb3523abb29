"""The contract between the runner and every per-clip metric.

The runner hands each batch of freshly generated clips to ``ClipMetric.extract``
and stores the returned per-clip features next to the clip, so raw frames never
have to be kept. Scoring a (method, NFE) cell later only needs those features.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np
from common.errors import LcmbenchError


class MetricFailed(LcmbenchError, RuntimeError):
    """A metric could not score what it was given, for a reason the user fixes (a corrupt
    model file, a package clash): the message says what failed and what to change."""


class MetricFacts:
    """What a metric's numbers mean, as class attributes (the torchmetrics habit): tables,
    plots, the regression check, the leaderboard and the results schema read them here.

    ``name``: the registry name and the rows' ``metric``; ``display_name``: the tables'
    and plots' name; ``higher_is_better``: the direction; ``decimals``: digits shown;
    ``tolerance``: the regression check's default noise floor, ``("rel", fraction of the
    baseline)`` or ``("abs", amount in the metric's units)``.
    """

    name: str = ""
    display_name: str = ""
    higher_is_better: bool = True
    decimals: int = 2
    tolerance: Tuple[str, float] = ("abs", 0.0)
    unit: str = ""              # shown after the display name on plot axes, e.g. " (x100)"
    # the value is the Fréchet distance of the cell's stored features to the recorded reference
    # statistics, so `python -m results --check` can recompute it without the metric (FVD)
    frechet_to_reference: bool = False

    @classmethod
    def display_for(cls, metric: str) -> str:
        """The display name of row metric ``metric`` of this family."""
        return cls.display_name


class ClipMetric(MetricFacts, abc.ABC):
    """A metric computed from per-clip features.

    Subclasses set the :class:`MetricFacts` and ``feature_key`` (the key the per-clip
    features are stored under; it must change whenever the features would change, e.g.
    it includes the protocol name and version).
    """

    feature_key: str = ""
    # False: no bootstrap interval (its statistic costs too much per resample); the row then
    # carries the metric's own measure of uncertainty in its extra fields
    bootstraps: bool = True

    def describe(self) -> Dict[str, Any]:
        """Provenance written into the results: protocol, version, weights, mode."""
        return {"name": self.name, "feature_key": self.feature_key}

    def parity(self) -> Dict[str, Any]:
        """Which of the authors' pipeline choices this metric made, for ``provenance.parity``
        (docs/parity.md); keys are prefixed with the metric's name."""
        return {}

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

        Returns at least ``{"value": float, "n": int}``; more keys are kept. Or
        ``{"skip": reason}`` when this set cannot be scored (e.g. too few clips): no row
        is written and the reason is logged.
        """

    def per_clip(self, features: np.ndarray) -> "np.ndarray | None":
        """Per-clip scalar values when the metric is a mean over clips (CLIPSIM),
        else None (set-level metrics such as FVD)."""
        return None


class SetMetric(MetricFacts, abc.ABC):
    """A metric scored on a set of stored videos at once, after generation (VBench)."""

    def describe(self) -> Dict[str, Any]:
        """Provenance written into ``provenance.protocols[name]``: at least name, version, id."""
        return {"name": self.name, "version": "1", "id": self.name}

    def parity(self) -> Dict[str, Any]:
        """As :meth:`ClipMetric.parity`."""
        return {}

    @abc.abstractmethod
    def score_videos(self, videos: Mapping[str, Sequence[Tuple[str, int, "np.ndarray"]]], nfe: int,
                     work_dir: Path) -> Dict[str, Dict[str, Any]]:
        """Score each method's clips: ``videos`` maps a method id to its (prompt, video index,
        uint8 frames [F, H, W, 3]) items at step count ``nfe``; ``work_dir`` is the run's
        folder for this metric. Returns {method id: entry of the metric's results section}.
        Raises :class:`MetricFailed` when a part of the metric failed (nothing is scored then)."""
