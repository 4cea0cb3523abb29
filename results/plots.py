"""Figures from a results file (matplotlib, Agg canvas; each saved as PNG and PDF).

- :func:`plot_metric_vs_nfe`: a row metric (FVD, CLIPSIM ...) against the number
  of steps, one line per method with its bootstrap interval as a band.
- :func:`plot_quality_vs_time`: the speed/quality trade-off, metric against
  denoising time (log axis), one marker per (method, NFE), annotated.
- :func:`contact_sheet`: sample frames, rows = methods, columns = NFE, each
  cell the first / middle / last frame of the same-seed clip.
- :func:`plot_ablation`: metric against training step per distillation
  variant (decoupled vs joint), with interval bands.

Figures are built on their own Agg canvas (no pyplot state, no global
backend switch). When the weights are not pretrained the run's warning label
is the figure's headline, in red.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator, ScalarFormatter

from common.errors import InputError
from common.files import atomic_path
from metrics import display as metric_display
from metrics import facts as metric_facts

from results import paper
from results.leaderboard import pareto_front
from results.model import Results
from results.registry import clip_row_metrics, direction
from results.schema import as_results

# Colours come from each method's spec (the registry or the experiment's model config);
# methods without one take the palette in presentation order, markers likewise.
_PALETTE = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
            "#7f7f7f"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
_DIST_STYLE = {"decoupled": {"color": "#d62728", "marker": "o"}, "joint": {"color": "#1f77b4", "marker": "s"}}
LABEL_COLOR = "#b00020"

ResultsLike = Union[Results, Mapping[str, Any]]


def method_style(method: str, res: Optional[Results] = None) -> Dict[str, str]:
    """Colour and marker of a method, the same in every figure of a run: the spec's
    colour when it has one, else the palette by the method's place in the run's order."""
    order = res.method_order() if res is not None else []
    i = order.index(method) if method in order else sum(ord(c) for c in method)
    color = (res.method_color(method) if res is not None else None) or _PALETTE[i % len(_PALETTE)]
    return {"color": color, "marker": _MARKERS[i % len(_MARKERS)]}


def results_order(results: Optional[ResultsLike]) -> List[str]:
    return as_results(results).method_order() if results is not None else []


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _warning(res: Optional[Results], fig_width_in: float = 8.0) -> str:
    if res is None or res.weights_mode == "pretrained" or not res.label:
        return ""
    width = max(24, min(78, int(fig_width_in * 9)))   # ~9 bold 8.5 pt characters per inch
    return "\n".join(textwrap.wrap(res.label, width=width))


def _finish(fig: Figure, res: Optional[Results], layout: bool = True) -> Figure:
    label = _warning(res, fig.get_figwidth())
    if label:
        lines = label.count("\n") + 1
        top = 1.0 - (0.13 * lines + 0.02) / fig.get_figheight()
        if layout:
            # lay out first: tight_layout also makes room for a suptitle, which would
            # double the space already kept free by ``top``
            fig.tight_layout(rect=(0, 0, 1, top))
        fig.suptitle(label, color=LABEL_COLOR, fontsize=8.5, fontweight="bold", y=0.995, va="top")
    elif layout:
        fig.tight_layout()
    return fig


def _axis_label(metric: str) -> str:
    return f"{metric_display(metric)}{metric_facts(metric).unit}, {direction(metric)}"


def _style_axes(ax) -> None:
    ax.grid(True, which="major", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def plot_metric_vs_nfe(results: ResultsLike, metric: str, with_paper: bool = False,
                       methods: Optional[Sequence[str]] = None) -> Figure:
    """``metric`` against denoising steps per method, with bootstrap-interval bands."""
    res = as_results(results)
    rows = [r for r in res.rows if r.metric == metric]
    if not rows:
        raise InputError(f"no {metric!r} rows in the results; have: {', '.join(res.metrics()) or 'none'}")
    fig = _figure(5.6, 3.9)
    ax = fig.add_subplot(1, 1, 1)
    order = [m for m in (methods or res.method_order()) if any(r.method == m for r in rows)]
    nfes = sorted({r.nfe for r in rows})
    for m in order:
        mr = sorted((r for r in rows if r.method == m), key=lambda r: r.nfe)
        st = method_style(m, res)
        x = [r.nfe for r in mr]
        ax.plot(x, [r.value for r in mr], color=st["color"], marker=st["marker"], linewidth=1.8, markersize=5.5,
                label=res.display_name(m), zorder=3)
        ci = [(r.nfe, r.ci_low, r.ci_high) for r in mr if r.has_ci]
        if ci:
            cx, lo, hi = zip(*ci)
            ax.fill_between(cx, lo, hi, color=st["color"], alpha=0.15, linewidth=0, zorder=2)
        if with_paper and m in paper.METHODS and metric in paper.TABLE1:
            pv = sorted(paper.TABLE1[metric][m].items())
            ax.plot([k for k, _ in pv], [v for _, v in pv], color=st["color"], linestyle="--", linewidth=1.0,
                    alpha=0.6, marker=st["marker"], markerfacecolor="none", markersize=4)
    if with_paper:
        ax.plot([], [], color="#555555", linestyle="--", linewidth=1.0, label="paper (dashed)")
    ax.set_xscale("log", base=2)
    ticks = sorted(set(nfes) | (set(paper.NFES) if with_paper else set()))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("denoising steps (NFE)")
    ax.set_ylabel(_axis_label(metric))
    ax.set_title(f"{metric_display(metric)} vs steps")
    _style_axes(ax)
    ax.legend(frameon=False, fontsize=8, ncol=1 if len(order) < 5 else 2)
    band = any(r.has_ci for r in rows)
    if band:
        level = round(100 * (1 - res.bootstrap.alpha))
        ax.text(0.99, 0.01, f"bands: {level}% bootstrap CI", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7, color="#666666")
    return _finish(fig, res)


def plot_quality_vs_time(results: ResultsLike, metric: str) -> Figure:
    """Speed/quality trade-off: ``metric`` against median denoising time (log x), per (method, NFE)."""
    res = as_results(results)
    pts = []
    for r in res.rows:
        if r.metric != metric:
            continue
        t = res.timing_for(r.method, r.nfe)
        if t is not None:
            pts.append((r, t))
    if not pts:
        raise InputError(f"no (method, NFE) has both a {metric!r} row and a timing entry; "
                         f"run the timing stage for the evaluated settings")
    fig = _figure(5.6, 3.9)
    ax = fig.add_subplot(1, 1, 1)
    for m in res.method_order():
        mp = sorted(((r, t) for r, t in pts if r.method == m), key=lambda p: p[0].nfe)
        if not mp:
            continue
        st = method_style(m, res)
        x = np.array([t.denoise_ms_median for _, t in mp])
        y = np.array([r.value for r, _ in mp])
        ax.plot(x, y, color=st["color"], linewidth=1.0, alpha=0.5, zorder=2)
        yerr = None
        if all(r.has_ci for r, _ in mp):
            # Intervals of biased statistics need not contain the point: draw the interval as is.
            lo = np.array([r.ci_low for r, _ in mp])
            hi = np.array([r.ci_high for r, _ in mp])
            yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
        ax.errorbar(x, y, yerr=yerr, color=st["color"], marker=st["marker"], linestyle="none", markersize=6,
                    capsize=2, elinewidth=0.8, label=res.display_name(m), zorder=3)
        for (r, t), xi, yi in zip(mp, x, y):
            ax.annotate(f"{r.nfe}", (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=7,
                        color=st["color"])
    # the quality-versus-time Pareto front: no other point is both faster and better
    keyed = [((r.method, r.nfe), t.denoise_ms_median, r.value) for r, t in pts]
    on_front = set(pareto_front(keyed, metric_facts(metric).higher_is_better))
    front = sorted((t, v) for k, t, v in keyed if k in on_front)
    if len(front) > 1:
        ax.step([t for t, _ in front], [v for _, v in front], where="post", color="#222222", linewidth=0.9,
                linestyle="--", alpha=0.7, zorder=1, label="Pareto front")
    ax.scatter([t for t, _ in front], [v for _, v in front], s=110, facecolors="none", edgecolors="#222222",
               linewidths=0.9, zorder=4)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"denoising time per video, ms (log; {pts[0][1].device} {pts[0][1].dtype})")
    ax.set_ylabel(_axis_label(metric))
    ax.set_title(f"{metric_display(metric)} vs denoising time (labels: steps; ringed: Pareto front)")
    _style_axes(ax)
    ax.legend(frameon=False, fontsize=8)
    return _finish(fig, res)


def _check_clip(key: Any, clip: Any) -> np.ndarray:
    a = np.asarray(clip)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3 or a.shape[0] < 1:
        raise InputError(f"sample {key!r}: expected uint8 frames [F, H, W, 3], got {a.dtype} {a.shape}")
    return a


def _pick_frames(n: int, frames: Union[str, Sequence[int]]) -> List[int]:
    if frames == "first-middle-last":
        return sorted({0, n // 2, n - 1})
    if frames == "all":
        return list(range(n))
    idx = [int(i) for i in frames]
    bad = [i for i in idx if not -n <= i < n]
    if bad:
        raise InputError(f"frame indices {bad} out of range for clips of {n} frames")
    return [i % n for i in idx]


def contact_sheet(samples: Mapping[Tuple[str, int], Any], frames: Union[str, Sequence[int]] = "first-middle-last",
                  results: Optional[ResultsLike] = None, methods: Optional[Sequence[str]] = None,
                  nfes: Optional[Sequence[int]] = None, cell_inches: float = 2.4) -> Figure:
    """Grid of sample frames: rows = methods, columns = NFE (same seed per row).

    ``samples`` maps ``(method, nfe)`` to uint8 frames [F, H, W, 3] (one clip).
    Each cell shows the chosen frames side by side (default first, middle, last).
    """
    if not samples:
        raise InputError("no samples to draw: pass {(method, nfe): uint8 frames [F, H, W, 3]}")
    res = as_results(results) if results is not None else None
    clips = {}
    for key, clip in samples.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise InputError(f"sample keys must be (method, nfe) tuples, got {key!r}")
        clips[key] = _check_clip(key, clip)
    present = {m for m, _ in clips}
    run_order = results_order(results) if results is not None else []
    order = list(methods) if methods else [m for m in run_order if m in present] + sorted(present - set(run_order))
    cols = list(nfes) if nfes else sorted({k for _, k in clips})
    # Size the figure from the cell images so rows sit tight (no letterboxing).
    first = next(iter(clips.values()))
    nshow = len(_pick_frames(first.shape[0], frames))
    gapw = max(1, first.shape[2] // 32)
    aspect = first.shape[1] / (first.shape[2] * nshow + gapw * (nshow - 1))
    cw, ch = cell_inches, cell_inches * aspect
    left, right, hs, vs, bottom = 0.35, 0.1, 0.12, 0.12, 0.3
    fw = left + right + len(cols) * cw + (len(cols) - 1) * hs
    warn = _warning(res, fw)
    top = 0.3 + (0.16 * (warn.count("\n") + 1) + 0.1 if warn else 0.0)
    fh = top + bottom + len(order) * ch + (len(order) - 1) * vs
    fig = _figure(fw, fh)
    fig.subplots_adjust(left=left / fw, right=1 - right / fw, bottom=bottom / fh, top=1 - top / fh,
                        wspace=hs / cw, hspace=vs / ch)
    for i, m in enumerate(order):
        for j, k in enumerate(cols):
            ax = fig.add_subplot(len(order), len(cols), i * len(cols) + j + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            clip = clips.get((m, k))
            if clip is None:
                ax.text(0.5, 0.5, "–", ha="center", va="center", fontsize=14, color="#999999",
                        transform=ax.transAxes)
            else:
                idx = _pick_frames(clip.shape[0], frames)
                gap = np.full((clip.shape[1], gapw, 3), 255, dtype=np.uint8)
                parts = []
                for n_, f in enumerate(idx):
                    parts += ([gap] if n_ else []) + [clip[f]]
                ax.imshow(np.concatenate(parts, axis=1), interpolation="nearest")
            if i == 0:
                ax.set_title(f"{k}-Step", fontsize=9)
            if j == 0:
                name = res.display_name(m) if res is not None else m
                ax.set_ylabel(name, fontsize=9, rotation=90)
    what = "first / middle / last frame" if frames == "first-middle-last" else f"frames {frames}"
    fig.text(0.5, 0.04 / fh, f"each cell: {what}; same prompt and seed in every cell", ha="center", va="bottom",
             fontsize=7, color="#666666")
    return _finish(fig, res, layout=False)


def plot_ablation(results: ResultsLike, metric: str, nfe: Optional[int] = None,
                  with_paper: bool = False) -> Figure:
    """``metric`` against training step for each distillation strategy, with interval bands."""
    res = as_results(results)
    if not res.ablation:
        raise InputError("the results have no ablation section")
    pts: Dict[str, List[Tuple[int, Any]]] = {}
    nfes = sorted({r.nfe for a in res.ablation for r in a.rows if r.metric == metric})
    if not nfes:
        raise InputError(f"no {metric!r} rows in the ablation section")
    nfe = nfe if nfe is not None else (4 if 4 in nfes else nfes[0])
    for a in res.ablation:
        if a.train_step is None:
            continue
        for r in a.rows:
            if r.metric == metric and r.nfe == nfe:
                pts.setdefault(a.distillation, []).append((a.train_step, r))
    if not pts:
        raise InputError(f"no ablation variant has a training step and a {metric!r} row at {nfe} steps")
    fig = _figure(5.6, 3.9)
    ax = fig.add_subplot(1, 1, 1)
    for dist in sorted(pts):
        p = sorted(pts[dist], key=lambda t: t[0])
        st = _DIST_STYLE.get(dist, method_style(dist, res))
        x = [s for s, _ in p]
        ax.plot(x, [r.value for _, r in p], color=st["color"], marker=st["marker"], linewidth=1.8, label=dist)
        ci = [(s, r.ci_low, r.ci_high) for s, r in p if r.has_ci]
        if ci:
            cx, lo, hi = zip(*ci)
            ax.fill_between(cx, lo, hi, color=st["color"], alpha=0.15, linewidth=0)
        if with_paper and dist in paper.ABLATION and metric in paper.ABLATION[dist]:
            ax.axhline(paper.ABLATION[dist][metric], color=st["color"], linestyle="--", linewidth=1.0, alpha=0.7,
                       label=f"{dist} (paper)")
    ax.set_xlabel("training step")
    ax.set_ylabel(_axis_label(metric))
    ax.set_title(f"Ablation: {metric_display(metric)} at {nfe} steps vs training step")
    _style_axes(ax)
    ax.legend(frameon=False, fontsize=8)
    return _finish(fig, res)


def save_figure(fig: Figure, stem: Union[str, Path], dpi: int = 150) -> List[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    # each file appears whole or not at all: written beside its name, then renamed
    for path, kwargs in ((png, {"dpi": dpi, "metadata": {"Software": None}}),
                         (pdf, {"metadata": {"CreationDate": None, "Creator": None, "Producer": None}})):
        with atomic_path(path, path.suffix) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], **kwargs)
    return [png, pdf]


def figures(results: ResultsLike, samples: Optional[Mapping[Tuple[str, int], Any]] = None,
            with_paper: bool = False) -> Dict[str, Figure]:
    """Every figure the results support, by file stem."""
    res = as_results(results)
    out: Dict[str, Figure] = {}
    for metric in clip_row_metrics(r.metric for r in res.rows):   # every per-clip metric of the run
        if any(r.metric == metric for r in res.rows):
            out[f"{metric}_vs_nfe"] = plot_metric_vs_nfe(res, metric, with_paper=with_paper)
            if any(res.timing_for(r.method, r.nfe) for r in res.rows if r.metric == metric):
                out[f"{metric}_vs_time"] = plot_quality_vs_time(res, metric)
    if res.ablation:
        for metric in clip_row_metrics(r.metric for a in res.ablation for r in a.rows):
            if any(r.metric == metric for a in res.ablation if a.train_step is not None for r in a.rows):
                out[f"ablation_{metric}_vs_step"] = plot_ablation(res, metric, with_paper=with_paper)
    if samples:
        out["contact_sheet"] = contact_sheet(samples, results=res)
    return out


def write_plots(results: ResultsLike, out_dir: Union[str, Path],
                samples: Optional[Mapping[Tuple[str, int], Any]] = None) -> List[Path]:
    """Save every supported figure under ``out_dir`` as PNG and PDF; returns the paths."""
    paths: List[Path] = []
    for stem, fig in figures(results, samples).items():
        paths += save_figure(fig, Path(out_dir) / stem)
    return paths
