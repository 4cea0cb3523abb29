"""VBench's protocol as data: its 16 dimensions in two groups, their normalisation and
weights (VBench's scripts/constant.py), the modes and naming rules, the family's metric
facts, and the aggregation into Total / Quality / Semantic (scripts/cal_final_score.py).
Light: imported by the results schema, preflight and the VBench stage alike."""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from common.errors import InputError
from common.names import closest
from metrics.base import MetricFacts

# --------------------------------------------------------------------------- constants
# VBench scripts/constant.py (verified against Vchitect/VBench): quality and semantic
# groups, per-dimension (min, max) for normalisation, and weights.
QUALITY_DIMENSIONS: Tuple[str, ...] = (
    "subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
    "aesthetic_quality", "imaging_quality", "dynamic_degree",
)
SEMANTIC_DIMENSIONS: Tuple[str, ...] = (
    "object_class", "multiple_objects", "human_action", "color", "spatial_relationship", "scene",
    "appearance_style", "temporal_style", "overall_consistency",
)
ALL_DIMENSIONS: Tuple[str, ...] = QUALITY_DIMENSIONS + SEMANTIC_DIMENSIONS
SUMMARIES: Tuple[str, ...] = ("total", "quality", "semantic")


class VBenchScore(MetricFacts):
    """The VBench family: rows ``vbench_<dimension>`` and ``vbench_total`` /
    ``vbench_quality`` / ``vbench_semantic``, in percent."""

    name = "vbench"
    display_name = "VBench"
    higher_is_better = True
    decimals = 2
    tolerance = ("abs", 0.5)   # percentage points

    @classmethod
    def metrics(cls) -> Tuple[str, ...]:
        return tuple(f"vbench_{s}" for s in SUMMARIES + ALL_DIMENSIONS)

    @classmethod
    def display_for(cls, metric: str) -> str:
        return "VBench " + metric[len("vbench_"):].replace("_", " ").title()
NORMALIZE: Dict[str, Tuple[float, float]] = {d: (0.0, 1.0) for d in ALL_DIMENSIONS}
NORMALIZE.update({
    "subject_consistency": (0.1462, 1.0),
    "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0),
    "motion_smoothness": (0.706, 0.9975),
    "scene": (0.0, 0.8222),
    "appearance_style": (0.0009, 0.2855),
    "temporal_style": (0.0, 0.364),
    "overall_consistency": (0.0, 0.364),
})
DIM_WEIGHT: Dict[str, float] = {d: 1.0 for d in ALL_DIMENSIONS}
DIM_WEIGHT["dynamic_degree"] = 0.5
QUALITY_WEIGHT = 4.0
SEMANTIC_WEIGHT = 1.0
AGGREGATE_DEFINITION = (
    "n_d = (x_d - min_d) / (max_d - min_d) * w_d (w = 1, dynamic_degree 0.5; no clipping, as in VBench); "
    "Quality = sum(n_d, quality dims) / sum(w_d, quality dims) = / 6.5; "
    "Semantic = sum(n_d, semantic dims) / 9; Total = (4 Quality + Semantic) / 5. "
    "Partial (allow_missing): each group is divided by the weights of its present dimensions only; "
    "a group with no present dimension is None, and then Total is None.")

# VBench.check_dimension_requires_extra_info: refused in custom_input mode.
CUSTOM_INPUT_UNSUPPORTED = frozenset({
    "object_class", "multiple_objects", "scene", "appearance_style", "color", "spatial_relationship"})
MODES = ("vbench_standard", "custom_input")
STANDARD_PROMPT_SET = "vbench_standard"   # protocol.prompt_set of VBench's own prompt suite
VIDEO_SUFFIXES = (".mp4", ".gif", ".jpg", ".png")
STANDARD_VIDEOS_PER_PROMPT = 5
MAX_FILENAME_BYTES = 255


# --------------------------------------------------------------------------- aggregate

def aggregate(scores: Mapping[str, float], allow_missing: bool = False) -> Dict[str, Any]:
    """VBench Total / Quality / Semantic (fractions; x100 for the paper's table) from raw dimension scores.

    scores: {dimension: raw fraction as VBench reports it}; VBench's spaced names
    ("subject consistency") are accepted too. See :data:`AGGREGATE_DEFINITION`.
    Missing dimensions raise ValueError unless ``allow_missing=True``, which returns
    a result marked ``partial`` with the ``missing`` list.
    """
    if not isinstance(scores, Mapping):
        raise TypeError(f"aggregate: scores must be a mapping {{dimension: raw fraction}}, got {type(scores).__name__}.")
    raw: Dict[str, float] = {}
    for key, value in scores.items():
        dim = str(key).strip().replace(" ", "_")
        if dim not in ALL_DIMENSIONS:
            close = closest(dim, ALL_DIMENSIONS)
            raise InputError(f"aggregate: unknown VBench dimension '{key}'"
                             + (f" (did you mean '{close}'?)" if close else "") + ".")
        if dim in raw:
            raise InputError(f"aggregate: dimension '{dim}' given twice.")
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise InputError(f"aggregate: {dim} must be a number, got {value!r}.") from None
        if not math.isfinite(x):
            raise InputError(f"aggregate: {dim} is {x}; drop it or pass a finite raw score.")
        if abs(x) > 1.0:
            raise InputError(f"aggregate: {dim} = {x} is not a raw VBench fraction (they lie in [0, 1], e.g. "
                             f"0.9652); divide percentages by 100.")
        raw[dim] = x
    missing = [d for d in ALL_DIMENSIONS if d not in raw]
    if missing and not allow_missing:
        raise InputError(f"aggregate: missing VBench dimensions: {', '.join(missing)}. Run them, or pass "
                         f"allow_missing=True for a partial score (marked partial).")
    normalized = {d: (raw[d] - NORMALIZE[d][0]) / (NORMALIZE[d][1] - NORMALIZE[d][0]) * DIM_WEIGHT[d] for d in raw}

    def group(dims: Sequence[str]) -> Optional[float]:
        present = [d for d in dims if d in normalized]
        if not present:
            return None
        return sum(normalized[d] for d in present) / sum(DIM_WEIGHT[d] for d in present)

    quality = group(QUALITY_DIMENSIONS)
    semantic = group(SEMANTIC_DIMENSIONS)
    total = None
    if quality is not None and semantic is not None:
        total = (QUALITY_WEIGHT * quality + SEMANTIC_WEIGHT * semantic) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    return {
        "total": total, "quality": quality, "semantic": semantic,
        "normalized": normalized, "partial": bool(missing), "missing": missing,
        "present": [d for d in ALL_DIMENSIONS if d in raw], "definition": AGGREGATE_DEFINITION,
    }
