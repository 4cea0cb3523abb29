"""The results file (``results.json``): schema, validation, I/O and flattening.

One ``results.json`` holds everything a benchmark run measured, with enough
provenance to reproduce it and to refuse meaningless comparisons. Schema
version ``1.0``. ``results/SCHEMA.md`` has the same reference with an example.

Top level (``timing``, ``vbench`` and ``ablation`` may be left out; unknown
keys are rejected everywhere except inside free-form objects, so that typos
fail loudly):

``schema_version`` (str)
    ``"1.0"``. Files with a different version are never compared.
``run`` (object)
    ``experiment`` (str, e.g. ``"smoke"``), ``run_dir`` (str),
    ``started_at`` / ``finished_at`` (ISO 8601 strings, finished >= started),
    ``wall_time_s`` (float >= 0),
    ``weights_mode`` (``"tiny"`` | ``"random"`` | ``"pretrained"``),
    ``label`` (str; a warning shown on every table, plot and report, e.g.
    ``"TINY RANDOM WEIGHTS - not comparable to paper numbers"``; must be
    non-empty unless ``weights_mode`` is ``"pretrained"``),
    ``description`` (str, optional).
``provenance`` (object)
    ``git_commit`` (str | null), ``git_dirty`` (bool | null),
    ``config`` (object: the fully resolved run configuration),
    ``seeds`` (object of ints; ``base_seed`` and ``bootstrap_seed`` required,
    others such as ``init_seed`` allowed),
    ``packages`` (object: distribution name -> version string, or null when
    not installed),
    ``device`` (object: ``type`` ``"cpu"`` | ``"cuda"``, ``name`` str,
    ``cuda`` str | null, ``dtype`` str such as ``"float32"``; further keys
    such as ``capability`` allowed),
    ``protocols`` (object: metric family (``"fvd"``, ``"clipsim"``,
    ``"vbench"``) -> object with at least ``name`` (str) and ``version``
    (str or int), optionally ``id`` or ``feature_key`` (str, the identifier rows
    carry; default ``"<name>-v<version>"``); any further keys describe the
    protocol, e.g. detector, resize, sample size),
    ``prompt_set`` (object: ``name`` str, ``sha256`` str (64 hex) | null;
    further keys such as ``classes`` allowed),
    ``generation`` (object | null, optional: generation-stage summary),
    ``parity`` (object | null, optional: ``version`` and the parity choices of
    the pipeline; absent means version 1, never compared with version 2),
    ``extra`` (object, optional).
``methods`` (object)
    method id (``[a-z0-9_]+``; the paper's are ``ddim``, ``dpmpp``,
    ``animatelcm``, ``animatelcm_r``) -> object with ``display_name`` (str,
    e.g. ``"Ours"``), ``weights`` (object: model ids, files, sha256s),
    ``scheduler`` (object: class name and settings, timestep spacing...),
    ``guidance_scale`` (float >= 0; CFG is on only above 1), ``spec``
    (object, optional: the full model spec), ``fingerprint`` (str | null,
    optional), ``extra`` (object, optional).
``rows`` (array) -- one entry per (method, nfe, metric), no duplicates:
    ``method`` (a key of ``methods``), ``nfe`` (int >= 1, denoising steps),
    ``metric`` (``"fvd"``, ``"clipsim"``, ``"vbench_<dimension>"``,
    ``"vbench_total"``, ``"vbench_quality"``, ``"vbench_semantic"``),
    ``value`` (finite float), ``ci_low`` / ``ci_high`` (floats, both or
    neither, ``ci_low <= ci_high``; the bootstrap percentile interval, which
    for a biased statistic such as FVD need not contain ``value``),
    ``n`` (int >= 1, clips scored), ``protocol`` (str; must equal the id of
    ``provenance.protocols[<family>]``, see ``protocol_id``),
    ``extra`` (object, optional). Units: FVD as is (lower is better);
    CLIPSIM x100 as in the paper (higher is better); ``vbench_*`` in percent
    (higher is better).
``timing`` (array) -- one entry per timed (method, nfe):
    ``method``, ``nfe``, ``guidance_scale`` (float), ``denoise_ms_median``
    (float > 0, the denoising loop only: VAE decoding excluded as in the
    paper), ``denoise_ms_iqr`` (float >= 0), ``text_encode_ms``, ``vae_ms``,
    ``peak_mem_mb``, ``tflop_per_unet_eval``, ``utilisation`` (fraction of the
    device's peak, 0..1) -- these five float | null --, ``device`` (str),
    ``dtype`` (str), ``n_repeats`` (int >= 1 | null, optional), ``n`` (int >= 1
    | null, optional: clips timed), ``clock`` (str | null, optional, e.g.
    ``"cuda-sync-wall"``), ``note`` (str | null, optional), ``extra`` (object,
    optional). UNet evaluations per video = ``nfe`` x 2 when
    ``guidance_scale > 1`` (classifier-free guidance), else ``nfe``.
``vbench`` (object) -- method id -> object:
    ``nfe`` (int | null), ``scores`` (object: VBench dimension -> raw score
    as VBench reports it, a fraction in 0..1), ``total`` / ``quality`` /
    ``semantic`` (float in percent, 0..100, or null when nothing was scored),
    ``partial`` (bool: true exactly when some of the 16 dimensions are not
    in ``scores``), ``skipped`` (object: dimension -> reason), ``n_videos``
    (int | null, optional), ``mode`` (``"vbench_standard"`` | ``"custom_input"`` |
    null, optional), ``missing_videos`` (object, optional: dimension -> number of
    the standard suite's videos that were not made; non-empty means the scores
    cover a subset of VBench's prompts and are not comparable to published ones).
    Requires ``provenance.protocols.vbench``.
``ablation`` (array, optional) -- one entry per trained variant:
    ``variant`` (str, unique), ``train_step`` (int >= 0 | null),
    ``distillation`` (``"decoupled"`` | ``"joint"``), ``rows`` (array of row
    objects as above; their ``method`` need not be in ``methods``).
``bootstrap`` (object)
    ``n_boot`` (int >= 0; 0 means no intervals), ``seed`` (int, equal to
    ``provenance.seeds.bootstrap_seed``), ``alpha`` (0 < alpha < 1; the
    interval is the central 1 - alpha one), ``method`` (str, e.g.
    ``"percentile over clip resampling"``).

Public API: :func:`validate`, :func:`load`, :func:`save`, :func:`as_results`,
:func:`comparable`, :func:`to_dataframe`, :func:`write_csv`, the dataclasses
(:class:`Results` and its parts) and the metric helpers
(:func:`metric_direction`, :func:`metric_family`, :func:`protocol_id`).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

SCHEMA_VERSION = "1.0"
WEIGHTS_MODES = ("tiny", "random", "pretrained")
DEVICE_TYPES = ("cpu", "cuda")
DISTILLATIONS = ("decoupled", "joint")

# The paper's four methods, in Table 1 row order.

DEFAULT_LABELS = {
    "tiny": "TINY RANDOM WEIGHTS - not comparable to paper numbers",
    "random": "RANDOM FULL-SIZE WEIGHTS - timing only; quality metrics are meaningless",
    "pretrained": "",
}

# VBench's 16 dimensions: the first seven make the Quality score, the rest Semantic.
VBENCH_QUALITY_DIMENSIONS = (
    "subject_consistency", "background_consistency", "temporal_flickering",
    "motion_smoothness", "aesthetic_quality", "imaging_quality", "dynamic_degree",
)
VBENCH_SEMANTIC_DIMENSIONS = (
    "object_class", "multiple_objects", "human_action", "color", "spatial_relationship",
    "scene", "appearance_style", "temporal_style", "overall_consistency",
)
VBENCH_DIMENSIONS = VBENCH_QUALITY_DIMENSIONS + VBENCH_SEMANTIC_DIMENSIONS
VBENCH_SUMMARIES = ("total", "quality", "semantic")

_BASE_METRICS = {"fvd": False, "clipsim": True}  # name -> higher is better
_ID_RE = re.compile(r"^[a-z0-9_]+$")

PathLike = Union[str, "os.PathLike[str]"]


class SchemaError(ValueError):
    """A results file or dict that does not follow the schema.

    ``problems`` lists every problem found, each prefixed with its location
    (e.g. ``rows[3].nfe``), so one run of the validator reports them all.
    """

    def __init__(self, problems: List[str], source: str = "results"):
        self.problems = list(problems)
        self.source = source
        head = f"{source} does not follow results schema {SCHEMA_VERSION} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):"
        super().__init__("\n".join([head] + [f"  - {p}" for p in problems]))


# ---------------------------------------------------------------- metric helpers
def all_metric_names() -> List[str]:
    """Every metric name a row may carry."""
    return (list(_BASE_METRICS) + [f"vbench_{s}" for s in VBENCH_SUMMARIES]
            + [f"vbench_{d}" for d in VBENCH_DIMENSIONS])


def is_known_metric(metric: str) -> bool:
    return metric in _BASE_METRICS or (
        metric.startswith("vbench_") and metric[7:] in VBENCH_DIMENSIONS + VBENCH_SUMMARIES)


def metric_family(metric: str) -> str:
    """The protocol family a metric belongs to: ``fvd``, ``clipsim`` or ``vbench``."""
    if metric in _BASE_METRICS:
        return metric
    if is_known_metric(metric):
        return "vbench"
    raise ValueError(f"unknown metric {metric!r}; known metrics: fvd, clipsim, vbench_total, "
                     f"vbench_quality, vbench_semantic, vbench_<dimension> with dimension in "
                     f"{', '.join(VBENCH_DIMENSIONS)}")


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: FVD and timings are lower-is-better, the rest higher."""
    if metric in _BASE_METRICS:
        return _BASE_METRICS[metric]
    if metric_family(metric) == "vbench":
        return True
    raise AssertionError("unreachable")


