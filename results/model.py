"""The results file (``results.json``) as one typed model.

Every field, its type, its range and its description live here; validation
(``Results.model_validate``), the JSON Schema (``python -m results schema``) and
``results/SCHEMA.md`` (``python -m results schema --markdown``) all come from these
classes. Unknown keys are refused everywhere except inside free-form objects (``extra``,
``config``, ``weights``...), so typos fail loudly. The cross-references between
sections (row methods, protocols, seeds, VBench flags) are checked by
:func:`cross_reference_problems` once every section has parsed.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Dict, List, Literal, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.errors import InputError, LcmbenchError
from common.names import did_you_mean
from metrics import available as available_metrics
from metrics import family as metric_family
from metrics import is_known as is_known_metric
from metrics import row_metrics
from metrics.vbench_protocol import ALL_DIMENSIONS, MODES as VBENCH_MODES

from results.registry import row_metric_summary, section_plugins

SCHEMA_VERSION = "1.0"
WEIGHTS_MODES = ("tiny", "random", "pretrained")
DEFAULT_LABELS = {
    "tiny": "TINY RANDOM WEIGHTS - not comparable to paper numbers",
    "random": "RANDOM FULL-SIZE WEIGHTS - timing only; quality metrics are meaningless",
    "pretrained": "",
}
_ID = re.compile(r"^[a-z0-9_]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Free = Dict[str, Any]   # a free-form object: any keys


class CrossReferenceError(LcmbenchError, ValueError):
    """Problems a validator found, each as (location relative to the validated object,
    message); results.schema prefixes the object's own location."""

    def __init__(self, problems: List[Tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))


class _Strict(BaseModel):
    # strict: "4" is no integer, 1 is no boolean; no NaN or infinity anywhere
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=False)


def _iso(value: str) -> str:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"not an ISO 8601 timestamp: {value!r} (e.g. '2024-05-01T12:00:00+00:00')") from None
    return value


def protocol_id(protocol: Dict[str, Any]) -> str:
    """The identifier rows carry for a protocol entry: its ``id`` if set, else its
    ``feature_key`` (the metric's name for its stored features, which changes whenever
    they would), else ``"<name>-v<version>"``."""
    for key in ("id", "feature_key"):
        if protocol.get(key):
            return str(protocol[key])
    return f"{protocol['name']}-v{protocol['version']}"


def unet_evals(nfe: int, guidance_scale: Optional[float]) -> int:
    """UNet evaluations per video: CFG doubles every step (diffusers: on when > 1)."""
    return int(nfe) * (2 if guidance_scale is not None and guidance_scale > 1.0 else 1)


# ---------------------------------------------------------------- sections

class RunInfo(_Strict):
    """What ran, when, with which weights."""
    experiment: str = Field(min_length=1, description='e.g. "smoke"')
    run_dir: str = Field(min_length=1)
    started_at: str = Field(description="ISO 8601")
    finished_at: str = Field(description="ISO 8601, not before started_at")
    wall_time_s: float = Field(ge=0)
    weights_mode: Literal["tiny", "random", "pretrained"]
    label: str = Field(description="a warning shown on every table, plot and report; must say what the numbers "
                                   "are unless weights_mode is pretrained")
    description: str = ""

    _check_times = field_validator("started_at", "finished_at")(_iso)

    @model_validator(mode="after")
    def _order_and_label(self) -> "RunInfo":
        t0 = datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))
        t1 = datetime.fromisoformat(self.finished_at.replace("Z", "+00:00"))
        try:
            later = t1 < t0
        except TypeError:
            raise CrossReferenceError([("", "started_at and finished_at must both carry a timezone or both not")])
        problems = []
        if later:
            problems.append(("finished_at", f"is before run.started_at ({self.finished_at} < {self.started_at})"))
        if self.weights_mode != "pretrained" and not self.label.strip():
            problems.append(("label", f"must say what the numbers are for weights_mode {self.weights_mode!r}, "
                                      f"e.g. {DEFAULT_LABELS[self.weights_mode]!r}"))
        if problems:
            raise CrossReferenceError(problems)
        return self


class DeviceInfo(_Strict):
    """The device the clips were made on (``models.device.device_info``)."""
    model_config = ConfigDict(extra="allow", strict=True)   # further keys: capability, torch_threads...
    type: Literal["cpu", "cuda"]
    name: str = Field(min_length=1)
    cuda: Optional[str]
    dtype: str = Field(min_length=1, description='e.g. "float32"')


