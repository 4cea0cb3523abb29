"""Dataclass schemas for the Hydra configs (registered in the ConfigStore), so a
misspelt key is an error when the config is composed, before anything runs."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import metrics as metric_registry
from common.errors import InputError
from metrics.vbench_protocol import STANDARD_PROMPT_SET
from metrics.vbench_static_filter import SAMPLED_PER_PROMPT
from models.fast import FastPath
from models.registry import MODELS, resolve_spec
from models.schedulers import resolve_sampler, step_limit
from models.specs import LORA_CONVENTIONS, MOTION_NORMS, QUANTIZE, ModelSpec, SamplerSpec

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
STAGES = ("preflight", "timing", "generate", "score", "report")
HUGE_PLAN_S = 365 * 86400   # a plan estimated beyond one GPU-year is a typo until preflight.allow_huge=true
HUGE_PLAN_GPU = "H100"      # pretrained weights on a CPU: the year is timed on this GPU
DEFAULT_STAGES = ("preflight", "generate", "score", "report")   # timing runs only when asked (experiment=timing)


@dataclass
class ProtocolConfig:
    name: str = "ucf101"
    version: str = "1"
    prompt_set: str = "classnames"          # classnames | official | file | vbench_standard
    prompt_file: Optional[str] = None
    classes: Optional[List[str]] = None     # a subset of the prompt set's classes (None: all 101 UCF-101 classes)
    num_classes: Optional[int] = None       # the first N of those classes
    videos_per_prompt: int = 24
    # prompt_set=vbench_standard: more videos for the prompts one VBench dimension reads, e.g.
    # {temporal_flickering: 25} (VBench's protocol: its static filter keeps 5 static videos of
    # 25); indices 0..videos_per_prompt-1 stay the same clips, and the other dimensions read only
    # those. null (no pool) is also how run folders recorded before this setting read it
    videos_per_prompt_by_dimension: Optional[Dict[str, int]] = None
    nfe: List[int] = field(default_factory=lambda: [1, 2, 4, 8])
    num_frames: int = 16
    height: int = 512
    width: int = 512
    seed: int = 0                           # base of the per-(prompt, video) noise seeds


@dataclass
class MetricConfig:
    enabled: bool = True
    options: Dict[str, Any] = field(default_factory=dict)   # keyword arguments of the metric's build()


@dataclass
class FastPathConfig(FastPath):
    """runner.fast: the fast generation path (fields and meaning in models/fast.py FastPath).
    enabled=false is the plain diffusers path. Recorded with the resolved config."""


@dataclass
class TimingConfig:
    """runner.timing: the timing stage (bench/timing/denoising.py). Students are timed at protocol.nfe."""
    warmup: int = 1                          # untimed calls per model first (compile, cuDNN autotune)
    repeats: int = 5                         # timed calls per (method, steps), interleaved
    teacher: Optional[str] = "ddim"          # this method is also timed at teacher_nfe, with its CFG
    teacher_nfe: List[int] = field(default_factory=lambda: [25, 50])
    reference: str = "animatelcm"            # headline speed-up: teacher at max(teacher_nfe) / reference here
    reference_nfe: int = 4
    share_random_weights: bool = True        # random weights: one build serves every method (same architecture)
    count_flops: bool = True                 # FLOPs per UNet evaluation and utilisation of the device's peak


@dataclass
class RunnerConfig:
    device: str = "auto"                    # auto | cpu | cuda | cuda:N
    dtype: str = "auto"                     # auto (fp16 on GPU, fp32 on CPU) | float32 | float16 | bfloat16
    batch_size: int = 1                     # clips per forward
    threads: Optional[int] = None           # CPU threads for torch (None: its default); float rounding
                                            # depends on it: runs compared clip by clip pin it
    decode_chunk_size: int = 16             # frames per VAE decode call
    save_frames: bool = False               # keep lossless uint8 frames of every clip in the store
    save_videos: bool = False               # also write an mp4 per clip (lossy; metrics use frames)
    samples_per_cell: int = 1               # clips per (method, NFE) whose frames are kept for plots/report
    progress: bool = True
    allow_unsafe_pickle: bool = False
    fast: FastPathConfig = field(default_factory=FastPathConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)


@dataclass
class ReportConfig:
    bootstrap: int = 200                    # bootstrap resamples for confidence intervals (0: none)
    bootstrap_seed: int = 0
    alpha: float = 0.05
    with_paper: bool = False                # paper numbers beside ours in the tables
    leaderboard_reference: Optional[str] = None  # method every other is paired against (leaderboard table)


@dataclass
class PreflightConfig:
    offline: bool = False                   # strict offline: no network attempt at all (also on with HF_HUB_OFFLINE=1)
    verify_hashes: bool = False             # hash every cached weight file against its Hub checksum (reads GBs)
    manifest: Optional[str] = None          # a prefetch manifest to check (sizes; sha256 too with verify_hashes)
    timing_file: Optional[str] = None       # timing results JSON for the time estimate (default: newest found)
    time_on: Optional[str] = None           # estimate the time on this device (e.g. H100), not the detected one
    utilisation: float = 0.5                # assumed fraction of peak FLOP/s when no timing results match the device
    disk_margin: float = 0.1                # free space asked for on top of the estimate (fraction)
    allow_huge: bool = False                # run a plan estimated beyond HUGE_PLAN_S (one GPU-year)
    urls: Dict[str, str] = field(default_factory=dict)  # prefetch URLs by id: fvd_detector, captions


@dataclass
class ShardConfig:
    """shard: split the clips over processes (bench/plan/shard.py). torchrun and srun ranks
    are picked up from the environment; index/count are for independent jobs (a SLURM
    job array), which then share run_dir and leave scoring to a stages=[score,report] job."""
    index: Optional[int] = None             # this job's shard, 0..count-1
    count: Optional[int] = None             # number of independent shard jobs
    use_env: bool = True                    # read RANK/WORLD_SIZE/LOCAL_RANK (torchrun) and SLURM_PROCID etc.
    timeout_min: float = 1440.0             # how long ranks wait for each other at the barrier before scoring


@dataclass
class AblationVariant:
    """ablation.variants.<method>: marks a method of the experiment as an ablation variant."""
    distillation: str = "decoupled"         # decoupled | joint
    train_step: Optional[int] = None


@dataclass
class AblationConfig:
    """ablation: your own checkpoints, one method per (strategy, training step) found on
    disk (bench/plan/checkpoints.py), plus variants listed by hand."""
    dir: Optional[str] = None               # holds one training run per strategy: <dir>/decoupled, <dir>/joint
    runs: Dict[str, Optional[str]] = field(default_factory=dict)  # strategy -> its run folder (else <dir>/<strategy>)
    motion_adapter: str = "motion_adapter"  # in each checkpoint: the MotionAdapter folder (save_pretrained)
    lora: Optional[str] = "lora.safetensors"  # in each checkpoint: the spatial LoRA file (null: the template's)
    steps: Optional[List[int]] = None       # only these training steps (default: every checkpoint found)
    template: ModelSpec = field(default_factory=ModelSpec)  # every checkpoint's other settings (model@ablation.template)
    variants: Dict[str, AblationVariant] = field(default_factory=dict)  # methods of the experiment, by hand


@dataclass
class BenchConfig:
    experiment: str = "smoke"
    description: str = ""
    weights: str = "tiny"                   # pretrained | random | tiny, for every method
    seed: int = 0                           # init seed of tiny / random weights
    cache_dir: str = "${oc.env:LCMBENCH_CACHE,${oc.env:HOME}/.cache/lcmbench}"
    run_dir: Optional[str] = None           # store + results; default: Hydra's output dir. Shared by shard jobs
    stages: List[str] = field(default_factory=lambda: list(DEFAULT_STAGES))
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    methods: Dict[str, ModelSpec] = field(default_factory=dict)
    metrics: Dict[str, MetricConfig] = field(default_factory=dict)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    preflight: PreflightConfig = field(default_factory=PreflightConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)


def settings_problems(cfg: Any) -> List[str]:
    """Values the schema's types admit but that cannot run (batch size 0, NaN scales,
    negative guidance...): each as one sentence naming the key and what to use."""
    problems: List[str] = []

    def need(ok: bool, key: str, value: Any, what: str) -> None:
        if not ok:
            problems.append(f"{key}={value!r} is not allowed: {what}.")

    def finite(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    p, r, rep = cfg.protocol, cfg.runner, cfg.report
    need(r.batch_size >= 1, "runner.batch_size", r.batch_size, "use 1 or more clips per forward")
    need(r.decode_chunk_size >= 1, "runner.decode_chunk_size", r.decode_chunk_size, "use 1 or more frames per VAE call")
    need(r.get("threads") is None or r.threads >= 1, "runner.threads", r.get("threads"),
         "use 1 or more CPU threads, or null for torch's default")
    need(r.samples_per_cell >= 0, "runner.samples_per_cell", r.samples_per_cell, "use 0 or more")
    need(r.timing.warmup >= 0, "runner.timing.warmup", r.timing.warmup, "use 0 or more warm-up calls")
    need(r.timing.repeats >= 1, "runner.timing.repeats", r.timing.repeats, "use 1 or more timed calls")
    need(rep.bootstrap >= 0, "report.bootstrap", rep.bootstrap, "use 0 (no intervals) or more resamples")
    need(finite(rep.alpha) and 0 < rep.alpha < 1, "report.alpha", rep.alpha, "use a level between 0 and 1, e.g. 0.05")
    need(p.videos_per_prompt >= 1, "protocol.videos_per_prompt", p.videos_per_prompt, "use 1 or more")
    need(p.num_classes is None or p.num_classes >= 1, "protocol.num_classes", p.num_classes, "use 1 or more, or null")
    need(p.num_frames >= 1, "protocol.num_frames", p.num_frames, "use 1 or more frames")
    for key in ("height", "width"):
        v = p[key]
        need(v >= 8 and v % 8 == 0, f"protocol.{key}", v, "use a positive multiple of 8 (the VAE downsamples by 8)")
    need(len(p.nfe) >= 1 and all(n >= 1 for n in p.nfe), "protocol.nfe", list(p.nfe),
         "use a list of step counts of 1 or more, e.g. [1,2,4,8]")
    problems += pool_problems(p)
    problems += duplicate_problems(OmegaConf.to_container(cfg, resolve=False))
    problems += step_count_problems(cfg)
    ref = rep.get("leaderboard_reference")
    need(ref is None or ref in (cfg.methods or {}), "report.leaderboard_reference", ref,
         f"use one of this experiment's methods ({', '.join(cfg.methods or {})})")
    for name, m in (cfg.methods or {}).items():
        w = f"methods.{name}"
        for key in ("lora_scale", "personalized_alpha", "motion_scale"):
            v = m.get(key)
            need(v is None or finite(v), f"{w}.{key}", v, "use a finite number")
        g = m.get("guidance_scale")
        need(g is None or (finite(g) and g >= 0), f"{w}.guidance_scale", g,
             "use 0 or more (CFG is on above 1.0)")
        scaling = (m.get("sampler") or {}).get("timestep_scaling")
        need(scaling is None or (finite(scaling) and scaling > 0), f"{w}.sampler.timestep_scaling", scaling,
             "use a positive number (LCM's c_skip / c_out factor: 10.0, MCM's demo 4.0)")
        for key, allowed in (("motion_norm", MOTION_NORMS), ("lora_convention", LORA_CONVENTIONS),
                             ("quantize", QUANTIZE)):
            v = m.get(key)
            need(v is None or v in allowed, f"{w}.{key}", v, f"use one of {', '.join(allowed)}")
    return problems


POOLED_DIMENSIONS = ("temporal_flickering",)   # VBench samples a larger pool for these only


def pool_problems(p: Any) -> List[str]:
    """protocol.videos_per_prompt_by_dimension: only VBench's pool (temporal_flickering, up to
    25 videos per prompt, at least videos_per_prompt), and only on VBench's own prompts."""
    pools = plain(get(p, "videos_per_prompt_by_dimension", {}) or {})
    if not pools:
        return []
    key = "protocol.videos_per_prompt_by_dimension"
    if p.prompt_set != STANDARD_PROMPT_SET:
        return [f"{key}={pools} is not allowed with protocol.prompt_set={p.prompt_set}: a pool is for the prompts "
                f"a VBench dimension reads, so it needs prompt_set={STANDARD_PROMPT_SET}; drop it with {key}=null."]
    other = [d for d in pools if d not in POOLED_DIMENSIONS]
    if other:
        return [f"{key}={pools} is not allowed: only {', '.join(POOLED_DIMENSIONS)} samples a pool in VBench's "
                f"protocol (its static filter keeps 5 static videos of {SAMPLED_PER_PROMPT}); the others read "
                f"indices 0..4 only; drop it with " + " ".join(f"'~{key}.{d}'" for d in other) + "."]
    low = int(p.videos_per_prompt)
    bad = {d: n for d, n in pools.items() if not low <= n <= SAMPLED_PER_PROMPT}
    if bad:
        return [f"{key}={pools} is not allowed: a pool holds protocol.videos_per_prompt={low} to "
                f"{SAMPLED_PER_PROMPT} videos per prompt (VBench's protocol samples {SAMPLED_PER_PROMPT}), e.g. "
                f"{key}.temporal_flickering={SAMPLED_PER_PROMPT}."]
    return []