def metric_direction(metric: str) -> str:
    """``"lower"`` or ``"higher"`` (is better)."""
    return "higher" if higher_is_better(metric) else "lower"


def metric_display(metric: str) -> str:
    """Human name of a metric for tables and plots."""
    if metric == "fvd":
        return "FVD"
    if metric == "clipsim":
        return "CLIPSIM"
    if metric.startswith("vbench_"):
        return "VBench " + metric[7:].replace("_", " ").title()
    return metric


def protocol_id(protocol: Mapping[str, Any]) -> str:
    """The identifier rows carry for a protocol entry.

    Its ``id`` if set, else its ``feature_key`` (the metric's name for its stored
    features, which changes whenever they would), else ``"<name>-v<version>"``.
    """
    for key in ("id", "feature_key"):
        if protocol.get(key):
            return str(protocol[key])
    return f"{protocol['name']}-v{protocol['version']}"


def default_label(weights_mode: str) -> str:
    """The warning label a run with these weights must carry."""
    if weights_mode not in DEFAULT_LABELS:
        raise ValueError(f"weights_mode must be one of {WEIGHTS_MODES}, got {weights_mode!r}")
    return DEFAULT_LABELS[weights_mode]


def unet_evals(nfe: int, guidance_scale: float) -> int:
    """UNet evaluations per video: CFG doubles every step (diffusers: on when > 1)."""
    return int(nfe) * (2 if guidance_scale is not None and guidance_scale > 1.0 else 1)


