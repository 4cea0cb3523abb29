"""The harness's own work at Table-1 and leaderboard scale, on the CPU, beside the GPU floor.

Prints, measured side by side in one run:
- statistics: the FVD bootstrap of one Table-1 cell (2,424 clips x 400 I3D logits,
  synthetic, bias-corrected) by the project and by the straightforward per-resample
  float64 loop on the same resamples, their agreement, and a paired difference;
- host work on the critical path of one full-size clip (16x512x512): the plain path
  (diffusers' postprocess_video, isfinite, to uint8 on the host) and the device path
  (uint8 made beside the GPU, only the uint8 frames copied off it);
- the clip store: file opens per clip per stage and filesystem flushes per clip, the
  project beside a store that re-reads every time and a flush per clip;
- the projected harness hours of Table 1 and the leaderboard beside their GPU FLOP floor.

    python benchmarks/scale.py               # about 2-4 minutes on 2 cores
    python benchmarks/scale.py --n-boot 1000 # full-size cells (timed once each)

Exits 1 when a target is missed: bootstrap >= 2x the loop with intervals equal to 1e-6,
Table 1's statistics <= 2 min and the leaderboard's <= 10 min, host work <= 30 ms per
clip, one read per clip per stage.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from diffusers.video_processor import VideoProcessor
from threadpoolctl import threadpool_limits

from bench.generate.runner import (GenerationSettings, MethodPlan, check_resumable, generate_all, require_complete,
                                   store_summary)
from bench.generate.store import ClipStore
from bench.plan.config import compose
from bench.plan.protocol import ClipSpec
from bench.preflight.checklist import preflight
from metrics.base import ClipMetric
from metrics import resample_pool
from metrics.frechet import FrechetToReference
from metrics.kvd import KernelDistanceToReference
from models.animatediff import to_uint8
from models.device import device_peak_tflops
from models.fast import video_to_uint8
from models.specs import ModelSpec, SamplerSpec
from results.stats import bootstrap_ci, clear_memo, paired_difference

CELL_CLIPS, FEATURES = 2424, 400     # one Table-1 cell: 101 prompts x 24 videos, I3D logits
FULL = (16, 512, 512)                # frames, height, width
HOST_TARGET_MS = 30.0
REAL_CLIPS = 13320    # UCF-101's videos
STATS_TARGET_MIN = {"table1": 2, "leaderboard": 10}   # all of an experiment's statistics, 2 cores


def _features(rng, n, mix, shift):
    return (rng.standard_normal((n, FEATURES)) + shift) @ mix


def statistics(n_boot: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(2024)
    # a decaying spectrum, like I3D logits: a few strong directions, many weak ones
    mix = rng.standard_normal((FEATURES, FEATURES)) * (0.99 ** np.arange(FEATURES))[:, None]
    real = _features(rng, REAL_CLIPS, mix, 0.0)   # UCF-101's videos as the reference
    stat = FrechetToReference(real.mean(0), np.cov(real, rowvar=False))
    a = _features(rng, CELL_CLIPS, mix, 0.15)
    b = a + 0.05 * _features(rng, CELL_CLIPS, mix, 0.1)   # a second run of the same prompts and seeds

    clear_memo()   # every figure below is computed cold unless it says otherwise
    with threadpool_limits(1, user_api="blas"):   # the straightforward loop runs on one core
        start = time.perf_counter()
        loop = bootstrap_ci(a, stat.straightforward, n_boot, seed, interval="bias_corrected")
        t_loop = time.perf_counter() - start
    start = time.perf_counter()
    ours = bootstrap_ci(a, stat, n_boot, seed, interval="bias_corrected")
    t_ours = time.perf_counter() - start
    agree = max(abs(ours.lo - loop.lo) / abs(loop.lo), abs(ours.hi - loop.hi) / abs(loop.hi))
    keyed_a, keyed_b = dict(enumerate(a)), dict(enumerate(b))
    clear_memo()
    start = time.perf_counter()
    paired = paired_difference(keyed_a, keyed_b, stat, n_boot, seed, interval="bias_corrected")
    t_paired = time.perf_counter() - start
    # the leaderboard's case: both cells' intervals are made first, then their paired
    # difference on the same clips and draws reuses the cells' resamples
    clear_memo()
    bootstrap_ci(a, stat, n_boot, seed, interval="bias_corrected")
    bootstrap_ci(b, stat, n_boot, seed, interval="bias_corrected")
    start = time.perf_counter()
    warm = paired_difference(keyed_a, keyed_b, stat, n_boot, seed, interval="bias_corrected")
    t_paired_warm = time.perf_counter() - start
    assert warm == paired, "a paired difference from the cells' resamples must equal the one computed afresh"
    with threadpool_limits(1, user_api="blas"):
        start = time.perf_counter()
        paired_loop = paired_difference(keyed_a, keyed_b, stat.straightforward, n_boot, seed,
                                        interval="bias_corrected")
        t_paired_loop = time.perf_counter() - start
    agree_paired = max(abs(paired.lo - paired_loop.lo), abs(paired.hi - paired_loop.hi)) / \
        max(abs(paired_loop.lo), abs(paired_loop.hi))
    per = 1000.0 / n_boot   # seconds per 1,000-resample cell
    # KVD, Table 1's other set statistic: the cell against the reference clips' own features
    kernel = KernelDistanceToReference(real)
    start = time.perf_counter()
    bootstrap_ci(a, kernel, 1000, seed, interval="bias_corrected")   # cheap per resample: timed at full size
    t_kvd = (time.perf_counter() - start) / per
    return {"loop_s": t_loop * per, "ours_s": t_ours * per, "paired_s": t_paired * per,
            "paired_warm_s": t_paired_warm * per, "kvd_s": t_kvd * per,
            "paired_loop_s": t_paired_loop * per, "agree": agree, "agree_paired": agree_paired,
            "interval": (ours.point, ours.lo, ours.hi)}


def _best_ms(fn, repeats: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def host_work() -> dict:
    """One full-size clip as the VAE leaves it: float32 [1, 3, 16, 512, 512] in [-1, 1]."""
    f, h, w = FULL
    gen = torch.Generator().manual_seed(0)
    video = (torch.rand((1, 3, f, h, w), generator=gen) * 2.2 - 1.1)
    video[0, 0, 0, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])   # the flags must see them
    processor = VideoProcessor(do_resize=False, vae_scale_factor=8)   # as AnimateDiffPipeline builds it

    def plain():
        frames = np.asarray(processor.postprocess_video(video=video, output_type="np"), dtype=np.float32)
        finite = np.isfinite(frames).reshape(1, -1).all(axis=1)
        return to_uint8(frames, "truncate"), finite

    def device_side():
        return video_to_uint8(video, "truncate")

    device_frames, device_finite = device_side()
    host_frames, host_finite = plain()
    out = {"plain_ms": _best_ms(plain), "device_side_cpu_ms": _best_ms(device_side),
           "identical": bool(np.array_equal(device_frames.numpy(), host_frames)
                             and np.array_equal(device_finite.numpy(), host_finite))}
    # the host's share of the device path: the uint8 frames and flags copied off the device
    # (a copy of the same bytes here), then handed to the background writer
    out["host_ms"] = _best_ms(lambda: (np.array(device_frames.numpy(), copy=True), device_finite.numpy().copy()))
    return out


class _Model:
    """Frames as a pure function of the seed, at a small size: the store's bookkeeping is measured."""

    last_timing: dict = {}

    def generate(self, prompts, seeds, steps, num_frames=4, height=8, width=8, decode_chunk_size=16):
        self.last_timing = {"text_encode_s": 0.0, "denoise_s": 0.0, "decode_s": 0.0}
        return np.stack([np.random.default_rng(int(s)).integers(0, 256, (num_frames, height, width, 3),
                                                                dtype=np.uint8) for s in seeds])


