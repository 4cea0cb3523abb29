"""VBench scored in parts: which worker scores which (dimension, videos), what each costs,
and the merge of the workers' shares into the numbers one process gives.

A worker is a torchrun rank or an independent shard job. The plan is a pure function of
the videos, the dimensions and the worker count, so every process computes the same one
without talking to the others (sorted keys everywhere, no ``hash()``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from common.errors import InputError

# Seconds to score one 16-frame 512x512 video on one H100, per dimension, model loading
# excluded. Estimates, not measurements: VBench reports about half a day for its standard
# suite on one H100 (946 prompts x 5 videos, 6,810 (video, dimension) evaluations, ~6.3 s
# each on average), split here by the size of each dimension's model: plain pixel
# differences (temporal_flickering) cost next to nothing; DINO / CLIP ViT-B features per
# frame are light; ViCLIP, CLIP ViT-L and UMT heavier; MUSIQ and Tag2Text per frame at full
# size heavier still; the flow (RAFT) and frame interpolation (AMT) networks heavy; GRiT
# object detection per frame the heaviest. Their weighted sum over the suite is 12.0 h.
DIMENSION_SECONDS: Dict[str, float] = {
    "subject_consistency": 1.6,        # DINO ViT-B/16 per frame
    "background_consistency": 1.6,     # CLIP ViT-B/32 per frame
    "temporal_flickering": 0.2,        # mean absolute frame difference, no model
    "motion_smoothness": 8.0,          # AMT-S frame interpolation
    "dynamic_degree": 6.4,             # RAFT optical flow, 20 refinements per pair
    "aesthetic_quality": 2.4,          # CLIP ViT-L/14 + LAION linear head
    "imaging_quality": 4.8,            # MUSIQ per frame at full size
    "object_class": 16.0,              # GRiT detection per frame
    "multiple_objects": 16.0,          # GRiT
    "human_action": 3.2,               # UMT-L, one pass per video
    "color": 16.0,                     # GRiT
    "spatial_relationship": 16.0,      # GRiT
    "scene": 4.8,                      # Tag2Text (Swin-B) captions per frame
    "appearance_style": 1.6,           # CLIP ViT-B/32 frames against the text
    "temporal_style": 2.4,             # ViCLIP
    "overall_consistency": 2.4,        # ViCLIP
}
REFERENCE_DEVICE = "H100"              # the device DIMENSION_SECONDS are for
REFERENCE_FRAMES = 16
# A dimension's models load once per process (tens of seconds): work below this is not
# split further, so a cheap dimension stays one unit instead of many tiny ones.
MIN_UNIT_SECONDS = 60.0
UNITS_PER_WORKER = 4                   # pieces per worker a costly dimension is cut into, for balance
# Dimensions that must see all videos of a prompt at once: VBench's static filter keeps
# the first 5 static videos of each prompt for temporal_flickering.
WHOLE_PROMPT = frozenset({"temporal_flickering"})


@dataclass(frozen=True)
class Video:
    """One clip to score: its method, its stable key, its prompt, and (shard jobs) the
    worker that made it, the only one sure to have it before the score job runs."""
    method: str
    key: str
    prompt: str
    owner: Optional[int] = None
    index: int = 0


@dataclass(frozen=True)
class Unit:
    """A piece of work: one dimension on some videos of one method."""
    method: str
    dimension: str
    videos: Tuple[str, ...]
    cost: float

    def to_json(self) -> Dict[str, Any]:
        return {"method": self.method, "dimension": self.dimension, "videos": list(self.videos), "cost": self.cost}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Unit":
        return cls(str(data["method"]), str(data["dimension"]), tuple(data["videos"]), float(data["cost"]))


def video_seconds(dimension: str, num_frames: int = REFERENCE_FRAMES, speed: float = 1.0) -> float:
    """Estimated seconds to score one video on ``dimension``: the H100 figure, scaled by
    the frame count and divided by the device's speed relative to an H100."""
    if dimension not in DIMENSION_SECONDS:
        raise InputError(f"VBench: no cost figure for dimension '{dimension}'; known: "
                         f"{', '.join(sorted(DIMENSION_SECONDS))}.")
    return DIMENSION_SECONDS[dimension] * (num_frames / REFERENCE_FRAMES) / speed