# ---------------------------------------------------------------- dataclasses
@dataclass
class Row:
    method: str
    nfe: int
    metric: str
    value: float
    n: int
    protocol: str
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Tuple[str, int, str]:
        return (self.method, self.nfe, self.metric)

    @property
    def has_ci(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None

    @property
    def ci_half_width(self) -> Optional[float]:
        return (self.ci_high - self.ci_low) / 2.0 if self.has_ci else None

    def to_dict(self) -> Dict[str, Any]:
        return {"method": self.method, "nfe": self.nfe, "metric": self.metric, "value": self.value,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n,
                "protocol": self.protocol, "extra": copy.deepcopy(self.extra)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Row":
        return cls(method=d["method"], nfe=int(d["nfe"]), metric=d["metric"], value=float(d["value"]),
                   n=int(d["n"]), protocol=d["protocol"], ci_low=_opt_float(d.get("ci_low")),
                   ci_high=_opt_float(d.get("ci_high")), extra=dict(d.get("extra") or {}))


@dataclass
class RunInfo:
    experiment: str
    run_dir: str
    started_at: str
    finished_at: str
    wall_time_s: float
    weights_mode: str
    label: str
    description: str = ""


@dataclass
class DeviceInfo:
    type: str
    name: str
    cuda: Optional[str]
    dtype: str
    extra: Dict[str, Any] = field(default_factory=dict)  # further keys (capability, threads...), flat in JSON


@dataclass
class Provenance:
    git_commit: Optional[str]
    git_dirty: Optional[bool]
    config: Dict[str, Any]
    seeds: Dict[str, int]
    packages: Dict[str, str]
    device: DeviceInfo
    protocols: Dict[str, Dict[str, Any]]
    prompt_set: Dict[str, Any]
    generation: Optional[Dict[str, Any]] = None
    # which of the authors' pipeline choices made the clips; "version" 1 (or absent) is
    # everything written before lcmbench matched the authors' code stage by stage
    parity: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodInfo:
    display_name: str
    weights: Dict[str, Any] = field(default_factory=dict)
    scheduler: Dict[str, Any] = field(default_factory=dict)
    guidance_scale: float = 1.0
    spec: Dict[str, Any] = field(default_factory=dict)
    fingerprint: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TimingRow:
    method: str
    nfe: int
    guidance_scale: float
    denoise_ms_median: float
    denoise_ms_iqr: float
    device: str
    dtype: str
    text_encode_ms: Optional[float] = None
    vae_ms: Optional[float] = None
    peak_mem_mb: Optional[float] = None
    tflop_per_unet_eval: Optional[float] = None
    utilisation: Optional[float] = None
    n_repeats: Optional[int] = None
    n: Optional[int] = None
    clock: Optional[str] = None
    note: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def unet_evals(self) -> int:
        return unet_evals(self.nfe, self.guidance_scale)


@dataclass
class VBenchEntry:
    scores: Dict[str, float]
    total: Optional[float]
    quality: Optional[float]
    semantic: Optional[float]
    partial: bool
    skipped: Dict[str, str] = field(default_factory=dict)
    nfe: Optional[int] = None
    n_videos: Optional[int] = None
    mode: Optional[str] = None
    missing_videos: Dict[str, int] = field(default_factory=dict)
    non_standard: Dict[str, str] = field(default_factory=dict)   # dimension -> how it departs from VBench's protocol


@dataclass
class AblationEntry:
    variant: str
    train_step: Optional[int]
    distillation: str
    rows: List[Row] = field(default_factory=list)


@dataclass
class BootstrapInfo:
    n_boot: int
    seed: int
    alpha: float = 0.05
    method: str = "percentile over clip resampling"


@dataclass
class Results:
    """A validated results file. Build with :meth:`from_dict` or :func:`load`."""

    run: RunInfo
    provenance: Provenance
    methods: Dict[str, MethodInfo]
    rows: List[Row]
    timing: List[TimingRow]
    vbench: Dict[str, VBenchEntry]
    bootstrap: BootstrapInfo
    ablation: Optional[List[AblationEntry]] = None
    schema_version: str = SCHEMA_VERSION

    # -- conversion
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "results") -> "Results":
        validate(d, source=source)
        return _build(d)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "schema_version": self.schema_version,
            "run": dataclasses.asdict(self.run),
            "provenance": self._provenance_dict(),
            "methods": {k: dataclasses.asdict(v) for k, v in self.methods.items()},
            "rows": [r.to_dict() for r in self.rows],
            "timing": [dataclasses.asdict(t) for t in self.timing],
            "vbench": {k: dataclasses.asdict(v) for k, v in self.vbench.items()},
            "bootstrap": dataclasses.asdict(self.bootstrap),
        }
        if self.ablation is not None:
            out["ablation"] = [{"variant": a.variant, "train_step": a.train_step,
                                "distillation": a.distillation,
                                "rows": [r.to_dict() for r in a.rows]} for a in self.ablation]
        return out

    def _provenance_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self.provenance)
        dev = d["device"]
        d["device"] = {k: dev[k] for k in _DEVICE_FIELDS}
        d["device"].update(dev["extra"])
        return d

    # -- convenience
    @property
    def weights_mode(self) -> str:
        return self.run.weights_mode

    @property
    def label(self) -> str:
        return self.run.label

    def display_name(self, method: str) -> str:
        if method in self.methods:
            return self.methods[method].display_name
        return method

    def method_order(self) -> List[str]:
        """Methods in presentation order: the order of ``methods`` (the experiment's, as
        the pipeline records it), then any other method id in rows or timing."""
        present = {r.method for r in self.rows} | {t.method for t in self.timing}
        known = list(self.methods)
        return known + sorted(present - set(known))

    def method_color(self, method: str) -> Optional[str]:
        """The colour the method's spec asks for (``spec.color``), or None."""
        info = self.methods.get(method)
        return (info.spec or {}).get("color") if info is not None else None

    def row(self, method: str, nfe: int, metric: str) -> Optional[Row]:
        for r in self.rows:
            if r.method == method and r.nfe == nfe and r.metric == metric:
                return r
        return None

    def nfes(self, metric: Optional[str] = None) -> List[int]:
        return sorted({r.nfe for r in self.rows if metric is None or r.metric == metric})

    def metrics(self) -> List[str]:
        seen: List[str] = []
        for r in self.rows:
            if r.metric not in seen:
                seen.append(r.metric)
        return seen

    def timing_for(self, method: str, nfe: int) -> Optional[TimingRow]:
        for t in self.timing:
            if t.method == method and t.nfe == nfe:
                return t
        return None


def _opt_float(x: Any) -> Optional[float]:
    return None if x is None else float(x)


