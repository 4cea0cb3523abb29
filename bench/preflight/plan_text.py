"""The preflight report as the text a user reads before a run starts."""
from __future__ import annotations

from typing import Dict, List, Optional

import metrics as metric_registry
from bench.preflight.estimates import SCORING_STAGE, metric_tflop, unet_tflop
from bench.preflight.report import PreflightReport
from metrics.vbench_protocol import STANDARD_PROMPT_SET


def format_bytes(n: Optional[float]) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} PiB"


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _flop(tflop: float, unit_of: Optional[float] = None) -> str:
    """TFLOP in EFLOP/PFLOP/TFLOP, the unit picked by ``unit_of`` (default: the value)."""
    ref = tflop if unit_of is None else unit_of
    if ref >= 1e6:
        return f"{tflop / 1e6:.3f} EFLOP"
    if ref >= 1e3:
        return f"{tflop / 1e3:.3f} PFLOP"
    return f"{tflop:.3g} TFLOP"


def _display(metric: str) -> str:
    """A metric's display name (its registry name when no plug-in has it, e.g. a report read back)."""
    try:
        return metric_registry.plugin(metric).display_name
    except ValueError:
        return metric


def _scoring_lines(plan) -> List[str]:
    """Each set metric's estimated scoring time per part, and per worker when the run has several."""
    by_metric: Dict[str, Dict[str, float]] = {}
    for key, seconds in plan.time_stages.items():
        if key.startswith(SCORING_STAGE):
            display, part = key[len(SCORING_STAGE):].rsplit(" ", 1)
            by_metric.setdefault(display, {})[part] = seconds
    lines = []
    for display, parts in by_metric.items():
        lines.append(f"  scoring      {display} ~{format_duration(sum(parts.values()))} on {plan.device_name}: "
                     + ", ".join(f"{p} {format_duration(s)}" for p, s in parts.items()))
        plugin = next((metric_registry.plugin(n) for n in metric_registry.available()
                       if metric_registry.plugin(n).display_name == display), None)
        split = getattr(plugin, "worker_seconds", None)
        if plan.processes > 1 and callable(split):
            loads = split(parts, plan.processes)
            lines.append(f"               {display} split over {plan.processes} workers (ranks x shard jobs): "
                         + ", ".join(f"~{format_duration(s)}" for s in loads))
    return lines


