"""VBench as a built set metric: exports each method's clips of one step count as
lossless mp4 with VBench's file naming, runs the vbench package on them
(:func:`metrics.vbench.evaluate`) and aggregates the dimensions into VBench's
Total / Quality / Semantic scores, in percent. In a multi-process run each worker scores a
share of the (dimension, video) units (:meth:`VBenchSetMetric.score_share`) and the scoring
process merges them (:meth:`VBenchSetMetric.merge_shares`, :mod:`metrics.vbench_split`)."""
from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from common.errors import InputError, LcmbenchError
from metrics import vbench_split as split
from metrics.base import MetricFailed, SetMetric
from metrics.vbench_assets import static_filter_weights, vbench_cache_dir
from metrics.vbench_export import export_for_vbench, prompts_by_dimension, standard_prompts
from metrics.vbench_protocol import MODES, STANDARD_VIDEOS_PER_PROMPT, VBenchScore, aggregate

log = logging.getLogger("lcmbench")

EXPORT = "lossless H.264 (crf 0), 8 fps"
# a method's clips for the split scoring: (clip key, prompt, video index, worker that made it or None)
Refs = Mapping[str, Sequence[Tuple[str, str, int, Optional[int]]]]
# the stored frames of some clips of a method: {clip key: (prompt, video index, frames)}
ItemsOf = Callable[[str, Sequence[str]], Mapping[str, Tuple[str, int, np.ndarray]]]


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
                     work_dir: Path, label: str = "main") -> Dict[str, Dict[str, Any]]:
        """Each method's clips in one VBench run; ``label`` names the process in scored_by."""
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
            self._refuse_failed(result, method, nfe)
            out[method] = self._entry(result, nfe, len(items))
            out[method]["scored_by"] = {label: sorted(names)}
            for dim, reason in out[method]["skipped"].items():
                log.info("VBench %s: %s skipped: %s", method, dim, reason)
        return out

    def _refuse_failed(self, result: Mapping[str, Any], method: str, nfe: int) -> None:
        if result.get("failed"):
            # a dimension that raised is no skip: the numbers would not mean what they say
            raise VBenchFailed(
                f"VBench failed for method '{method}' (NFE {nfe}): "
                + "; ".join(f"{d}: {why}" for d, why in sorted(result["failed"].items()))
                + f". Fix the cause, or drop the dimension from metrics.{self.name}.options.dimensions.")

    # ------------------------------------------------------------ split scoring
    def _reads(self) -> Optional[Callable[[str, str, int], bool]]:
        """Standard mode: a dimension reads only its own prompts' videos, indices 0..4 (the
        static filter of temporal_flickering examines every video of its prompts)."""
        if self.mode == "custom_input":
            return None
        by_dim = {d: set(prompts) for d, prompts in prompts_by_dimension().items()}
        return lambda dim, prompt, index: prompt in by_dim.get(dim, ()) and (
            dim in split.WHOLE_PROMPT or index < STANDARD_VIDEOS_PER_PROMPT)

    def split_plan(self, refs: Refs, workers: int, num_frames: int = split.REFERENCE_FRAMES
                   ) -> List[List[split.Unit]]:
        """The units of each of ``workers`` workers (the same plan in every process)."""
        videos = [split.Video(m, key, prompt, owner, index) for m, items in refs.items()
                  for key, prompt, index, owner in items]
        # the static filter chooses among a prompt's videos: where it will run, a prompt is not split
        filtered = static_filter_weights(vbench_cache_dir(self.cache_dir)).is_file()
        return split.assign(videos, self.dimensions, workers, self._reads(), num_frames,
                            split.WHOLE_PROMPT if filtered else ())

    def score_share(self, refs: Refs, worker: int, workers: int, items_of: ItemsOf, nfe: int, work_dir: Path,
                    label: str, units: Optional[Sequence[split.Unit]] = None) -> Dict[str, Any]:
        """Score worker ``worker``'s units of the plan (or the ``units`` given): one VBench
        run per (method, dimension) on a folder of links to the exported clips. A unit whose
        clips are not all stored yet is left out (the merging process scores it)."""
        self.nfe = nfe
        mine = list(units) if units is not None else self.split_plan(refs, workers)[worker]
        share: Dict[str, Any] = {"label": label, "nfe": nfe, "mode": self.mode, "dimensions": list(self.dimensions),
                                 "workers": workers, "units": [u.to_json() for u in mine], "methods": {}}
        root = Path(work_dir) / "work" / label
        if root.exists():
            shutil.rmtree(root)   # a folder of an earlier attempt: never score its links
        for method in sorted({u.method for u in mine}):
            todo = [u for u in mine if u.method == method]
            wanted = sorted({k for u in todo for k in u.videos})
            items = items_of(method, wanted)
            todo = [u for u in todo if all(k in items for k in u.videos)]
            left = sorted({k for u in todo for k in u.videos})
            if not todo:
                continue
            exported = root / method / "videos"
            names = dict(zip(left, export_for_vbench([items[k] for k in left], exported, mode=self.mode)))
            by_name = {v: k for k, v in names.items()}
            part: Dict[str, Any] = {"units": {}, "names": names, "per_video": {}, "scores": {}, "skipped": {},
                                    "failed": {}, "unread": {}, "non_standard": {}, "static_filter": None}
            for dim in sorted({u.dimension for u in todo}):
                keys = sorted({k for u in todo if u.dimension == dim for k in u.videos})
                folder = root / method / dim
                folder.mkdir(parents=True)
                for k in keys:
                    _link(exported / names[k], folder / names[k])
                result = self.evaluate(folder, method, [dim], mode=self.mode, out_dir=root / method / f"{dim}_scores",
                                       device=self.device, cache_dir=self.cache_dir, require_complete=False,
                                       prompts={names[k]: items[k][0] for k in keys}
                                       if self.mode == "custom_input" else None)
                part["units"][dim] = keys
                record = result.get("static_filter")
                if dim in split.WHOLE_PROMPT:
                    part["static_filter"] = record
                if dim in result.get("failed", {}):
                    part["failed"][dim] = result["failed"][dim]
                    continue
                kept_none = record and record.get("applied") and not any((record.get("kept") or {}).values())
                if dim in result.get("skipped", {}) and not kept_none:
                    part["skipped"][dim] = result["skipped"][dim]
                    continue
                part["per_video"][dim] = {by_name[n]: v for n, v in result["per_video"].get(dim, {}).items()}
                if dim in result.get("scores", {}):
                    part["scores"][dim] = float(result["scores"][dim])
                read = len(part["per_video"][dim])
                expected = sum(len(v) for v in record["kept"].values()) \
                    if dim in split.WHOLE_PROMPT and record and record.get("applied") else len(keys)
                if expected > read:
                    part["unread"][dim] = expected - read
                if dim in result.get("non_standard", {}):
                    part["non_standard"][dim] = result["non_standard"][dim]
            share["methods"][method] = part
        return share

    def merge_shares(self, refs: Refs, shares: Sequence[Mapping[str, Any]], items_of: ItemsOf, nfe: int,
                     work_dir: Path, label: str) -> Dict[str, Dict[str, Any]]:
        """The section of the results from the workers' shares: units no share covers
        (a worker that crashed or could not see its clips) are scored here first. No
        shares at all: one VBench run per method, as a single process scores."""
        self.nfe = nfe
        if not shares:
            out: Dict[str, Dict[str, Any]] = {}
            for method, items in refs.items():
                stored = items_of(method, [r[0] for r in items])
                out.update(self.score_videos({method: [stored[r[0]] for r in items if r[0] in stored]}, nfe,
                                             work_dir, label))
            return out
        expected = self._expected(refs)
        covered = {(m, d, k) for s in shares for m, part in (s.get("methods") or {}).items()
                   for d, keys in (part.get("units") or {}).items() if d not in part.get("skipped", {})
                   for k in keys}
        # the videos no share covers, as units of the one-worker plan (a prompt stays together)
        gaps = []
        for u in self.split_plan(refs, 1)[0]:
            left = tuple(k for k in u.videos if (u.method, u.dimension, k) not in covered)
            if left:
                gaps.append(split.Unit(u.method, u.dimension, left, u.cost * len(left) / len(u.videos)))
        shares = list(shares)
        if gaps:
            log.info("VBench: scoring %d unit(s) no share covers", len(gaps))
            shares.append(self.score_share(refs, 0, 1, items_of, nfe, work_dir, label, units=gaps))
        merged = split.merge(shares, expected)
        out = {}
        for method, result in merged.items():
            self._refuse_failed(result, method, nfe)
            result["missing_videos"] = self._not_made(method, refs, result["missing_videos"])
            entry = self._entry(result, nfe, len(refs[method]))
            names = split.names_of(shares, method)
            entry["scored_by"] = {lab: sorted({names.get(k, k) for k in keys}) for lab, keys in result["scored_by"].items()}
            out[method] = entry
            for dim, reason in entry["skipped"].items():
                log.info("VBench %s: %s skipped: %s", method, dim, reason)
        return out

    def _expected(self, refs: Refs) -> Dict[str, Dict[str, List[str]]]:
        reads = self._reads()
        return {m: {d: sorted(k for k, p, i, _ in items if reads is None or reads(d, p, i)) for d in self.dimensions}
                for m, items in refs.items() if items}

    def _not_made(self, method: str, refs: Refs, unread: Mapping[str, int]) -> Dict[str, int]:
        """missing_videos as one VBench run reports it: standard videos not made, plus videos not read."""
        out = dict(unread)
        if self.mode == "custom_input":
            return out
        # standard videos are found by (prompt, index 0..4): each prompt's videos not in the store
        made: Dict[str, int] = {}
        for _, prompt, index, _ in refs[method]:
            if index < STANDARD_VIDEOS_PER_PROMPT:
                made[prompt] = made.get(prompt, 0) + 1
        for item in standard_prompts(distinct=True):
            absent = STANDARD_VIDEOS_PER_PROMPT - min(made.get(item["prompt"], 0), STANDARD_VIDEOS_PER_PROMPT)
            for d in item["dimensions"]:
                if d in self.dimensions and absent:
                    out[d] = out.get(d, 0) + absent
        return {d: n for d, n in out.items() if n}

    def _entry(self, result: Mapping[str, Any], nfe: int, n_videos: int) -> Dict[str, Any]:
        """One method's entry of the results' VBench section."""
        entry: Dict[str, Any] = {"nfe": nfe, "scores": {k: float(v) for k, v in result["scores"].items()},
                                 "skipped": dict(result["skipped"]),
                                 "n_videos": n_videos, "total": None, "quality": None, "semantic": None,
                                 "partial": True, "mode": self.mode,
                                 "missing_videos": dict(result.get("missing_videos", {})),
                                 "non_standard": dict(result.get("non_standard", {})),
                                 "static_filter": result.get("static_filter"), "scored_by": {}}
        if entry["scores"]:
            agg = aggregate(entry["scores"], allow_missing=self.allow_missing)
            for k in ("total", "quality", "semantic"):
                entry[k] = None if agg[k] is None else 100.0 * float(agg[k])
            entry["partial"] = bool(agg["partial"])
        return entry



def _link(source: Path, target: Path) -> None:
    """A hard link (no copy of the video), or a copy where the file system has none."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
