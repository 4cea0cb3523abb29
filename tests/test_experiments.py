"""The regression and VBench experiments, end to end with tiny weights (the ablation: tests/test_checkpoints.py)."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_regression_tiny_matches_the_committed_baseline(tmp_path, cache_dir):
    """The harness regression check CI can run without a GPU: the tiny regression
    experiment compared with its committed baseline by results.compare."""
    import os

    baseline = REPO / "results" / "baselines" / "regression-tiny-cpu.json"
    assert baseline.is_file(), "the committed tiny baseline is missing"
    env = {**os.environ, "LCMBENCH_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "run_bench.py", "experiment=regression_tiny", f"hydra.run.dir={tmp_path}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    verdict = subprocess.run([sys.executable, "-m", "results.compare", str(baseline), str(tmp_path / "results.json"),
                              "--no-color"], cwd=REPO, capture_output=True, text=True)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert "FVD" in verdict.stdout and "CLIPSIM" in verdict.stdout


@pytest.mark.slow
def test_vbench_experiment_generates_for_vbench_prompts_and_scores_them(tmp_path, cache_dir):
    """experiment=vbench on a tiny subset: clips for VBench's own temporal_flickering
    prompts, exported with VBench's names, scored by the vbench package in standard
    mode, and marked as a subset in the results and in Table 2."""
    import os

    from metrics.vbench import standard_prompts

    env = {**os.environ, "LCMBENCH_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "run_bench.py", "experiment=vbench", "weights=tiny", "runner.device=cpu",
                          "runner.dtype=float32", "runner.batch_size=2", "runner.progress=false",
                          "protocol.num_classes=2", "protocol.videos_per_prompt=2", "protocol.num_frames=8",
                          "protocol.height=64", "protocol.width=64", "metrics.vbench.options.dimensions=[temporal_flickering]",
                          # no pool of 25: the subset stays 2 videos a prompt
                          "protocol.videos_per_prompt_by_dimension=null",
                          f"hydra.run.dir={tmp_path}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    wanted = [p["prompt"] for p in standard_prompts(distinct=True) if "temporal_flickering" in p["dimensions"]][:2]
    exported = sorted(p.name for p in (tmp_path / "vbench" / "animatelcm" / "videos").iterdir())
    assert exported == sorted(f"{p}-{i}.mp4" for p in wanted for i in range(2))
    results = json.loads((tmp_path / "results.json").read_text())
    entry = results["vbench"]["animatelcm"]
    assert entry["mode"] == "vbench_standard" and entry["n_videos"] == 4 and entry["nfe"] == 4
    assert 0.0 < entry["scores"]["temporal_flickering"] <= 1.0
    # the other temporal_flickering prompts and videos were not made: 75 prompts x 5 videos - 4
    assert entry["missing_videos"] == {"temporal_flickering": 75 * 5 - 4}
    assert results["provenance"]["prompt_set"]["name"] == "vbench_standard"
    table2 = (tmp_path / "tables" / "table2.md").read_text()
    assert "Ours (4-step)†‡" in table2 and "subset of VBench's standard prompts" in table2
