"""results.tables: the paper's layout, reproduced from the paper's own numbers, and the other tables."""
import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from results import paper
from results.schema import save
from tests.synthetic import make_results
from results.tables import (ablation_table, build_table1, load_published_vbench, lopsided, table1, table2, time_table)

ROOT = Path(__file__).resolve().parents[1]
ROWS = ["DDIM", "DPM++", "Ours", "Ours-R"]
KEYS = dict(zip(ROWS, paper.METHODS))


def md_table(text):
    """Header and {row label: cells} of the first Markdown table in ``text`` (bold/italic stripped)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    split = lambda ln: [c.strip().strip("*") for c in ln.strip().strip("|").split("|")]
    header = split(lines[0])
    assert set(lines[1].replace("|", "").replace(":", "")) == {"-"}
    return header, [split(ln) for ln in lines[2:]]


def tex_rows(text):
    body = text.split("\\midrule")[1].split("\\bottomrule")[0]
    rows = []
    for ln in body.strip().splitlines():
        if not ln.strip().endswith("\\\\"):
            continue
        cells = [re.sub(r"\\text(bf|it)\{(.*)\}", r"\2", c.strip()) for c in ln.strip()[:-2].split("&")]
        rows.append(cells)
    return rows


@pytest.fixture(scope="module")
def tiny():
    return make_results(n_boot=60)


def test_table1_markdown_reproduces_the_paper():
    header, rows = md_table(table1(paper.as_results(), fmt="md"))
    assert header == ["Method"] + [f"{g} {k}-Step" for g in ("FVD ↓", "CLIPSIM ↑") for k in (1, 2, 4, 8)]
    assert [r[0] for r in rows] == ROWS
    for r in rows:
        for j, (metric, nfe) in enumerate([(m, k) for m in ("fvd", "clipsim") for k in (1, 2, 4, 8)], start=1):
            assert r[j] == f"{paper.TABLE1[metric][KEYS[r[0]]][nfe]:.2f}", (r[0], metric, nfe)
    # Spot checks against the paper's text, cell by cell.
    cells = {r[0]: r[1:] for r in rows}
    assert cells["DDIM"][0] == "4940.83" and cells["Ours-R"][7] == "30.71"
    assert cells["Ours"][2] == "925.71" and cells["DPM++"][5] == "18.04"


def test_table1_latex_reproduces_the_paper_layout():
    tex = table1(paper.as_results(), fmt="tex")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\multicolumn{4}{c}{FVD $\\downarrow$} & \\multicolumn{4}{c}{CLIPSIM $\\uparrow$}" in tex
    assert "\\cmidrule(lr){2-5} \\cmidrule(lr){6-9}" in tex
    assert "Method & 1-Step & 2-Step & 4-Step & 8-Step & 1-Step & 2-Step & 4-Step & 8-Step \\\\" in tex
    rows = tex_rows(tex)
    assert [r[0] for r in rows] == ROWS
    for r in rows:
        expect = [f"{paper.TABLE1[m][KEYS[r[0]]][k]:.2f}" for m in ("fvd", "clipsim") for k in (1, 2, 4, 8)]
        assert r[1:] == expect
    # The paper's best values are bold: Ours-R at 1 and 2 steps for FVD, Ours at 4 and 8.
    assert "\\textbf{1071.50}" in tex and "\\textbf{790.99}" in tex and "\\textbf{925.71}" in tex
    assert "\\textbf{30.71}" in tex and "\\textbf{4940.83}" not in tex


def test_with_paper_adds_reference_subrows(tiny):
    header, rows = md_table(table1(tiny, with_paper=True))
    labels = [r[0] for r in rows]
    assert labels == ["DDIM", "paper", "DPM++", "paper", "Ours", "paper", "Ours-R", "paper"]
    ours_paper = rows[labels.index("Ours") + 1]
    assert ours_paper[1:5] == ["1256.50", "1081.26", "925.71", "910.34"]
    tex = table1(tiny, fmt="tex", with_paper=True)
    assert "\\textit{\\quad paper} & \\textit{4940.83}" in tex


def test_tiny_tables_carry_the_weights_label_and_intervals(tiny):
    md = table1(tiny)
    assert "> **SYNTHETIC DATA, TINY RANDOM WEIGHTS - not comparable to paper numbers**" in md
    _, rows = md_table(md)
    r = next(x for x in tiny["rows"] if (x["method"], x["nfe"], x["metric"]) == ("animatelcm", 4, "fvd"))
    ours = next(x for x in rows if x[0] == "Ours")
    assert lopsided(r["value"], r["ci_low"], r["ci_high"])          # bootstrap FVD intervals are skewed
    assert ours[3] == f"{r['value']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
    clip = next(x for x in tiny["rows"] if (x["method"], x["nfe"], x["metric"]) == ("animatelcm", 4, "clipsim"))
    text = next(x for x in rows if x[0] == "Ours")[7]
    if lopsided(clip["value"], clip["ci_low"], clip["ci_high"]):
        assert text.endswith("]")
    else:
        assert text == f"{clip['value']:.2f} ± {(clip['ci_high'] - clip['ci_low']) / 2:.2f}"
    _, rows = md_table(table1(tiny, ci_style="interval"))
    ours = next(x for x in rows if x[0] == "Ours")
    assert ours[3] == f"{r['value']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
    tex = table1(tiny, fmt="tex")
    assert tex.startswith("% SYNTHETIC DATA, TINY RANDOM WEIGHTS")
    assert "\\caption{\\textbf{SYNTHETIC DATA, TINY RANDOM WEIGHTS" in tex
    assert "Published" not in table1(paper.as_results())  # pretrained: no warning line


def test_missing_cells_show_a_dash(tiny):
    d = copy.deepcopy(tiny)
    d["rows"] = [r for r in d["rows"] if not (r["method"] == "animatelcm_r" or (r["nfe"] == 8 and r["metric"] == "fvd"))]
    _, rows = md_table(table1(d))
    cells = {r[0]: r[1:] for r in rows}
    assert cells["Ours-R"] == ["–"] * 8
    assert cells["DDIM"][3] == "–" and cells["DDIM"][7] != "–"
    assert "Ours-R & -- & --" in table1(d, fmt="tex")


def test_table1_html_has_grouped_header(tiny):
    h = table1(tiny, fmt="html")
    assert '<th colspan="4" class="group">FVD ↓</th>' in h and "<td" in h and "label-line" in h
    t = build_table1(tiny)
    assert t.column("Method") == ROWS


def test_table2_merges_published_scores_sorted_by_total(tiny):
    pub = load_published_vbench()
    assert {p["model"] for p in pub} >= {"ModelScope", "LaVie", "Show-1", "AnimateDiff-V2", "VideoCrafter-2.0"}
    assert all(p["source"] for p in pub)
    pretrained = make_results(n_boot=50, weights_mode="pretrained")   # published rows sit beside real runs only
    header, rows = md_table(table2(pretrained, with_paper=True))
    assert header == ["Model", "Fast", "Total ↑", "Quality ↑", "Semantic ↑", "Source"]
    totals = [float(r[2].strip("()")) for r in rows if r[2] != "–"]
    assert totals == sorted(totals, reverse=True)
    by = {r[0]: r for r in rows}
    assert by["AnimateLCM (paper)"][2:5] == ["79.42", "82.36", "67.65"]
    assert by["VideoCrafter-2.0"][2:5] == ["80.44", "82.20", "73.42"]
    ours = next(r for r in rows if r[0].startswith("Ours"))
    assert ours[0].endswith("†") and ours[1] == "✓" and "this run" in ours[5]
    # a partial mean is never printed as if it were VBench's Quality: parentheses, dimensions listed
    assert ours[3].startswith("(") and ours[3].endswith(")")
    assert "means over those dimensions only" in table2(pretrained)
    assert "partial VBench, 4 of 16 dimensions" in table2(pretrained)
    assert "\\checkmark" in table2(pretrained, fmt="tex")


def test_table2_keeps_tiny_runs_apart_and_says_each_footnote_once(tiny):
    """Tiny-weight rows are not ranked among published models; a footnote that holds for
    every method is written once, naming them."""
    d = copy.deepcopy(tiny)
    first = next(iter(d["vbench"].values()))
    d["vbench"] = {m: copy.deepcopy(first) for m in d["methods"]}   # VBench for every method, as the smoke run
    for entry in d["vbench"].values():
        entry["missing_videos"] = {"temporal_flickering": 370}
        entry["non_standard"] = {"temporal_flickering": "RAFT static filter not applied"}
    text = table2(d, with_paper=True)
    header, rows = md_table(text)
    names = [d["methods"][m]["display_name"] for m in d["vbench"]]
    assert len(rows) == len(names) >= 2 and all(r[5] == "this run (tiny weights)" for r in rows)
    assert "VideoCrafter-2.0" not in text and "AnimateLCM (paper)" not in text
    assert "are not listed beside tiny-weight rows" in text and "vbench_published.csv" in text
    for mark in ("†", "‡", "§"):
        assert all(mark in r[0] for r in rows)
    assert text.count("a subset of VBench's standard prompts") == 1
    assert text.count("not VBench's standard protocol for temporal_flickering") == 1
    assert text.count("partial VBench,") == 1 and all(n in text for n in names)


def test_table2_marks_non_standard_vbench_scores(tiny):
    d = copy.deepcopy(tiny)
    mid = next(iter(d["vbench"]))
    d["vbench"][mid]["non_standard"] = {"temporal_flickering": "RAFT static filter not applied"}
    text = table2(d)
    row = next(r for r in md_table(text)[1] if r[0].startswith(d["methods"][mid]["display_name"]))
    assert row[0].endswith("§")
    assert "§" in text and "temporal_flickering (RAFT static filter not applied)" in text


def test_published_csv_errors_are_clear(tmp_path):
    bad = tmp_path / "v.csv"
    bad.write_text("model,fast,total,quality,semantic,source\nX,0,eighty,1,1,s\n")
    with pytest.raises(ValueError, match=r"v.csv:2: total/quality/semantic must be numbers"):
        load_published_vbench(bad)
    bad.write_text("model,total\nX,1\n")
    with pytest.raises(ValueError, match="missing column"):
        load_published_vbench(bad)


def test_time_table_speedups_and_paper_column(tiny):
    header, rows = md_table(time_table(tiny, with_paper=True))
    assert header[:6] == ["Method", "Steps", "CFG", "UNet evals", "Denoise ms", "Speed-up"]
    assert "Paper ms" in header and "Device" not in header  # one device: stated in the notes
    teacher = next(t for t in tiny["timing"] if t["method"] == "ddim" and t["nfe"] == 50)
    ours = next(t for t in tiny["timing"] if t["method"] == "animatelcm" and t["nfe"] == 4)
    first = rows[0]
    assert first[:4] == ["DDIM", "50", "7.5", "100"] and first[5] == "1.0×"
    row = next(r for r in rows if r[0] == "Ours" and r[1] == "4")
    assert row[2] == "off" and row[3] == "4"
    assert row[5] == f"{teacher['denoise_ms_median'] / ours['denoise_ms_median']:.1f}×"
    assert row[6] == "25.0×"  # (50 steps x 2 for CFG) / 4
    assert row[header.index("Paper ms")] == "963.0" and row[header.index("Paper speed-up")] == "24.5×"
    assert "cpu float32" in time_table(tiny)
    d = copy.deepcopy(tiny)
    d["timing"] = []
    with pytest.raises(ValueError, match="no timing entries"):
        time_table(d)


def test_ablation_table_lists_steps_per_strategy_with_intervals_and_published_rows_apart(tiny):
    header, rows = md_table(ablation_table(tiny, with_paper=True))
    assert header[0] == "Train step"
    assert header[1:4] == ["FVD ↓ (4-step) Decoupled", "FVD ↓ (4-step) Joint", "FVD ↓ (4-step) Δ joint − decoupled"]
    assert header[4:] == ["CLIPSIM ↑ (4-step) Decoupled", "CLIPSIM ↑ (4-step) Joint",
                          "CLIPSIM ↑ (4-step) Δ joint − decoupled"]
    assert [r[0] for r in rows[:4]] == ["500", "1,000", "2,000", "4,000"]
    assert all("±" in c or "[" in c for r in rows[:4] for c in (r[1], r[2], r[4], r[5]))
    # the paper's numbers come last, under a row saying they are published, not measured here
    assert rows[4][0].startswith("Published in the AnimateLCM paper (not measured in this run)")
    paper_row = [c.strip("*") for c in rows[5]]
    assert paper_row[0] == "paper, step not stated" and paper_row[1:3] == ["985.9", "1060.6"]
    assert paper_row[4:6] == ["27.7", "18.8"]
    text = ablation_table(tiny, with_paper=True)
    assert "n = 24 clips per cell" in text and "FVD against" in text


def test_ablation_table_shows_the_paired_difference_at_equal_steps(tiny):
    for a in tiny["ablation"]:
        if a["distillation"] == "joint" and a["train_step"] == 4000:
            a["rows"][0]["extra"]["paired"] = {"against": "decoupled-4000", "difference": 3.0, "lo": 1.0,
                                               "hi": 5.0, "n": 24, "reading": "worse"}
    header, rows = md_table(ablation_table(tiny))
    row = next(r for r in rows if r[0] == "4,000")
    assert row[3] == "+3.00 [1.00, 5.00] worse"
    assert "Published" not in ablation_table(tiny)


def test_tables_cli(tmp_path, tiny):
    p = save(tmp_path / "results.json", tiny)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "results.tables", str(p), "--with-paper", "--format", "tex"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\\begin{tabular}") == 4  # Table 1, Table 2, time, ablation
    out = subprocess.run([sys.executable, "-m", "results.tables", str(tmp_path / "missing.json")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 2 and "results file not found" in out.stderr


@pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None,
                    reason="needs pdflatex with booktabs (apt-get install -y texlive-latex-recommended)")
def test_latex_tables_compile(tmp_path, tiny):
    if subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True).returncode != 0:
        pytest.skip("booktabs.sty not installed (texlive-latex-recommended)")
    body = "\n".join([table1(paper.as_results(), fmt="tex"), table1(tiny, fmt="tex", with_paper=True),
                      table1(tiny, fmt="tex", ci_style="interval"), table2(tiny, fmt="tex", with_paper=True),
                      time_table(tiny, fmt="tex", with_paper=True), ablation_table(tiny, fmt="tex", with_paper=True)])
    doc = ("\\documentclass{article}\\usepackage{booktabs}\\usepackage{amssymb}"
           "\\usepackage[margin=1cm,landscape]{geometry}\\begin{document}\n" + body + "\n\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc, encoding="utf-8")
    out = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000
