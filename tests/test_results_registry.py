"""A metric added through the registry alone (no project file edited) is validated in
results files, gets its columns in the leaderboard and the extended Table 1, its line in
the report's metric facts, its regression tolerance and its treatment as a per-clip mean
or a set statistic.

The metric is registered in-process the way an entry point would be: ``metrics.BUILTIN``
gains a "module:Class" target and ``metrics.refresh()`` forgets the cached registry."""
import copy

import pytest

import metrics
from metrics.plugin import Metric
from results.compare import compare
from results.leaderboard import build_leaderboard_table
from results.metric_tables import build_metrics_table, build_table1_extended
from results.registry import clip_row_metrics, is_set_statistic, rank
from results.report import render_report, write_all
from results.schema import SchemaError, comparable, validate
from results.table_render import render
from results.tolerances import ToleranceError, parse_tolerance_args, tolerance_for
from tests.synthetic import make_results

NAME = "sharpness"


class Sharpness(Metric):
    """A per-clip metric known to the project only through the registry."""
    name = NAME
    display_name = "Edge Sharpness"
    higher_is_better = True
    decimals = 3
    tolerance = ("abs", 0.05)
    unit = " (a.u.)"
    kind = "clip"
    builder = "tests.test_results_registry:Sharpness"   # never built here


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(metrics.BUILTIN, NAME, f"{__name__}:Sharpness")
    metrics.refresh()
    yield Sharpness
    monkeypatch.undo()
    metrics.refresh()
    assert not metrics.is_known(NAME)


def _with_sharpness(per_clip: bool = True, paired: bool = False):
    """Synthetic results with a sharpness row beside every FVD row."""
    data = make_results(n_boot=50, with_vbench=False, with_ablation=False)
    data["provenance"]["protocols"][NAME] = {"name": NAME, "version": "1"}
    extra_rows = []
    for i, r in enumerate(r for r in data["rows"] if r["metric"] == "fvd"):
        value = 0.5 + 0.01 * i
        row = {"method": r["method"], "nfe": r["nfe"], "metric": NAME, "value": value, "n": 4,
               "protocol": f"{NAME}-v1", "ci_low": value - 0.02, "ci_high": value + 0.02, "extra": {}}
        if per_clip:
            row["extra"]["per_clip"] = {f"{r['method']}/nfe{r['nfe']}/c{k}": value + d
                                        for k, d in enumerate((-0.01, 0.0, 0.0, 0.01))}
        extra_rows.append(row)
    data["rows"] += extra_rows
    if paired:
        ref = data["rows"][0]["method"]
        for r in data["rows"]:
            if r["method"] != ref:
                r["extra"]["paired"] = {"against": ref, "difference": 0.125, "lo": 0.1, "hi": 0.15, "n": 4,
                                        "margin": 0.05, "reading": "better"}
    return data


def test_an_unregistered_metric_is_refused_and_a_registered_one_validates(monkeypatch):
    data = _with_sharpness()
    with pytest.raises(SchemaError) as err:
        validate(data)
    assert f"unknown metric '{NAME}'" in str(err.value) and f"provenance.protocols.{NAME}" in str(err.value)
    monkeypatch.setitem(metrics.BUILTIN, NAME, f"{__name__}:Sharpness")
    metrics.refresh()
    try:
        res = validate(data)
        assert NAME in res.metrics()
        bad = copy.deepcopy(data)
        bad["rows"][-1]["protocol"] = "other"
        with pytest.raises(SchemaError, match=f"does not match provenance.protocols.{NAME}"):
            validate(bad)
    finally:
        monkeypatch.undo()
        metrics.refresh()


def test_the_registry_order_and_kind_place_the_metric(registered):
    assert clip_row_metrics()[-1] == NAME and rank(NAME) == metrics.row_metrics().index(NAME)
    assert clip_row_metrics(["vbench_total", NAME]) == [NAME]   # a set metric's rows are not per-clip