def _build(d: Mapping[str, Any]) -> Results:
    run = RunInfo(**{k: d["run"][k] for k in _RUN_FIELDS}, description=d["run"].get("description") or "")
    run.wall_time_s = float(run.wall_time_s)
    p = d["provenance"]
    prov = Provenance(
        git_commit=p["git_commit"], git_dirty=p["git_dirty"], config=copy.deepcopy(p["config"]),
        seeds={k: int(v) for k, v in p["seeds"].items()}, packages=dict(p["packages"]),
        device=DeviceInfo(**{k: p["device"][k] for k in _DEVICE_FIELDS},
                          extra={k: copy.deepcopy(v) for k, v in p["device"].items() if k not in _DEVICE_FIELDS}),
        protocols=copy.deepcopy(p["protocols"]), prompt_set=copy.deepcopy(p["prompt_set"]),
        generation=copy.deepcopy(p.get("generation")), parity=copy.deepcopy(p.get("parity")),
        extra=copy.deepcopy(p.get("extra") or {}))
    methods = {k: MethodInfo(display_name=v["display_name"], weights=copy.deepcopy(v.get("weights") or {}),
                             scheduler=copy.deepcopy(v.get("scheduler") or {}),
                             guidance_scale=float(v["guidance_scale"]),
                             spec=copy.deepcopy(v.get("spec") or {}), fingerprint=v.get("fingerprint"),
                             extra=copy.deepcopy(v.get("extra") or {}))
               for k, v in d["methods"].items()}
    rows = [Row.from_dict(r) for r in d["rows"]]
    timing = []
    for t in d.get("timing") or []:
        timing.append(TimingRow(
            method=t["method"], nfe=int(t["nfe"]), guidance_scale=float(t["guidance_scale"]),
            denoise_ms_median=float(t["denoise_ms_median"]), denoise_ms_iqr=float(t["denoise_ms_iqr"]),
            device=t["device"], dtype=t["dtype"],
            **{k: _opt_float(t.get(k)) for k in _TIMING_OPTIONAL_FLOATS},
            n_repeats=None if t.get("n_repeats") is None else int(t["n_repeats"]),
            n=None if t.get("n") is None else int(t["n"]), clock=t.get("clock"), note=t.get("note"),
            extra=copy.deepcopy(t.get("extra") or {})))
    vbench = {k: VBenchEntry(scores={dk: float(dv) for dk, dv in v["scores"].items()},
                             total=_opt_float(v["total"]), quality=_opt_float(v["quality"]),
                             semantic=_opt_float(v["semantic"]), partial=bool(v["partial"]),
                             skipped=dict(v.get("skipped") or {}),
                             nfe=None if v.get("nfe") is None else int(v["nfe"]),
                             n_videos=None if v.get("n_videos") is None else int(v["n_videos"]),
                             mode=v.get("mode"),
                             missing_videos={dk: int(dv) for dk, dv in (v.get("missing_videos") or {}).items()},
                             non_standard={dk: str(dv) for dk, dv in (v.get("non_standard") or {}).items()})
              for k, v in (d.get("vbench") or {}).items()}
    b = d["bootstrap"]
    boot = BootstrapInfo(n_boot=int(b["n_boot"]), seed=int(b["seed"]), alpha=float(b["alpha"]),
                         method=b["method"])
    ablation = None
    if d.get("ablation") is not None:
        ablation = [AblationEntry(variant=a["variant"],
                                  train_step=None if a.get("train_step") is None else int(a["train_step"]),
                                  distillation=a["distillation"],
                                  rows=[Row.from_dict(r) for r in a["rows"]]) for a in d["ablation"]]
    return Results(run=run, provenance=prov, methods=methods, rows=rows, timing=timing, vbench=vbench,
                   bootstrap=boot, ablation=ablation, schema_version=d["schema_version"])


# ---------------------------------------------------------------- validation
_TOP_REQUIRED = ("schema_version", "run", "provenance", "methods", "rows", "bootstrap")
_TOP_OPTIONAL = ("timing", "vbench", "ablation")
_RUN_FIELDS = ("experiment", "run_dir", "started_at", "finished_at", "wall_time_s", "weights_mode", "label")
_PROV_FIELDS = ("git_commit", "git_dirty", "config", "seeds", "packages", "device", "protocols", "prompt_set")
_PROV_OPTIONAL = ("generation", "parity", "extra")
_DEVICE_FIELDS = ("type", "name", "cuda", "dtype")
_METHOD_REQUIRED = ("display_name", "weights", "scheduler", "guidance_scale")
_ROW_REQUIRED = ("method", "nfe", "metric", "value", "n", "protocol")
_ROW_OPTIONAL = ("ci_low", "ci_high", "extra")
_TIMING_REQUIRED = ("method", "nfe", "guidance_scale", "denoise_ms_median", "denoise_ms_iqr", "device", "dtype")
_TIMING_OPTIONAL_FLOATS = ("text_encode_ms", "vae_ms", "peak_mem_mb", "tflop_per_unet_eval", "utilisation")
_TIMING_OPTIONAL = _TIMING_OPTIONAL_FLOATS + ("n_repeats", "n", "clock", "note", "extra")
_VBENCH_REQUIRED = ("scores", "total", "quality", "semantic", "partial", "skipped")
_VBENCH_OPTIONAL = ("nfe", "n_videos", "mode", "missing_videos", "non_standard")
_ABLATION_REQUIRED = ("variant", "train_step", "distillation", "rows")
_BOOT_REQUIRED = ("n_boot", "seed", "alpha", "method")


class _Checker:
    def __init__(self) -> None:
        self.problems: List[str] = []

    def err(self, where: str, msg: str) -> None:
        self.problems.append(f"{where}: {msg}")

    def obj(self, x: Any, where: str) -> bool:
        if not isinstance(x, Mapping):
            self.err(where, f"expected an object, got {_tname(x)}")
            return False
        return True

    def keys(self, x: Mapping, where: str, required: Iterable[str], optional: Iterable[str] = (),
             hint: str = "") -> None:
        required = tuple(required)
        allowed = set(required) | set(optional)
        missing = [k for k in required if k not in x]
        if missing:
            self.err(where, f"missing required field{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(repr(k) for k in missing)}")
        unknown = sorted(str(k) for k in x if k not in allowed)
        if unknown:
            self.err(where, f"unknown field{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(repr(k) for k in unknown)} (allowed: {', '.join(sorted(allowed))}){hint}")

    def string(self, x: Any, where: str, nonempty: bool = True, nullable: bool = False) -> bool:
        if x is None and nullable:
            return True
        if not isinstance(x, str):
            self.err(where, f"expected a string, got {_tname(x)}")
            return False
        if nonempty and not x.strip():
            self.err(where, "must not be empty")
            return False
        return True

    def integer(self, x: Any, where: str, minimum: Optional[int] = None, nullable: bool = False) -> bool:
        if x is None and nullable:
            return True
        if isinstance(x, bool) or not isinstance(x, int):
            self.err(where, f"expected an integer, got {_tname(x)} {x!r}")
            return False
        if minimum is not None and x < minimum:
            self.err(where, f"must be >= {minimum}, got {x}")
            return False
        return True

    def number(self, x: Any, where: str, minimum: Optional[float] = None, maximum: Optional[float] = None,
               nullable: bool = False, strict_min: bool = False) -> bool:
        if x is None and nullable:
            return True
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            self.err(where, f"expected a number, got {_tname(x)} {x!r}")
            return False
        if not math.isfinite(x):
            self.err(where, f"must be a finite number, got {x!r}")
            return False
        if minimum is not None and (x <= minimum if strict_min else x < minimum):
            self.err(where, f"must be {'>' if strict_min else '>='} {minimum}, got {x}")
            return False
        if maximum is not None and x > maximum:
            self.err(where, f"must be <= {maximum}, got {x}")
            return False
        return True

    def boolean(self, x: Any, where: str, nullable: bool = False) -> bool:
        if x is None and nullable:
            return True
        if not isinstance(x, bool):
            self.err(where, f"expected true or false, got {_tname(x)} {x!r}")
            return False
        return True