def units(videos: Sequence[Video], dimensions: Sequence[str], workers: int,
          reads: Optional[Callable[[str, str, int], bool]] = None, num_frames: int = REFERENCE_FRAMES,
          whole_prompt: Iterable[str] = WHOLE_PROMPT) -> List[Unit]:
    """The work cut into units: per (method, dimension), its videos in key order, whole
    prompts kept together where the dimension needs them, cut into chunks of about
    total / (workers x UNITS_PER_WORKER) seconds but never below MIN_UNIT_SECONDS.
    ``reads(dimension, prompt, index)``: whether the dimension scores that video
    (VBench's standard mode reads only each dimension's own prompts). ``whole_prompt``:
    the dimensions whose prompts are not split (WHOLE_PROMPT where the static filter runs)."""
    if workers < 1:
        raise InputError(f"VBench split: workers must be >= 1, got {workers}.")
    dims = sorted(set(dimensions))
    whole = frozenset(whole_prompt)
    ordered = sorted(videos, key=lambda v: (v.method, v.key))
    total = sum(video_seconds(d, num_frames) for d in dims for v in ordered if reads is None or reads(d, v.prompt, v.index))
    target = max(total / (workers * UNITS_PER_WORKER), MIN_UNIT_SECONDS)
    out: List[Unit] = []
    for method in sorted({v.method for v in ordered}):
        mine = [v for v in ordered if v.method == method]
        for dim in dims:
            each = video_seconds(dim, num_frames)
            groups: Dict[Tuple[Any, ...], List[Video]] = {}
            for v in mine:
                if reads is None or reads(dim, v.prompt, v.index):
                    groups.setdefault((v.prompt,) if dim in whole else (v.key,), []).append(v)
            # chunks only join groups that the same workers may take
            by_owners: Dict[Tuple[int, ...], List[List[Video]]] = {}
            for name in sorted(groups):
                group = groups[name]
                owners = tuple(sorted({v.owner for v in group if v.owner is not None}))
                by_owners.setdefault(owners, []).append(group)
            for owners in sorted(by_owners):
                chunk: List[str] = []
                for group in by_owners[owners]:
                    chunk += [v.key for v in group]
                    if len(chunk) * each >= target:
                        out.append(Unit(method, dim, tuple(chunk), len(chunk) * each))
                        chunk = []
                if chunk:
                    out.append(Unit(method, dim, tuple(chunk), len(chunk) * each))
    return out


