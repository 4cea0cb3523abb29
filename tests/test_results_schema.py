"""results.schema: validation with clear messages, I/O, comparability, flat views."""
import copy
import json

import pytest

from results import paper
import metrics
from results.model import SCHEMA_VERSION, Results, protocol_id
from results.schema import SchemaError, comparable, load, save, validate
from results.views import to_dataframe, write_csv
from tests.synthetic import make_results


@pytest.fixture(scope="module")
def base():
    return make_results(n_boot=50)


def problems(d):
    with pytest.raises(SchemaError) as ei:
        validate(d)
    return ei.value.problems, str(ei.value)


def test_synthetic_and_paper_results_are_valid(base):
    validate(base)
    validate(paper.as_results())
    res = validate(base)
    assert res.weights_mode == "tiny" and res.label.startswith("SYNTHETIC DATA")
    assert res.method_order()[:4] == ["ddim", "dpmpp", "animatelcm", "animatelcm_r"]


def test_round_trip_is_lossless(base, tmp_path):
    p = save(tmp_path / "results.json", base)
    again = load(p)
    assert again.to_dict() == validate(base).to_dict()
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")], "atomic save left a temp file"
    on_disk = json.loads(p.read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION
    assert on_disk["rows"][0].keys() >= {"method", "nfe", "metric", "value", "ci_low", "ci_high", "n", "protocol"}


@pytest.mark.parametrize("mutate, where, words", [
    (lambda d: d.pop("rows"), "top level", "missing required field 'rows'"),
    (lambda d: d.__setitem__("row", []), "top level", "unknown field 'row'"),
    (lambda d: d["run"].__setitem__("weights_mode", "small"), "run.weights_mode", "tiny, random, pretrained"),
    (lambda d: d["run"].__setitem__("label", ""), "run.label", "must say what the numbers are"),
    (lambda d: d["run"].__setitem__("started_at", "yesterday"), "run.started_at", "ISO 8601"),
    (lambda d: d["rows"][0].__setitem__("nfe", "4"), "rows[0].nfe", "expected an integer"),
    (lambda d: d["rows"][0].__setitem__("value", float("nan")), "rows[0].value", "finite"),
    (lambda d: d["rows"][0].__setitem__("metric", "fid"), "rows[0].metric", "unknown metric 'fid'"),
    (lambda d: d["rows"][0].__setitem__("method", "euler"), "rows[0].method", "not a key of 'methods'"),
    (lambda d: d["rows"][0].__setitem__("protocol", "stylegan-v1"), "rows[0].protocol", "does not match"),
    (lambda d: d["rows"][0].update(ci_low=5.0, ci_high=1.0), "rows[0]", "greater than ci_high"),
    (lambda d: d["rows"][0].update(ci_low=None), "rows[0]", "both be numbers or both be null"),
    (lambda d: d["rows"][0].__setitem__("p_value", 0.1), "rows[0]", "put additional information under 'extra'"),
    (lambda d: d["rows"].append(copy.deepcopy(d["rows"][0])), "rows[", "duplicate of rows[0]"),
    (lambda d: d["provenance"]["device"].__setitem__("type", "tpu"), "provenance.device.type", "cpu, cuda"),
    (lambda d: d["provenance"]["protocols"]["fvd"].pop("version"), "provenance.protocols.fvd", "'version'"),
    (lambda d: d["provenance"]["prompt_set"].__setitem__("sha256", "abc"), "provenance.prompt_set.sha256", "64"),
    (lambda d: d["bootstrap"].__setitem__("seed", 99), "bootstrap.seed", "differs from provenance.seeds"),
    (lambda d: d["bootstrap"].__setitem__("alpha", 1.5), "bootstrap.alpha", "must be <= 1"),
    (lambda d: d["vbench"]["animatelcm"].__setitem__("partial", False), "vbench.animatelcm.partial", "missing"),
    (lambda d: d["vbench"]["animatelcm"]["scores"].__setitem__("sharpness", 0.5), "vbench.animatelcm.scores.sharpness",
     "not a VBench dimension"),
    (lambda d: d["vbench"]["animatelcm"].__setitem__("mode", "standard"), "vbench.animatelcm.mode",
     "must be one of vbench_standard, custom_input"),
    (lambda d: d["vbench"]["animatelcm"].__setitem__("missing_videos", {"temporal_flickering": -1}),
     "vbench.animatelcm.missing_videos.temporal_flickering", ">= 0"),
    (lambda d: d["timing"][0].__setitem__("denoise_ms_median", 0), "timing[0].denoise_ms_median", "must be > 0"),
    (lambda d: d["ablation"][0].__setitem__("distillation", "mixed"), "ablation[0].distillation", "decoupled, joint"),
])
def test_malformed_files_are_rejected_with_located_messages(base, mutate, where, words):
    d = copy.deepcopy(base)
    mutate(d)
    found, text = problems(d)
    assert any(p.startswith(where) and words in p for p in found), text
    assert "does not follow results schema" in text


def test_a_vbench_subset_round_trips(base):
    d = copy.deepcopy(base)
    d["vbench"]["animatelcm"].update(mode="vbench_standard", missing_videos={"temporal_flickering": 371})
    validate(d)
    again = validate(d).to_dict()
    assert again["vbench"]["animatelcm"]["missing_videos"] == {"temporal_flickering": 371}
    assert again["vbench"]["animatelcm"]["mode"] == "vbench_standard"


def test_all_problems_are_reported_at_once(base):
    d = copy.deepcopy(base)
    d["rows"][0]["nfe"] = 0
    d["rows"][1]["n"] = -1
    d["run"]["wall_time_s"] = "fast"
    found, _ = problems(d)
    assert len(found) >= 3


def test_non_objects_and_bad_json_are_clear(tmp_path):
    with pytest.raises(SchemaError, match="expected a JSON object"):
        validate([1, 2])
    bad = tmp_path / "results.json"
    bad.write_text("{not json")
    with pytest.raises(SchemaError, match=r"(?s)results.json.*not valid JSON"):
        load(bad)
    with pytest.raises(FileNotFoundError, match="results file not found"):
        load(tmp_path / "nope.json")


def test_schema_version_mismatch_is_rejected(base):
    d = copy.deepcopy(base)
    d["schema_version"] = "2.0"
    found, _ = problems(d)
    assert any("schema_version" in p and "'2.0'" in p for p in found)


def test_pretrained_runs_may_have_an_empty_label(base):
    d = copy.deepcopy(base)
    d["run"].update(weights_mode="pretrained", label="")
    validate(d)


def test_optional_sections_may_be_absent(base):
    d = copy.deepcopy(base)
    for k in ("timing", "vbench", "ablation"):
        d.pop(k)
    res = validate(d)
    assert res.timing == [] and res.vbench == {} and res.ablation is None


def test_comparable_names_every_reason(base):
    assert comparable(base, copy.deepcopy(base)) == []
    other = copy.deepcopy(base)
    other["run"]["weights_mode"] = "random"
    other["run"]["label"] = "RANDOM"
    other["provenance"]["protocols"]["fvd"]["version"] = "2"
    for r in other["rows"] + [r for a in other["ablation"] for r in a["rows"]]:
        if r["metric"] == "fvd":
            r["protocol"] = protocol_id(other["provenance"]["protocols"]["fvd"])
    reasons = comparable(base, other)
    assert any("weights modes differ" in r for r in reasons)
    assert any("fvd protocols differ" in r and "v1" in r and "v2" in r for r in reasons)


def test_results_from_before_parity_are_refused_with_the_reason(base):
    """A file without provenance.parity (version 1: before the parity change) is never
    compared with one made by the parity pipeline (version 2)."""
    new = copy.deepcopy(base)
    new["provenance"]["parity"] = {"version": 2, "methods": {}}
    reasons = comparable(base, new)
    assert any("parity versions (1 vs 2)" in r and "regenerate" in r for r in reasons)
    assert comparable(new, copy.deepcopy(new)) == []
    bad = copy.deepcopy(new)
    bad["provenance"]["parity"] = {"version": None}
    with pytest.raises(SchemaError, match="provenance.parity.version"):
        validate(bad)


def test_comparable_refuses_fvd_at_different_sample_sizes(base):
    other = copy.deepcopy(base)
    other["rows"][0]["n"] = 48
    assert other["rows"][0]["metric"] == "fvd"
    assert any("biased by sample size" in r for r in comparable(base, other))


def test_comparable_refuses_different_vbench_dimension_sets(base):
    other = copy.deepcopy(base)
    other["vbench"]["animatelcm"]["scores"]["dynamic_degree"] = 0.5
    other["vbench"]["animatelcm"]["skipped"].pop("dynamic_degree")
    assert any("VBench" in r and "dynamic_degree" in r for r in comparable(base, other))


def test_metric_directions_are_the_metrics_own_facts():
    assert metrics.facts("fvd").higher_is_better is False
    assert metrics.facts("clipsim").higher_is_better is True
    assert metrics.facts("vbench_total").higher_is_better is True and metrics.display("vbench_total") == "VBench Total"
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.facts("psnr")


def test_dataframe_has_one_row_per_method_nfe_metric(base, tmp_path):
    df = to_dataframe(base)
    main = df[df["source"] == "rows"]
    assert len(main) == len(base["rows"]) == 4 * 4 * 2
    assert not df.duplicated(["method", "nfe", "metric"]).any()
    vb = df[df["metric"] == "vbench_total"]
    assert len(vb) == 1 and vb.iloc[0]["value"] == pytest.approx(base["vbench"]["animatelcm"]["total"])
    # VBench dimensions appear in percent.
    flick = df[df["metric"] == "vbench_temporal_flickering"].iloc[0]["value"]
    assert flick == pytest.approx(100 * base["vbench"]["animatelcm"]["scores"]["temporal_flickering"])
    row = df[(df.method == "animatelcm") & (df.nfe == 4) & (df.metric == "fvd")].iloc[0]
    src = next(r for r in base["rows"] if (r["method"], r["nfe"], r["metric"]) == ("animatelcm", 4, "fvd"))
    assert row["value"] == src["value"] and row["ci_half_width"] == pytest.approx((src["ci_high"] - src["ci_low"]) / 2)
    assert row["display_name"] == "Ours" and not row["higher_is_better"]
    p = write_csv(tmp_path / "results.csv", base)
    header = p.read_text().splitlines()[0].split(",")
    assert header[:5] == ["method", "display_name", "nfe", "metric", "value"]
    assert len(p.read_text().splitlines()) == len(df) + 1


def test_schema_md_example_is_valid():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "results" / "SCHEMA.md").read_text()
    example = text.split("```json")[1].split("```")[0]
    validate(json.loads(example))
    validate(json.loads((Path(__file__).resolve().parents[1] / "results" / "data" / "example_results.json").read_text()))


