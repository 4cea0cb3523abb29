"""Metrics. The registry maps a metric name to its builder and its class, and imports a
metric's module only when the metric is built or its facts are asked for.

Every row of a results file names a metric: ``fvd``, ``clipsim`` or ``vbench_<x>``.
:func:`facts` returns the class that carries that metric's facts (display name,
direction, decimals, tolerance; see :class:`metrics.base.MetricFacts`).
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, List, Type

from common.names import did_you_mean
from metrics.base import MetricFacts

# name -> (builder, class), as "module:attribute"
METRICS: Dict[str, str] = {
    "fvd": "metrics.fvd:build",
    "clipsim": "metrics.clipsim:build",
}
CLASSES: Dict[str, str] = {
    "fvd": "metrics.fvd_protocols:FVDScore",        # FVDMetric's facts, importable without torch
    "clipsim": "metrics.clipsim:CLIPSimMetric",
    "vbench": "metrics.vbench_protocol:VBenchScore",   # scored by bench's VBench stage, not built per clip
}


def _load(target: str) -> Any:
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def available() -> list:
    return sorted(METRICS)


def build(name: str, **kwargs: Any):
    """Build a metric by registry name; keyword arguments go to its builder."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric '{name}'.{did_you_mean(name, METRICS)} Available: {', '.join(available())}.")
    return _load(METRICS[name])(**kwargs)


def family(metric: str) -> str:
    """The family (and protocol) a row metric belongs to: ``fvd``, ``clipsim`` or ``vbench``."""
    if metric in CLASSES and metric != "vbench":
        return metric
    if metric.startswith("vbench_") and metric in _load(CLASSES["vbench"]).metrics():
        return "vbench"
    raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(row_metrics()[:5])} or vbench_<dimension>")


def facts(metric: str) -> Type[MetricFacts]:
    """The class carrying a row metric's facts (``facts("fvd").higher_is_better`` is False)."""
    return _load(CLASSES[family(metric)])


def is_known(metric: str) -> bool:
    try:
        family(metric)
    except ValueError:
        return False
    return True


def row_metrics() -> List[str]:
    """Every metric name a results row may carry."""
    return [m for m in CLASSES if m != "vbench"] + list(_load(CLASSES["vbench"]).metrics())


def display(metric: str) -> str:
    """The display name of a row metric, e.g. ``VBench Temporal Flickering``."""
    return facts(metric).display_for(metric)