def _is_version(v: Any) -> bool:
    return (isinstance(v, str) and bool(v.strip())) or (isinstance(v, int) and not isinstance(v, bool))


def _tname(x: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(x), type(x).__name__)


def _iso(c: _Checker, x: Any, where: str) -> Optional[datetime]:
    if not c.string(x, where):
        return None
    try:
        return datetime.fromisoformat(x.replace("Z", "+00:00"))
    except ValueError:
        c.err(where, f"not an ISO 8601 timestamp: {x!r} (e.g. '2024-05-01T12:00:00+00:00')")
        return None


def _check_row(c: _Checker, r: Any, where: str, methods: Optional[Mapping[str, Any]],
               protocols: Mapping[str, Any], declared: Iterable[str] = ()) -> None:
    if not c.obj(r, where):
        return
    c.keys(r, where, _ROW_REQUIRED, _ROW_OPTIONAL, hint="; put additional information under 'extra'")
    if c.string(r.get("method"), f"{where}.method") and methods is not None and r["method"] not in methods:
        c.err(f"{where}.method", f"{r['method']!r} is not a key of 'methods' ({', '.join(sorted(methods)) or 'none'})")
    c.integer(r.get("nfe"), f"{where}.nfe", minimum=1)
    metric = r.get("metric")
    if c.string(metric, f"{where}.metric"):
        if not is_known_metric(metric):
            c.err(f"{where}.metric", f"unknown metric {metric!r}; use one of fvd, clipsim, vbench_total, "
                                     f"vbench_quality, vbench_semantic or vbench_<dimension>")
        else:
            fam = metric_family(metric)
            proto = protocols.get(fam) if isinstance(protocols, Mapping) else None
            if proto is None:
                if fam not in declared:
                    c.err(f"{where}.protocol", f"provenance.protocols has no {fam!r} entry describing "
                                               f"how {metric!r} was measured")
            elif isinstance(r.get("protocol"), str) and r["protocol"] != protocol_id(proto):
                c.err(f"{where}.protocol", f"{r['protocol']!r} does not match provenance.protocols.{fam} "
                                           f"({protocol_id(proto)!r})")
    c.number(r.get("value"), f"{where}.value")
    c.integer(r.get("n"), f"{where}.n", minimum=1)
    c.string(r.get("protocol"), f"{where}.protocol")
    lo, hi = r.get("ci_low"), r.get("ci_high")
    ok_lo = c.number(lo, f"{where}.ci_low", nullable=True)
    ok_hi = c.number(hi, f"{where}.ci_high", nullable=True)
    if ok_lo and ok_hi:
        if (lo is None) != (hi is None):
            c.err(where, "ci_low and ci_high must both be numbers or both be null")
        elif lo is not None and lo > hi:
            c.err(where, f"ci_low ({lo}) is greater than ci_high ({hi})")
    if "extra" in r and not isinstance(r["extra"], Mapping):
        c.err(f"{where}.extra", f"expected an object, got {_tname(r['extra'])}")


