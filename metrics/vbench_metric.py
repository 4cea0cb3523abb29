"""VBench as a built set metric: exports each method's clips of one step count as
lossless mp4 with VBench's file naming, runs the vbench package on them
(:func:`metrics.vbench.evaluate`) and aggregates the dimensions into VBench's
Total / Quality / Semantic scores, in percent."""
from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from common.errors import InputError, LcmbenchError
from metrics.base import MetricFailed, SetMetric
from metrics.vbench_export import export_for_vbench
from metrics.vbench_protocol import MODES, VBenchScore, aggregate

log = logging.getLogger("lcmbench")

EXPORT = "lossless H.264 (crf 0), 8 fps"


class VBenchFailed(MetricFailed):
    """A dimension raised while scoring: its numbers would not mean what they say."""


class VBenchSetMetric(VBenchScore, SetMetric):
    """Scores each method's stored clips with the vbench package.

    ``require_complete``: in vbench_standard mode, refuse a folder that lacks videos of
    the chosen dimensions' standard prompts (a run of the whole suite); False scores a
    subset and reports the missing videos. ``evaluate``: :func:`metrics.vbench.evaluate`
    (its signature), which runs the vbench package on a folder of videos."""

    def __init__(self, evaluate: Callable[..., Dict[str, Any]], dimensions: Sequence[str],
                 mode: str = "custom_input", nfe: Optional[int] = None, allow_missing: bool = True,
                 cache_dir: Optional[str] = None, device: Optional[str] = None, require_complete: bool = False):
        if mode not in MODES:
            raise InputError(f"vbench: mode must be one of {', '.join(MODES)}, got '{mode}'.")
        self.evaluate = evaluate
        self.dimensions: List[str] = list(dimensions)
        self.mode = mode
        self.nfe = nfe
        self.allow_missing = allow_missing
        self.cache_dir = cache_dir
        self.device = device
        self.require_complete = require_complete

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "version": importlib.metadata.version("vbench"), "id": f"vbench-{self.mode}",
                "dimensions": list(self.dimensions), "nfe": self.nfe, "export": EXPORT}

    def score_videos(self, videos: Mapping[str, Sequence[Tuple[str, int, np.ndarray]]], nfe: int,
                     work_dir: Path) -> Dict[str, Dict[str, Any]]:
        self.nfe = nfe   # described as scored
        out: Dict[str, Dict[str, Any]] = {}
        for method, items in videos.items():
            if not items:
                log.warning("VBench: no stored frames for %s at NFE %d; skipped", method, nfe)
                continue
            folder = Path(work_dir) / method / "videos"
            names = export_for_vbench(list(items), folder, mode=self.mode)
            result = self.evaluate(folder, method, self.dimensions, mode=self.mode,
                                   out_dir=Path(work_dir) / method / "scores", device=self.device,
                                   prompts=names if self.mode == "custom_input" else None,
                                   cache_dir=self.cache_dir, require_complete=self.require_complete)
            if result.get("failed"):
                # a dimension that raised is no skip: the numbers would not mean what they say
                raise VBenchFailed(
                    f"VBench failed for method '{method}' (NFE {nfe}): "
                    + "; ".join(f"{d}: {why}" for d, why in sorted(result["failed"].items()))
                    + f". Fix the cause, or drop the dimension from metrics.{self.name}.options.dimensions.")
            out[method] = self._entry(result, nfe, len(items))
            for dim, reason in out[method]["skipped"].items():
                log.info("VBench %s: %s skipped: %s", method, dim, reason)
        return out

    def _entry(self, result: Mapping[str, Any], nfe: int, n_videos: int) -> Dict[str, Any]:
        """One method's entry of the results' VBench section."""
        entry: Dict[str, Any] = {"nfe": nfe, "scores": {k: float(v) for k, v in result["scores"].items()},
                                 "skipped": dict(result["skipped"]),
                                 "n_videos": n_videos, "total": None, "quality": None, "semantic": None,
                                 "partial": True, "mode": self.mode,
                                 "missing_videos": dict(result.get("missing_videos", {})),
                                 "non_standard": dict(result.get("non_standard", {}))}
        if entry["scores"]:
            agg = aggregate(entry["scores"], allow_missing=self.allow_missing)
            for k in ("total", "quality", "semantic"):
                entry[k] = None if agg[k] is None else 100.0 * float(agg[k])
            entry["partial"] = bool(agg["partial"])
        return entry