class Provenance(_Strict):
    """Where the numbers came from: code, configuration, seeds, packages, device, metric
    protocols and prompt set."""
    git_commit: Optional[str]
    git_dirty: Optional[bool]
    config: Free = Field(description="the fully resolved run configuration")
    seeds: Dict[str, int] = Field(description="base_seed and bootstrap_seed required, others allowed")
    packages: Dict[str, Optional[str]] = Field(description="distribution -> version, null when not installed")
    device: DeviceInfo
    protocols: Dict[str, Free] = Field(description="metric family (a registered metric's name, e.g. fvd) -> at "
                                                   "least name and version (str or int), optionally id / "
                                                   "feature_key (the identifier rows carry)")
    prompt_set: Free = Field(description="name (str) and sha256 (64 hex or null); further keys allowed")
    generation: Optional[Free] = None
    parity: Optional[Free] = Field(None, description="version and the parity choices of the pipeline; absent "
                                                     "means version 1, never compared with version 2")
    extra: Free = Field(default_factory=dict)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: Dict[str, int]) -> Dict[str, int]:
        missing = [k for k in ("base_seed", "bootstrap_seed") if k not in seeds]
        if missing:
            raise CrossReferenceError([("", f"missing required field {k!r}") for k in missing])
        return seeds

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, protocols: Dict[str, Free]) -> Dict[str, Free]:
        problems = []
        families = available_metrics()
        for fam, p in protocols.items():
            at = fam
            if fam not in families:
                problems.append((at, f"not a registered metric.{did_you_mean(fam, families)} Protocol families "
                                     f"are the registered metrics: {', '.join(families)}."))
            if "name" not in p:
                problems.append((at, "missing required field 'name'"))
            elif not isinstance(p["name"], str) or not p["name"]:
                problems.append((f"{at}.name", f"expected a non-empty string, got {p['name']!r}"))
            if "version" not in p:
                problems.append((at, "missing required field 'version' (bump it whenever the metric's numbers "
                                     "would change, so old and new results are never compared)"))
            elif not _is_version(p["version"]):
                problems.append((f"{at}.version", f"expected a non-empty string or an integer, got {p['version']!r}"))
        if problems:
            raise CrossReferenceError(problems)
        return protocols

    @field_validator("prompt_set")
    @classmethod
    def _prompt_set(cls, ps: Free) -> Free:
        problems = [("", f"missing required field {k!r}") for k in ("name", "sha256") if k not in ps]
        if "name" in ps and (not isinstance(ps["name"], str) or not ps["name"].strip()):
            problems.append(("name", "expected a non-empty string"))
        sha = ps.get("sha256")
        if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
            problems.append(("sha256", "expected 64 lowercase hex digits"))
        if problems:
            raise CrossReferenceError(problems)
        return ps

    @field_validator("parity")
    @classmethod
    def _parity(cls, parity: Optional[Free]) -> Optional[Free]:
        if parity is not None and not _is_version(parity.get("version")):
            raise CrossReferenceError([("version", "expected a non-empty string or an integer (the parity version "
                                                   "of the code that made the clips)")])
        return parity


def _is_version(v: Any) -> bool:
    return (isinstance(v, str) and bool(v.strip())) or (isinstance(v, int) and not isinstance(v, bool))


class MethodInfo(_Strict):
    """How one method samples (its registry spec as resolved for this run)."""
    display_name: str = Field(min_length=1, description='e.g. "Ours"')
    weights: Free = Field(description="model ids, files, sha256s")
    scheduler: Free = Field(description="class name and settings")
    guidance_scale: float = Field(ge=0, description="CFG is on only above 1")
    spec: Free = Field(default_factory=dict, description="the full model spec (spec.color: the plots' colour)")
    fingerprint: Optional[str] = None
    extra: Free = Field(default_factory=dict)


