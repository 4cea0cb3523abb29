"""A composed config as the metric plug-ins see it: the run's facts (:class:`RunFacts`) and
the options of every enabled metric, by name. Preflight, prefetch, the estimates and the
pipeline read the metrics through these two functions, so none of them names a metric."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import metrics as metric_registry
from bench.plan.config import get, plain
from common.errors import InputError
from common.names import did_you_mean
from metrics.plugin import RunFacts

DEFAULT_CACHE_DIR = "~/.cache/lcmbench"


def run_facts(cfg: Any, clips_per_cell: int = 0) -> RunFacts:
    """What a metric may know of the run ``cfg`` describes. ``clips_per_cell``: prompts x
    videos per prompt, when the caller has read the prompt set (0: not known)."""
    p = get(cfg, "protocol", {}) or {}
    pre = get(cfg, "preflight", {}) or {}
    return RunFacts(
        experiment=str(get(cfg, "experiment", "")),
        weights=str(get(cfg, "weights", RunFacts.weights)),
        num_frames=int(get(p, "num_frames", RunFacts.num_frames)),
        height=int(get(p, "height", RunFacts.height)),
        width=int(get(p, "width", RunFacts.width)),
        nfes=tuple(int(n) for n in (get(p, "nfe", []) or [])),
        clips_per_cell=int(clips_per_cell),
        prompt_set=str(get(p, "prompt_set", RunFacts.prompt_set)),
        subset=bool(get(p, "classes") or get(p, "num_classes")),
        videos_per_prompt=int(get(p, "videos_per_prompt", RunFacts.videos_per_prompt)),
        videos_by_dimension={str(k): int(v) for k, v in (plain(get(p, "videos_per_prompt_by_dimension", {})) or {}).items()},
        cache_dir=str(get(cfg, "cache_dir", DEFAULT_CACHE_DIR)),
        allow_unsafe_pickle=bool(get(get(cfg, "runner", {}) or {}, "allow_unsafe_pickle", False)),
        urls={str(k): str(v) for k, v in (plain(get(pre, "urls", {})) or {}).items()},
        verify_hashes=bool(get(pre, "verify_hashes", False)))


def enabled_metrics(cfg: Any, unknown: Optional[List[Tuple[str, str]]] = None) -> Dict[str, Dict[str, Any]]:
    """``{name: options}`` of the metrics ``cfg`` enables (``metrics.<name>.enabled``), in
    config order. A name the registry does not know raises ValueError (one sentence with the
    closest name), or, when ``unknown`` is a list, is skipped and added to it as
    (what is wrong, what to do)."""
    section = get(cfg, "metrics", {}) or {}
    known = metric_registry.available()
    out: Dict[str, Dict[str, Any]] = {}
    for name in section:
        node = section[name]
        if not get(node, "enabled", True):
            continue
        if name not in known:
            what = f"Unknown metric '{name}' in metrics.{did_you_mean(name, known)}"
            fix = f"Use one of: {', '.join(known)}."
            if unknown is None:
                raise InputError(f"{what} {fix}")
            unknown.append((what, fix))
            continue
        out[str(name)] = dict(plain(get(node, "options", {})) or {})
    return out
