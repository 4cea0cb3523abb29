"""Bad input, round two: each case is impossible or ends with one `lcmbench: error:`
line and exit 2 before any work starts. One test (or group) per item of the table in
docs/robustness.md ("Bad input, round two")."""
import hashlib
import re

import pytest
from omegaconf import OmegaConf

from bench.plan.overrides import check_overrides
from bench.run.cli import run_with_clear_errors
from tests.conftest import REPO, compose
from tests.test_bad_input import BASE, cli, error_line, fails

CONFIGS = str(REPO / "bench" / "configs")


# ------------------------------------------------------------------ 1. repeated list entries

@pytest.mark.parametrize("override, message", [
    ("protocol.nfe=[1,1]", r"protocol.nfe=\[1, 1\] repeats 1: list each entry once .*counted twice.*"
                           r"e\.g\. protocol.nfe=\[1\]"),
    ("protocol.classes=[ApplyEyeMakeup,ApplyEyeMakeup]", r"protocol.classes=.* repeats ApplyEyeMakeup"),
    ("runner.timing.teacher_nfe=[50,50]", r"runner.timing.teacher_nfe=\[50, 50\] repeats 50"),
])
def test_item1_repeated_list_entries_are_refused(tmp_path, capsys, override, message):
    fails(tmp_path, capsys, [override], message)


def test_item1_no_shipped_experiment_repeats_an_entry():
    from bench.plan.config import compose, settings_problems

    for path in sorted((REPO / "bench" / "configs" / "experiment").glob("*.yaml")):
        assert settings_problems(compose([f"experiment={path.stem}"])) == [], path.stem


# ------------------------------------------------------------------ 3. a run folder holds one experiment configuration

def test_item3_another_configuration_into_a_run_folder_is_refused_untouched(tmp_path, capsys):
    def snapshot(folder):
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}

    run_dir = tmp_path / "run"
    run_dir.mkdir()   # a finished run's record of its configuration, as bench/run/rundir.py:published writes it
    (run_dir / "config.resolved.yaml").write_text(OmegaConf.to_yaml(compose(BASE), resolve=True))
    (run_dir / "results.json").write_text("{}")
    before = snapshot(run_dir)
    for extra in (["protocol.videos_per_prompt=3"], ["protocol.nfe=[2]", "methods.animatelcm.display_name=Other"],
                  ["protocol.videos_per_prompt=3", "stages=[preflight]"]):
        stages = [] if "stages=[preflight]" in extra else ["stages=[preflight,generate]"]
        cfg = compose([*BASE, *extra, *stages])
        with pytest.raises(SystemExit) as info:
            run_with_clear_errors(cfg, run_dir)
        line = error_line(capsys.readouterr().err)
        assert info.value.code == 2 and re.search(
            r"holds a run of experiment 'smoke' made with other settings \(.*\), and a run folder belongs to one "
            r"experiment configuration: nothing was written\. Run this one in a new folder: leave hydra.run.dir out "
            r".* or give hydra.run.dir=NEW_FOLDER", line), line
        assert snapshot(run_dir) == before
    assert "protocol.videos_per_prompt 2, this run 3" in line
    # the same configuration passes, with other metric, report and runner settings too (re-scoring)
    run_with_clear_errors(compose([*BASE, "stages=[preflight]", "report.bootstrap=10", "runner.batch_size=2"]),
                          run_dir)
    assert (run_dir / "preflight.json").is_file()


# ------------------------------------------------------------------ 6. an empty method set

def test_item6_empty_method_set_is_refused():
    problem = check_overrides(["methods={}"], CONFIGS)
    assert problem and re.search(r"methods=\{\} does not empty the method set .*~methods.NAME", problem)


def test_item6_a_plan_beyond_a_gpu_year_needs_allow_huge(tmp_path, capsys):
    from bench.plan.config import compose
    from bench.preflight.checklist import preflight

    fails(tmp_path, capsys, ["protocol.videos_per_prompt=100000000"],
          r"The plan is 100,000,000 clips, estimated at ~[\d.]+ days on .*: more than a year of device time.*"
          r"set preflight.allow_huge=true")
    huge = ["protocol.videos_per_prompt=1000000", "protocol.num_classes=3"]
    assert [p for p in preflight(compose(huge), tmp_path).problems if "year of device time" in p.what]
    report = preflight(compose([*huge, "preflight.allow_huge=true"]), tmp_path)
    assert not [p for p in report.problems if "year of device time" in p.what]
    # full-size weights on a CPU are timed on one GPU: Table 1 is days there, a typo'd Table 1 is not
    assert not [p for p in preflight(compose(["experiment=table1"]), tmp_path).problems if "device time" in p.what]
    (typo,) = [p for p in preflight(compose(["experiment=table1", "protocol.videos_per_prompt=100000"]),
                                    tmp_path).problems if "device time" in p.what]
    assert re.search(r"161,600,000 clips, estimated at ~[\d.]+ days on one H100", typo.what)


