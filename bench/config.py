"""Dataclass schemas for the Hydra configs (registered in the ConfigStore), so a
misspelt key is an error when the config is composed, before anything runs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from models.specs import ModelSpec, SamplerSpec

STAGES = ("preflight", "generate", "score", "report")


@dataclass
class ProtocolConfig:
    name: str = "ucf101"
    version: str = "1"
    prompt_set: str = "classnames"          # classnames | official | file
    prompt_file: Optional[str] = None
    classes: Optional[List[str]] = None     # a subset of UCF-101 class names (None: all 101)
    num_classes: Optional[int] = None       # the first N of those classes
    videos_per_prompt: int = 24
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
class RunnerConfig:
    device: str = "auto"                    # auto | cpu | cuda | cuda:N
    dtype: str = "auto"                     # auto (fp16 on GPU, fp32 on CPU) | float32 | float16 | bfloat16
    batch_size: int = 1                     # clips per forward
    decode_chunk_size: int = 16             # frames per VAE decode call
    save_frames: bool = False               # keep lossless uint8 frames of every clip in the store
    save_videos: bool = False               # also write an mp4 per clip (lossy; metrics use frames)
    samples_per_cell: int = 1               # clips per (method, NFE) whose frames are kept for plots/report
    progress: bool = True
    allow_unsafe_pickle: bool = False


@dataclass
class ReportConfig:
    bootstrap: int = 200                    # bootstrap resamples for confidence intervals (0: none)
    bootstrap_seed: int = 0
    alpha: float = 0.05
    with_paper: bool = False                # paper numbers beside ours in the tables


@dataclass
class BenchConfig:
    experiment: str = "smoke"
    description: str = ""
    weights: str = "tiny"                   # pretrained | random | tiny, for every method
    seed: int = 0                           # init seed of tiny / random weights
    cache_dir: str = "${oc.env:LCMBENCH_CACHE,${oc.env:HOME}/.cache/lcmbench}"
    stages: List[str] = field(default_factory=lambda: list(STAGES))
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    methods: Dict[str, ModelSpec] = field(default_factory=dict)
    metrics: Dict[str, MetricConfig] = field(default_factory=dict)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="bench_schema", node=BenchConfig)
    cs.store(group="model", name="model_schema", node=ModelSpec)
    cs.store(group="sampler", name="sampler_schema", node=SamplerSpec)
    cs.store(group="metric", name="metric_schema", node=MetricConfig)
