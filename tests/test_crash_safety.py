"""Crash safety: atomic files, integrity checks, NaN/Inf bookkeeping, out-of-memory
retries, and a run SIGKILLed at random points that still ends exactly like an
uninterrupted one."""
import errno
import hashlib
import os
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from bench.generate import store as store_mod
from bench.generate.runner import GenerationOutOfMemory, StoreIncomplete, generate_all, require_complete
from bench.generate.store import ClipStore, is_abandoned, publish_dir, staging_dir, temporary_name
from tests import e2e
from tests.fakes import SETTINGS, FakeMetric, FakeModel, plans

KEY = "animatelcm/nfe4/Archery/000"


def _write(store, key=KEY, value=1.0):
    return store.write(key, {"key": key, "seed": 1}, {"x": np.full(3, value)},
                       np.zeros((2, 4, 4, 3), dtype=np.uint8))


# ------------------------------------------------------------------ atomic files

def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    store = ClipStore(tmp_path)
    _write(store, value=1.0)
    calls = []

    def no_space(fd):
        calls.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod.os, "fsync", no_space)
    with pytest.raises(OSError) as info:
        _write(store, value=2.0)
    assert info.value.errno == errno.ENOSPC and calls
    monkeypatch.undo()
    assert store.read(KEY).features["x"][0] == 1.0, "the old clip is intact"
    assert not list(tmp_path.rglob(".*.tmp*")), "the temporary was removed"


def test_every_member_is_checked_against_its_digest(tmp_path):
    store = ClipStore(tmp_path)
    path = _write(store)
    raw = bytearray(path.read_bytes())
    # rewrite one feature value and fix up the zip CRC, as a buggy tool or an edit
    # would: only the sha256 digests can tell
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    feat = bytearray(members["feat::x.npy"])
    feat[-8:] = np.float64(7.0).tobytes()
    members["feat::x.npy"] = bytes(feat)
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    assert bytes(raw) != path.read_bytes()
    assert store.read(KEY) is None and store.corrupt == [KEY]


def test_a_flipped_byte_or_a_cut_file_is_corrupt(tmp_path):
    store = ClipStore(tmp_path)
    path = _write(store)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert store.read(KEY) is None
    path = _write(store)
    path.write_bytes(path.read_bytes()[:100])
    assert store.read(KEY) is None and store.corrupt == [KEY]


def test_temporaries_of_live_writers_are_kept(tmp_path):
    store = ClipStore(tmp_path)
    target = store.path(KEY)
    target.parent.mkdir(parents=True)
    mine = temporary_name(target)                      # this process: alive
    dead_proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_proc.wait()
    dead = target.with_name(f"{mine.name.rsplit('.', 1)[0]}.{dead_proc.pid}")
    other_host = target.with_name(f".{target.name}.tmp.elsewhere.123")
    legacy = target.with_name(f".{target.name}.tmp999")
    for p in (mine, dead, other_host, legacy):
        p.write_bytes(b"partial")
    assert store.remove_temporaries() == 2
    assert mine.exists() and other_host.exists() and not dead.exists() and not legacy.exists()
    old = time.time() - 2 * store_mod.STALE_TEMPORARY_S
    os.utime(other_host, (old, old))
    assert is_abandoned(other_host) and store.remove_temporaries() == 1


