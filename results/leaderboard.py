"""The leaderboard: every generator of a run at every step count on one protocol.

One row per (generator, NFE): UNet evaluations, measured denoising time, every per-clip
metric of the run (the registry's clip-kind metrics in its order: FVD, CLIPSIM and any
plug-in's) with its interval, the paired difference against the run's reference method
(same prompts and seeds) with a plain reading, and whether the point lies on the
quality-versus-time Pareto front. Names, order and colours come from the run's
``methods`` (the registry and the experiment config): nothing here names a model.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from common.errors import InputError
from metrics import display as metric_display
from metrics import facts as metric_facts

from results.model import Results, unet_evals
from results.registry import arrow, clip_row_metrics
from results.schema import as_results
from results.table_render import DASH, Cell, Table, fmt_ms, paired_cell, render
from results.tables import value_cell



def leaderboard_metrics(res: Results) -> List[str]:
    """The run's per-clip metrics, in the registry's order: one column group each."""
    return clip_row_metrics(r.metric for r in res.rows)


def has_leaderboard(res: Results) -> bool:
    return any("paired" in (r.extra or {}) for r in res.rows)


def reference_method(res: Results) -> Optional[str]:
    for r in res.rows:
        p = (r.extra or {}).get("paired")
        if p:
            return p["against"]
    return None


def pareto_front(points: Sequence[Tuple[Any, float, float]], higher: bool) -> List[Any]:
    """Keys of the points (key, time, value) that no other point beats on both time
    (lower) and value (``higher`` or lower is better): the quality-versus-time front."""
    front = []
    for key, t, v in points:
        dominated = any((t2 <= t and (v2 >= v if higher else v2 <= v)) and (t2 < t or v2 != v)
                        for k2, t2, v2 in points if k2 != key)
        if not dominated:
            front.append(key)
    return front


def _time_ms(res: Results, method: str, nfe: int) -> Optional[float]:
    t = res.timing_for(method, nfe)
    return None if t is None else t.denoise_ms_median


def fronts(res: Results) -> Dict[str, List[Tuple[str, int]]]:
    """The Pareto front of each metric over the run's (method, NFE) points with a time."""
    out = {}
    for metric in leaderboard_metrics(res):
        pts = [((r.method, r.nfe), _time_ms(res, r.method, r.nfe), r.value) for r in res.rows if r.metric == metric]
        pts = [p for p in pts if p[1] is not None]
        out[metric] = pareto_front(pts, metric_facts(metric).higher_is_better)
    return out


def build_leaderboard_table(results: Union[Results, Mapping[str, Any]]) -> Table:
    res = as_results(results)
    ref = reference_method(res)
    if ref is None:
        raise InputError("the results have no paired differences: run with report.leaderboard_reference=METHOD "
                         "(experiment=leaderboard sets it)")
    front = fronts(res)
    shown = leaderboard_metrics(res)
    nfes = sorted({r.nfe for r in res.rows if r.metric in shown})
    ref_name = res.display_name(ref)
    cols = ["Generator", "Steps", "UNet evals", "Denoise ms"] + [
        f"{metric_display(m)} {arrow(m)}" for m in shown] + [
        f"Δ{metric_display(m)} vs {ref_name}" for m in shown] + ["Pareto"]
    rows: List[List[Cell]] = []
    for m in res.method_order():
        info = res.methods.get(m)
        for k in nfes:
            cells_by = {met: res.row(m, k, met) for met in shown}
            if not any(cells_by.values()):
                continue
            guidance = info.guidance_scale if info is not None else 1.0
            ms = _time_ms(res, m, k)
            on_front = [metric_display(met) for met in shown if (m, k) in front[met]]
            rows.append([Cell(res.display_name(m)), Cell(str(k)), Cell(str(unet_evals(k, guidance))),
                         Cell(fmt_ms(ms) if ms is not None else DASH, sort_value=ms)]
                        + [value_cell(cells_by[met], metric_facts(met).decimals, "pm") for met in shown]
                        + [Cell("reference") if m == ref else paired_cell(cells_by[met], metric_facts(met).decimals)
                           for met in shown]
                        + [Cell(", ".join(on_front) if on_front else "")])
    clock = sorted({f"{t.device} {t.dtype}, {t.clock or 'wall'}" for t in res.timing})
    notes = [f"One row per generator and step count, all on this run's protocol: the same prompts and the same "
             f"noise seed per (prompt, video). Δ: generator − {ref_name} at the same step count on the clips both "
             f"made, with a paired bootstrap interval and its reading (better / worse / no clear change, in the "
             f"metric's direction).",
             "UNet evals: per video (CFG doubles every step). Denoise ms: median per video, VAE excluded"
             + (f" ({'; '.join(clock)})." if clock else "."),
             "Pareto: the point is on the quality-versus-time front of that metric (no other point is both "
             "faster and better)."]
    return Table(title="Leaderboard of few-step video generators.", columns=cols, rows=rows,
                 row_kinds=["data"] * len(rows), label=res.label if res.weights_mode != "pretrained" else "",
                 notes=notes, tex_label="tab:leaderboard", stub=2)


def leaderboard_table(results: Union[Results, Mapping[str, Any]], fmt: str = "md") -> str:
    return render(build_leaderboard_table(results), fmt)


__all__ = ["build_leaderboard_table", "leaderboard_table", "leaderboard_metrics", "pareto_front", "fronts",
           "has_leaderboard"]