# ------------------------------------------------------------------ 10. values of the wrong type

@pytest.mark.parametrize("arg, message", [
    ("runner.batch_size=abc", r"^runner.batch_size=abc: runner.batch_size takes an integer"),
    ("protocol.num_classes=2.5", r"^protocol.num_classes=2.5: protocol.num_classes takes an integer"),
    ("protocol.nfe=[1,abc]", r"^protocol.nfe=\[1,abc\]: 'abc' is not an integer .*protocol.nfe takes a list"),
    ("report.alpha=x", r"^report.alpha=x: report.alpha takes a number"),
    ("runner.save_frames=maybe", r"^runner.save_frames=maybe: runner.save_frames takes true or false"),
    ("methods.ddim.guidance_scale=abc", r"^methods.ddim.guidance_scale=abc: .* takes a number"),
    ("hydra.run.dir=runs/café", r"characters outside ASCII, which Hydra reads only in quotes: write "
                                r"hydra.run.dir='\"runs/café\"'"),
    ("protocol.nfe=[1,", r"^Hydra cannot read the argument 'protocol.nfe=\[1,'"),
])
def test_item10_wrong_types_are_one_line_naming_the_setting(arg, message):
    problem = check_overrides([arg], CONFIGS)
    assert problem and "\n" not in problem and re.search(message, problem), problem


def test_item10_right_types_pass():
    ok = ["runner.batch_size=3", "protocol.num_classes=2", "protocol.nfe=[1,2]", "report.alpha=0.1",
          "runner.save_frames=true", "protocol.num_classes=null", 'hydra.run.dir="runs/café"',
          "methods.ddim.guidance_scale=7", "protocol.classes=[Archery]"]
    assert check_overrides(ok, CONFIGS) is None


def test_item10_end_to_end_one_line_and_exit_2(tmp_path):
    for arg in ("runner.batch_size=abc", f"hydra.run.dir={tmp_path}/café"):
        code, out = cli([arg], timeout=120)
        assert code == 2 and "Traceback" not in out, out
        assert error_line(out).startswith("lcmbench: error: ")


# ------------------------------------------------------------------ 11. step counts a sampler cannot take

