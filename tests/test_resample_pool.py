"""Bootstrap resamples on every core: worker processes give the serial loop's values bit
for bit, recover from a worker that died, and never re-run the caller's main module."""
import subprocess
import sys

import numpy as np
import pytest

from metrics import resample_pool as rp
from metrics.frechet import FrechetToReference


def inputs(n=80, dim=12, resamples=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((n, dim))
    w = np.stack([np.bincount(r, minlength=n) for r in rng.integers(0, n, (resamples, n))]).astype(np.float64)
    tot = w.sum(axis=1)
    shift_y = (w @ y) / tot[:, None] * 0.01
    return y, w, shift_y, tot


def test_worker_processes_give_the_serial_values_bit_for_bit():
    y, w, shift_y, tot = inputs()
    serial = rp.trace_sqrt_serial(y, w, shift_y, tot)
    assert np.array_equal(rp.trace_sqrt(y, w, shift_y, tot, processes=3), serial)
    assert len(rp._workers) >= 2   # the work was split: two workers beside this process


def test_a_dead_worker_costs_time_not_results():
    y, w, shift_y, tot = inputs(seed=1)
    serial = rp.trace_sqrt_serial(y, w, shift_y, tot)
    rp.trace_sqrt(y, w, shift_y, tot, processes=2)
    rp._workers[0].process.kill()
    rp._workers[0].process.wait()
    assert np.array_equal(rp.trace_sqrt(y, w, shift_y, tot, processes=2), serial)   # its chunk ran here
    assert np.array_equal(rp.trace_sqrt(y, w, shift_y, tot, processes=2), serial)   # a fresh worker


def test_a_chunk_that_raises_raises_in_the_caller():
    y, w, shift_y, tot = inputs(seed=2)
    w[-1] = np.nan   # the last chunk, a worker's, cannot be computed
    with pytest.raises(np.linalg.LinAlgError):
        rp.trace_sqrt(y, w, shift_y, tot, processes=2)


def test_the_fvd_resamples_use_the_workers_and_agree_with_the_loop():
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((300, 10))
    stat = FrechetToReference(ref.mean(0), np.cov(ref, rowvar=False))
    x = rng.standard_normal((50, 10)) + 0.3
    idx = rng.integers(0, 50, (32, 50))
    w = np.stack([np.bincount(r, minlength=50) for r in idx]).astype(np.float64)
    assert np.allclose(stat.weighted(x, w, device=None), stat.resample_loop(x, idx), rtol=1e-9, atol=0)


def test_a_script_without_a_main_guard_is_not_re_run(tmp_path):
    """Workers are this module run as a script, not multiprocessing's spawn, which would
    import the caller's main module again in every worker."""
    script = tmp_path / "unguarded.py"
    marker = tmp_path / "runs.txt"
    script.write_text(
        "import numpy as np\n"
        "from metrics import resample_pool as rp\n"
        f"open({str(marker)!r}, 'a').write('run\\n')\n"
        "rng = np.random.default_rng(0)\n"
        "y = rng.standard_normal((40, 6)); w = np.ones((20, 40)); tot = w.sum(axis=1)\n"
        "print(rp.trace_sqrt(y, w, np.zeros((20, 6)), tot, processes=2)[0])\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         cwd=str(rp.__file__).rsplit("/metrics/", 1)[0])
    assert out.returncode == 0, out.stderr
    assert marker.read_text() == "run\n"
