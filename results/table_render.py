"""The table model (:class:`Table` of :class:`Cell`) and its renderings as Markdown,
LaTeX (booktabs) and HTML, with the number formats every table shares."""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple
from common.errors import InputError

DASH = "–"


FORMATS = ("md", "tex", "html")


@dataclass
class Cell:
    """One table cell: plain text (Markdown/HTML) and, where it differs, LaTeX."""

    text: str
    tex: Optional[str] = None
    bold: bool = False
    sort_value: Optional[float] = None
    interval: Optional[Tuple[float, float]] = None   # the value's confidence interval, when it has one

    @property
    def latex(self) -> str:
        return self.tex if self.tex is not None else tex_escape(self.text)


@dataclass
class Table:
    title: str
    columns: List[str]
    rows: List[List[Cell]]
    row_kinds: List[str] = field(default_factory=list)  # "data" | "paper" | "published" per row
    groups: Optional[List[Tuple[str, int]]] = None       # header groups over columns after the stub
    stub: int = 1                                         # leading label columns
    label: str = ""                                       # weights-mode warning
    notes: List[str] = field(default_factory=list)
    tex_columns: Optional[List[str]] = None
    tex_groups: Optional[List[Tuple[str, int]]] = None
    tex_label: str = "tab:results"
    align: Optional[str] = None                           # LaTeX column spec, e.g. "lcccc"

    def column(self, name: str) -> List[str]:
        i = self.columns.index(name)
        return [r[i].text for r in self.rows]


def paired_cell(r, decimals: int) -> Cell:
    """A row's paired difference (``extra.paired``: difference, interval, reading), or a dash."""
    p = (r.extra or {}).get("paired") if r is not None else None
    if not p:
        return Cell(DASH, "--")
    d = ("+" if p["difference"] > 0 else "") + fmt_num(p["difference"], decimals)
    if p.get("lo") is None:
        return Cell(f"{d} ({p['reading']})")
    return Cell(f"{d} [{fmt_num(p['lo'], decimals)}, {fmt_num(p['hi'], decimals)}] {p['reading']}")


def tex_escape(s: str) -> str:
    """Escape LaTeX special characters in plain text."""
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
           "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
           "–": "--", "±": r"$\pm$", "↓": r"$\downarrow$", "↑": r"$\uparrow$", "✓": r"\checkmark{}",
           "×": r"$\times$", "†": r"$^\dagger$", "≥": r"$\geq$", "→": r"$\to$"}
    return "".join(rep.get(ch, ch) for ch in s)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def to_markdown(t: Table) -> str:
    out = [f"**{t.title}**", ""]
    if t.label:
        out += [f"> **{t.label}**", ""]
    cols = list(t.columns)
    if t.groups:
        i = t.stub
        for name, span in t.groups:
            for j in range(i, i + span):
                cols[j] = f"{name} {cols[j]}"
            i += span
    out.append("| " + " | ".join(_md_escape(c) for c in cols) + " |")
    spec = t.align or ("l" * t.stub + "r" * (len(cols) - t.stub))
    out.append("|" + "|".join({"l": ":---", "c": ":---:"}.get(spec[i], "---:") for i in range(len(cols))) + "|")
    for kind, row in zip(t.row_kinds or ["data"] * len(t.rows), t.rows):
        cells = []
        for i, c in enumerate(row):
            txt = _md_escape(c.text)
            if c.bold and c.text != DASH:
                txt = f"**{txt}**"
            elif kind == "paper" and c.text and c.text != DASH:
                txt = f"*{txt}*"
            cells.append(txt)
        out.append("| " + " | ".join(cells) + " |")
    if t.notes:
        out.append("")
        out += [f"- {n}" for n in t.notes]
    return "\n".join(out) + "\n"


