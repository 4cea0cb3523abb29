"""The fast generation path (models/fast.py): same frames as the plain diffusers path
within the stated tolerance (docs/speed.md), CFG batching, overlap worker."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import models  # noqa: E402
from bench.generate.runner import BackgroundWorker  # noqa: E402
from models.animatediff import share_weights_as  # noqa: E402
from models.fast import (FastPath, PhaseClock, UnetCallCounter, decode_to_uint8,  # noqa: E402
                         fast_options)

TOLERANCE = 2          # max |difference| of uint8 frames, fast vs plain (docs/speed.md)
GEOMETRY = dict(num_frames=4, height=32, width=32)
PROMPTS = ["a person riding a bike", "a dog catching a frisbee"]
SEEDS = [3, 4]
FAST = dict(enabled=True, attention="sdpa", fuse_qkv=True, channels_last_unet=True, channels_last_vae=True,
            uint8_on_device=True)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def build(name, cache, fast=None, **kw):
    return models.build(name, weights="tiny", device="cpu", dtype="float32", cache_dir=cache, fast=fast, **kw)


@pytest.fixture(scope="module")
def plain_lcm(cache):
    return build("animatelcm", cache)


@pytest.fixture(scope="module")
def plain_ddim(cache):
    return build("ddim", cache)


def max_diff(a, b):
    assert a.shape == b.shape and a.dtype == np.uint8 and b.dtype == np.uint8
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def test_plain_build_records_the_plain_path(plain_lcm):
    assert plain_lcm.fast["enabled"] is False
    # diffusers 0.42 already uses torch SDPA by default
    assert plain_lcm.fast["attention"] == ["AttnProcessor2_0"]
    assert plain_lcm.describe()["fast"]["enabled"] is False


@pytest.mark.parametrize("name", ["animatelcm", "ddim"])
def test_fast_path_matches_plain_path(name, cache, plain_lcm, plain_ddim):
    plain = plain_lcm if name == "animatelcm" else plain_ddim
    fast = build(name, cache, fast=FAST)
    assert fast.fast["attention"] == ["FusedAttnProcessor2_0"]
    assert fast.fast["channels_last"] == ["unet", "vae"]
    ref = plain.generate(PROMPTS, SEEDS, 2, **GEOMETRY)
    out = fast.generate(PROMPTS, SEEDS, 2, **GEOMETRY)
    assert ref.std() > 5  # not a flat image: the comparison means something
    assert max_diff(ref, out) <= TOLERANCE
    assert fast.last_timing["finite"] == [True, True]


def test_eager_attention_matches_sdpa(cache, plain_lcm):
    eager = build("animatelcm", cache, fast=dict(enabled=True, attention="eager", channels_last_vae=False))
    assert eager.fast["attention"] == ["AttnProcessor"]
    ref = plain_lcm.generate(PROMPTS[:1], SEEDS[:1], 2, **GEOMETRY)
    assert max_diff(ref, eager.generate(PROMPTS[:1], SEEDS[:1], 2, **GEOMETRY)) <= TOLERANCE


def test_batching_does_not_change_a_clip(plain_lcm):
    both = plain_lcm.generate(PROMPTS, SEEDS, 2, **GEOMETRY)
    second = plain_lcm.generate(PROMPTS[1:], SEEDS[1:], 2, **GEOMETRY)
    assert max_diff(both[1], second[0]) <= TOLERANCE


@pytest.mark.slow
def test_compiled_fast_path_matches_plain_path(cache, plain_lcm):
    # the UNet only: inductor's CPU backend takes minutes per module on two cores
    # (UNet + VAE decoder together also stayed within the tolerance, in about 400 s)
    opts = dict(FAST, compile_unet=True)
    fast = build("animatelcm", cache, fast=opts)
    assert fast.fast["compiled"] == ["unet"]
    ref = plain_lcm.generate(PROMPTS, SEEDS, 2, **GEOMETRY)
    assert max_diff(ref, fast.generate(PROMPTS, SEEDS, 2, **GEOMETRY)) <= TOLERANCE


def test_no_cfg_branch_when_guidance_is_one(plain_lcm):
    assert plain_lcm.guidance_scale == 1.0
    with UnetCallCounter(plain_lcm.pipeline.unet) as counter:
        plain_lcm.generate(PROMPTS, SEEDS, 3, **GEOMETRY)
    assert counter.calls == 3                       # one UNet evaluation per step
    assert counter.batches == [len(PROMPTS)] * 3    # the clips only, no unconditional copy


def test_cfg_runs_both_branches_as_one_batch(plain_ddim):
    assert plain_ddim.guidance_scale == 7.5
    with UnetCallCounter(plain_ddim.pipeline.unet) as counter:
        plain_ddim.generate(PROMPTS, SEEDS, 3, **GEOMETRY)
    assert counter.calls == 3
    assert counter.batches == [2 * len(PROMPTS)] * 3


def test_uint8_on_device_is_identical_to_the_host_path(plain_lcm):
    from models.animatediff import to_uint8

    pipe = plain_lcm.pipeline
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 3, 4, 4, generator=g) * 3
    latents[1, :, 0, 0, 0] = float("nan")                  # one bad clip
    frames, finite = decode_to_uint8(pipe, latents, 2)
    with torch.no_grad():
        video = pipe.decode_latents(latents, 2)
        host = np.asarray(pipe.video_processor.postprocess_video(video=video, output_type="np"), dtype=np.float32)
    expected = to_uint8(host)
    assert frames.shape == expected.shape == (2, 3, 32, 32, 3)
    assert np.array_equal(frames, expected)
    assert finite.tolist() == [True, False]


def test_timing_phases_are_recorded(plain_lcm):
    plain_lcm.generate(PROMPTS[:1], SEEDS[:1], 1, **GEOMETRY)
    t = plain_lcm.last_timing
    assert t["clock"] == "wall"
    assert t["text_encode_s"] > 0 and t["denoise_s"] > 0 and t["decode_s"] > 0
    clock = PhaseClock("cpu")
    clock.mark()
    time.sleep(0.02)
    clock.mark()
    clock.mark()
    first, second = clock.intervals_s()
    assert first >= 0.02 and 0 <= second < first


def test_fast_options_validation():
    assert fast_options(None) == FastPath()
    assert fast_options({"enabled": True}).enabled is True
    with pytest.raises(ValueError, match="Unknown fast path option"):
        fast_options({"compile": True})
    with pytest.raises(ValueError, match="cannot be combined"):
        fast_options({"attention": "eager", "fuse_qkv": True})
    with pytest.raises(ValueError, match="compile_mode"):
        fast_options({"compile_mode": "fastest"})
    with pytest.raises(ValueError, match="attention"):
        fast_options({"attention": "flash"})


def test_hydra_schema_is_the_same_dataclass():
    from dataclasses import fields

    from bench.plan.config import FastPathConfig, RunnerConfig

    assert [f.name for f in fields(FastPathConfig)] == [f.name for f in fields(FastPath)]
    assert fast_options(RunnerConfig().fast).enabled is False   # the harness default is the plain path


def test_share_weights_as(cache, plain_lcm):
    with pytest.raises(ValueError, match="random weights only"):
        share_weights_as(plain_lcm, "ddim")
    # the mechanics on a tiny model posing as random weights (full size is 5 GB)
    plain_lcm.weights = "random"
    try:
        teacher = share_weights_as(plain_lcm, "ddim")
    finally:
        plain_lcm.weights = "tiny"
    assert teacher.pipeline.unet is plain_lcm.pipeline.unet
    assert type(teacher.pipeline.scheduler).__name__ == "DDIMScheduler"
    assert type(plain_lcm.pipeline.scheduler).__name__ == "LCMScheduler"
    assert teacher.guidance_scale == 7.5 and teacher.provenance["shared_modules_from"] == "animatelcm"
    with UnetCallCounter(teacher.pipeline.unet) as counter:
        teacher.generate(PROMPTS[:1], SEEDS[:1], 2, **GEOMETRY)
    assert counter.batches == [2, 2]


# ---------------------------------------------------------------- background worker

def test_worker_runs_every_job_in_order_with_bounded_pending():
    done, running, peak = [], [0], [0]
    lock = threading.Lock()

    def job(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
            done.append(i)

    with BackgroundWorker(threads=1, max_pending=2) as worker:
        for i in range(6):
            worker.submit(job, i)
            assert len(worker._pending) <= 2
    assert done == list(range(6))
    assert peak[0] == 1


def test_worker_overlaps_with_the_caller():
    with BackgroundWorker(threads=1, max_pending=2) as worker:
        start = time.perf_counter()
        worker.submit(time.sleep, 0.2)
        submitted = time.perf_counter() - start
        time.sleep(0.2)                       # the "next batch" runs meanwhile
        worker.drain()
        total = time.perf_counter() - start
    assert submitted < 0.1
    assert total < 0.35                       # serial would be 0.4 s


def test_worker_raises_a_job_error_in_the_caller():
    def fail():
        raise RuntimeError("disk full")

    worker = BackgroundWorker(threads=1, max_pending=1)
    with pytest.raises(RuntimeError, match="disk full"):
        worker.submit(fail)
        worker.submit(lambda: None)           # blocks on the failed job and re-raises
        worker.drain()
    worker.close()
    with pytest.raises(RuntimeError, match="disk full"), BackgroundWorker(threads=2, max_pending=4) as w2:
        w2.submit(time.sleep, 0.01)
        w2.submit(fail)                       # raised at the latest when the block ends (drain)


def test_worker_inline_mode():
    seen = []
    with BackgroundWorker(threads=0) as worker:
        worker.submit(seen.append, 1)
        assert seen == [1]


def test_the_paper_experiments_default_is_bit_identical_to_the_plain_path(plain_lcm, cache):
    """table1 / leaderboard / regression / ablation / vbench run the fast path's
    pixel-neutral part by default: uint8 on the device and the background writer, with
    every pixel-changing kernel off, so the frames equal the plain path's bit for bit
    and the clip fingerprint is that of the plain path."""
    from omegaconf import OmegaConf

    from bench.plan.config import compose
    from models.fast import pixel_settings

    for experiment in ("table1", "leaderboard", "regression", "ablation", "vbench"):
        fast = OmegaConf.to_container(compose([f"experiment={experiment}"]).runner.fast, resolve=True)
        assert fast["enabled"] and fast["uint8_on_device"] and fast["writer_threads"] >= 1, experiment
        assert pixel_settings(fast) == {}, experiment
    default = build("animatelcm", cache, fast=fast)
    assert default.fast["uint8_on_device"] and default.fast["channels_last"] == []
    ours = default.generate(PROMPTS, SEEDS, 2, **GEOMETRY)
    plain = plain_lcm.generate(PROMPTS, SEEDS, 2, **GEOMETRY)
    assert ours.dtype == np.uint8 and np.array_equal(ours, plain)
