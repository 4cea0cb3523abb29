"""VBench as a plug-in of the set kind: its facts (on :class:`metrics.vbench_protocol.VBenchScore`),
options, files, checks and cost. The heavy part (the vbench package) is :mod:`metrics.vbench`."""
from __future__ import annotations

from dataclasses import field
from typing import List, Optional

from metrics.options import options_schema
from metrics.plugin import Metric
from metrics.vbench_protocol import VBenchScore


@options_schema
class VBenchOptions:
    """metrics.vbench.options."""
    dimensions: List[str] = field(default_factory=lambda: ["temporal_flickering"])
    nfe: Optional[int] = None               # which step count is scored (None: the largest in protocol.nfe)
    mode: str = "custom_input"              # custom_input (our prompts) | vbench_standard (VBench's prompt suite)
    allow_missing: bool = True              # Total/Quality/Semantic over the dimensions that ran, marked partial
    cache_dir: Optional[str] = None         # VBench weights (default $VBENCH_CACHE_DIR or ~/.cache/vbench)


class VBench(VBenchScore, Metric):
    kind = "set"
    section = "vbench"
    builder = "metrics.vbench:build"
    options_schema = VBenchOptions
    unit = " (%)"

    @classmethod
    def row_metrics(cls):
        return cls.metrics()