def to_latex(t: Table) -> str:
    ncol = len(t.columns)
    align = t.align or ("l" * t.stub + "c" * (ncol - t.stub))
    cols = t.tex_columns or [tex_escape(c) for c in t.columns]
    # LaTeX numbers tables itself: drop our "Table N." prefix from the caption.
    caption = tex_escape(re.sub(r"^Table \d+\.\s*", "", t.title))
    if t.label:
        caption = r"\textbf{" + tex_escape(t.label) + "}. " + caption
    out = []
    if t.label:
        out.append(f"% {t.label}")
    out += [r"% requires \usepackage{booktabs} (and amssymb for \checkmark)",
            r"\begin{table}[t]", r"\centering", r"\small", f"\\caption{{{caption}}}", f"\\label{{{t.tex_label}}}",
            f"\\begin{{tabular}}{{{align}}}", r"\toprule"]
    groups = t.tex_groups or ([(tex_escape(n), s) for n, s in t.groups] if t.groups else None)
    if groups:
        head, rules, i = ["" for _ in range(t.stub)], [], t.stub + 1
        for name, span in groups:
            head.append(f"\\multicolumn{{{span}}}{{c}}{{{name}}}")
            rules.append(f"\\cmidrule(lr){{{i}-{i + span - 1}}}")
            i += span
        out.append(" & ".join(head) + r" \\")
        out.append(" ".join(rules))
    out.append(" & ".join(cols) + r" \\")
    out.append(r"\midrule")
    kinds = t.row_kinds or ["data"] * len(t.rows)
    for k, (kind, row) in enumerate(zip(kinds, t.rows)):
        cells = []
        for c in row:
            s = c.latex
            if c.bold and c.text != DASH:
                s = r"\textbf{" + s + "}"
            elif kind == "paper" and c.text and c.text != DASH:
                s = r"\textit{" + s + "}"
            cells.append(s)
        out.append(" & ".join(cells) + r" \\")
        if kind == "paper" and k + 1 < len(t.rows) and kinds[k + 1] != "paper":
            out.append(r"\addlinespace[2pt]")
    out.append(r"\bottomrule")
    out.append(r"\end{tabular}")
    if t.notes:
        # \par, not \\: a note starting with "[" would be read as \\'s optional argument.
        out.append(r"\par\smallskip{\footnotesize " + r"\par ".join(tex_escape(n) for n in t.notes) + r"\par}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


# "value [lo, hi]", "value ± half-width", "+d [lo, hi] reading": the value, then the rest
_WITH_INTERVAL = re.compile(r"^(\S+) ([\[±(].*)$")


def _html_cell(text: str) -> str:
    """A number and its interval on two lines in HTML (the interval may wrap), so a
    table of 8 step columns fits a 1280 px window without scrolling."""
    m = _WITH_INTERVAL.match(text)
    if not m:
        return html.escape(text)
    return f'{html.escape(m.group(1))}<span class="ci">{html.escape(m.group(2))}</span>'


def to_html(t: Table, table_id: Optional[str] = None) -> str:
    e = html.escape
    idattr = f' id="{e(table_id)}"' if table_id else ""
    out = [f'<figure class="table"{idattr}>', f"<figcaption>{e(t.title)}</figcaption>"]
    if t.label:
        out.append(f'<div class="label-line">{e(t.label)}</div>')
    out.append('<table class="results">')
    out.append("<thead>")
    if t.groups:
        out.append("<tr>" + "".join("<th></th>" for _ in range(t.stub))
                   + "".join(f'<th colspan="{s}" class="group">{e(n)}</th>' for n, s in t.groups) + "</tr>")
    spec = t.align or ("l" * t.stub + "r" * (len(t.columns) - t.stub))
    klass = [{"l": "stub", "c": "center"}.get(spec[i], "num") for i in range(len(t.columns))]
    out.append("<tr>" + "".join(f'<th class="{klass[i]}">{e(c)}</th>' for i, c in enumerate(t.columns)) + "</tr>")
    out.append("</thead><tbody>")
    for kind, row in zip(t.row_kinds or ["data"] * len(t.rows), t.rows):
        tds = []
        for i, c in enumerate(row):
            cls = [klass[i]]
            if c.bold and c.text != DASH:
                cls.append("best")
            if c.text == DASH:
                cls.append("missing")
            tds.append(f'<td class="{" ".join(cls)}">{_html_cell(c.text) if i >= t.stub else e(c.text)}</td>')
        out.append(f'<tr class="{kind}">' + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    if t.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in t.notes) + "</ul>")
    out.append("</figure>")
    return "\n".join(out) + "\n"


def render(t: Table, fmt: str = "md") -> str:
    if fmt == "md":
        return to_markdown(t)
    if fmt == "tex":
        return to_latex(t)
    if fmt == "html":
        return to_html(t)
    raise InputError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")


def fmt_num(v: Optional[float], decimals: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return DASH
    return f"{v:,.{decimals}f}" if abs(v) >= 10000 else f"{v:.{decimals}f}"


def fmt_ms(v: Optional[float]) -> str:
    if v is None:
        return DASH
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"