def test_item11_step_counts_beyond_the_sampler_are_refused_before_any_build(tmp_path, capsys, monkeypatch):
    import models

    def no_build(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(models, "build", no_build)
    fails(tmp_path, capsys, ["protocol.nfe=[1000]"],
          r"protocol.nfe=\[1000\] asks methods.animatelcm for \[1000\] steps, but its LCM sampler picks steps from "
          r"original_inference_steps=100 timesteps, so it takes at most 100")


def test_item11_the_timed_teachers_step_counts_too():
    from bench.plan.config import compose, settings_problems

    problems = settings_problems(compose(["experiment=timing", "runner.timing.teacher_nfe=[50,1000]"]))
    assert any(p.startswith("runner.timing.teacher_nfe=[50, 1000] asks methods.ddim for [1000] steps, but its ddim "
                            "sampler's leading spacing") and "at most 999" in p for p in problems), problems


def test_item11_each_sampler_limit_matches_what_diffusers_accepts():
    """At the limit the scheduler gives distinct timesteps inside its table; one more
    step raises, leaves the table or repeats a timestep."""
    from models.schedulers import SAMPLER_DEFAULTS, make_scheduler, step_limit

    def usable(resolved, steps):
        scheduler = make_scheduler(resolved)
        try:
            scheduler.set_timesteps(steps)
        except ValueError:
            return False
        ts = [int(t) for t in scheduler.timesteps]
        return max(ts) < scheduler.config.num_train_timesteps and len(set(ts)) == steps

    for kind, defaults in SAMPLER_DEFAULTS.items():
        resolved = {"kind": kind, **defaults}
        limit, _ = step_limit(resolved)
        assert usable(resolved, limit) and not usable(resolved, limit + 1), kind


# ------------------------------------------------------------------ 9. run folders that cannot be made

def test_item9_dangling_symlink_loop_and_overlong_name(tmp_path):
    from bench.run.cli import check_run_dir

    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert re.search(r"cannot be created: .*dangling is a dangling symlink to .*gone\. Remove or fix the link",
                     check_run_dir([f"hydra.run.dir={tmp_path / 'dangling'}"]))
    assert re.search(r"dangling is a dangling symlink", check_run_dir([f"run_dir={tmp_path / 'dangling' / 'sub'}"]))
    assert "a is a symlink loop" in check_run_dir([f"hydra.run.dir={tmp_path / 'a'}"])
    long = check_run_dir([f"hydra.run.dir={tmp_path / ('x' * 300) / 'run'}"])
    assert re.search(r"has a folder name of 300 bytes .*at most 255 per name\. Choose a shorter", long)


def test_item9_end_to_end_one_line(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    for target in (tmp_path / "dangling", tmp_path / ("x" * 300)):
        code, out = cli([f"hydra.run.dir={target}"], timeout=120)
        assert code == 2 and "Traceback" not in out, out
        assert error_line(out).startswith("lcmbench: error: the run directory ")


# ------------------------------------------------------------------ 12. paths and flags that are something else

def test_item12_cache_dir_under_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LCMBENCH_CACHE", "/dev/null/x")
    fails(tmp_path, capsys, [], r"cache_dir /dev/null/x cannot be created: /dev/null is a character device, not a "
                                r"directory\. Set cache_dir=PATH \(or LCMBENCH_CACHE\)")


def test_item12_caption_file_that_is_a_directory_or_a_loop(tmp_path, capsys):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for path, what in ((tmp_path, "a directory"), (tmp_path / "loop", "a symlink loop")):
        fails(tmp_path, capsys, ["protocol.prompt_set=file", f"protocol.prompt_file={path}"],
              rf"The caption file {re.escape(str(path))} is {what}, not a file\. Fix protocol.prompt_file")


def test_item12_dataset_root_that_is_a_file(tmp_path, capsys):
    from tests.test_bad_input import _fvd_on

    f = tmp_path / "UCF101.rar"
    f.write_bytes(b"Rar!")
    fails(tmp_path, capsys, _fvd_on(f), rf"UCF-101 root {re.escape(str(f))} is a file, not a directory\.")


def test_item12_offline_flag_with_an_unrecognised_value(tmp_path, monkeypatch):
    from bench.run.cli import check_environment

    for value in ("1", "0", "true", "False", "yes", "off", ""):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert check_environment() is None, value
    code, out = cli([f"hydra.run.dir={tmp_path / 'run'}"], env={"HF_HUB_OFFLINE": "banana"}, timeout=120)
    assert code == 2 and re.search(r"HF_HUB_OFFLINE='banana' is neither on nor off: set HF_HUB_OFFLINE=1 .* "
                                   r"HF_HUB_OFFLINE=0", error_line(out)), out
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ 14. a refused run leaves no empty folder

def test_item14_refused_run_removes_the_folder_it_made(tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    for target in (tmp_path / "runs" / "smoke" / "${now:%H-%M-%S}", kept / "new" / "run"):
        code, out = cli([f"hydra.run.dir={target}", "protocol.prompt_set=file",
                         f"protocol.prompt_file={tmp_path / 'nope.yaml'}"], timeout=180)
        assert code == 2 and "caption file" in error_line(out), out
    assert not (tmp_path / "runs").exists(), "the folders this run made are removed"
    assert kept.is_dir() and not list(kept.iterdir()), "a folder that existed before is kept, and only it"


# ------------------------------------------------------------------ 7. a store scored with another metric setup

def test_item7_missing_features_are_named_and_extracted_from_stored_frames(tmp_path):
    from dataclasses import replace

    from bench.generate.runner import StoreIncomplete, generate_all, require_complete
    from bench.generate.store import ClipStore
    from tests import fakes

    class OtherDetector(fakes.FakeMetric):
        feature_key = "fake/v2"

    plans = fakes.plans(methods=("animatelcm",), nfe=(1,), classes=1, videos=2)
    store = ClipStore(tmp_path / "store")
    model = fakes.FakeModel()
    generate_all(plans, store, [fakes.FakeMetric()], fakes.SETTINGS, lambda plan, nfe=None: model)
    with pytest.raises(StoreIncomplete, match=r"holds 2 of the 2 clips without this run's features fake/v2 .*another "
                                              r"metric setup .*stages=\[generate,score,report\] .*from the stored frames "
                                              r"of 1 and makes the other 1 again from their stored seeds"):
        require_complete(plans, store, ["fake/v2"])

    kept = [replace(p, clips=[replace(c, keep_frames=True) for c in p.clips]) for p in plans]
    store = ClipStore(tmp_path / "framed")
    generate_all(kept, store, [fakes.FakeMetric()], fakes.SETTINGS, lambda plan, nfe=None: model)
    with pytest.raises(StoreIncomplete, match=r"extracts them from the stored frames; no clip is made again"):
        require_complete(kept, store, ["fake/v2"])
    calls = len(model.calls)
    generate_all(kept, store, [OtherDetector()], fakes.SETTINGS, lambda plan, nfe=None: model)
    assert len(model.calls) == calls, "features came from the stored frames"
    require_complete(kept, store, ["fake/v1", "fake/v2"])


# ------------------------------------------------------------------ 13. a manifest that proves nothing

def test_item13_manifest_with_no_assets_or_undone_manual_steps_does_not_verify(tmp_path, capsys):
    from bench.net import manifest as mf
    from bench.prefetch import fetch as pf

    roots = {"lcmbench": str(tmp_path)}
    empty = mf.write_manifest(tmp_path / "empty.json", "smoke", roots, [], [])
    manual = mf.write_manifest(tmp_path / "manual.json", "table1", roots, [], ["Download UCF101.rar", "Copy the CLIP "
                                                                                                     "weights"])
    (what, _), = mf.verify_manifest(empty)
    assert "lists no asset, so verifying it would check nothing" in what
    problems = [what for what, _ in mf.verify_manifest(manual)]
    assert len(problems) == 3 and sum("manual step not done when the manifest was written" in p for p in problems) == 2
    with pytest.raises(SystemExit) as info:
        pf.main(["--verify", str(manual)])
    out = capsys.readouterr()
    assert info.value.code == 2 and "OK" not in out.out and "Download UCF101.rar" in out.out
    assert error_line(out.err) == f"lcmbench: error: {manual} does not verify: 3 problem(s), each listed above with " \
                                  f"its fix."


# ------------------------------------------------------------------ 4. what a results file can prove

def _checked(data, tmp_path, capsys):
    import json

    from results.__main__ import main as results_main

    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    code = results_main([str(path), "--check"])
    out = capsys.readouterr()
    return code, out.out + out.err


def _synthetic():
    from tests.synthetic import make_results

    data = make_results(n_boot=50, with_vbench=False, with_ablation=False)
    data["provenance"]["config"] = {"protocol": {"nfe": [1, 2, 4, 8], "videos_per_prompt": 8}}
    data["provenance"]["prompt_set"]["classes"] = ["ApplyEyeMakeup", "Archery", "Biking"]   # 3 x 8 = 24 clips
    return data


def test_item4_check_finds_a_point_outside_its_interval_a_wrong_count_and_a_missing_cell(tmp_path, capsys):
    code, out = _checked(_synthetic(), tmp_path, capsys)
    assert code == 0 and "every point inside its interval" in out and "not recomputed: no store/" in out, out
    data = _synthetic()
    fvd = next(r for r in data["rows"] if r["metric"] == "fvd" and r["method"] == "animatelcm" and r["nfe"] == 4)
    fvd["value"] /= 2                                                    # FVD halved by hand
    data["rows"][1]["n"] = 12                                            # ddim NFE 1 CLIPSIM counted on half
    data["rows"] = [r for r in data["rows"] if (r["method"], r["nfe"], r["metric"]) != ("dpmpp", 8, "fvd")]
    code, out = _checked(data, tmp_path, capsys)
    assert code == 2, out
    assert re.search(r"animatelcm NFE 4 fvd: value [\d.]+ lies outside its own interval", out)
    assert "ddim NFE 1 clipsim: n=12, but the provenance lists 3 classes x 8 videos = 24 clips" in out
    assert "dpmpp NFE 8 fvd: no row, but the protocol names (method dpmpp, NFE 8)" in out
    assert error_line(out).startswith("lcmbench: error: ") and "does not check: 3 problem(s)" in out


@pytest.mark.slow
def test_item4_check_recomputes_values_from_the_run_folders_store(tmp_path, capsys, e2e_reference):
    import json
    import shutil

    from results.__main__ import main as results_main

    run = tmp_path / "run"
    shutil.copytree(e2e_reference.run_dir, run)
    assert results_main([str(run / "results.json"), "--check"]) == 0
    out = capsys.readouterr().out
    # FVD is recomputed from the store (no difference found); KVD says it is not
    assert "kvd: not recomputed" in out and "fvd: the file says" not in out
    data = json.loads((run / "results.json").read_text())
    for r in data["rows"]:
        if r["metric"] == "fvd" and r["nfe"] == 1 and r["method"] == "animatelcm":
            r["value"], r["ci_low"], r["ci_high"] = r["value"] / 2, r["ci_low"] / 2, r["ci_high"] / 2   # consistently
    (run / "results.json").write_text(json.dumps(data))
    assert results_main([str(run / "results.json"), "--check"]) == 2
    out = capsys.readouterr().out
    assert re.search(r"animatelcm NFE 1 fvd: the file says [\d.]+, the stored features give [\d.]+ \(tolerance", out)
