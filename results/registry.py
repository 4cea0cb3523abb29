"""What the results code asks of the metric registry (:mod:`metrics`): which row metrics
exist and in which order, which are scored per clip from the store, which fill a results
section of their own, and their facts in words. Nothing here names a metric, so a metric
added through the registry (an entry point) gets its columns, report lines and
tolerances without any edit to this package.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple, Type

import metrics
from metrics.plugin import Metric

CLIP_KIND = "clip"


def rank(metric: str) -> int:
    """A row metric's place in the registry's order (unknown names come last)."""
    order = metrics.row_metrics()
    return order.index(metric) if metric in order else len(order)


def in_registry_order(names: Iterable[str]) -> List[str]:
    """``names`` without repeats, in the registry's order (then unknown names by name)."""
    return sorted(set(names), key=lambda m: (rank(m), m))


def clip_row_metrics(present: Optional[Iterable[str]] = None) -> List[str]:
    """The row metrics of per-clip plug-ins (``kind = "clip"``: scored from the stored
    features of each cell), in the registry's order; only those in ``present`` when given."""
    rows = [m for p in metrics.plugins() if p.kind == CLIP_KIND for m in p.row_metrics()]
    if present is None:
        return rows
    wanted = set(present)
    return [m for m in rows if m in wanted]


def section_plugins() -> Dict[str, Type[Metric]]:
    """Results section name -> the set metric that fills it (e.g. Table 2's section)."""
    return {p.section: p for p in metrics.plugins() if p.section}


def arrow(metric: str) -> str:
    return "↑" if metrics.facts(metric).higher_is_better else "↓"


def direction(metric: str) -> str:
    return f"{'higher' if metrics.facts(metric).higher_is_better else 'lower'} is better"


def tolerance_text(tolerance: Tuple[str, float]) -> str:
    """A ``("rel", 0.02)`` / ``("abs", 0.25)`` tolerance fact in words."""
    kind, amount = tolerance
    return f"{100 * amount:g}% of the baseline" if kind == "rel" else f"±{amount:g}"


def facts_line(metric: str) -> Dict[str, str]:
    """A row metric's facts as text: display name, family, kind, direction, decimals,
    regression tolerance and unit."""
    cls = metrics.facts(metric)
    return {"metric": metric, "display_name": metrics.display(metric), "family": cls.name, "kind": cls.kind,
            "direction": direction(metric), "decimals": str(cls.decimals),
            "tolerance": tolerance_text(tuple(cls.tolerance)), "unit": cls.unit.strip(" ()") or "as measured"}


def row_metric_summary(per_family: int = 3) -> str:
    """The registered row metrics in a few words, for error messages."""
    parts = []
    for p in metrics.plugins():
        rows = list(p.row_metrics())
        parts.append(", ".join(rows) if len(rows) <= per_family else
                     f"{', '.join(rows[:per_family])} ... ({len(rows)} {p.display_name} rows)")
    return "; ".join(parts)


def is_set_statistic(row: Any) -> bool:
    """A row of a per-clip plug-in whose value is a statistic of the whole set of clips
    (biased by the number of clips, paired through the stored features): its built metric
    gives no per-clip values (``per_clip(...) is None``), which the pipeline records by
    leaving out ``extra.per_clip``."""
    return metrics.facts(row.metric).kind == CLIP_KIND and not (row.extra or {}).get("per_clip")