class _Metric(ClipMetric):
    name = "fvd"
    feature_key = "synthetic/i3d-logits"

    def extract(self, frames, prompts):   # 400 float32 per clip, like the I3D logits
        return np.repeat(frames.reshape(len(frames), -1)[:, :1].astype(np.float32), FEATURES, axis=1)

    def score(self, features, prompts):
        return {"value": float(np.mean(features)), "n": len(features)}


class _Uncached(ClipStore):
    """The store as it was: every read opens and hashes the file again, a flush per clip."""

    def read(self, key, with_frames=True):
        self.forget()
        return super().read(key, with_frames)

    def write_many(self, items):
        return [self.write(*item) for item in items]


def store_work(folder: Path, clips: int = 96, batch: int = 4) -> dict:
    specs = [ClipSpec(method="animatelcm", nfe=4, class_name=f"Class{i // 8}", prompt=f"class {i // 8}",
                      video_index=i % 8, seed=i) for i in range(clips)]
    plan = MethodPlan("animatelcm", ModelSpec(name="animatelcm", sampler=SamplerSpec(kind="lcm")), specs)
    settings = GenerationSettings(num_frames=4, height=8, width=8, batch_size=batch, progress=False)
    out = {}
    for label, kind in (("before", _Uncached), ("after", ClipStore)):
        root = folder / label
        writer = kind(root)
        generate_all([plan], writer, [_Metric()], settings, lambda p: _Model())
        # a resumed run: its generate stage (resume check + scan) in one process ...
        store = kind(root)
        check_resumable([plan], store)
        generate_all([plan], store, [_Metric()], settings, lambda p: _Model())
        generate_reads = sum(store.reads.values()) / clips
        # ... then its score stage in another (stages=[score,report]): completeness, scores, summary
        store = kind(root)
        require_complete([plan], store, [_Metric.feature_key])
        store.read_many([s.key for s in specs])
        store_summary([plan], store)
        out[label] = {"generate": generate_reads, "score": sum(store.reads.values()) / clips,
                      "max": max(store.reads.values(), default=0), "flushes": writer.flushes / clips}
    # the writes alone, alternating the two ways, same clip files (400 float32 features each)
    items = [(s.key, {"key": s.key, "seed": s.seed}, {_Metric.feature_key: np.zeros(FEATURES, np.float32)}, None)
             for s in specs]
    spent = {"before": 0.0, "after": 0.0}
    for _ in range(3):
        for label, kind in (("before", _Uncached), ("after", ClipStore)):
            store = kind(folder / f"writes-{label}")
            start = time.perf_counter()
            for i in range(0, clips, batch):
                store.write_many(items[i:i + batch])
            spent[label] += time.perf_counter() - start
    for label in spent:
        out[label]["write_ms"] = spent[label] * 1000.0 / (3 * clips)
    return out


