"""Every VBench dimension that can run here, through lcmbench's VBench path
(export_for_vbench -> metrics.vbench.evaluate, standard mode) with the real networks
and random weights in a temporary VBench cache (tests/vbench_random_cache.py).

The scores mean nothing; what is checked is that each dimension finds its files, loads
them, reads lcmbench's 16-frame 64x64 videos and gives a finite score with one row per
video. Dimensions that cannot run here are listed, with the reason, in
docs/vbench_dimensions.md (and vbench_random_cache.NOT_RUNNABLE)."""
from __future__ import annotations

import importlib.util
import math
import time

import numpy as np
import pytest

from metrics import vbench as vb
from metrics.vbench_export import prompts_by_dimension
from metrics.vbench_protocol import ALL_DIMENSIONS
from tests.vbench_random_cache import (NOT_RUNNABLE, RUNNABLE, install_pkg_resources_if_missing, missing_modules,
                                       write_random_cache)

F, H, W = 16, 64, 64
VIDEOS_PER_PROMPT = 2


def _clip(seed: int) -> np.ndarray:
    """A textured square drifting over a gradient: real motion for the flow networks,
    detail for the image networks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=-1) + rng.integers(0, 20, (H, W, 3))
    frames = []
    for t in range(F):
        frame = base.copy()
        y0, x0 = 16 + t % 4, 8 + 2 * t
        frame[y0:y0 + 20, x0:x0 + 20] = rng.integers(150, 255, (20, 20, 3))
        frames.append(frame)
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def shared_dirs(tmp_path_factory):
    """One cache for the module: dimensions that share a network (CLIP, ViCLIP) write it once."""
    root = tmp_path_factory.mktemp("vbench_random")
    return root / "cache", root / "torch_home"


def test_every_dimension_is_either_run_or_explained():
    assert set(RUNNABLE) | set(NOT_RUNNABLE) == set(ALL_DIMENSIONS)
    assert not set(RUNNABLE) & set(NOT_RUNNABLE)


def test_human_action_names_what_stops_it_before_running(tmp_path):
    """With its weights in place, human_action is still refused up front when numpy 2 has
    no numpy.lib.function_base (vbench's UMT code imports it), naming why."""
    weights = tmp_path / "umt_model" / "l16_ptk710_ftk710_ftk400_f16_res224.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"x")
    status = vb.available_dimensions(tmp_path, ["human_action"])
    if importlib.util.find_spec("numpy.lib.function_base") is None:
        assert "numpy.lib.function_base" in status["unavailable"]["human_action"]
        assert "numpy<2" in status["unavailable"]["human_action"]
        assert "missing" not in status["unavailable"]["human_action"]
    else:
        assert "numpy.lib.function_base" not in status["unavailable"].get("human_action", "")


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("dimension", RUNNABLE)
def test_dimension_scores_with_random_weights(dimension, shared_dirs, tmp_path, monkeypatch):
    missing = missing_modules(dimension)
    if missing:
        # VBench's per-dimension packages are not part of `make install` (docs/vbench_dimensions.md)
        pytest.skip(f"{dimension} needs packages that are not installed: {'; '.join(missing)}")
    cache, torch_home = shared_dirs
    if dimension == "temporal_flickering":
        cache = tmp_path / "cache"   # no model files: keeps RAFT (dynamic_degree's) out of its run
    monkeypatch.setenv("TORCH_HOME", str(torch_home))   # DINO's hubconf reads the torch hub folder
    install_pkg_resources_if_missing(monkeypatch)
    start = time.perf_counter()
    written = write_random_cache(dimension, cache, torch_home)
    assert all(p.stat().st_size > 0 for p in written)
    wrote_s = time.perf_counter() - start
    assert vb.available_dimensions(cache, [dimension])["available"] == [dimension]

    prompt = prompts_by_dimension()[dimension][0]
    names = vb.export_for_vbench([(prompt, i, _clip(i)) for i in range(VIDEOS_PER_PROMPT)], tmp_path / "videos",
                                 mode="vbench_standard")
    start = time.perf_counter()
    res = vb.evaluate(tmp_path / "videos", "random", [dimension], mode="vbench_standard", out_dir=tmp_path / "out",
                      device="cpu", cache_dir=cache, require_complete=False)
    print(f"\n{dimension}: wrote files in {wrote_s:.1f} s, scored {len(names)} videos in "
          f"{time.perf_counter() - start:.1f} s")

    assert res["skipped"] == {} and res["failed"] == {}, (res["skipped"], res["failed"])
    assert math.isfinite(res["scores"][dimension])
    assert set(res["per_video"][dimension]) == set(names)
    assert res["n_videos"][dimension] == VIDEOS_PER_PROMPT
    for value in res["per_video"][dimension].values():
        assert math.isfinite(float(value))
    # vbench's loader switches decord's bridge to torch; lcmbench's own readers expect numpy after it
    import decord.bridge  # heavy: decord, loaded by the evaluation above
    assert getattr(decord.bridge._CURRENT_BRIDGE, "type", "native") == "native"