def test_pipeline_extras_are_accepted_and_round_trip(base, tmp_path):
    d = copy.deepcopy(base)
    d["run"]["description"] = "smoke test of the harness"
    d["provenance"]["seeds"]["init_seed"] = 3
    d["provenance"]["prompt_set"]["classes"] = ["ApplyEyeMakeup", "Archery"]
    d["provenance"]["generation"] = {"made": 32, "skipped": 0}
    d["provenance"]["packages"]["vbench"] = None
    d["provenance"]["device"].update(torch_threads=2, capability="9.0")
    d["methods"]["animatelcm"].update(spec={"lora_scale": 0.8}, fingerprint="abc123")
    d["timing"][0].update(n=4, clock="wall", note="per clip = batch time / batch size")
    proto = d["provenance"]["protocols"]["fvd"]
    proto["feature_key"] = "fvd/animatelcm-v1/i3d-tiny"
    for r in d["rows"] + [r for a in d["ablation"] for r in a["rows"]]:
        if r["metric"] == "fvd":
            r["protocol"] = "fvd/animatelcm-v1/i3d-tiny"
    assert protocol_id(proto) == "fvd/animatelcm-v1/i3d-tiny"
    validate(d)
    p = save(tmp_path / "results.json", d)
    again = json.loads(p.read_text())
    assert again["provenance"]["device"]["capability"] == "9.0"
    assert again["methods"]["animatelcm"]["fingerprint"] == "abc123"
    assert again["timing"][0]["clock"] == "wall" and again["run"]["description"].startswith("smoke")
    assert load(p).to_dict() == again


def test_schema_document_and_json_schema_come_from_the_model(capsys):
    from pathlib import Path

    from results.__main__ import main
    from results.schema import json_schema, schema_markdown

    doc = Path(__file__).resolve().parent.parent / "results" / "SCHEMA.md"
    assert doc.read_text() == schema_markdown() + "\n", "regenerate: python -m results schema --markdown > results/SCHEMA.md"
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json_schema()
    assert printed["properties"]["run"]["$ref"].endswith("/RunInfo")
    row = printed["$defs"]["Row"]
    assert row["additionalProperties"] is False and row["properties"]["nfe"]["minimum"] == 1
    run = printed["$defs"]["RunInfo"]["properties"]["weights_mode"]
    assert run["enum"] == ["tiny", "random", "pretrained"]


def test_old_files_of_this_schema_version_still_load(tmp_path):
    """A results.json written before the typed model (the regression baseline) loads as is."""
    from pathlib import Path

    baseline = Path(__file__).resolve().parent.parent / "results" / "baselines"
    files = sorted(baseline.glob("*.json"))
    assert files, "the committed regression baseline is missing"
    for f in files:
        res = load(f)
        assert res.schema_version == SCHEMA_VERSION and res.rows