def format_plan(report: PreflightReport) -> str:
    plan = report.plan
    lines = [f"lcmbench preflight: experiment={report.experiment}"
             + (f" (weights={plan.weights})" if plan else "")]
    if report.description:
        lines.append(f"  {report.description}")
    if plan is not None:
        lines.append("")
        lines.append("Plan")
        lines.append(f"  stages       {', '.join(plan.stages)}")
        if not plan.generates:
            lines.append(f"  stages {plan.stages}: no generate stage, so no clips are made; the figures below "
                         f"describe the protocol")
        n_methods = len(plan.methods)
        lines.append(f"  clips        {n_methods} method{'s' if n_methods != 1 else ''} x {len(plan.nfe)} NFE x "
                     + (f"({plan.prompts} prompts x {plan.videos_per_prompt} videos + {plan.pool_videos:,} for the "
                        f"pool of {plan.pooled_prompts} prompts)" if plan.pool_videos else
                        f"{plan.prompts} prompts x {plan.videos_per_prompt} videos")
                     + f" = {plan.clips:,} clips ({plan.num_frames} frames, "
                     f"{plan.height}x{plan.width})")
        lines.append(f"  UNet evals   {plan.unet_evals_per_prompt_seed} per (prompt, seed) across {plan.settings} "
                     f"settings; {plan.unet_evals:,} in all")
        width = max([len(c.name) for c in plan.methods] + [6])
        for c in plan.methods:
            cfg_txt = f"CFG {c.guidance_scale:g}, 2 evals/step" if c.guidance_scale > 1 else "no CFG, 1 eval/step"
            lines.append(f"    {c.name:<{width}}  NFE {','.join(map(str, c.nfe)):<9} {cfg_txt:<22} "
                         f"{c.evals_per_prompt_seed:>4} per (prompt, seed)  {c.unet_evals:>12,}")
        t = plan.tflop
        per_eval = unet_tflop(plan.num_frames, plan.height, plan.width)
        total = t["total"]
        parts = [f"UNet {_flop(t['unet'], total)} ({per_eval:.4g} TFLOP/eval)", f"VAE decode {_flop(t['vae'], total)}"]
        for name, tflop in metric_tflop(t).items():
            parts.append(f"{_display(name)} {_flop(tflop, total)}")
        lines.append(f"  compute      {_flop(t['total'])}: " + ", ".join(parts))
        if plan.weights == "tiny":
            # FLOPs and time above are for the full-size SD1.5 + motion-module architecture
            lines.append("  note         tiny weights: the compute and time estimates are those of the full-size "
                         "architecture; the tiny models run orders of magnitude faster")
        if plan.detected:
            lines.append(f"  device       {plan.device_name} ({plan.dtype}), from preflight.time_on; this machine: "
                         f"{plan.detected}")
        else:
            lines.append(f"  device       {plan.device_name} ({plan.device}, {plan.dtype})")
        lines.append(f"  time         ~{format_duration(plan.time_s)} ({plan.time_basis})")
        stages = {k: v for k, v in plan.time_stages.items() if not k.startswith(SCORING_STAGE)}
        if stages:
            lines.append("               " + ", ".join(f"{stage} {format_duration(s)}" for stage, s in stages.items()))
        lines += _scoring_lines(plan)
        if plan.processes > 1 and plan.time_s is not None:   # the clips are split evenly by key
            lines.append(f"               over {plan.processes} processes sharing the clips: "
                         f"~{format_duration(plan.time_s / plan.processes)} each")
        d = plan.disk_detail
        if plan.generates:
            parts = [f"{d['clip_files'] - d['clips_with_frames']:,} clip files x {format_bytes(d['bytes_per_clip'])} "
                     f"(features only)"]
            if d["clips_with_frames"]:
                parts.append(f"{d['clips_with_frames']:,} with frames x {format_bytes(d['bytes_per_clip_with_frames'])}")
            if d["videos"]:
                parts.append(f"mp4s {format_bytes(d['videos'])}")
            for name, size in (d.get("exports_by_metric") or {}).items():
                parts.append(f"{_display(name)} exports {format_bytes(size)}")
            parts.append(f"results {format_bytes(d['results'])}")
            lines.append(f"  disk         {format_bytes(plan.disk_bytes)} = " + " + ".join(parts))
            lines.append(f"               free on {plan.disk_path}: {format_bytes(plan.disk_free)}"
                         + (f"; {plan.already_stored:,} clips already in the store" if plan.already_stored else ""))
        else:
            lines.append("  disk         nothing generated")
    if report.prompt_set:
        ps = report.prompt_set
        unit = "prompts" if ps["name"] == STANDARD_PROMPT_SET else "classes"
        lines.append(f"  prompts      {ps['name']} ({ps['classes']} {unit}), sha256 {ps['sha256']}")
    lines.append(f"  offline      {'yes: no network attempt is made' if report.offline else 'no'}")
    lines.append("")
    lines.append("Assets")
    if not report.assets:
        lines.append("  none needed")
    for a in report.assets:
        size = f", {format_bytes(a.size)}" if a.size else ""
        sha = f", sha256 {a.sha256[:16]}..." if a.sha256 else ""
        detail = f" - {a.detail}" if a.detail else ""
        where = f" at {a.location}" if a.location else ""
        lines.append(f"  {'[' + a.status + ']':<10} {a.name}{where}{size}{sha}{detail}")
    for n in report.notes:
        lines.append(f"  note: {n}")
    lines.append("")
    if report.problems:
        lines.append(f"Problems ({len(report.problems)})")
        lines += [f"  {i}. {p.line()}" for i, p in enumerate(report.problems, 1)]
        lines.append("")
        lines.append(f"NOT READY: {len(report.problems)} problem(s); nothing was built.")
    else:
        lines.append("READY: no problems found.")
    return "\n".join(lines)
