"""A run killed part-way and started again ends exactly like an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.generate.store import ClipStore
from tests.conftest import REPO

SMALL = ["~methods.dpmpp", "~methods.animatelcm_r", "protocol.num_classes=1", "protocol.videos_per_prompt=3",
         "protocol.nfe=[1,2]", "runner.batch_size=1", "runner.progress=false",
         "report.bootstrap=20", "metrics.vbench.options.nfe=2"]


def _run(run_dir: Path, env, extra=()):
    return subprocess.Popen([sys.executable, "run_bench.py", f"hydra.run.dir={run_dir}", *SMALL, *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _clips(run_dir: Path):
    store = ClipStore(run_dir / "store")
    return {k: store.read(k) for k in store.keys()}


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_clips_and_results(tmp_path, cache_dir):
    env = {**os.environ, "LCMBENCH_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    reference = _run(tmp_path / "whole", env)
    out, _ = reference.communicate(timeout=900)
    assert reference.returncode == 0, out
    assert "finished in" in out

    interrupted = tmp_path / "interrupted"
    proc = _run(interrupted, env)
    deadline = time.time() + 600
    while time.time() < deadline and len(list((interrupted / "store").rglob("*.npz"))) < 5:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    made_before = len(list((interrupted / "store").rglob("*.npz")))
    assert 0 < made_before < 12, "the kill should land part-way through generation"
    assert not (interrupted / "results.json").exists()

    resumed = _run(interrupted, env)
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out

    whole, again = _clips(tmp_path / "whole"), _clips(interrupted)
    assert sorted(whole) == sorted(again) and len(whole) == 2 * 2 * 3
    for key in whole:
        a, b = whole[key], again[key]
        assert a.meta["seed"] == b.meta["seed"] and a.meta["fingerprint"] == b.meta["fingerprint"]
        assert set(a.features) == set(b.features)
        for name in a.features:
            np.testing.assert_allclose(a.features[name], b.features[name], rtol=0, atol=1e-9)
    rows_a = {(r["method"], r["nfe"], r["metric"]): r for r in json.loads((tmp_path / "whole" / "results.json").read_text())["rows"]}
    rows_b = {(r["method"], r["nfe"], r["metric"]): r for r in json.loads((interrupted / "results.json").read_text())["rows"]}
    assert rows_a.keys() == rows_b.keys() and rows_a
    for k in rows_a:
        assert rows_a[k]["value"] == pytest.approx(rows_b[k]["value"], abs=1e-9)
        assert rows_a[k]["n"] == rows_b[k]["n"] == 3