def assign(videos: Sequence[Video], dimensions: Sequence[str], workers: int,
           reads: Optional[Callable[[str, str, int], bool]] = None, num_frames: int = REFERENCE_FRAMES,
           whole_prompt: Iterable[str] = WHOLE_PROMPT) -> List[List[Unit]]:
    """A balanced plan: per worker, its units. Longest processing time first: units by
    falling cost, each to the least loaded worker allowed to take it (a unit whose videos
    have owners goes to one of them; ties to the lowest index). Without owners the
    loads differ by at most one unit's cost."""
    work = units(videos, dimensions, workers, reads, num_frames, whole_prompt)
    owners_of = {v.key: v.owner for v in videos}
    plan: List[List[Unit]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for unit in sorted(work, key=lambda u: (-u.cost, u.method, u.dimension, u.videos)):
        allowed = sorted({owners_of[k] for k in unit.videos if owners_of.get(k) is not None and owners_of[k] < workers})
        best = min(allowed or range(workers), key=lambda w: (load[w], w))
        plan[best].append(unit)
        load[best] += unit.cost
    return plan


def loads(plan: Sequence[Sequence[Unit]]) -> List[float]:
    """Estimated seconds of each worker of a plan."""
    return [sum(u.cost for u in mine) for mine in plan]


# --------------------------------------------------------------------------- merge

def _static(records: List[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The static filter's records of several workers as one: each saw whole prompts, so
    the videos and kept lists are disjoint unions."""
    if not records:
        return None
    applied = {bool(r.get("applied")) for r in records}
    if len(applied) > 1:
        raise InputError("VBench: the static filter ran on some workers and not on others (their VBench caches "
                         "differ in RAFT's weights); give every node the same cache and score again.")
    if applied == {False}:
        return dict(records[0])
    out: Dict[str, Any] = {k: v for k, v in records[0].items() if k not in ("videos", "kept")}
    out["videos"], out["kept"] = {}, {}
    for r in records:
        out["videos"].update(r.get("videos") or {})
        out["kept"].update(r.get("kept") or {})
    out["videos"] = dict(sorted(out["videos"].items()))
    out["kept"] = dict(sorted(out["kept"].items()))
    return out


def merge(shares: Sequence[Mapping[str, Any]], expected: Mapping[str, Mapping[str, Sequence[str]]]
          ) -> Dict[str, Dict[str, Any]]:
    """The workers' shares as one result per method.

    A share: {"label", "methods": {method: {"units": {dim: [keys]}, "per_video": {dim:
    {key: value}}, "scores": {dim: score}, "names": {key: file name}, "skipped",
    "failed", "unread": {dim: videos not read}, "non_standard", "static_filter"}}}.
    ``expected``: {method: {dim: [keys]}}, every video each dimension must cover.

    A dimension's score is the mean of its per-video values. vbench 0.1.5 averages some
    dimensions per frame (sum / frame count), but every clip of a run has the same frame
    count, so the frame-weighted mean is the per-video mean. Where one share scored all of
    a dimension its own score is kept as VBench computed it.

    Refused: a video scored twice with different values, a video of ``expected`` that no
    share covers, a dimension scored by some workers and skipped by others.
    """
    out: Dict[str, Dict[str, Any]] = {}
    for method in sorted(expected):
        res: Dict[str, Any] = {"scores": {}, "per_video": {}, "skipped": {}, "failed": {}, "missing_videos": {},
                               "non_standard": {}, "static_filter": None, "scored_by": {}}
        scored_by: Dict[str, set] = {}
        records: List[Mapping[str, Any]] = []
        for dim in sorted(expected[method]):
            keys = list(expected[method][dim])
            values: Dict[str, Any] = {}
            by: Dict[str, str] = {}
            covered: set = set()
            skipped: Dict[str, str] = {}
            whole: List[float] = []
            for share in shares:
                part = (share.get("methods") or {}).get(method)
                if not part or dim not in (part.get("units") or {}):
                    continue
                label = str(share["label"])
                if dim in part.get("failed", {}):
                    res["failed"][dim] = part["failed"][dim]
                    continue
                if dim in part.get("skipped", {}):
                    skipped[label] = part["skipped"][dim]
                    continue
                given = list(part["units"][dim])
                covered.update(given)
                scored_by.setdefault(label, set()).update(given)
                for key, value in (part.get("per_video", {}).get(dim) or {}).items():
                    if key in values and values[key] != value:
                        raise InputError(f"VBench: video {key} was scored twice on {dim} with different values "
                                         f"({values[key]!r} by {by[key]}, {value!r} by {label}): the shares come from "
                                         f"different clips; delete the shares folder and score again.")
                    values[key], by[key] = value, label
                if set(keys) <= set(given) and dim in part.get("scores", {}):
                    whole.append(float(part["scores"][dim]))
                n = int((part.get("unread") or {}).get(dim, 0))
                if n:
                    res["missing_videos"][dim] = res["missing_videos"].get(dim, 0) + n
                if dim in part.get("non_standard", {}):
                    res["non_standard"].setdefault(dim, part["non_standard"][dim])
                if dim in WHOLE_PROMPT and part.get("static_filter") is not None:
                    records.append(part["static_filter"])
            if dim in res["failed"]:
                continue
            if skipped and not covered:
                res["skipped"][dim] = sorted(skipped.values())[0]
                continue
            missing = [k for k in keys if k not in covered]
            if missing and skipped:   # a skip that another share made up for is no matter
                raise InputError(f"VBench: {dim} of method '{method}' ran on some workers but was skipped on "
                                 f"{', '.join(sorted(skipped))} ({sorted(skipped.values())[0]}); give every node "
                                 f"the same VBench cache and score again.")
            if missing:
                raise InputError(f"VBench: {len(missing)} of {len(keys)} videos of method '{method}' were not scored "
                                 f"on {dim} by any share (e.g. {missing[0]}); score the missing units first.")
            if not values:   # covered, nothing kept: the static filter found every video moving
                res["skipped"][dim] = "no video was scored: the static filter kept none (all of them move)"
                continue
            # one share that scored the whole dimension: VBench's own number, as one process gives it
            res["scores"][dim] = whole[0] if whole else float(sum(float(v) for v in values.values()) / len(values))
            res["per_video"][dim] = dict(sorted(values.items()))
        res["static_filter"] = _static(records)
        res["scored_by"] = {label: sorted(keys) for label, keys in sorted(scored_by.items())}
        out[method] = res
    return out


def names_of(shares: Iterable[Mapping[str, Any]], method: str) -> Dict[str, str]:
    """{clip key: exported file name} of one method across shares."""
    out: Dict[str, str] = {}
    for share in shares:
        out.update(((share.get("methods") or {}).get(method) or {}).get("names") or {})
    return out


def balance(parts: Mapping[str, float], workers: int, speed: float = 1.0) -> List[float]:
    """Estimated seconds of each worker for ``parts`` ({dimension: seconds of the whole
    run}) cut and placed as :func:`assign` does: pieces of at least MIN_UNIT_SECONDS on an
    H100 (``speed``: the device's speed relative to one), longest first to the least loaded."""
    if workers < 1:
        raise InputError(f"VBench split: workers must be >= 1, got {workers}.")
    target = max(sum(parts.values()) / (workers * UNITS_PER_WORKER), MIN_UNIT_SECONDS / speed)
    pieces = []
    for dim, seconds in sorted(parts.items()):
        n = max(1, int(seconds // target)) if seconds > 0 else 0
        pieces += [seconds / n] * n
    load = [0.0] * workers
    for cost in sorted(pieces, reverse=True):
        best = min(range(workers), key=lambda w: (load[w], w))
        load[best] += cost
    return load
