"""Bad input, round two: each case is impossible or ends with one `lcmbench: error:`
line and exit 2 before any work starts. One test (or group) per item of the table in
docs/robustness.md ("Bad input, round two")."""
import re

import pytest

from bench.overrides import check_overrides
from tests.conftest import REPO
from tests.test_bad_input import cli, error_line, fails

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
    from bench.config import compose, settings_problems

    for path in sorted((REPO / "bench" / "configs" / "experiment").glob("*.yaml")):
        assert settings_problems(compose([f"experiment={path.stem}"])) == [], path.stem


# ------------------------------------------------------------------ 6. an empty method set

def test_item6_empty_method_set_is_refused():
    problem = check_overrides(["methods={}"], CONFIGS)
    assert problem and re.search(r"methods=\{\} does not empty the method set .*~methods.NAME", problem)


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
