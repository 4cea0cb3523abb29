"""The runner's background writer: clips per second with metric features and store
writes inline (the plain path) against on a writer thread (the fast path), in one run.

Both arms run bench.generate.runner.generate_all on the same model, metrics and clip list, each
into a fresh store; arms alternate (A B, then B A) so drift hits both alike. Prints
clips/s of each arm, their ratio, how long generation waited for the writer, and
checks that both arms stored identical features.

    python benchmarks/writer_overlap.py                               # tiny models, CPU
    python benchmarks/writer_overlap.py --weights random --device cuda --dtype bfloat16 --height 512 --width 512
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import models
from bench.generate.runner import GenerationSettings, generate_all
from bench.generate.store import ClipStore
from bench.plan.config import compose
from bench.plan.prompts import classname_captions
from bench.run.pipeline import build_metrics, make_plans
from bench.timing.denoising import write_figures
from models.device import device_name, resolve_device_dtype


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--method", default="animatelcm")
    ap.add_argument("--weights", default="tiny", choices=("tiny", "random"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--nfe", type=int, default=4)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="pairs of (inline, writer) runs")
    ap.add_argument("--writer-threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)

    device, dtype = resolve_device_dtype(args.device, args.dtype)
    # FVD with a random I3D (no real reference needed to extract features) and tiny or real CLIP
    cfg = compose([f"weights={args.weights}", f"protocol.num_classes={args.classes}",
                   f"protocol.videos_per_prompt={args.videos}", f"protocol.nfe=[{args.nfe}]",
                   f"protocol.num_frames={args.frames}", f"protocol.height={args.height}",
                   f"protocol.width={args.width}", "metrics.vbench.enabled=false"])
    plans = [p for p in make_plans(cfg, classname_captions().subset(num_classes=args.classes), dtype)
             if p.name == args.method]
    metrics = build_metrics(cfg, device)
    model = models.build(args.method, weights=args.weights, device=device, dtype=dtype, seed=0)
    n_clips = sum(len(p.clips) for p in plans)

    def arm(threads: int, root: Path):
        settings = GenerationSettings(args.frames, args.height, args.width, args.batch_size, progress=False,
                                      writer_threads=threads, max_pending=2)
        store = ClipStore(root)
        start = time.perf_counter()
        summary = generate_all(plans, store, metrics, settings, lambda p: model)
        seconds = time.perf_counter() - start
        assert summary.made == n_clips
        return seconds, summary.writer_wait_s, {k: store.read(k, with_frames=False).features for k in store.keys()}

    generate_all(plans[:1], ClipStore(Path(tempfile.mkdtemp())), metrics,   # warm-up
                 GenerationSettings(args.frames, args.height, args.width, args.batch_size, progress=False),
                 lambda p: model)
    times = {0: [], args.writer_threads: []}
    waits, features = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = (0, args.writer_threads) if r % 2 == 0 else (args.writer_threads, 0)
            for threads in order:
                seconds, wait, feats = arm(threads, Path(tmp) / f"{r}-{threads}")
                times[threads].append(seconds)
                if threads:
                    waits.append(wait)
                features.setdefault(threads, feats)
    worst = max(float(np.max(np.abs(features[0][k][fk] - features[args.writer_threads][k][fk])))
                for k in features[0] for fk in features[0][k])
    inline, threaded = statistics.median(times[0]), statistics.median(times[args.writer_threads])
    figures = {"device": device_name(device), "dtype": dtype, "weights": args.weights, "method": args.method,
               "clips_per_arm": n_clips, "geometry": f"{args.frames}x{args.height}x{args.width}",
               "batch_size": args.batch_size, "metrics": [m.name for m in metrics], "repeats": args.repeats,
               "inline_clips_per_s": n_clips / inline, "writer_clips_per_s": n_clips / threaded,
               "speedup": inline / threaded, "writer_wait_s_median": statistics.median(waits),
               "max_feature_difference": worst}
    label = "TINY RANDOM WEIGHTS" if args.weights == "tiny" else "RANDOM FULL-SIZE WEIGHTS"
    print(f"writer overlap ({label}; {figures['device']}, {dtype}, {args.method} NFE {args.nfe}, "
          f"{n_clips} clips of {figures['geometry']}, batch {args.batch_size}, metrics {figures['metrics']})")
    writer = f"writer ({args.writer_threads} thread{'s' if args.writer_threads > 1 else ''})"
    print(f"  {'inline (plain path)':<22} {figures['inline_clips_per_s']:.3f} clips/s")
    print(f"  {writer:<22} {figures['writer_clips_per_s']:.3f} clips/s   "
          f"(generation waited {figures['writer_wait_s_median']:.2f} s for the writer)")
    print(f"  ratio   {figures['speedup']:.3f}x   max feature difference {worst:.3g}")
    if args.out:
        write_figures(figures, "writer_overlap", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