def test_the_leaderboard_gets_its_columns(registered):
    table = build_leaderboard_table(_with_sharpness(paired=True))
    ref = table.rows[0][0].text
    assert "Edge Sharpness ↑" in table.columns and any(c.startswith("ΔEdge Sharpness vs") for c in table.columns)
    row = next(r for r in table.rows if r[0].text != ref)
    cells = {c: row[i].text for i, c in enumerate(table.columns)}
    assert cells["Edge Sharpness ↑"].count(".") == 2 and "±" in cells["Edge Sharpness ↑"]   # 3 decimals, interval
    delta = next(v for c, v in cells.items() if c.startswith("ΔEdge Sharpness"))
    assert delta == "+0.125 [0.100, 0.150] better"


def test_write_all_writes_the_extended_table1_with_its_intervals(registered, tmp_path):
    data = _with_sharpness()
    written = {p.relative_to(tmp_path).as_posix() for p in write_all(data, tmp_path)}
    assert {"tables/table1_extended.md", "tables/table1_extended.tex", "tables/table1.md"} <= written
    md = (tmp_path / "tables" / "table1_extended.md").read_text()
    assert "FVD ↓" in md and "CLIPSIM ↑" in md and "Edge Sharpness ↑" in md
    first = next(r for r in data["rows"] if r["metric"] == NAME)
    assert f"{first['value']:.3f} ± 0.020" in md
    assert "Edge Sharpness" in (tmp_path / "tables" / "table1_extended.tex").read_text()
    table = build_table1_extended(validate(data))
    assert len(table.rows) == len({(r["method"], r["nfe"]) for r in data["rows"]})
    # the paper's Table 1 keeps its two metrics
    assert "Edge Sharpness" not in (tmp_path / "tables" / "table1.md").read_text()


def test_the_report_lists_the_metrics_facts(registered):
    data = _with_sharpness()
    facts = render(build_metrics_table(data), "md")
    line = next(ln for ln in facts.splitlines() if "Edge Sharpness" in ln)
    for fact in (NAME, "clip", "higher is better", "3", "±0.05", "a.u."):
        assert fact in line, (fact, line)
    assert "FVD" in facts and "lower is better" in facts and "2% of the baseline" in facts
    page = render_report(data, figs={})
    assert 'id="metrics"' in page and "Edge Sharpness" in page and "±0.05" in page


def test_its_regression_tolerance_is_its_tolerance_fact(registered):
    assert tolerance_for(NAME, 0.5, None, {}) == (0.05, "floor 0.05")
    assert parse_tolerance_args([f"{NAME}=0.2"])[NAME].amount == 0.2
    base = _with_sharpness()
    cur = copy.deepcopy(base)
    rows = [r for r in cur["rows"] if r["metric"] == NAME]
    rows[0]["value"] -= 0.2            # worse by more than the fact's 0.05 (the interval's half-width is 0.02)
    rows[1]["value"] -= 0.03           # within it
    verdicts = {(ln.method, ln.nfe): ln.verdict for ln in compare(base, cur)[0] if ln.metric == NAME}
    assert verdicts[(rows[0]["method"], rows[0]["nfe"])] == "REGRESSION"
    assert verdicts[(rows[1]["method"], rows[1]["nfe"])] == "ok"


def test_an_unknown_tolerance_key_is_refused_once_the_metric_is_gone():
    with pytest.raises(ToleranceError, match=f"unknown tolerance key '{NAME}'"):
        parse_tolerance_args([f"{NAME}=0.2"])


def test_without_per_clip_values_it_is_a_set_statistic_compared_only_at_equal_n(registered):
    means, sets = _with_sharpness(per_clip=True), _with_sharpness(per_clip=False)
    row = next(r for r in validate(sets).rows if r.metric == NAME)
    assert is_set_statistic(row) and not is_set_statistic(next(r for r in validate(means).rows if r.metric == NAME))
    for data, refused in ((means, False), (sets, True)):
        other = copy.deepcopy(data)
        next(r for r in other["rows"] if r["metric"] == NAME)["n"] = 3
        other_row = next(r for r in other["rows"] if r["metric"] == NAME)
        if "per_clip" in other_row["extra"]:
            other_row["extra"]["per_clip"].popitem()
        reasons = comparable(data, other)
        assert any("Edge Sharpness of" in r and "biased by sample size" in r for r in reasons) == refused, reasons