def test_published_files_carry_their_completion_marker_last(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text("old")
    staging = staging_dir(run_dir)
    (staging / "tables").mkdir(parents=True)
    for name in ("results.json", "results.csv", "tables/table1.md", "report.html"):
        (staging / name).write_text("new " + name)
    order = []
    real_replace = os.replace

    def replace(src, dst):
        order.append(os.path.relpath(dst, run_dir))
        if len(order) == 2:
            raise KeyboardInterrupt   # killed part-way
        real_replace(src, dst)

    monkeypatch.setattr(store_mod.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        publish_dir(staging, run_dir)
    assert not (run_dir / "results.json").exists(), "no marker beside a half-published set"
    monkeypatch.undo()
    order.clear()
    published = publish_dir(staging, run_dir)
    assert published[-1] == run_dir / "results.json"
    assert (run_dir / "results.json").read_text() == "new results.json" and not staging.exists()


# ------------------------------------------------------------------ runner bookkeeping

def test_a_corrupt_clip_is_regenerated_and_nothing_else(tmp_path):
    store = ClipStore(tmp_path)
    generate_all(plans(), store, [FakeMetric()], SETTINGS, lambda p: FakeModel())
    keys = store.keys()
    reference = {k: store.read(k).features["fake/v1"].copy() for k in keys}
    victim = keys[5]
    data = bytearray(store.path(victim).read_bytes())
    data[data.find(reference[victim].tobytes()) + 3] ^= 0x01   # one bit of one feature value
    store.path(victim).write_bytes(bytes(data))
    mtimes = {k: store.path(k).stat().st_mtime_ns for k in keys if k != victim}
    fresh = ClipStore(tmp_path)
    summary = generate_all(plans(), fresh, [FakeMetric()], SETTINGS, lambda p: FakeModel())
    assert (summary.made, summary.corrupt_regenerated, summary.skipped) == (1, 1, len(keys) - 1)
    assert all(store.path(k).stat().st_mtime_ns == t for k, t in mtimes.items())
    np.testing.assert_array_equal(fresh.read(victim).features["fake/v1"], reference[victim])


def test_nonfinite_clips_are_recorded_and_left_out_of_scoring(tmp_path, cache_dir):
    from bench.run.pipeline import Run
    from tests.conftest import compose

    cfg = compose(["~methods.dpmpp", "~methods.animatelcm_r", "~methods.ddim", "protocol.num_classes=1",
                   "protocol.videos_per_prompt=4", "protocol.nfe=[1]", "metrics.fvd.enabled=false",
                   "metrics.clipsim.enabled=false", "metrics.vbench.enabled=false", "report.bootstrap=0"])
    run = Run(cfg, tmp_path)
    run.preflight()
    run.metrics = [FakeMetric()]
    bad_seed = run.plans[0].clips[1].seed
    summary = generate_all(run.plans, run.store, run.metrics, SETTINGS, lambda p: FakeModel(nan_seeds=[bad_seed]))
    assert summary.nonfinite == [run.plans[0].clips[1].key]
    assert run.store.read(run.plans[0].clips[1].key).meta["finite"] is False
    scored = run.score()
    (row,) = scored["rows"]
    assert row["n"] == 3 and row["extra"]["excluded_nonfinite"] == 1 and row["extra"]["missing"] == 0
    run.summary = summary
    generation = run.results(scored).provenance.generation
    assert generation["store"]["nonfinite_count"] == 1 and generation["nonfinite"] == summary.nonfinite


def test_scoring_an_incomplete_store_is_refused(tmp_path):
    store = ClipStore(tmp_path)
    p = plans()
    generate_all(p, store, [FakeMetric()], SETTINGS, lambda _: FakeModel())
    require_complete(p, store, ["fake/v1"])
    store.path(p[1].clips[2].key).unlink()
    with pytest.raises(StoreIncomplete, match=r"lacks 1 of 24 clips \(e\.g\. ddim/"):
        require_complete(p, store, ["fake/v1"])
    # a metric's features missing everywhere: said apart from the clip that is missing
    with pytest.raises(StoreIncomplete, match=r"holds 23 of the 24 clips without this run's features other/v2 .*; "
                                              r"1 more clips are not in the store at all"):
        require_complete(p, store, ["fake/v1", "other/v2"])


def test_out_of_memory_halves_the_batch_and_records_what_worked(tmp_path):
    settings = replace(SETTINGS, batch_size=4)
    model = FakeModel(max_batch=1)
    store = ClipStore(tmp_path / "oom")
    summary = generate_all(plans(), store, [FakeMetric()], settings, lambda p: model)
    assert summary.made == 24 and summary.batch_sizes == {"animatelcm": 1, "ddim": 1}
    # 4 -> 2 -> 1 for the first method; the second starts again at 4 (another model)
    assert summary.oom_retries == 4 and model.calls[:3] == [4, 2, 1]
    assert {store.read(k).meta["batch_size"] for k in store.keys()} == {1}
    # the same clips as a run that never ran out of memory
    plain = ClipStore(tmp_path / "plain")
    generate_all(plans(), plain, [FakeMetric()], SETTINGS, lambda p: FakeModel())
    for k in plain.keys():
        np.testing.assert_array_equal(store.read(k).features["fake/v1"], plain.read(k).features["fake/v1"])


def test_out_of_memory_at_batch_size_one_is_a_clear_error_and_keeps_what_was_made(tmp_path):
    class Fails(FakeModel):
        def generate(self, prompts, seeds, *a, **k):
            if len(self.calls) >= 3:
                import torch

                self.calls.append(len(prompts))
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
            return super().generate(prompts, seeds, *a, **k)

    store = ClipStore(tmp_path)
    with pytest.raises(GenerationOutOfMemory, match="even at batch size 1.*runner.dtype=float16"):
        generate_all(plans(), store, [FakeMetric()], SETTINGS, lambda p: Fails())
    assert len(store.keys()) == 3 and all(store.read(k) is not None for k in store.keys())


# ------------------------------------------------------------------ background writer (fast path)

def test_the_background_writer_stores_the_same_clips_as_inline_writing(tmp_path):
    inline = ClipStore(tmp_path / "inline")
    generate_all(plans(), inline, [FakeMetric()], replace(SETTINGS, save_frames=True), lambda p: FakeModel())
    threaded = ClipStore(tmp_path / "threaded")
    summary = generate_all(plans(), threaded, [FakeMetric()],
                           replace(SETTINGS, save_frames=True, batch_size=2, writer_threads=2, max_pending=2),
                           lambda p: FakeModel(nan_seeds=[]))
    assert summary.made == 24 and summary.writer_threads == 2 and threaded.keys() == inline.keys()
    for key in inline.keys():
        a, b = inline.read(key), threaded.read(key)
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.features["fake/v1"], b.features["fake/v1"])
        batching = ("created", "batch_size", "denoise_ms", "text_encode_ms", "decode_ms", "generation_call",
                    "warmup_call")   # how the clip was batched and timed, not what it is
        assert {k: v for k, v in a.meta.items() if k not in batching} == \
               {k: v for k, v in b.meta.items() if k not in batching}


def test_features_of_one_batch_are_computed_while_the_next_batch_generates(tmp_path):
    """The writer really overlaps: the first batch's feature extraction waits until the
    model has been asked for the second batch, which only happens if generation did not
    wait for the writer. Inline writing would time out here."""
    import threading

    next_batch_started = threading.Event()
    extract_threads = []

    class Model(FakeModel):
        def generate(self, prompts, seeds, *a, **k):
            if self.calls:
                next_batch_started.set()
            return super().generate(prompts, seeds, *a, **k)

    class Metric(FakeMetric):
        def extract(self, frames, prompts):
            extract_threads.append(threading.current_thread().name)
            if len(extract_threads) == 1:
                assert next_batch_started.wait(timeout=30), "generation waited for the writer"
            return super().extract(frames, prompts)

    store = ClipStore(tmp_path)
    summary = generate_all(plans(methods=("animatelcm",)), store, [Metric()],
                           replace(SETTINGS, writer_threads=1, max_pending=2), lambda p: Model())
    assert summary.made == 12 and len(store.keys()) == 12
    assert all(name.startswith("lcmbench-writer") for name in extract_threads)


def test_a_writer_error_stops_the_run_and_keeps_every_clip_already_written(tmp_path):
    class Metric(FakeMetric):
        calls = 0

        def extract(self, frames, prompts):
            Metric.calls += 1
            if Metric.calls == 4:
                raise RuntimeError("feature extractor broke")
            return super().extract(frames, prompts)

    store = ClipStore(tmp_path)
    with pytest.raises(RuntimeError, match="feature extractor broke"):
        generate_all(plans(), store, [Metric()], replace(SETTINGS, writer_threads=1, max_pending=2),
                     lambda p: FakeModel())
    kept = store.keys()
    assert len(kept) >= 3 and all(store.read(k) is not None for k in kept)
    assert not list(tmp_path.rglob(".*.tmp*")), "no temporary left behind"
    summary = generate_all(plans(), ClipStore(tmp_path), [FakeMetric()], SETTINGS, lambda p: FakeModel())
    assert summary.skipped == len(kept) and summary.made == 24 - len(kept)


# ------------------------------------------------------------------ SIGKILL at random points

def _file_digests(run_dir):
    return {p.relative_to(run_dir / "store").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in e2e.store_files(run_dir)}


def _check_after_kill(run_dir):
    """No torn clip, no results.json unless the whole report set is complete."""
    store = ClipStore(run_dir / "store")
    for key in store.keys():
        assert store.read(key) is not None, f"torn or corrupt clip {key} after a kill"
    if (run_dir / "results.json").exists():
        from results.schema import load

        load(run_dir / "results.json")
        assert (run_dir / "report.html").exists() and (run_dir / "tables" / "table1.md").exists()


def _wait(proc, condition, deadline):
    while proc.poll() is None and time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


# the background writer with every pixel-changing fast-path option off: the clips are
# bit-identical to the plain path's, so the resumed run still matches the reference
WRITER_ONLY = ["runner.fast.enabled=true", "runner.fast.attention=default", "runner.fast.channels_last_vae=false",
               "runner.fast.cudnn_benchmark=false", "runner.fast.writer_threads=1", "runner.fast.max_pending=2"]


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_ends_like_an_uninterrupted_run(tmp_path, cache_dir, e2e_reference):
    ref = e2e_reference
    rng = np.random.default_rng(20241126)
    run_dir = tmp_path / "killed"
    args = [f"hydra.run.dir={run_dir}", *e2e.SMALL]
    count = lambda: len(e2e.store_files(run_dir)) if (run_dir / "store").is_dir() else 0   # noqa: E731
    per_clip = (ref.store_complete_s - ref.first_clip_s) / (e2e.N_CLIPS - 1)
    logfile = run_dir / "run_bench.log"
    generated = lambda: logfile.read_text().count("Generated ") if logfile.exists() else 0   # noqa: E731
    config = run_dir / "config.resolved.yaml"
    # (phase, when to kill given the attempt, extra delay, processes). Each condition is
    # an event of this attempt: its config written (metrics being prepared), k new clips,
    # the end of its generation logged (scoring), its report staging folder made. The
    # resumes alternate between one process and two torchrun ranks, so the store is also
    # resumed with another process count.
    points = [("startup", lambda a: config.exists() and config.stat().st_mtime >= a["wall"],
               rng.uniform(0, 1.0), 1)]
    points += [(f"generation, +{k} clips", (lambda a, k=k: count() >= a["clips"] + k), rng.uniform(0, per_clip), n)
               for k, n in zip(rng.integers(1, 4, size=2).tolist(), (2, 1))]
    points += [("scoring", lambda a: generated() > a["generated"],
                rng.uniform(0.05, 0.6) * (ref.total_s - ref.store_complete_s), 1),
               ("report", lambda a: any(run_dir.glob(f".staging-*.{a['pid']}")), rng.uniform(0, 0.5), 1)]
    log = []
    for phase, condition, delay, procs in points:
        before = _file_digests(run_dir) if (run_dir / "store").is_dir() else {}
        attempt = {"clips": len(before), "generated": generated(), "wall": time.time() - 1}
        # the one-process generation attempt stores its clips through the fast path's
        # background writer (pixel-neutral options only), so a kill also lands while
        # finished batches wait for the writer
        writer = WRITER_ONLY if phase.startswith("generation") and procs == 1 else []
        proc = e2e.start([*args, *writer], cache_dir, torchrun=procs if procs > 1 else 0)
        started = time.monotonic()
        attempt["pid"] = proc.pid
        reached = _wait(proc, lambda: condition(attempt), started + e2e.TIMEOUT)
        time.sleep(delay)
        finished_first = proc.poll() is not None
        e2e.kill_all(proc)
        killed_at = time.monotonic() - started
        after = _file_digests(run_dir) if (run_dir / "store").is_dir() else {}
        _check_after_kill(run_dir)
        lost = [k for k in before if k not in after]
        remade = [k for k in before if k in after and after[k] != before[k]]
        assert not lost and not remade, f"{phase}: lost {lost}, remade {remade}"
        assert set(after) <= set(_file_digests(ref.run_dir)), "only planned clips"
        has_results = (run_dir / "results.json").exists()
        # did the kill land in its phase (the run still short of that phase's end)?
        if phase == "startup":
            in_phase = len(after) == len(before)
        elif phase.startswith("generation"):
            in_phase = len(before) < len(after) < e2e.N_CLIPS
        else:
            in_phase = len(after) == e2e.N_CLIPS and not has_results
        landed = reached and not finished_first and in_phase
        phase = phase + (" (writer)" if writer else "")
        log.append(f"{phase:<35} x{procs} at {killed_at:5.1f}s: {len(after):2d} clips in the store, "
                   f"results.json {'yes' if has_results else 'no '}, lost 0, remade 0"
                   f"{'' if landed else '  (missed its phase)'}")
    before = _file_digests(run_dir)
    out = e2e.run(args, cache_dir)
    after = _file_digests(run_dir)
    assert all(after[k] == v for k, v in before.items()), "the final resume remade finished clips"
    made = int(out.split("Generated ")[1].split()[0])
    assert made == e2e.N_CLIPS - len(before), out[-2000:]
    e2e.assert_same_run(ref.run_dir, run_dir)
    assert e2e.no_leftovers(run_dir) is None
    print("\nkill points (seeded):\n  " + "\n  ".join(log))
    assert sum("missed" not in line for line in log) >= 4, log


@pytest.mark.parametrize("enabled, expected", [("true", 1), ("false", 0)])
def test_the_run_uses_the_writer_only_on_the_fast_path(tmp_path, cache_dir, monkeypatch, enabled, expected):
    import bench.run.pipeline as pipeline_mod
    from bench.run.pipeline import Run
    from tests.conftest import compose

    cfg = compose(["~methods.dpmpp", "~methods.animatelcm_r", "~methods.ddim", "protocol.num_classes=1",
                   "protocol.videos_per_prompt=2", "protocol.nfe=[1]", "metrics.fvd.enabled=false",
                   "metrics.clipsim.enabled=false", "metrics.vbench.enabled=false", f"runner.fast.enabled={enabled}",
                   "runner.fast.writer_threads=1", "runner.fast.max_pending=3"])
    seen = {}

    def fake_generate_all(plans_, store, metrics, settings, build, video_dir=None, shard=None):
        seen.update(threads=settings.writer_threads, pending=settings.max_pending)
        return generate_all(plans_, store, [FakeMetric()], settings, lambda p: FakeModel())

    monkeypatch.setattr(pipeline_mod, "generate_all", fake_generate_all)
    run = Run(cfg, tmp_path)
    run.preflight()
    run.generate()
    assert seen == {"threads": expected, "pending": 3}
    assert run.summary.writer_threads == expected and run.summary.made == 2
