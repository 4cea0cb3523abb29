"""Tables that follow the metric registry rather than the paper's layout.

- :func:`build_table1_extended`: Table 1 with every per-clip metric of the run (the
  registry's clip-kind metrics, in its order: FVD, CLIPSIM and any plug-in's), one row per
  (method, NFE), each cell with its interval when the run has one.
- :func:`build_metrics_table`: the facts of every metric the run reports (display name,
  direction, decimals, regression tolerance, unit), as the report lists them.
"""
from __future__ import annotations

from typing import Any, List, Mapping, Union

from common.errors import InputError
from metrics import display as metric_display
from metrics import facts as metric_facts

from results.model import Results
from results.registry import arrow, clip_row_metrics, facts_line, in_registry_order
from results.schema import as_results
from results.table_render import DASH, Cell, Table, render
from results.tables import CI_STYLES, ci_note, value_cell
from results.views import flat_rows


def _label(res: Results) -> str:
    return res.label if res.weights_mode != "pretrained" else ""


def build_table1_extended(results: Union[Results, Mapping[str, Any]], ci_style: str = "pm") -> Table:
    """Every per-clip metric of the run per (method, NFE), values with their intervals."""
    if ci_style not in CI_STYLES:
        raise InputError(f"ci_style must be one of {CI_STYLES}, got {ci_style!r}")
    res = as_results(results)
    shown = clip_row_metrics(r.metric for r in res.rows)
    columns = ["Method", "Steps"] + [f"{metric_display(m)} {arrow(m)}" for m in shown]
    rows: List[List[Cell]] = []
    for method in res.method_order():
        for nfe in sorted({r.nfe for r in res.rows if r.method == method and r.metric in shown}):
            rows.append([Cell(res.display_name(method)), Cell(str(nfe))]
                        + [value_cell(res.row(method, nfe, m), metric_facts(m).decimals, ci_style) for m in shown])
    protocols = {metric_facts(m).name: res.provenance.protocols.get(metric_facts(m).name) for m in shown}
    notes = [f"{DASH}: not measured. Every per-clip metric this run scored, in the metric registry's order "
             f"(↑ higher is better, ↓ lower is better); units as each metric declares them."]
    listed = ", ".join(f"{metric_facts(m).display_name}: {p['name']} v{p['version']}"
                       for m, p in protocols.items() if p)
    if listed:
        notes.append(f"Protocols: {listed}.")
    ci = ci_note(res, ci_style)
    if ci:
        notes.append(ci)
    return Table(title="Table 1, extended: every per-clip metric by method and number of denoising steps.",
                 columns=columns, rows=rows, row_kinds=["data"] * len(rows), label=_label(res), notes=notes,
                 tex_label="tab:ucf101-extended", stub=2, align="ll" + "c" * len(shown))


def table1_extended(results: Union[Results, Mapping[str, Any]], fmt: str = "md", ci_style: str = "pm") -> str:
    return render(build_table1_extended(results, ci_style), fmt)


def reported_metrics(res: Results) -> List[str]:
    """Every row metric the run reports (rows and results sections), in the registry's order."""
    in_ablation = {r.metric for a in res.ablation or [] for r in a.rows}
    return in_registry_order({r["metric"] for r in flat_rows(res)} | in_ablation)


def build_metrics_table(results: Union[Results, Mapping[str, Any]]) -> Table:
    """One row per reported metric: what its numbers mean and how far they may move."""
    res = as_results(results)
    keys = ["display_name", "metric", "family", "kind", "direction", "decimals", "tolerance", "unit"]
    columns = ["Metric", "Row name", "Plug-in", "Kind", "Direction", "Decimals", "Regression tolerance", "Unit"]
    rows = [[Cell(facts_line(m)[k]) for k in keys] for m in reported_metrics(res)]
    notes = ["Facts declared by each metric's plug-in in the metric registry. Regression tolerance: the default "
             "noise floor of python -m results.compare (relative to the baseline, or absolute in the metric's "
             "units); kind: clip (scored per clip from the store) or set (scored on a set of stored videos)."]
    return Table(title="Metrics: what the numbers mean.", columns=columns, rows=rows, row_kinds=["data"] * len(rows),
                 label=_label(res), notes=notes, tex_label="tab:metrics", stub=2, align="ll" + "l" * 6)