def validate(d: Any, source: str = "results") -> None:
    """Check a results dict against the schema; raise :class:`SchemaError` listing every problem.

    Checks types, ranges, required and unknown fields, and cross-references:
    row methods exist in ``methods``, row protocols match
    ``provenance.protocols``, no duplicate (method, nfe, metric), non-empty
    label for non-pretrained weights, consistent bootstrap seed and VBench
    ``partial`` flags.
    """
    c = _Checker()
    if not isinstance(d, Mapping):
        raise SchemaError([f"top level: expected a JSON object, got {_tname(d)}"], source)
    c.keys(d, "top level", _TOP_REQUIRED, _TOP_OPTIONAL)
    ver = d.get("schema_version")
    if "schema_version" in d and ver != SCHEMA_VERSION:
        c.err("schema_version", f"this code reads schema {SCHEMA_VERSION!r}, the file is {ver!r}; "
                                f"regenerate it or use a matching lcmbench version")

    # run
    run = d.get("run")
    weights_mode = None
    if "run" in d and c.obj(run, "run"):
        c.keys(run, "run", _RUN_FIELDS, ("description",))
        c.string(run.get("description", ""), "run.description", nonempty=False)
        c.string(run.get("experiment"), "run.experiment")
        c.string(run.get("run_dir"), "run.run_dir")
        t0 = _iso(c, run.get("started_at"), "run.started_at")
        t1 = _iso(c, run.get("finished_at"), "run.finished_at")
        if t0 and t1:
            try:
                if t1 < t0:
                    c.err("run.finished_at", f"is before run.started_at ({run['finished_at']} < {run['started_at']})")
            except TypeError:
                c.err("run", "started_at and finished_at must both carry a timezone or both not")
        c.number(run.get("wall_time_s"), "run.wall_time_s", minimum=0)
        weights_mode = run.get("weights_mode")
        if weights_mode not in WEIGHTS_MODES:
            c.err("run.weights_mode", f"must be one of {', '.join(WEIGHTS_MODES)}, got {weights_mode!r}")
            weights_mode = None
        label = run.get("label")
        if c.string(label, "run.label", nonempty=False) and weights_mode and weights_mode != "pretrained" \
                and not label.strip():
            c.err("run.label", f"must say what the numbers are for weights_mode {weights_mode!r}, "
                               f"e.g. {DEFAULT_LABELS[weights_mode]!r}")

    # provenance
    prov = d.get("provenance")
    protocols: Mapping[str, Any] = {}
    seeds: Mapping[str, Any] = {}
    if "provenance" in d and c.obj(prov, "provenance"):
        c.keys(prov, "provenance", _PROV_FIELDS, _PROV_OPTIONAL)
        if prov.get("generation") is not None:
            c.obj(prov["generation"], "provenance.generation")
        if prov.get("parity") is not None and c.obj(prov["parity"], "provenance.parity"):
            if not _is_version(prov["parity"].get("version")):
                c.err("provenance.parity.version", "expected a non-empty string or an integer (the parity "
                                                   "version of the code that made the clips)")
        if "extra" in prov:
            c.obj(prov["extra"], "provenance.extra")
        c.string(prov.get("git_commit"), "provenance.git_commit", nullable=True)
        c.boolean(prov.get("git_dirty"), "provenance.git_dirty", nullable=True)
        if "config" in prov:
            c.obj(prov["config"], "provenance.config")
        if "seeds" in prov and c.obj(prov["seeds"], "provenance.seeds"):
            seeds = prov["seeds"]
            for k in ("base_seed", "bootstrap_seed"):
                if k not in seeds:
                    c.err("provenance.seeds", f"missing required field {k!r}")
            for k, v in seeds.items():
                c.integer(v, f"provenance.seeds.{k}")
        if "packages" in prov and c.obj(prov["packages"], "provenance.packages"):
            for k, v in prov["packages"].items():
                c.string(v, f"provenance.packages.{k}", nullable=True)  # null: not installed
        dev = prov.get("device")
        if "device" in prov and c.obj(dev, "provenance.device"):
            for k in _DEVICE_FIELDS:
                if k not in dev:
                    c.err("provenance.device", f"missing required field {k!r}")
            if dev.get("type") not in DEVICE_TYPES:
                c.err("provenance.device.type", f"must be one of {', '.join(DEVICE_TYPES)}, got {dev.get('type')!r}")
            c.string(dev.get("name"), "provenance.device.name")
            c.string(dev.get("cuda"), "provenance.device.cuda", nullable=True)
            c.string(dev.get("dtype"), "provenance.device.dtype")
        if "protocols" in prov and c.obj(prov["protocols"], "provenance.protocols"):
            protocols = prov["protocols"]
            for fam, p in protocols.items():
                w = f"provenance.protocols.{fam}"
                if fam not in ("fvd", "clipsim", "vbench"):
                    c.err(w, "protocol families are 'fvd', 'clipsim' and 'vbench'")
                if c.obj(p, w):
                    if "name" not in p:
                        c.err(w, "missing required field 'name'")
                    elif not isinstance(p["name"], str) or not p["name"]:
                        c.err(f"{w}.name", f"expected a non-empty string, got {_tname(p['name'])} {p['name']!r}")
                    if "version" not in p:
                        c.err(w, "missing required field 'version' (bump it whenever the metric's numbers "
                                 "would change, so old and new results are never compared)")
                    elif not _is_version(p["version"]):
                        c.err(f"{w}.version", f"expected a non-empty string or an integer, got "
                                              f"{_tname(p['version'])} {p['version']!r}")
        ps = prov.get("prompt_set")
        if "prompt_set" in prov and c.obj(ps, "provenance.prompt_set"):
            for k in ("name", "sha256"):
                if k not in ps:
                    c.err("provenance.prompt_set", f"missing required field {k!r}")
            c.string(ps.get("name"), "provenance.prompt_set.name")
            if c.string(ps.get("sha256"), "provenance.prompt_set.sha256", nullable=True) and \
                    isinstance(ps.get("sha256"), str) and not re.fullmatch(r"[0-9a-f]{64}", ps["sha256"]):
                c.err("provenance.prompt_set.sha256", "expected 64 lowercase hex digits")
    # Malformed entries were reported above; rows that use them are not reported again.
    declared = set(protocols) if isinstance(protocols, Mapping) else set()
    protocols = {k: v for k, v in protocols.items()
                 if isinstance(v, Mapping) and isinstance(v.get("name"), str) and _is_version(v.get("version"))}

    # methods
    methods = d.get("methods")
    if "methods" in d and c.obj(methods, "methods"):
        for mid, m in methods.items():
            w = f"methods.{mid}"
            if not isinstance(mid, str) or not _ID_RE.match(mid):
                c.err(w, "method ids use lowercase letters, digits and '_' only")
            if c.obj(m, w):
                c.keys(m, w, _METHOD_REQUIRED, ("spec", "fingerprint", "extra"),
                       hint="; put additional information under 'extra'")
                c.string(m.get("display_name"), f"{w}.display_name")
                c.string(m.get("fingerprint"), f"{w}.fingerprint", nullable=True)
                for k in ("weights", "scheduler", "spec", "extra"):
                    if k in m:
                        c.obj(m[k], f"{w}.{k}")
                c.number(m.get("guidance_scale"), f"{w}.guidance_scale", minimum=0)
    else:
        methods = None

    # rows
    rows = d.get("rows")
    if "rows" in d:
        if not isinstance(rows, list):
            c.err("rows", f"expected an array, got {_tname(rows)}")
        else:
            seen: Dict[Tuple, int] = {}
            for i, r in enumerate(rows):
                _check_row(c, r, f"rows[{i}]", methods, protocols, declared)
                if isinstance(r, Mapping):
                    k = (r.get("method"), r.get("nfe"), r.get("metric"))
                    if k in seen:
                        c.err(f"rows[{i}]", f"duplicate of rows[{seen[k]}] (method={k[0]!r}, nfe={k[1]!r}, "
                                            f"metric={k[2]!r}); one row per (method, nfe, metric)")
                    else:
                        seen[k] = i

    # timing
    timing = d.get("timing")
    if "timing" in d:
        if not isinstance(timing, list):
            c.err("timing", f"expected an array, got {_tname(timing)}")
        else:
            seen_t: Dict[Tuple, int] = {}
            for i, t in enumerate(timing):
                w = f"timing[{i}]"
                if not c.obj(t, w):
                    continue
                c.keys(t, w, _TIMING_REQUIRED, _TIMING_OPTIONAL, hint="; put additional information under 'extra'")
                if c.string(t.get("method"), f"{w}.method") and methods is not None and t["method"] not in methods:
                    c.err(f"{w}.method", f"{t['method']!r} is not a key of 'methods'")
                c.integer(t.get("nfe"), f"{w}.nfe", minimum=1)
                c.number(t.get("guidance_scale"), f"{w}.guidance_scale", minimum=0)
                c.number(t.get("denoise_ms_median"), f"{w}.denoise_ms_median", minimum=0, strict_min=True)
                c.number(t.get("denoise_ms_iqr"), f"{w}.denoise_ms_iqr", minimum=0)
                c.string(t.get("device"), f"{w}.device")
                c.string(t.get("dtype"), f"{w}.dtype")
                for k in _TIMING_OPTIONAL_FLOATS:
                    c.number(t.get(k), f"{w}.{k}", minimum=0, nullable=True)
                c.integer(t.get("n_repeats"), f"{w}.n_repeats", minimum=1, nullable=True)
                c.integer(t.get("n"), f"{w}.n", minimum=1, nullable=True)
                for k in ("clock", "note"):
                    c.string(t.get(k), f"{w}.{k}", nonempty=False, nullable=True)
                k = (t.get("method"), t.get("nfe"))
                if k in seen_t:
                    c.err(w, f"duplicate of timing[{seen_t[k]}] (method={k[0]!r}, nfe={k[1]!r})")
                else:
                    seen_t[k] = i

    # vbench
    vb = d.get("vbench")
    if "vbench" in d and c.obj(vb, "vbench"):
        if vb and "vbench" not in declared:
            c.err("provenance.protocols", "has no 'vbench' entry but the file has VBench results")
        for mid, e in vb.items():
            w = f"vbench.{mid}"
            if methods is not None and mid not in methods:
                c.err(w, f"{mid!r} is not a key of 'methods'")
            if not c.obj(e, w):
                continue
            c.keys(e, w, _VBENCH_REQUIRED, _VBENCH_OPTIONAL)
            scores = e.get("scores")
            if "scores" in e and c.obj(scores, f"{w}.scores"):
                for dim, v in scores.items():
                    if dim not in VBENCH_DIMENSIONS:
                        c.err(f"{w}.scores.{dim}", f"not a VBench dimension (known: {', '.join(VBENCH_DIMENSIONS)})")
                    c.number(v, f"{w}.scores.{dim}", minimum=0, maximum=1)
            for k in VBENCH_SUMMARIES:
                c.number(e.get(k), f"{w}.{k}", minimum=0, maximum=100, nullable=True)
            skipped = e.get("skipped")
            if "skipped" in e and c.obj(skipped, f"{w}.skipped"):
                for dim, why in skipped.items():
                    if dim not in VBENCH_DIMENSIONS:
                        c.err(f"{w}.skipped.{dim}", "not a VBench dimension")
                    c.string(why, f"{w}.skipped.{dim}")
            if c.boolean(e.get("partial"), f"{w}.partial") and isinstance(scores, Mapping):
                missing = [x for x in VBENCH_DIMENSIONS if x not in scores]
                if e["partial"] != bool(missing):
                    c.err(f"{w}.partial", f"is {e['partial']} but {len(missing)} of {len(VBENCH_DIMENSIONS)} "
                                          f"dimensions are missing from scores; partial must be true exactly "
                                          f"when some are missing")
            c.integer(e.get("nfe"), f"{w}.nfe", minimum=1, nullable=True)
            c.integer(e.get("n_videos"), f"{w}.n_videos", minimum=1, nullable=True)
            if e.get("mode") is not None and e.get("mode") not in ("vbench_standard", "custom_input"):
                c.err(f"{w}.mode", f"must be 'vbench_standard', 'custom_input' or null, got {e.get('mode')!r}")
            mv = e.get("missing_videos")
            if mv is not None and c.obj(mv, f"{w}.missing_videos"):
                for dim, n in mv.items():
                    if dim not in VBENCH_DIMENSIONS:
                        c.err(f"{w}.missing_videos.{dim}", "not a VBench dimension")
                    c.integer(n, f"{w}.missing_videos.{dim}", minimum=0)

    # ablation
    ab = d.get("ablation")
    if ab is not None:
        if not isinstance(ab, list):
            c.err("ablation", f"expected an array or null, got {_tname(ab)}")
        else:
            variants: Dict[str, int] = {}
            for i, a in enumerate(ab):
                w = f"ablation[{i}]"
                if not c.obj(a, w):
                    continue
                c.keys(a, w, _ABLATION_REQUIRED)
                if c.string(a.get("variant"), f"{w}.variant"):
                    if a["variant"] in variants:
                        c.err(f"{w}.variant", f"{a['variant']!r} repeats ablation[{variants[a['variant']]}]")
                    variants[a["variant"]] = i
                c.integer(a.get("train_step"), f"{w}.train_step", minimum=0, nullable=True)
                if a.get("distillation") not in DISTILLATIONS:
                    c.err(f"{w}.distillation", f"must be one of {', '.join(DISTILLATIONS)}, got {a.get('distillation')!r}")
                arows = a.get("rows")
                if not isinstance(arows, list):
                    c.err(f"{w}.rows", f"expected an array, got {_tname(arows)}")
                else:
                    for j, r in enumerate(arows):
                        _check_row(c, r, f"{w}.rows[{j}]", None, protocols, declared)

    # bootstrap
    b = d.get("bootstrap")
    if "bootstrap" in d and c.obj(b, "bootstrap"):
        c.keys(b, "bootstrap", _BOOT_REQUIRED)
        c.integer(b.get("n_boot"), "bootstrap.n_boot", minimum=0)
        if c.integer(b.get("seed"), "bootstrap.seed") and isinstance(seeds, Mapping) \
                and isinstance(seeds.get("bootstrap_seed"), int) and seeds["bootstrap_seed"] != b["seed"]:
            c.err("bootstrap.seed", f"{b['seed']} differs from provenance.seeds.bootstrap_seed "
                                    f"({seeds['bootstrap_seed']})")
        if c.number(b.get("alpha"), "bootstrap.alpha", minimum=0, maximum=1, strict_min=True) and b["alpha"] >= 1:
            c.err("bootstrap.alpha", "must be below 1")
        c.string(b.get("method"), "bootstrap.method")

    if c.problems:
        raise SchemaError(c.problems, source)