def plans():
    """Clips and TFLOP of Table 1 and the leaderboard, from the preflight's own plan."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="lcmbench-scale-") as scratch:
        for exp in ("table1", "leaderboard"):
            plan = preflight(compose([f"experiment={exp}", "preflight.time_on=H100 SXM", "runner.dtype=bfloat16"]),
                             scratch).plan
            # the leaderboard pairs every other method with its reference at each NFE
            paired = plan.settings - len(plan.nfe) if exp == "leaderboard" else 0
            out[exp] = {"clips": plan.clips, "cells": plan.settings, "paired": paired, "tflop": plan.tflop["total"]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-boot", type=int, default=200, help="resamples timed per cell (figures are per 1,000)")
    args = ap.parse_args(argv)
    cores = resample_pool.cores()
    print(f"lcmbench scale benchmark: {cores} cores, load {os.getloadavg()[0]:.1f}, numpy {np.__version__}, "
          f"torch {torch.__version__}")

    s = statistics(args.n_boot)
    speedup = s["loop_s"] / s["ours_s"]
    print(f"\n== statistics: one Table-1 cell, {CELL_CLIPS} clips x {FEATURES} features, bias-corrected, "
          f"seconds per 1,000 resamples (timed {args.n_boot}, same resamples)")
    print(f"  straightforward loop (gather, mean, GEMM, eigvalsh of R S R; 1 core)  {s['loop_s']:7.1f} s")
    print(f"  project (results.stats.bootstrap_ci + FrechetToReference)            {s['ours_s']:7.1f} s"
          f"   {speedup:.2f}x faster")
    print(f"  intervals agree to {s['agree']:.1e} relative (FVD {s['interval'][0]:.2f} "
          f"[{s['interval'][1]:.2f}, {s['interval'][2]:.2f}])")
    print(f"  paired difference (two runs, same resamples): project {s['paired_s']:.1f} s, "
          f"loop {s['paired_loop_s']:.1f} s, agree to {s['agree_paired']:.1e}")
    print(f"  KVD (unbiased MMD^2, cubic kernel) of the same cell against {REAL_CLIPS:,} reference clips: "
          f"{s['kvd_s']:.1f} s")
    print(f"  paired difference after its two cells (the leaderboard's case: their resamples reused): "
          f"{s['paired_warm_s']:.2f} s, equal to the one computed afresh")

    h = host_work()
    print(f"\n== host work on the critical path, one {FULL[0]}x{FULL[1]}x{FULL[2]} clip "
          f"(float32 off the VAE; best of 3)")
    print(f"  plain path: postprocess_video + isfinite + to_uint8 on the host     {h['plain_ms']:7.1f} ms")
    print(f"  device path: uint8 copied off the device, flags                     {h['host_ms']:7.1f} ms")
    print(f"    (its conversion runs on the GPU; on this CPU it would take {h['device_side_cpu_ms']:.0f} ms)")
    print(f"  frames and flags bit-identical between the two: {'yes' if h['identical'] else 'NO'}")

    with tempfile.TemporaryDirectory(prefix="lcmbench-scale-store-") as scratch:
        st = store_work(Path(scratch))
    print("\n== clip store: 96 clips in batches of 4, then a resumed run: its generate stage (resume check + scan) "
          "and its score stage (completeness, scores, summary), each in a fresh process")
    for label in ("before", "after"):
        r = st[label]
        print(f"  {label:<6} file opens per clip: generate stage {r['generate']:.2f}, score stage {r['score']:.2f} "
              f"(at most {r['max']} of one clip); filesystem flushes per clip {r['flushes']:.2f}; "
              f"writing {r['write_ms']:.1f} ms per clip")

    p = plans()
    peak, _ = device_peak_tflops("H100 SXM", "bfloat16")
    print(f"\n== projected harness hours beside the GPU floor (one H100 SXM at its {peak:.0f} TFLOP/s dense peak)")
    stats_minutes = {}
    for exp, q in p.items():
        # the loop evaluates both runs of a paired difference; the project reuses its cells' resamples
        stats_loop = (q["cells"] + 2 * q["paired"]) * s["loop_s"] / 3600
        stats_after = (q["cells"] * (s["ours_s"] + s["kvd_s"]) + q["paired"] * s["paired_warm_s"]) / 3600
        stats_minutes[exp] = stats_after * 60
        # plain path: float post-processing and the store write inline, before the next batch;
        # device path: only the uint8 copy, the write runs on the background writer meanwhile
        host_before = q["clips"] * (h["plain_ms"] + st["before"]["write_ms"]) / 3.6e6
        host_after = q["clips"] * h["host_ms"] / 3.6e6
        writer = q["clips"] * st["after"]["write_ms"] / 3.6e6
        floor = q["tflop"] / peak / 3600   # TFLOP / (TFLOP/s)
        print(f"  {exp:<11} {q['clips']:,} clips, {q['cells']} cells + {q['paired']} paired differences; "
              f"GPU floor {floor:.2f} h")
        print(f"    statistics: straightforward loop {stats_loop:.2f} h -> project {stats_after * 60:.1f} min "
              f"(FVD and KVD per cell; the loop's figure is FVD alone)")
        print(f"    host work on the critical path: plain {host_before:.2f} h -> device path {host_after * 60:.1f} min "
              f"(store writes {writer * 60:.1f} min on the writer thread, beside generation)")

    failed = []
    if speedup < 2.0 or s["agree"] > 1e-6 or s["agree_paired"] > 1e-6:
        failed.append(f"bootstrap {speedup:.2f}x the loop (target >= 2x), agreement {s['agree']:.1e} (<= 1e-6)")
    for exp, limit in STATS_TARGET_MIN.items():
        if stats_minutes[exp] > limit:
            failed.append(f"{exp} statistics {stats_minutes[exp]:.1f} min (target <= {limit})")
    if h["host_ms"] > HOST_TARGET_MS or not h["identical"]:
        failed.append(f"host work {h['host_ms']:.1f} ms per clip (target <= {HOST_TARGET_MS:.0f}), "
                      f"identical frames {h['identical']}")
    if st["after"]["max"] > 1 or st["after"]["generate"] > 1 or st["after"]["score"] > 1:
        failed.append(f"store reads: {st['after']['max']} opens of one clip in a stage (target 1)")
    print("\n" + ("all targets met" if not failed else "MISSED: " + "; ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
