"""bench.paired.differences: clip-by-clip comparison of two finished runs (FVD from stored features)."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bench.generate.store import ClipStore
from bench.paired.differences import CannotPair, compare_runs, reference_statistic
from tests.conftest import REPO

pytestmark = pytest.mark.slow   # uses the session's end-to-end reference run


def _fvd_rows(run_dir):
    data = json.loads((run_dir / "results.json").read_text())
    return {(r["method"], r["nfe"]): r for r in data["rows"] if r["metric"] == "fvd"}


def test_the_paired_statistic_reproduces_the_recorded_fvd(e2e_reference):
    run_dir = e2e_reference.run_dir
    store = ClipStore(run_dir / "store")
    for (method, nfe), row in _fvd_rows(run_dir).items():
        feats = np.stack([store.read(k).features[row["protocol"]] for k in store.keys()
                          if k.startswith(f"{method}/nfe{nfe}/")])
        stat = reference_statistic(row["extra"]["reference_file"], unbiased=True)
        # two exact float64 routes to the same distance (eigh + SVD vs the resample-friendly form)
        assert stat(feats) == pytest.approx(row["value"], rel=1e-7)


def test_identical_runs_differ_by_exactly_zero_and_a_changed_cell_is_found(tmp_path, e2e_reference):
    base = e2e_reference.run_dir
    same = tmp_path / "same"
    shutil.copytree(base, same)
    lines, notes = compare_runs(base, same, n_boot=100)
    fvd = [ln for ln in lines if ln.metric == "fvd"]
    assert len(fvd) == len(_fvd_rows(base)) and not notes
    assert all(ln.difference == 0.0 and ln.lo == 0.0 == ln.hi and ln.reading() == "no clear change" for ln in fvd)

    # push one cell's I3D features away from the real statistics: that cell gets worse, the others do not move
    changed = tmp_path / "changed"
    shutil.copytree(base, changed)
    store = ClipStore(changed / "store")
    (method, nfe), row = next(iter(_fvd_rows(base).items()))
    for key in [k for k in store.keys() if k.startswith(f"{method}/nfe{nfe}/")]:
        record = store.read(key, with_frames=True)
        feats = dict(record.features)
        feats[row["protocol"]] = feats[row["protocol"]] + 25.0
        store.write(key, record.meta, feats, record.frames)
    lines, _ = compare_runs(base, changed, n_boot=100)
    by_cell = {(ln.method, ln.nfe): ln for ln in lines if ln.metric == "fvd"}
    hit = by_cell.pop((method, nfe))
    assert hit.difference > 0 and hit.lo > 0 and hit.reading() == "worse" and hit.n == 3
    assert all(ln.difference == 0.0 for ln in by_cell.values())


def test_cli_prints_the_table_and_refuses_what_cannot_be_paired(tmp_path, e2e_reference):
    base = e2e_reference.run_dir
    ok = subprocess.run([sys.executable, "-m", "bench.paired", str(base), str(base), "--n-boot", "50"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "Paired differences, current - baseline" in ok.stdout and "FVD" in ok.stdout
    missing = subprocess.run([sys.executable, "-m", "bench.paired", str(base), str(tmp_path)],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "has no results.json" in missing.stderr
    other = tmp_path / "other"
    shutil.copytree(base, other)
    data = json.loads((other / "results.json").read_text())
    data["run"]["weights_mode"], data["run"]["label"] = "random", "RANDOM WEIGHTS"
    (other / "results.json").write_text(json.dumps(data))
    with pytest.raises(CannotPair, match="not comparable"):
        compare_runs(base, other, n_boot=10)


def test_float_noise_on_the_same_clips_is_no_change(tmp_path, e2e_reference):
    """A sharded or batched rerun differs from a single run in the last bits of every feature:
    FVD's equivalence margin (its tolerance fact, 2% of the baseline FVD) keeps that from
    reading "worse", however narrow the paired interval."""
    base = e2e_reference.run_dir
    noisy = tmp_path / "noisy"
    shutil.copytree(base, noisy)
    store = ClipStore(noisy / "store")
    rng = np.random.default_rng(0)
    for key in store.keys():
        record = store.read(key, with_frames=True)
        feats = {k: (v * (1 + 1e-5 * rng.standard_normal(np.shape(v)))).astype(np.asarray(v).dtype) + 1e-4
                 for k, v in record.features.items()}
        store.write(key, record.meta, feats, record.frames)
    lines, _ = compare_runs(base, noisy, n_boot=100)
    fvd = [ln for ln in lines if ln.metric == "fvd"]
    assert fvd and all(ln.difference != 0.0 and ln.reading() == "no clear change" for ln in fvd)
    assert all(ln.margin == pytest.approx(0.02 * row["value"], rel=1e-6)
               for ln, row in zip(fvd, (_fvd_rows(base)[(ln.method, ln.nfe)] for ln in fvd)))


def test_runs_of_another_protocol_are_refused_naming_the_difference(tmp_path, e2e_reference):
    base = e2e_reference.run_dir
    other = tmp_path / "other"
    shutil.copytree(base, other)
    data = json.loads((other / "results.json").read_text())
    data["provenance"]["config"]["protocol"]["height"] = 96
    data["provenance"]["config"]["protocol"]["seed"] = -1
    (other / "results.json").write_text(json.dumps(data))
    out = subprocess.run([sys.executable, "-m", "bench.paired", str(base), str(other)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "frame height differs: protocol.height=64 vs 96" in out.stderr and "protocol.seed=0 vs -1" in out.stderr
