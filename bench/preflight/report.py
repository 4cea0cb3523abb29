"""What preflight reports: the problems found (each with its fix), the assets checked,
and the plan of the run (clips, UNet evaluations, FLOPs, time, disk)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from common.checks import AssetCheck, Problem  # noqa: F401  (re-exported: preflight's report items)
from common.errors import LcmbenchError


@dataclass
class MethodCost:
    name: str
    guidance_scale: float
    nfe: List[int]
    evals_per_prompt_seed: int       # sum over NFE of NFE x (2 with CFG, else 1)
    clips: int
    unet_evals: int


@dataclass
class Plan:
    stages: List[str]
    generates: bool
    weights: str
    methods: List[MethodCost]
    nfe: List[int]
    prompts: int
    videos_per_prompt: int
    num_frames: int
    height: int
    width: int
    clips: int
    settings: int
    unet_evals_per_prompt_seed: int
    unet_evals: int
    tflop: Dict[str, float]
    device: str
    device_name: str
    dtype: str
    time_s: Optional[float]
    time_basis: str
    disk_bytes: int
    disk_detail: Dict[str, Any]
    disk_free: Optional[int]
    disk_path: str
    already_stored: int
    detected: str = ""               # the device this machine would use, when time_on names another
    time_stages: Dict[str, float] = field(default_factory=dict)   # seconds per stage; they sum to time_s
    processes: int = 1               # processes sharing the clips (torchrun, srun, shard.count)
    pooled_prompts: int = 0          # prompts given more videos by protocol.videos_per_prompt_by_dimension
    pool_videos: int = 0             # the videos that pool adds per (method, NFE)


@dataclass
class PreflightReport:
    experiment: str
    description: str
    run_dir: str
    offline: bool
    plan: Optional[Plan]
    assets: List[AssetCheck] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    prompt_set: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


class PreflightError(LcmbenchError, ValueError):
    """Preflight found problems; the message lists every one with what to do."""

    def __init__(self, report: PreflightReport, listed: bool = False):
        self.report = report
        if listed:   # the plan with its problems was printed just before
            if len(report.problems) == 1:   # one problem: the error line says it all
                super().__init__(f"{report.problems[0].what} Fix: {report.problems[0].fix} (preflight; nothing "
                                 f"was built)")
            else:
                super().__init__(f"preflight found {len(report.problems)} problems, listed above; nothing was "
                                 f"built. The first: {report.problems[0].what} Fix them and run again.")
            return
        lines = [f"preflight found {len(report.problems)} problem(s); nothing was built:"]
        lines += [f"  {i}. {p.line()}" for i, p in enumerate(report.problems, 1)]
        super().__init__("\n".join(lines))
