"""Regression check: compare a run's results.json with a baseline.

``python -m results.compare BASELINE.json CURRENT.json [--tolerance fvd=5%]
[--tolerance clipsim=0.5] [--tolerances FILE.yaml] [--markdown OUT.md] [--json OUT.json]``

Prints one aligned line per (method, NFE, metric): baseline, current,
change, tolerance and a verdict, knowing each metric's direction (FVD and
timings: lower is better; CLIPSIM and VBench: higher is better):

``ok``          the change is within the tolerance;
``better``      improved by more than the tolerance;
``REGRESSION``  worse by more than the tolerance;
``missing``     in the baseline but not in the current run (a failure);
``new``         only in the current run (reported, not a failure);
``info``        a speed row that cannot gate: per-clip generation times, wall
                clocks, or rows measured on different devices or clocks.

Compared quantities: every row, VBench summaries and dimensions (percent),
and the timing entries' ``denoise_ms`` and ``peak_mem_mb`` (only when both
runs used the same device; otherwise they are skipped with a note).

Tolerances: ``metric=5%`` (relative to the baseline value), ``metric=0.5``
(absolute, in the metric's units), or ``metric=ci`` (from the baseline's
bootstrap interval). Keys are row metric names (``fvd``, ``clipsim``,
``vbench_total``, ``denoise_ms``, ``peak_mem_mb`` ...: any registered metric's
rows), a metric family with several rows for all of them (``vbench``), or
``default``. A YAML/JSON file maps the same keys to the same values;
``--tolerance`` overrides it. Without a tolerance a metric uses max(floor,
half-width of the baseline's bootstrap interval): the interval is the scale on
which the estimate is uncertain, and the floor (the metric's ``tolerance``
fact; ``TIMING_FLOORS`` for the timings) keeps runs without intervals, or
with very narrow ones, from failing on noise-level changes.

``--paired`` adds a second table for every metric with per-clip values in both
runs (CLIPSIM): current - baseline on the clips both runs made (same prompt and
seed), with a paired bootstrap interval, where the clip-to-clip spread shared by
the runs cancels; a much tighter test than two separate intervals. It is
information: the verdict and exit status do not depend on it.

Exit status: 0 when nothing regressed or went missing; 1 on any regression
or missing metric; 2 when the files cannot be compared (different schema
versions, weights modes, metric protocols, prompt sets, FVD sample sizes or
VBench dimension sets), cannot be read, or the arguments are bad.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from common.errors import InputError
from metrics import display as metric_display
from metrics import facts as metric_facts

from results.model import Results
from results.registry import rank
from results.schema import SchemaError, as_results, comparable, load
from results.stats import paired_difference
from results.tolerances import (TIMING_METRICS, Tolerance, ToleranceError, equivalence_margin, load_tolerance_file,
                         parse_tolerance_args, tolerance_for)
from results.views import flat_rows

EXIT_OK, EXIT_REGRESSION, EXIT_INCOMPARABLE = 0, 1, 2


@dataclass
class Line:
    method: str
    display: str
    nfe: int
    metric: str
    baseline: Optional[float]
    baseline_half_ci: Optional[float]
    current: Optional[float]
    current_half_ci: Optional[float]
    delta: Optional[float]
    tolerance: Optional[float]
    tolerance_source: str
    verdict: str


def _direction(metric: str) -> bool:
    return False if metric in TIMING_METRICS else metric_facts(metric).higher_is_better


def _quantities(res: Results, with_timing: bool) -> Dict[Tuple[str, int, str], Tuple[float, Optional[float]]]:
    out = {}
    for r in flat_rows(res):
        half = None if r["ci_low"] is None else (r["ci_high"] - r["ci_low"]) / 2.0
        out[(r["method"], r["nfe"], r["metric"])] = (float(r["value"]), half)
    if with_timing:
        for t in res.timing:
            out[(t.method, t.nfe, "denoise_ms")] = (t.denoise_ms_median, None)
            if t.peak_mem_mb is not None:
                out[(t.method, t.nfe, "peak_mem_mb")] = (t.peak_mem_mb, None)
    return out


GATED_CLOCKS = ("cuda-event",)   # wall clocks on shared CPUs move by more than any sensible tolerance


def timing_gate(res: Results) -> Dict[Tuple[str, int], Tuple[str, str, str]]:
    """(source, clock, device) of each timing entry. Only entries of the timing protocol
    (warm-up excluded, interleaved repeats) measured with CUDA events can gate a verdict."""
    return {(t.method, t.nfe): (str((t.extra or {}).get("source", "generation")), str(t.clock or "wall"), t.device)
            for t in res.timing}


def gates_speed(a: Optional[Tuple[str, str, str]], b: Optional[Tuple[str, str, str]]) -> bool:
    return a is not None and a == b and a[0] == "timing" and a[1] in GATED_CLOCKS


def _same_device(a: Results, b: Results) -> Tuple[bool, str]:
    da = {(t.device, t.dtype) for t in a.timing} | {(a.provenance.device.name, a.provenance.device.dtype)}
    db = {(t.device, t.dtype) for t in b.timing} | {(b.provenance.device.name, b.provenance.device.dtype)}
    if da == db:
        return True, ""
    fa = ", ".join(sorted(" ".join(x) for x in da))
    fb = ", ".join(sorted(" ".join(x) for x in db))
    return False, f"timing not compared: the runs used different devices ({fa} vs {fb})"


def compare(baseline: Union[Results, Mapping[str, Any]], current: Union[Results, Mapping[str, Any]],
            tolerances: Optional[Mapping[str, Tolerance]] = None) -> Tuple[List[Line], List[str]]:
    """Compare two comparable runs. Returns (lines, notes).

    Raises ``ValueError`` listing the reasons when :func:`results.schema.comparable`
    finds any.
    """
    base, cur = as_results(baseline), as_results(current)
    reasons = comparable(base, cur)
    if reasons:
        raise InputError("results are not comparable:\n" + "\n".join(f"  - {r}" for r in reasons))
    tolerances = dict(tolerances or {})
    notes = []
    with_timing, why = _same_device(base, cur)
    if base.timing and cur.timing and not with_timing:
        notes.append(why)
    qb, qc = _quantities(base, with_timing), _quantities(cur, with_timing)
    gate_b, gate_c = timing_gate(base), timing_gate(cur)
    order = {m: i for i, m in enumerate(base.method_order() + [m for m in cur.method_order()
                                                              if m not in base.method_order()])}
    timing_rank = {m: i for i, m in enumerate(TIMING_METRICS)}   # timings after every metric

    def metric_rank(metric: str) -> Tuple[int, int]:
        return (1, timing_rank[metric]) if metric in TIMING_METRICS else (0, rank(metric))

    keys = sorted(set(qb) | set(qc), key=lambda k: (metric_rank(k[2]), k[2], order.get(k[0], 99), k[1]))
    lines = []
    for k in keys:
        method, nfe, metric = k
        display = base.display_name(method) if method in base.methods else cur.display_name(method)
        b, c = qb.get(k), qc.get(k)
        if b is None:
            lines.append(Line(method, display, nfe, metric, None, None, c[0], c[1], None, None, "", "new"))
            continue
        if c is None:
            tol, src = tolerance_for(metric, b[0], b[1], tolerances)
            gating = metric not in TIMING_METRICS or gates_speed(gate_b.get((method, nfe)), gate_b.get((method, nfe)))
            lines.append(Line(method, display, nfe, metric, b[0], b[1], None, None, None, tol, src,
                              "missing" if gating else "info"))
            continue
        tol, src = tolerance_for(metric, b[0], b[1], tolerances)
        delta = c[0] - b[0]
        worse = -delta if _direction(metric) else delta
        verdict = "REGRESSION" if worse > tol else ("better" if -worse > tol else "ok")
        if metric in TIMING_METRICS and not gates_speed(gate_b.get((method, nfe)), gate_c.get((method, nfe))):
            verdict = "info"
        lines.append(Line(method, display, nfe, metric, b[0], b[1], c[0], c[1], delta, tol, src, verdict))
    if any(ln.verdict == "info" for ln in lines):
        notes.append("info: speed rows that do not gate the verdict. Only timing-protocol rows (experiment=timing "
                     "or stages with timing: warm-up excluded, interleaved repeats) measured with CUDA events on "
                     "the same device name in both runs can fail a check; per-clip generation times and wall "
                     "clocks are shown for information.")
    return lines, notes


# ---------------------------------------------------------------- output
def _metric_label(metric: str) -> str:
    if metric in TIMING_METRICS:
        return f"{TIMING_METRICS[metric]} ↓"
    return f"{metric_display(metric)} {'↑' if _direction(metric) else '↓'}"


def _num(v: Optional[float]) -> str:
    if v is None:
        return "–"
    a = abs(v)
    return f"{v:,.0f}" if a >= 10000 else f"{v:.2f}" if a >= 0.1 or a == 0 else f"{v:.4f}"


def _val(v: Optional[float], half: Optional[float]) -> str:
    if v is None:
        return "–"
    return _num(v) + (f" ±{_num(half)}" if half is not None else "")


def _change(line: Line) -> str:
    if line.delta is None:
        return "–"
    rel = f" ({100 * line.delta / abs(line.baseline):+.1f}%)" if line.baseline else ""
    return f"{line.delta:+.2f}{rel}" if abs(line.delta) >= 0.1 or line.delta == 0 else f"{line.delta:+.4f}{rel}"


def _cells(line: Line) -> List[str]:
    tol = "–" if line.tolerance is None else f"±{_num(line.tolerance)} ({line.tolerance_source})"
    return [line.display, str(line.nfe), _metric_label(line.metric), _val(line.baseline, line.baseline_half_ci),
            _val(line.current, line.current_half_ci), _change(line), tol, line.verdict]


HEADER = ["method", "steps", "metric", "baseline", "current", "change", "tolerance", "verdict"]


def summarize(lines: Sequence[Line]) -> Dict[str, int]:
    out = {"compared": 0, "ok": 0, "better": 0, "REGRESSION": 0, "missing": 0, "new": 0, "info": 0}
    for ln in lines:
        out[ln.verdict] += 1
        if ln.verdict in ("ok", "better", "REGRESSION"):
            out["compared"] += 1
    return out


def failed(lines: Sequence[Line]) -> bool:
    return any(ln.verdict in ("REGRESSION", "missing") for ln in lines)


def _aligned(header: Sequence[str], body: Sequence[Sequence[str]], right: set,
             paint: Optional[Mapping[str, str]] = None) -> str:
    """A plain-text table: columns padded to their widest cell (``right``: right-aligned
    column indices), a dashed rule under the header; ``paint`` colours a row by its last cell."""
    rows = [list(header)] + [list(r) for r in body]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out = []
    for n, r in enumerate(rows):
        text = "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
        if paint and n > 0 and r[-1] in paint:
            text = paint[r[-1]] + text + "\033[0m"
        out.append(text)
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_text(lines: Sequence[Line], color: bool = False) -> str:
    paint = {"REGRESSION": "\033[1;31m", "missing": "\033[1;31m", "better": "\033[32m", "new": "\033[36m"}
    return _aligned(HEADER, [_cells(ln) for ln in lines], {1, 3, 4, 5, 6}, paint if color else None)


def format_markdown(lines: Sequence[Line], header: str = "") -> str:
    out = [header] if header else []
    out.append("| " + " | ".join(HEADER) + " |")
    out.append("|:--|--:|:--|--:|--:|--:|--:|:--|")
    for ln in lines:
        c = _cells(ln)
        if ln.verdict in ("REGRESSION", "missing"):
            c[-1] = f"**{c[-1]}**"
        out.append("| " + " | ".join(x.replace("|", "\\|") for x in c) + " |")
    return "\n".join(out) + "\n"


@dataclass
class PairedLine:
    method: str
    nfe: int
    metric: str
    difference: float            # current - baseline on the shared clips
    lo: Optional[float]
    hi: Optional[float]
    n: int                       # shared clips
    n_baseline: int
    n_current: int
    display: str = ""
    margin: float = 0.0          # practical equivalence: a change this small is no change (tolerances.py)

    def reading(self) -> str:
        """What the interval says, in the metric's direction: "better" / "worse" only when
        the interval excludes 0 and the difference is larger than the equivalence margin,
        so float noise between devices or batch sizes never reads as a change."""
        if self.lo is None or self.hi is None or self.lo <= 0.0 <= self.hi or abs(self.difference) <= self.margin:
            return "no clear change"
        up = self.lo > 0.0
        return "better" if up == metric_facts(self.metric).higher_is_better else "worse"


def paired(baseline: Union[Results, Mapping[str, Any]], current: Union[Results, Mapping[str, Any]],
           n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> Tuple[List[PairedLine], List[str]]:
    """Paired differences (current - baseline) for every (method, NFE, metric) whose
    rows keep per-clip values in both runs; notes for rows that could not be paired."""
    cur = as_results(current)
    base_rows = {r.key: r for r in as_results(baseline).rows}
    lines: List[PairedLine] = []
    notes: List[str] = []
    for row in cur.rows:
        other = base_rows.get(row.key)
        cur_clips = (row.extra or {}).get("per_clip")
        base_clips = (other.extra or {}).get("per_clip") if other is not None else None
        if not cur_clips or not base_clips:
            continue
        try:
            d = paired_difference(cur_clips, base_clips, n_boot=n_boot, seed=seed, alpha=alpha)
        except ValueError as err:
            notes.append(f"{row.method} NFE {row.nfe} {row.metric}: not paired ({err})")
            continue
        shared = [float(base_clips[k]) for k in set(cur_clips) & set(base_clips)]
        lines.append(PairedLine(row.method, row.nfe, row.metric, d.difference, d.lo, d.hi, d.n,
                                len(base_clips), len(cur_clips), cur.display_name(row.method),
                                equivalence_margin(row.metric, sum(shared) / len(shared))))
    return lines, notes


def format_paired(lines: Sequence[PairedLine], alpha: float = 0.05) -> str:
    head = ["method", "steps", "metric", "current - baseline", f"{100 * (1 - alpha):g}% interval", "margin",
            "clips", "reading"]
    body = [[ln.display or ln.method, str(ln.nfe), _metric_label(ln.metric), f"{ln.difference:+.4g}",
             "–" if ln.lo is None else f"[{ln.lo:+.4g}, {ln.hi:+.4g}]", f"±{ln.margin:.4g}",
             f"{ln.n}" + ("" if ln.n == ln.n_baseline == ln.n_current else f" of {ln.n_baseline}/{ln.n_current}"),
             ln.reading()] for ln in lines]
    return _aligned(head, body, {1, 3, 4, 5, 6})


def _describe(path: str, res: Results) -> str:
    git = (res.provenance.git_commit or "unknown")[:10] + ("+dirty" if res.provenance.git_dirty else "")
    return (f"{path}  [{res.run.experiment}, {res.weights_mode} weights, git {git}, "
            f"{res.provenance.device.name}, {res.run.started_at}]")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m results.compare",
        description="Compare a run's results.json with a baseline; exit 1 on regression, 2 if not comparable.")
    ap.add_argument("baseline", help="baseline results.json (e.g. results/baselines/regression.json)")
    ap.add_argument("current", help="results.json of the run to check")
    ap.add_argument("--tolerance", action="append", default=[], metavar="METRIC=AMOUNT",
                    help="e.g. fvd=5%% (relative), clipsim=0.5 (absolute), vbench=ci; repeatable")
    ap.add_argument("--tolerances", metavar="FILE.yaml", help="YAML mapping metric -> tolerance")
    ap.add_argument("--markdown", metavar="PATH", help="also write the comparison as a Markdown table "
                                                        "(e.g. $GITHUB_STEP_SUMMARY)")
    ap.add_argument("--json", metavar="PATH", dest="json_out", help="also write the verdicts as JSON")
    ap.add_argument("--no-color", action="store_true")
    ap.add_argument("--paired", action="store_true",
                    help="also print paired differences on the shared clips for metrics with per-clip values")
    ap.add_argument("--paired-boot", type=int, default=1000, metavar="N", help="paired bootstrap resamples")
    args = ap.parse_args(argv)

    try:
        tolerances = load_tolerance_file(args.tolerances) if args.tolerances else {}
        tolerances.update(parse_tolerance_args(args.tolerance))
    except ToleranceError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INCOMPARABLE
    try:
        base = load(args.baseline)
        cur = load(args.current)
    except (FileNotFoundError, SchemaError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INCOMPARABLE
    reasons = comparable(base, cur)
    print("lcmbench regression check")
    print(f"  baseline: {_describe(args.baseline, base)}")
    print(f"  current:  {_describe(args.current, cur)}")
    if reasons:
        print(f"lcmbench: error: NOT COMPARABLE, refusing to compare these results: {'; '.join(reasons)}. Compare "
              f"runs of one protocol, or regenerate the baseline with this one (results/baselines/README.md).",
              file=sys.stderr)
        return EXIT_INCOMPARABLE
    lines, notes = compare(base, cur, tolerances)
    color = not args.no_color and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    print()
    print(format_text(lines, color=color))
    for n in notes:
        print(f"note: {n}")
    s = summarize(lines)
    verdict = "FAIL" if failed(lines) else "PASS"
    summary = (f"{s['compared']} compared: {s['ok']} ok, {s['better']} better, {s['REGRESSION']} regression(s); "
               f"{s['missing']} missing, {s['new']} new. {verdict}")
    if args.paired:
        plines, pnotes = paired(base, cur, n_boot=args.paired_boot)
        print(f"\nPaired differences on the same clips ({args.paired_boot} paired bootstrap resamples, "
              f"seed 0; information only, not part of the verdict):")
        print(format_paired(plines) if plines else "  no metric keeps per-clip values in both runs")
        for n in pnotes:
            print(f"note: {n}")
    print(f"\n{summary}")
    if args.markdown:
        head = (f"### lcmbench regression check: {verdict}\n\n{summary}\n\n"
                + "".join(f"> note: {n}\n\n" for n in notes))
        with open(args.markdown, "a", encoding="utf-8") as f:
            f.write(format_markdown(lines, head))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"verdict": verdict, "summary": s, "notes": notes,
                                                   "lines": [asdict(ln) for ln in lines]}, indent=2) + "\n",
                                       encoding="utf-8")
    return EXIT_REGRESSION if failed(lines) else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
