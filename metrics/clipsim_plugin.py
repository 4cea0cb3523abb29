"""CLIPSIM as a plug-in: its facts, options, files, checks and cost. The heavy part
(open_clip) is :mod:`metrics.clipsim`."""
from __future__ import annotations

from metrics.plugin import Metric


class CLIPSim(Metric):
    name = "clipsim"
    display_name = "CLIPSIM"
    higher_is_better = True
    decimals = 2
    tolerance = ("abs", 0.25)   # CLIPSIM points (x100 scale)
    unit = " (x100)"
    kind = "clip"
    builder = "metrics.clipsim:build"
