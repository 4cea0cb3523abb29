"""Regression tolerances: how far a number may move before the verdict changes. A
metric's default noise floor is its own fact (``metrics.facts(m).tolerance``); the
timing quantities' floors are here; ``--tolerance`` / a tolerance file override them."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from common.errors import LcmbenchError
from metrics import available as available_metrics
from metrics import facts as metric_facts
from metrics import family as metric_family
from metrics import is_known as is_known_metric
from metrics import plugin as metric_plugin

TIMING_METRICS = {"denoise_ms": "denoising ms", "peak_mem_mb": "peak memory MB"}


# The timing quantities' noise floors, (kind, amount): "rel" = fraction of |baseline|.
# A metric's floor is its own fact (metric_facts(metric).tolerance).
TIMING_FLOORS: Dict[str, Tuple[str, float]] = {
    "denoise_ms": ("rel", 0.10),   # timings are noisy: 10%
    "peak_mem_mb": ("rel", 0.05),  # 5%
}


class ToleranceError(LcmbenchError, ValueError):
    """A tolerance specification that cannot be parsed."""


@dataclass
class Tolerance:
    kind: str            # "rel" | "abs" | "ci"
    amount: float = 0.0

    def describe(self) -> str:
        if self.kind == "rel":
            return f"{100 * self.amount:g}%"
        if self.kind == "abs":
            return f"{self.amount:g}"
        return "CI"


def parse_tolerance(text: Union[str, float, int]) -> Tolerance:
    """``"5%"`` -> relative, ``"0.5"`` / ``0.5`` -> absolute, ``"ci"`` -> baseline interval."""
    if isinstance(text, bool):
        raise ToleranceError(f"tolerance must be a number, a percentage or 'ci', got {text!r}")
    if isinstance(text, (int, float)):
        val, kind = float(text), "abs"
    else:
        s = str(text).strip().lower()
        if s == "ci":
            return Tolerance("ci")
        kind = "rel" if s.endswith("%") else "abs"
        try:
            val = float(s[:-1] if kind == "rel" else s)
        except ValueError:
            raise ToleranceError(f"cannot read tolerance {text!r}: use e.g. '5%' (relative), '0.5' (absolute) "
                                 f"or 'ci' (baseline bootstrap interval)") from None
        if kind == "rel":
            val /= 100.0
    if not math.isfinite(val) or val < 0:
        raise ToleranceError(f"tolerance must be a finite non-negative amount, got {text!r}")
    return Tolerance(kind, val)


def _family_keys() -> List[str]:
    """Metric names that stand for every row of their family (one with several rows)."""
    return [name for name in available_metrics() if tuple(metric_plugin(name).row_metrics()) != (name,)]


def _check_key(key: str) -> str:
    key = key.strip()
    if key == "default" or key in _family_keys() or key in TIMING_METRICS or is_known_metric(key):
        return key
    families = ", ".join(repr(f) for f in _family_keys())
    raise ToleranceError(f"unknown tolerance key {key!r}; use a row metric name (e.g. "
                         f"{', '.join(available_metrics()[:2])}), {', '.join(TIMING_METRICS)}, a metric family for "
                         f"all its rows ({families or 'none'}) or 'default'")


def parse_tolerance_args(items: Sequence[str]) -> Dict[str, Tolerance]:
    out = {}
    for it in items:
        if "=" not in it:
            raise ToleranceError(f"--tolerance takes METRIC=AMOUNT (e.g. fvd=5% or clipsim=0.5), got {it!r}")
        k, v = it.split("=", 1)
        out[_check_key(k)] = parse_tolerance(v)
    return out


def load_tolerance_file(path: Union[str, Path]) -> Dict[str, Tolerance]:
    """Read ``metric: amount`` pairs from YAML (or JSON, a subset of YAML)."""
    p = Path(path)
    if not p.is_file():
        raise ToleranceError(f"tolerance file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ToleranceError(f"{p}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ToleranceError(f"{p}: expected a mapping of metric -> tolerance, e.g. 'fvd: 5%'")
    return {_check_key(str(k)): parse_tolerance(v) for k, v in data.items()}


def _floor(metric: str) -> Tolerance:
    kind, amt = TIMING_FLOORS[metric] if metric in TIMING_METRICS else metric_facts(metric).tolerance
    return Tolerance(kind, amt)


def _resolve(metric: str, tolerances: Mapping[str, Tolerance]) -> Optional[Tolerance]:
    family = None if metric in TIMING_METRICS else metric_family(metric)
    for key in (metric, family if family != metric else None, "default"):
        if key and key in tolerances:
            return tolerances[key]
    return None


def _amount(tol: Tolerance, base: float, half_ci: Optional[float]) -> Optional[float]:
    if tol.kind == "rel":
        return tol.amount * abs(base)
    if tol.kind == "abs":
        return tol.amount
    return half_ci


def tolerance_for(metric: str, base: float, half_ci: Optional[float],
                  tolerances: Mapping[str, Tolerance]) -> Tuple[float, str]:
    """The tolerance for one comparison and where it came from."""
    tol = _resolve(metric, tolerances)
    floor = _floor(metric)
    floor_amt = _amount(floor, base, None)
    if tol is not None and tol.kind != "ci":
        return _amount(tol, base, half_ci), tol.describe()
    if half_ci is not None and half_ci > floor_amt:
        return half_ci, "baseline CI"
    return floor_amt, f"floor {floor.describe()}"


def equivalence_margin(metric: str, baseline: float) -> float:
    """The practical-equivalence margin of a paired comparison, from the metric's own
    tolerance fact: a paired difference no larger than this is read as no change (float
    noise between GPUs, batch sizes or shardings of the same clips is far smaller)."""
    return float(_amount(_floor(metric), baseline, None))