class Row(_Strict):
    """One (method, nfe, metric) measurement, in the units and direction its metric's facts
    declare (``metrics.facts(metric)``: e.g. FVD as is, lower is better; CLIPSIM x100 as in
    the paper; VBench rows in percent)."""
    method: str = Field(min_length=1, description="a key of methods")
    nfe: int = Field(ge=1, description="denoising steps")
    metric: str = Field(description="a row metric of a registered metric plug-in (metrics.row_metrics(); the "
                                    "built-ins: FVD, CLIPSIM, VBench total / quality / semantic and dimensions)")
    value: float
    n: int = Field(ge=1, description="clips scored")
    protocol: str = Field(min_length=1, description="the id of provenance.protocols[<family>]")
    ci_low: Optional[float] = Field(None, description="bootstrap percentile interval; for a biased statistic "
                                                      "such as FVD it need not contain value")
    ci_high: Optional[float] = None
    extra: Free = Field(default_factory=dict)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if not is_known_metric(metric):
            raise InputError(f"unknown metric {metric!r}.{did_you_mean(metric, row_metrics())} Use a row metric of "
                             f"a registered metric plug-in: {row_metric_summary()}.")
        return metric

    @model_validator(mode="after")
    def _interval(self) -> "Row":
        if (self.ci_low is None) != (self.ci_high is None):
            raise InputError("ci_low and ci_high must both be numbers or both be null")
        if self.ci_low is not None and self.ci_low > self.ci_high:
            raise InputError(f"ci_low ({self.ci_low}) is greater than ci_high ({self.ci_high})")
        return self

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
        return self.model_dump()


class TimingRow(_Strict):
    """One timed (method, nfe): the denoising loop only, VAE decoding excluded as in the paper."""
    method: str = Field(min_length=1)
    nfe: int = Field(ge=1)
    guidance_scale: float = Field(ge=0)
    denoise_ms_median: float = Field(gt=0)
    denoise_ms_iqr: float = Field(ge=0)
    device: str = Field(min_length=1)
    dtype: str = Field(min_length=1)
    text_encode_ms: Optional[float] = Field(None, ge=0)
    vae_ms: Optional[float] = Field(None, ge=0)
    peak_mem_mb: Optional[float] = Field(None, ge=0)
    tflop_per_unet_eval: Optional[float] = Field(None, ge=0)
    utilisation: Optional[float] = Field(None, ge=0, description="fraction of the device's peak")
    n_repeats: Optional[int] = Field(None, ge=1)
    n: Optional[int] = Field(None, ge=1, description="clips timed")
    clock: Optional[str] = Field(None, description='e.g. "cuda-event"')
    note: Optional[str] = None
    extra: Free = Field(default_factory=dict)

    @property
    def unet_evals(self) -> int:
        return unet_evals(self.nfe, self.guidance_scale)


class VBenchEntry(_Strict):
    """One method's VBench scores at one step count."""
    scores: Dict[str, float] = Field(description="VBench dimension -> raw score, a fraction in 0..1")
    total: Optional[float] = Field(ge=0, le=100, description="percent, null when nothing was scored")
    quality: Optional[float] = Field(ge=0, le=100)
    semantic: Optional[float] = Field(ge=0, le=100)
    partial: bool = Field(description="true exactly when some of the 16 dimensions are not in scores")
    skipped: Dict[str, str] = Field(description="dimension -> reason")
    nfe: Optional[int] = Field(None, ge=1)
    n_videos: Optional[int] = Field(None, ge=1)
    mode: Optional[Literal[VBENCH_MODES]] = None
    missing_videos: Dict[str, int] = Field(default_factory=dict, description="dimension -> standard videos not "
                                                                            "made; non-empty: a prompt subset")
    non_standard: Dict[str, str] = Field(default_factory=dict, description="dimension -> how it departs from "
                                                                          "VBench's protocol")
    static_filter: Optional[Dict[str, Any]] = Field(
        None, description="VBench's static filter for temporal_flickering: whether it ran (applied, or the reason "
                          "it did not), each video's flow measures and whether it was kept, the kept videos per "
                          "prompt; null when temporal_flickering was not scored")
    scored_by: Dict[str, List[str]] = Field(
        default_factory=dict, description="worker -> the video files it scored (any dimension): 'main' for one "
                                          "process, 'rank<r>' for torchrun ranks, 'shard<i>' for shard jobs")

    @model_validator(mode="after")
    def _dimensions(self) -> "VBenchEntry":
        problems = []
        for section in ("scores", "skipped", "missing_videos", "non_standard"):
            for dim in getattr(self, section):
                if dim not in ALL_DIMENSIONS:
                    problems.append((f"{section}.{dim}", f"not a VBench dimension (known: {', '.join(ALL_DIMENSIONS)})"))
        for dim, v in self.scores.items():
            if not 0 <= v <= 1:
                problems.append((f"scores.{dim}", f"must be in 0..1, got {v}"))
        for dim, n in self.missing_videos.items():
            if n < 0:
                problems.append((f"missing_videos.{dim}", f"must be >= 0, got {n}"))
        missing = [d for d in ALL_DIMENSIONS if d not in self.scores]
        if self.partial != bool(missing):
            problems.append(("partial", f"is {self.partial} but {len(missing)} of {len(ALL_DIMENSIONS)} dimensions "
                                        f"are missing from scores; partial must be true exactly when some are "
                                        f"missing"))
        if problems:
            raise CrossReferenceError(problems)
        return self


