"""VBench as a plug-in of the set kind: its facts (on :class:`metrics.vbench_protocol.VBenchScore`),
options, files, checks and cost. The heavy part (the vbench package) is :mod:`metrics.vbench`."""
from __future__ import annotations

from metrics.plugin import Metric
from metrics.vbench_protocol import VBenchScore


class VBench(VBenchScore, Metric):
    kind = "set"
    section = "vbench"
    builder = "metrics.vbench:build"

    @classmethod
    def row_metrics(cls):
        return cls.metrics()