def as_results(results: Union[Results, Mapping[str, Any]]) -> Results:
    """Accept a :class:`Results` or a plain dict (validated on the way in)."""
    if isinstance(results, Results):
        return results
    if isinstance(results, Mapping):
        return Results.from_dict(results)
    raise TypeError(f"expected a Results object or a results dict, got {type(results).__name__}")


# ---------------------------------------------------------------- I/O
def load(path: PathLike) -> Results:
    """Read and validate a results.json. Errors name the file and every problem."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"results file not found: {p}")
    try:
        with p.open("r", encoding="utf-8") as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise SchemaError([f"not valid JSON: {e}"], str(p)) from None
    return Results.from_dict(d, source=str(p))


def _atomic_write(path: PathLike, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


def save(path: PathLike, results: Union[Results, Mapping[str, Any]]) -> Path:
    """Validate and write ``results`` as JSON, atomically (readers never see half a file)."""
    d = as_results(results).to_dict()
    validate(d)  # round-trip check: what we write must read back
    return _atomic_write(path, json.dumps(d, indent=2, allow_nan=False, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- comparability
def parity_version(res: Results) -> str:
    """The parity version of the pipeline that made ``res`` ("1" for files without one)."""
    return str((res.provenance.parity or {}).get("version", 1))


def comparable(a: Union[Results, Mapping[str, Any]], b: Union[Results, Mapping[str, Any]]) -> List[str]:
    """Reasons why two results must not be compared; an empty list means they may be.

    Different schema versions, weights modes, metric protocols (name or
    version, for every metric family both files use), prompt sets, FVD
    sample sizes (FVD is biased by N) or sets of scored VBench dimensions all
    make numbers incomparable.
    """
    ra, rb = as_results(a), as_results(b)
    reasons: List[str] = []
    va, vb = parity_version(ra), parity_version(rb)
    if va != vb:
        reasons.append(f"made by pipelines of different parity versions ({va} vs {vb}): version 2 matches the "
                       f"authors' code stage by stage (per-frame motion norm, their LoRA fusion, the personalized "
                       f"VAE, truncated frames, DPM++ ending at sigma_min, I3D BatchNorm eps 1e-5), so clips and "
                       f"numbers from version 1 measure another pipeline: regenerate the older run (or baseline) "
                       f"with this version")
    if ra.schema_version != rb.schema_version:
        reasons.append(f"schema versions differ: {ra.schema_version} vs {rb.schema_version}")
    if ra.weights_mode != rb.weights_mode:
        reasons.append(f"weights modes differ: {ra.weights_mode!r} vs {rb.weights_mode!r} "
                       f"(numbers from different weights measure different models)")
    fams_a = {metric_family(r.metric) for r in ra.rows} | ({"vbench"} if ra.vbench else set())
    fams_b = {metric_family(r.metric) for r in rb.rows} | ({"vbench"} if rb.vbench else set())
    for fam in sorted(fams_a & fams_b):
        pa, pb = ra.provenance.protocols.get(fam), rb.provenance.protocols.get(fam)
        if pa is None or pb is None:
            continue
        if (pa["name"], str(pa["version"]), protocol_id(pa)) != (pb["name"], str(pb["version"]), protocol_id(pb)):
            reasons.append(f"{fam} protocols differ: {pa['name']} v{pa['version']} ({protocol_id(pa)}) vs "
                           f"{pb['name']} v{pb['version']} ({protocol_id(pb)})")
    psa, psb = ra.provenance.prompt_set, rb.provenance.prompt_set
    if psa.get("name") != psb.get("name"):
        reasons.append(f"prompt sets differ: {psa.get('name')!r} vs {psb.get('name')!r}")
    elif psa.get("sha256") and psb.get("sha256") and psa["sha256"] != psb["sha256"]:
        reasons.append(f"prompt set {psa.get('name')!r} has different contents "
                       f"(sha256 {psa['sha256'][:12]}... vs {psb['sha256'][:12]}...)")
    for mid in sorted(set(ra.vbench) & set(rb.vbench)):
        da, db = set(ra.vbench[mid].scores), set(rb.vbench[mid].scores)
        if da != db:
            reasons.append(f"VBench for {mid} scored different dimensions ({len(da)} vs {len(db)}; "
                           f"only in one: {', '.join(sorted(da ^ db))}), so its totals differ in meaning")
    for r in ra.rows:
        if r.metric != "fvd":
            continue
        o = rb.row(r.method, r.nfe, r.metric)
        if o is not None and o.n != r.n:
            reasons.append(f"FVD of {r.method} at {r.nfe} steps uses {r.n} clips vs {o.n} "
                           f"(FVD is biased by sample size; compare only at equal N)")
    return reasons


# ---------------------------------------------------------------- flat views
_DF_COLUMNS = ["method", "display_name", "nfe", "metric", "value", "ci_low", "ci_high", "ci_half_width",
               "n", "protocol", "higher_is_better", "source", "weights_mode", "experiment"]


def flat_rows(res: Results) -> List[Dict[str, Any]]:
    """Rows plus VBench summaries and dimensions (percent) as flat dicts, one per (method, nfe, metric)."""
    out = []
    have = {r.key for r in res.rows}
    for r in res.rows:
        out.append({"method": r.method, "display_name": res.display_name(r.method), "nfe": r.nfe,
                    "metric": r.metric, "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                    "ci_half_width": r.ci_half_width, "n": r.n, "protocol": r.protocol,
                    "higher_is_better": higher_is_better(r.metric), "source": "rows"})
    # VBench summaries live in their own section; expose them as rows too (percent).
    vproto = res.provenance.protocols.get("vbench")
    for mid, e in res.vbench.items():
        if e.nfe is None:
            continue
        cells = [(f"vbench_{s}", getattr(e, s)) for s in VBENCH_SUMMARIES]
        cells += [(f"vbench_{dim}", 100.0 * v) for dim, v in e.scores.items()]
        for metric, v in cells:
            if v is None or (mid, e.nfe, metric) in have:
                continue
            out.append({"method": mid, "display_name": res.display_name(mid), "nfe": e.nfe, "metric": metric,
                        "value": float(v), "ci_low": None, "ci_high": None, "ci_half_width": None,
                        "n": e.n_videos, "protocol": protocol_id(vproto) if vproto else None,
                        "higher_is_better": True, "source": "vbench"})
    for o in out:
        o["weights_mode"] = res.weights_mode
        o["experiment"] = res.run.experiment
    return out


def to_dataframe(results: Union[Results, Mapping[str, Any]]):
    """One row per (method, nfe, metric), including VBench summaries and dimensions (percent)."""
    import pandas as pd

    res = as_results(results)
    df = pd.DataFrame(flat_rows(res), columns=_DF_COLUMNS)
    order = {m: i for i, m in enumerate(res.method_order())}
    if len(df):
        df = df.sort_values(by=["metric", "method", "nfe"], key=lambda s: s.map(order) if s.name == "method" else s,
                            kind="stable").reset_index(drop=True)
    return df


def ablation_dataframe(results: Union[Results, Mapping[str, Any]]):
    """One row per (variant, method, nfe, metric) of the ablation section (empty if none)."""
    import pandas as pd

    res = as_results(results)
    recs = []
    for a in res.ablation or []:
        for r in a.rows:
            recs.append({"variant": a.variant, "distillation": a.distillation, "train_step": a.train_step,
                         "method": r.method, "nfe": r.nfe, "metric": r.metric, "value": r.value,
                         "ci_low": r.ci_low, "ci_high": r.ci_high, "n": r.n, "protocol": r.protocol})
    return pd.DataFrame(recs, columns=["variant", "distillation", "train_step", "method", "nfe", "metric",
                                       "value", "ci_low", "ci_high", "n", "protocol"])


def write_csv(path: PathLike, results: Union[Results, Mapping[str, Any]]) -> Path:
    """Write :func:`to_dataframe` as CSV (atomically)."""
    df = to_dataframe(results)
    return _atomic_write(path, df.to_csv(index=False, lineterminator="\n"))
