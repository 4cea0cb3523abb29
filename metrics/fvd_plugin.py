"""FVD as a plug-in: its facts (on :class:`metrics.fvd_protocols.FVDScore`), options, files,
checks and cost. The heavy part (I3D, statistics) is :mod:`metrics.fvd`."""
from __future__ import annotations

from metrics.fvd_protocols import FVDScore
from metrics.plugin import Metric


class FVD(FVDScore, Metric):
    kind = "clip"
    builder = "metrics.fvd:build"