class AblationEntry(_Strict):
    """One trained variant of the distillation ablation (decoupled vs joint)."""
    variant: str = Field(min_length=1)
    train_step: Optional[int] = Field(ge=0)
    distillation: Literal["decoupled", "joint"]
    rows: List[Row] = Field(description="rows as above; their method need not be in methods")


class BootstrapInfo(_Strict):
    """How the confidence intervals were made."""
    n_boot: int = Field(ge=0, description="0 means no intervals")
    seed: int = Field(description="equal to provenance.seeds.bootstrap_seed")
    alpha: float = Field(gt=0, le=1, description="below 1; the interval is the central 1 - alpha one")
    method: str = Field(min_length=1, description='e.g. "percentile over clip resampling"')

    @field_validator("alpha")
    @classmethod
    def _below_one(cls, alpha: float) -> float:
        if alpha >= 1:
            raise InputError("must be below 1")
        return alpha


class Results(_Strict):
    """Everything a benchmark run measured, with enough provenance to reproduce it and to
    refuse meaningless comparisons. Every run that scores clips writes one into its run
    directory as ``results.json``.

    - Unknown keys are refused (typos fail loudly), except inside free-form objects
      (``config``, ``packages``, protocol entries, ``weights``, ``scheduler``, ``spec``,
      ``generation``, ``prompt_set``, ``device``'s further keys and every ``extra``).
    - Types are strict: ``"4"`` is no integer, ``1`` is no boolean; numbers are finite.
    - Validation reports every problem at once, each with its location, e.g.
      ``rows[3].protocol: 'animatelcm-v1' does not match provenance.protocols.fvd``.
    - Units: FVD as is (lower is better); CLIPSIM x100 as in the paper; ``vbench_*`` rows
      and VBench total / quality / semantic in percent; VBench per-dimension ``scores``
      as fractions (0..1); times in milliseconds; memory in MB.
    """
    schema_version: str = Field(description=f'"{SCHEMA_VERSION}"; files of other versions are never compared')
    run: RunInfo
    provenance: Provenance
    methods: Dict[str, MethodInfo] = Field(description="method id ([a-z0-9_]+) -> method")
    rows: List[Row] = Field(description="one per (method, nfe, metric)")
    timing: List[TimingRow] = Field(default_factory=list, description="one per timed (method, nfe)")
    vbench: Dict[str, VBenchEntry] = Field(default_factory=dict, description="method id -> VBench scores; "
                                                                             "needs provenance.protocols.vbench")
    ablation: Optional[List[AblationEntry]] = Field(None, description="one per trained variant")
    bootstrap: BootstrapInfo

    @field_validator("schema_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if v != SCHEMA_VERSION:
            raise InputError(f"this code reads schema {SCHEMA_VERSION!r}, the file is {v!r}; regenerate it "
                             f"or use a matching lcmbench version")
        return v

    @model_validator(mode="after")
    def _cross_references(self) -> "Results":
        problems = cross_reference_problems(self)
        if problems:
            raise CrossReferenceError([tuple(p.split(": ", 1)) for p in problems])
        return self

    # -- conversion
    def to_dict(self) -> Dict[str, Any]:
        d = self.model_dump()
        if d["ablation"] is None:
            del d["ablation"]
        return d

    # -- convenience
    @property
    def weights_mode(self) -> str:
        return self.run.weights_mode

    @property
    def label(self) -> str:
        return self.run.label

    def display_name(self, method: str) -> str:
        return self.methods[method].display_name if method in self.methods else method

    def method_order(self) -> List[str]:
        """Methods in presentation order: the order of ``methods`` (the experiment's, as
        the pipeline records it), then any other method id in rows or timing."""
        present = {r.method for r in self.rows} | {t.method for t in self.timing}
        known = list(self.methods)
        return known + sorted(present - set(known))

    def method_color(self, method: str) -> Optional[str]:
        """The colour the method's spec asks for (``spec.color``), or None."""
        info = self.methods.get(method)
        return info.spec.get("color") if info is not None else None

    def row(self, method: str, nfe: int, metric: str) -> Optional[Row]:
        return next((r for r in self.rows if r.method == method and r.nfe == nfe and r.metric == metric), None)

    def nfes(self, metric: Optional[str] = None) -> List[int]:
        return sorted({r.nfe for r in self.rows if metric is None or r.metric == metric})

    def metrics(self) -> List[str]:
        return list(dict.fromkeys(r.metric for r in self.rows))

    def timing_for(self, method: str, nfe: int) -> Optional[TimingRow]:
        return next((t for t in self.timing if t.method == method and t.nfe == nfe), None)


def _row_problems(r: Row, at: str, methods: Optional[Dict[str, Any]], protocols: Dict[str, Free]) -> List[str]:
    out = []
    if methods is not None and r.method not in methods:
        out.append(f"{at}.method: {r.method!r} is not a key of 'methods' ({', '.join(sorted(methods)) or 'none'})")
    fam = metric_family(r.metric)
    proto = protocols.get(fam)
    if proto is None:
        out.append(f"{at}.protocol: provenance.protocols has no {fam!r} entry describing how {r.metric!r} was "
                   f"measured")
    elif r.protocol != protocol_id(proto):
        out.append(f"{at}.protocol: {r.protocol!r} does not match provenance.protocols.{fam} "
                   f"({protocol_id(proto)!r})")
    return out


def cross_reference_problems(res: Results) -> List[str]:
    """What the sections say about each other: row methods exist in ``methods``, row
    protocols match ``provenance.protocols``, no duplicate (method, nfe, metric), a
    consistent bootstrap seed, VBench results declare their protocol."""
    problems: List[str] = []
    protocols = res.provenance.protocols
    for mid in res.methods:
        if not _ID.match(mid):
            problems.append(f"methods.{mid}: method ids use lowercase letters, digits and '_' only")
    seen: Dict[Tuple, int] = {}
    for i, r in enumerate(res.rows):
        problems += _row_problems(r, f"rows[{i}]", res.methods, protocols)
        if r.key in seen:
            problems.append(f"rows[{i}]: duplicate of rows[{seen[r.key]}] (method={r.method!r}, nfe={r.nfe!r}, "
                            f"metric={r.metric!r}); one row per (method, nfe, metric)")
        seen.setdefault(r.key, i)
    seen_t: Dict[Tuple, int] = {}
    for i, t in enumerate(res.timing):
        if t.method not in res.methods:
            problems.append(f"timing[{i}].method: {t.method!r} is not a key of 'methods'")
        if (t.method, t.nfe) in seen_t:
            problems.append(f"timing[{i}]: duplicate of timing[{seen_t[(t.method, t.nfe)]}] (method={t.method!r}, "
                            f"nfe={t.nfe!r})")
        seen_t.setdefault((t.method, t.nfe), i)
    for section, plugin in section_plugins().items():
        if getattr(res, section, None) and plugin.name not in protocols:
            problems.append(f"provenance.protocols: has no {plugin.name!r} entry but the file has "
                            f"{plugin.display_name} results (section {section!r})")
    for mid in res.vbench:
        if mid not in res.methods:
            problems.append(f"vbench.{mid}: {mid!r} is not a key of 'methods'")
    variants: Dict[str, int] = {}
    for i, a in enumerate(res.ablation or []):
        if a.variant in variants:
            problems.append(f"ablation[{i}].variant: {a.variant!r} repeats ablation[{variants[a.variant]}]")
        variants.setdefault(a.variant, i)
        for j, r in enumerate(a.rows):
            problems += _row_problems(r, f"ablation[{i}].rows[{j}]", None, protocols)
    boot = res.provenance.seeds.get("bootstrap_seed")
    if boot is not None and boot != res.bootstrap.seed:
        problems.append(f"bootstrap.seed: {res.bootstrap.seed} differs from provenance.seeds.bootstrap_seed ({boot})")
    return problems