# why a repeated entry cannot stand, for the lists where it is most likely
_REPEAT_HARM = {"protocol.nfe": "its clips would be made once and counted twice",
                "protocol.classes": "its clips would be counted twice"}


def duplicate_problems(node: Any, key: str = "") -> List[str]:
    """Lists with a repeated entry (protocol.nfe=[1,1], classes, per-step lists) are
    refused, not deduplicated: the user asked for something the run cannot mean."""
    out: List[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if not (key == "" and k == "hydra"):
                out += duplicate_problems(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        seen, repeated = [], []
        for item in node:
            if isinstance(item, (dict, list)):
                return out
            if item in seen and item not in repeated:
                repeated.append(item)
            seen.append(item)
        if repeated:
            once = list(dict.fromkeys(node))
            harm = _REPEAT_HARM.get(key, "a repeated entry would be counted twice")
            out.append(f"{key}={node} repeats {', '.join(map(str, repeated))}: list each entry once ({harm}), "
                       f"e.g. {key}=[{','.join(map(str, once))}].")
    return out


def step_count_problems(cfg: Any) -> List[str]:
    """Step counts each method's sampler cannot take (LCM samples from its
    original_inference_steps; every scheduler from its train timesteps), found before
    any model is built instead of in the scheduler after."""
    out: List[str] = []
    nfes = [n for n in cfg.protocol.nfe if isinstance(n, int)]
    for name, m in (cfg.methods or {}).items():
        node = OmegaConf.to_container(m, resolve=True)
        if node.get("name") not in MODELS:
            continue   # an unknown model: preflight names it
        sampler = {k: v for k, v in (node.get("sampler") or {}).items() if k in SamplerSpec.__dataclass_fields__}
        try:
            spec = resolve_spec(ModelSpec(name=node["name"], sampler=SamplerSpec(**sampler)))
            limit, why = step_limit(resolve_sampler(spec.sampler))
        except (TypeError, ValueError):
            continue   # a sampler setting it does not have: the build names it
        asked = [("protocol.nfe", list(cfg.protocol.nfe), nfes)]
        timing = cfg.runner.timing
        if name == timing.teacher and "timing" in cfg.stages:   # the teacher is also timed at these
            asked.append(("runner.timing.teacher_nfe", list(timing.teacher_nfe),
                          [n for n in timing.teacher_nfe if isinstance(n, int)]))
        for key, given, counts in asked:
            over = [n for n in counts if n > limit]
            if over:
                out.append(f"{key}={given} asks methods.{name} for {over} steps, but {why}, so it takes at most "
                           f"{limit}: use step counts up to {limit}.")
    return out


def moved_setting(key: str, value: str = "...") -> Optional[str]:
    """The one-line error for a setting of a metric's former top-level section (a metric's
    name, e.g. ``vbench.dimensions``), which is now ``metrics.<name>``; None for other keys.
    ``value``: the value given, shown in the new setting."""
    head, _, rest = key.partition(".")
    if head in BenchConfig.__dataclass_fields__ or head not in metric_registry.available():
        return None
    add = f"'+metric@metrics.{head}={head}'"
    if rest in ("", "enabled"):
        new = f"metrics.{head}" + (".enabled" if rest else "")
        return (f"{key} moved to {new}: {head} is configured as a metric; turn it on with {add} (or "
                f"metrics.{head}.enabled=true where the experiment lists it) and off with metrics.{head}.enabled=false.")
    return (f"{key} moved to metrics.{head}.options.{rest}; use {add} metrics.{head}.options.{rest}={value} "
            f"(without the {add} where the experiment lists {head} already).")


def moved_sections(node: Any, where: str) -> Optional[str]:
    """The one-line error when a config file (``where``) still has a metric's former
    top-level section (e.g. ``vbench:``)."""
    if not isinstance(node, dict):
        return None
    for key, value in node.items():
        if moved_setting(str(key)) is None:
            continue
        settings = [k for k in (value if isinstance(value, dict) else {}) if k != "enabled"]
        moved = f" and its {', '.join(settings)} under metrics.{key}.options" if settings else ""
        return (f"{where} has a top-level '{key}:' section, which moved to metrics.{key}: list "
                f"'- /metric@metrics.{key}: {key}' in its defaults{moved} (metrics: {key}: options: ...).")
    return None


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="bench_schema", node=BenchConfig)
    cs.store(group="model", name="model_schema", node=ModelSpec)
    cs.store(group="sampler", name="sampler_schema", node=SamplerSpec)
    cs.store(group="metric", name="metric_schema", node=MetricConfig)


def compose(overrides: Sequence[str]):
    """The experiment config exactly as run_bench.py composes it (Hydra compose API). A
    former metric section's setting (``vbench.nfe=2``) raises ValueError naming its new key."""
    for arg in overrides:
        key, _, value = str(arg).partition("=")
        problem = moved_setting(key.lstrip("+~"), value or "...")
        if problem:
            raise InputError(problem)
    register()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def plain(node: Any) -> Any:
    """A config node as plain Python containers (anything else as it is)."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def get(node: Any, key: str, default: Any = None) -> Any:
    """``node[key]`` of a config, a dict or an object; missing, null or unresolvable reads as ``default``."""
    try:
        value = node.get(key, default) if hasattr(node, "get") else getattr(node, key, default)
    except Exception:  # a missing or unresolvable key reads as the default
        return default
    return default if value is None else value
