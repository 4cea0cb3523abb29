"""A run's one-line description, derived from its resolved configuration.

The experiment file's own ``description`` is written for its defaults; overrides
(other methods, classes, step counts) make it wrong, so results and the plan say what
this run does instead. The file's text stays in the recorded configuration."""
from __future__ import annotations

from typing import Any, Optional

from metrics.vbench_protocol import STANDARD_PROMPT_SET

from bench.plan.config import get


def run_description(cfg: Any, n_prompts: Optional[int] = None) -> str:
    """E.g. ``smoke (as run): tiny weights; methods ddim, animatelcm; 3 classes x 2 videos
    x NFE 1/2/4/8 = 24 clips of 16x64x64; metrics fvd, clipsim, vbench``. ``n_prompts``: the
    loaded prompt set's size, when known (else what the config selects)."""
    p = cfg.protocol
    methods = list(get(cfg, "methods", {}) or {})
    nfe = [int(n) for n in p.nfe]
    unit = "prompts" if p.prompt_set == STANDARD_PROMPT_SET else "classes"
    if n_prompts is None:
        classes = get(p, "classes", None)
        n_prompts = p.num_classes if p.num_classes is not None else (len(classes) if classes else None)
        if n_prompts is not None and classes:
            n_prompts = min(n_prompts, len(classes))
    if n_prompts is None:
        grid = f"all {unit} of prompt set {p.prompt_set} x {p.videos_per_prompt} videos x NFE {'/'.join(map(str, nfe))}"
    else:
        clips = len(methods) * len(nfe) * n_prompts * int(p.videos_per_prompt)
        one = {"classes": "class", "prompts": "prompt"}[unit] if n_prompts == 1 else unit
        grid = (f"{n_prompts} {one} x {p.videos_per_prompt} videos x NFE {'/'.join(map(str, nfe))} "
                f"= {clips:,} clips")
    metrics = [name for name, m in (get(cfg, "metrics", {}) or {}).items() if get(m, "enabled", True)]
    parts = [f"{get(cfg, 'weights', '?')} weights",
             f"{len(methods)} method{'s' if len(methods) != 1 else ''} ({', '.join(methods) or 'none'})",
             f"{grid} of {p.num_frames}x{p.height}x{p.width}",
             f"metrics {', '.join(metrics)}" if metrics else "no metrics"]
    return f"{get(cfg, 'experiment', '?')} (as run): " + "; ".join(parts) + "."
