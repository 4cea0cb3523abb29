"""Harness overhead: VideoModel.generate() against calling its diffusers pipeline directly.

Same prompt, steps, guidance, seed (a CPU generator, as generate() uses) and geometry;
the direct call returns float frames (output_type="np"), generate() returns uint8.
Repeats are interleaved (A B, then B A) so drift and order effects hit both alike.
The target is a ratio within 10% of 1.

    python benchmarks/overhead.py                          # tiny model, CPU
    python benchmarks/overhead.py --method ddim --steps 8  # with CFG
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

import models
from bench.timing.denoising import write_figures
from models.animatediff import to_uint8
from models.device import device_name, resolve_device_dtype

PROMPT = "A person rides a bicycle along a mountain road at sunset, photorealistic"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--method", default="animatelcm")
    ap.add_argument("--weights", default="tiny", choices=("tiny", "random", "pretrained"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=None, help="optional JSON file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device, dtype = resolve_device_dtype(args.device, args.dtype)
    model = models.build(args.method, weights=args.weights, device=device, dtype=dtype, cache_dir=args.cache_dir,
                         seed=args.seed)
    pipe = model.pipeline
    g = model.guidance_scale
    geometry = dict(num_frames=args.frames, height=args.height, width=args.width, decode_chunk_size=16)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def harness():
        return model.generate([PROMPT], [args.seed], args.steps, **geometry)

    @torch.no_grad()
    def direct():
        return pipe(prompt=PROMPT, negative_prompt=model.spec.negative_prompt if g > 1 else None,
                    num_inference_steps=args.steps, guidance_scale=g,
                    generator=torch.Generator("cpu").manual_seed(args.seed), output_type="np", **geometry).frames

    def timed(fn):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        return time.perf_counter() - start, out

    for _ in range(args.warmup):
        harness()
        direct()
    times = {"generate": [], "pipeline": []}
    for r in range(args.repeats):
        order = (("generate", harness), ("pipeline", direct)) if r % 2 == 0 else (("pipeline", direct), ("generate", harness))
        for name, fn in order:
            seconds, out = timed(fn)
            times[name].append(seconds)
            if name == "generate":
                frames_h = out
            else:
                frames_d = to_uint8(out)
    med_h, med_d = statistics.median(times["generate"]), statistics.median(times["pipeline"])
    ratio = med_h / med_d
    ratio_min = min(times["generate"]) / min(times["pipeline"])  # the least disturbed call of each: robust on busy machines
    diff = int(np.abs(frames_h.astype(np.int16) - frames_d.astype(np.int16)).max())
    dev = device_name(device)
    print(f"Harness overhead on {dev} ({dtype}), {args.method} ({args.weights} weights), {args.steps} steps, "
          f"guidance {g:g}, {args.frames}x{args.height}x{args.width}, {args.repeats} interleaved repeats:")
    print(f"  generate()        median {1000 * med_h:9.1f} ms  (min {1000 * min(times['generate']):.1f}, "
          f"max {1000 * max(times['generate']):.1f})")
    print(f"  pipeline(...)     median {1000 * med_d:9.1f} ms  (min {1000 * min(times['pipeline']):.1f}, "
          f"max {1000 * max(times['pipeline']):.1f})")
    print(f"  ratio generate/pipeline = {ratio:.3f} (target within 10%: {'met' if abs(ratio - 1) <= 0.10 else 'NOT met'}); "
          f"max |frame difference| = {diff}/255")
    print(f"  ratio of the fastest calls = {ratio_min:.3f}")
    if args.out:
        write_figures({"kind": "lcmbench-overhead", "device": dev, "dtype": dtype, "args": vars(args),
                       "seconds": times, "ratio": ratio, "ratio_min": ratio_min, "max_frame_diff": diff},
                      "overhead", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
