"""Adding a metric is one module and one config file, outside the project.

The test writes a toy metric (a plug-in class and its built per-clip metric in one
module) and its config file into a temporary folder, makes it visible the way an
installed package would (an ``lcmbench.metrics`` entry point in a ``.dist-info``
folder on the path), runs a tiny experiment with it in a fresh process, and finds
its rows, its table column and its facts in the outputs. No project file is edited.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

TOY_MODULE = '''
"""A toy metric: each clip's mean pixel value (0..255), averaged over a cell."""
from pathlib import Path

import numpy as np

from metrics.base import ClipMetric
from metrics.options import options_schema
from metrics.plugin import Cost, Metric


@options_schema
class ToyOptions:
    scale: float = 1.0


class Toy(Metric):
    name = "toy"
    display_name = "Toy Brightness"
    higher_is_better = True
    decimals = 3
    tolerance = ("abs", 0.5)
    kind = "clip"
    options_schema = ToyOptions
    builder = "toy_metric:build"
    config_dir = str(Path(__file__).parent / "toy_configs")

    @classmethod
    def cost(cls, options, run):
        return Cost(features={"toy/brightness-v1": ((1,), "float64")})


class ToyClipMetric(Toy, ClipMetric):
    def __init__(self, scale):
        self.scale = scale
        self.feature_key = f"toy/brightness-v1/scale{scale}"

    def extract(self, frames, prompts):
        return self.scale * np.asarray(frames, dtype=np.float64).mean(axis=(1, 2, 3, 4))[:, None]

    def score(self, features, prompts):
        return {"value": float(np.mean(features[:, 0])), "n": int(len(features))}

    def per_clip(self, features):
        return features[:, 0]

    def describe(self):
        return {"name": "toy", "version": "1", "feature_key": self.feature_key}


def build(device="cpu", scale=1.0):
    Toy.parse({"scale": scale})
    return ToyClipMetric(scale)
'''

TOY_CONFIG = """\
# The toy metric's config file: metrics.toy
enabled: true
options:
  scale: 1.0
"""


def write_plugin(folder: Path) -> None:
    (folder / "toy_metric.py").write_text(textwrap.dedent(TOY_MODULE))
    (folder / "toy_configs" / "metric").mkdir(parents=True)
    (folder / "toy_configs" / "metric" / "toy.yaml").write_text(TOY_CONFIG)
    dist = folder / "toy_metric-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-metric\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lcmbench.metrics]\ntoy = toy_metric:Toy\n")


@pytest.mark.slow
def test_a_metric_from_outside_the_project_runs_end_to_end(tmp_path):
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    write_plugin(plugin_dir)
    before = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    run_dir = tmp_path / "run"
    env = {"PYTHONPATH": f"{plugin_dir}:{REPO}", "LCMBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    args = ["experiment=regression_tiny", "+metric@metrics.toy=toy", "metrics.fvd.enabled=false",
            "protocol.num_classes=1", "protocol.nfe=[1]", "report.bootstrap=10", f"run_dir={run_dir}"]
    proc = subprocess.run([sys.executable, "run_bench.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    results = json.loads((run_dir / "results.json").read_text())
    toy_rows = [r for r in results["rows"] if r["metric"] == "toy"]
    assert {r["method"] for r in toy_rows} == {"ddim", "animatelcm"}
    for row in toy_rows:
        assert 0.0 <= row["value"] <= 255.0 and row["n"] == 2
        assert row["protocol"] == "toy/brightness-v1/scale1.0"
        assert row["ci_low"] is not None and row["ci_low"] <= row["value"] <= row["ci_high"]
    assert results["provenance"]["protocols"]["toy"]["id"] == "toy/brightness-v1/scale1.0"

    extended = (run_dir / "tables" / "table1_extended.md").read_text()
    assert "Toy Brightness" in extended
    value = f"{toy_rows[0]['value']:.3f}"
    assert value in extended, extended
    report = (run_dir / "report.html").read_text()
    assert "Toy Brightness" in report and "higher is better" in report

    after = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    assert after == before   # no project file was touched


def test_the_toy_config_composes_through_the_search_path(tmp_path):
    """Cheap half of the above, in a subprocess: the entry point is found, the plug-in's
    config folder joins Hydra's search path, and the option reaches the config."""
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    write_plugin(plugin_dir)
    code = ("import metrics; from bench.plan.config import compose; "
            "cfg = compose(['experiment=regression_tiny', '+metric@metrics.toy=toy', 'metrics.toy.options.scale=2.0']); "
            "print(metrics.available()); print(cfg.metrics.toy.options.scale); "
            "print(metrics.facts('toy').display_name)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": f"{plugin_dir}:{REPO}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-3].endswith(", 'toy']")   # after the built-ins
    assert lines[-2] == "2.0"
    assert lines[-1] == "Toy Brightness"
