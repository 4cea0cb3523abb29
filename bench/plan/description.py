"""A run's one-line description, derived from its resolved configuration.

The experiment file's own ``description`` is written for its defaults; overrides
(other methods, classes, step counts) make it wrong, so results and the plan say what
this run does instead. The file's text stays in the recorded configuration."""
from __future__ import annotations

from typing import Any, Optional

from metrics.vbench_protocol import STANDARD_PROMPT_SET

from bench.plan.config import get, plain
from bench.plan.prompts import PromptSet
from bench.plan.protocol import clip_count, pooled_classes


def run_description(cfg: Any, n_prompts: Optional[int] = None, prompts: Optional[PromptSet] = None) -> str:
    """E.g. ``smoke (as run): tiny weights; methods ddim, animatelcm; 3 classes x 2 videos
    x NFE 1/2/4/8 = 24 clips of 16x64x64; metrics fvd, clipsim, vbench``. ``n_prompts``: the
    loaded prompt set's size, when known (else what the config selects); ``prompts``: the
    loaded prompt set itself, which also counts the clips of a pool
    (``protocol.videos_per_prompt_by_dimension``)."""
    p = cfg.protocol
    methods = list(get(cfg, "methods", {}) or {})
    nfe = [int(n) for n in p.nfe]
    unit = "prompts" if p.prompt_set == STANDARD_PROMPT_SET else "classes"
    pools = {str(d): int(n) for d, n in (plain(get(p, "videos_per_prompt_by_dimension", {})) or {}).items()}
    if prompts is not None:
        n_prompts = len(prompts.classes)
    if n_prompts is None:
        classes = get(p, "classes", None)
        n_prompts = p.num_classes if p.num_classes is not None else (len(classes) if classes else None)
        if n_prompts is not None and classes:
            n_prompts = min(n_prompts, len(classes))
    videos = f"{p.videos_per_prompt} videos"
    per_cell = None if pools else (n_prompts * int(p.videos_per_prompt) if n_prompts is not None else None)
    if pools and prompts is not None:
        per_cell = clip_count(prompts, int(p.videos_per_prompt), pools)
        pooled = {d: pooled_classes(prompts, int(p.videos_per_prompt), {d: n}) for d, n in pools.items()}
        videos += "".join(f" ({pools[d]} for the {len(c)} prompt{'s' if len(c) != 1 else ''} of {d})"
                          for d, c in pooled.items() if c)
    elif pools:   # the prompts are not loaded: the pool is named, the clips are not counted
        videos += "".join(f" ({n} for {d}'s prompts)" for d, n in pools.items())
    steps = f"NFE {'/'.join(map(str, nfe))}"
    if n_prompts is None:
        grid = f"all {unit} of prompt set {p.prompt_set} x {videos} x {steps}"
    else:
        one = {"classes": "class", "prompts": "prompt"}[unit] if n_prompts == 1 else unit
        grid = f"{n_prompts} {one} x {videos} x {steps}"
        if per_cell is not None:
            grid += f" = {len(methods) * len(nfe) * per_cell:,} clips"
    metrics = [name for name, m in (get(cfg, "metrics", {}) or {}).items() if get(m, "enabled", True)]
    parts = [f"{get(cfg, 'weights', '?')} weights",
             f"{len(methods)} method{'s' if len(methods) != 1 else ''} ({', '.join(methods) or 'none'})",
             f"{grid} of {p.num_frames}x{p.height}x{p.width}",
             f"metrics {', '.join(metrics)}" if metrics else "no metrics"]
    return f"{get(cfg, 'experiment', '?')} (as run): " + "; ".join(parts) + "."
