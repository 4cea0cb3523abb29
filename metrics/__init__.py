"""Metrics. The registry maps a metric name to ``"module:builder"`` and imports
nothing heavy until a metric is built."""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Dict

METRICS: Dict[str, str] = {
    "fvd": "metrics.fvd:build",
    "clipsim": "metrics.clipsim:build",
}


def available() -> list:
    return sorted(METRICS)


def build(name: str, **kwargs: Any):
    """Build a metric by registry name; keyword arguments go to its builder."""
    if name not in METRICS:
        close = difflib.get_close_matches(name, METRICS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"Unknown metric '{name}'.{hint} Available: {', '.join(available())}.")
    module_name, attr = METRICS[name].split(":")
    return getattr(importlib.import_module(module_name), attr)(**kwargs)
