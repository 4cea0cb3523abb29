"""Helpers for the end-to-end tests that drive run_bench.py in subprocesses
(sharding, SLURM-style job arrays, kills and resumes).

Every run uses the same small experiment and one thread per process: float32 CPU
kernels give results that differ in the last bits with the thread count, and torchrun
sets OMP_NUM_THREADS=1 for its ranks, so the reference run must use one thread too
for the comparisons to hold to 1e-9.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from bench.generate.store import ClipStore
from tests.conftest import REPO

# 1 class x 3 videos x NFE [1, 2] x 2 methods = 12 clips of 9 frames at 64x64 (9 is
# the fewest frames I3D takes). FVD stays on (its features are compared); CLIPSIM and
# VBench are off, and the random I3D is calibrated on fewer clips to keep CI short.
SMALL = ["~methods.dpmpp", "~methods.animatelcm_r", "protocol.num_classes=1", "protocol.videos_per_prompt=3",
         "protocol.nfe=[1,2]", "protocol.num_frames=9", "runner.batch_size=1", "runner.progress=false",
         "report.bootstrap=20", "metrics.vbench.enabled=false", "metrics.clipsim.enabled=false",
         "++metrics.fvd.options.num_frames=9", "++metrics.fvd.options.calibration_clips_per_video=1",
         "++metrics.fvd.options.clips_per_video=2"]
N_CLIPS = 12
TIMEOUT = 900


def env(cache_dir: Path) -> Dict[str, str]:
    out = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SUBMITIT_")) and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    out.update({"LCMBENCH_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)})
    return out


def command(*args: str, torchrun: int = 0) -> List[str]:
    if torchrun:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}",
                "run_bench.py", *args]
    return [sys.executable, "run_bench.py", *args]


def start(args: Sequence[str], cache_dir: Path, torchrun: int = 0) -> subprocess.Popen:
    """A run in its own process group, so a kill reaches every rank at once."""
    return subprocess.Popen(command(*args, torchrun=torchrun), cwd=REPO, env=env(cache_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _descendants(pid: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL a run and every process under it at once, as a node failure would.
    torchrun starts each rank in a session of its own, so a kill of the launcher's
    process group alone would leave the ranks running."""
    for pid in [proc.pid, *_descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate()


def run(args: Sequence[str], cache_dir: Path, torchrun: int = 0, expect: int = 0) -> str:
    proc = start(args, cache_dir, torchrun)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == expect, f"exit {proc.returncode}, expected {expect}:\n{out[-6000:]}"
    return out


def store_files(run_dir: Path) -> List[Path]:
    return sorted(p for p in (run_dir / "store").rglob("*.npz") if not p.name.startswith("."))


@dataclass
class Reference:
    """One uninterrupted single-process run, and when its phases ended (seconds from start)."""
    run_dir: Path
    first_clip_s: float
    store_complete_s: float
    total_s: float
    output: str


def reference_run(run_dir: Path, cache_dir: Path) -> Reference:
    t0 = time.monotonic()
    proc = start([f"hydra.run.dir={run_dir}", *SMALL], cache_dir)
    first = complete = None
    while proc.poll() is None:
        n = len(store_files(run_dir)) if (run_dir / "store").is_dir() else 0
        if n and first is None:
            first = time.monotonic() - t0
        if n == N_CLIPS and complete is None:
            complete = time.monotonic() - t0
        if time.monotonic() - t0 > TIMEOUT:
            proc.kill()
            break
        time.sleep(0.1)
    out = proc.stdout.read()
    total = time.monotonic() - t0
    assert proc.returncode == 0, out[-6000:]
    return Reference(run_dir, first or total, complete or total, total, out)


def clips(run_dir: Path) -> Dict[str, object]:
    store = ClipStore(run_dir / "store")
    out = {k: store.read(k) for k in store.keys()}
    assert all(r is not None for r in out.values()), f"unreadable clips in {run_dir}"
    return out


def results_rows(run_dir: Path) -> Dict[tuple, dict]:
    data = json.loads((run_dir / "results.json").read_text())
    return {(r["method"], r["nfe"], r["metric"]): r for r in data["rows"]}


def assert_same_run(expected: Path, actual: Path, atol: float = 1e-9) -> None:
    """Same clip set, same seeds and fingerprints, features and metric values to ``atol``."""
    a, b = clips(expected), clips(actual)
    assert sorted(a) == sorted(b), f"clip sets differ: only in reference {sorted(set(a) - set(b))}, " \
                                   f"only in this run {sorted(set(b) - set(a))}"
    assert len(a) == N_CLIPS
    for key in a:
        ra, rb = a[key], b[key]
        assert ra.meta["seed"] == rb.meta["seed"] and ra.meta["fingerprint"] == rb.meta["fingerprint"], key
        assert set(ra.features) == set(rb.features) and ra.features, key
        for name in ra.features:
            np.testing.assert_allclose(rb.features[name], ra.features[name], rtol=0, atol=atol, err_msg=key)
        if ra.frames is not None or rb.frames is not None:
            assert np.array_equal(ra.frames, rb.frames), key
    rows_a, rows_b = results_rows(expected), results_rows(actual)
    assert rows_a and rows_a.keys() == rows_b.keys()
    for k in rows_a:
        x, y = rows_a[k], rows_b[k]
        assert x["n"] == y["n"] == 3, k
        assert y["value"] == pytest_approx(x["value"], atol), k
        for bound in ("ci_low", "ci_high"):
            assert (x[bound] is None) == (y[bound] is None), k
            if x[bound] is not None:
                assert abs(x[bound] - y[bound]) <= atol, (k, bound)


def pytest_approx(value: float, atol: float):
    import pytest

    return pytest.approx(value, rel=0, abs=atol)


def no_leftovers(run_dir: Path) -> Optional[str]:
    """Temporaries or staging folders that a finished run should not leave behind."""
    tmps = [str(p) for p in run_dir.rglob(".*.tmp*")] + [str(p) for p in run_dir.glob(".staging-*")]
    return ", ".join(tmps) or None
