"""Fast path against a plain diffusers AnimateDiffPipeline call, same dtype, one run.

Plain: ``pipeline(prompt, ..., output_type="np")``, one clip per call, diffusers'
defaults. Fast: VideoModel.generate() with the fast path (models/fast.py) and
``--batch-size`` clips per call. Both end to end (text encoding, denoising, VAE
decode, frames on the host); repeats interleaved after warm-up (compilation happens
there). Also prints the denoising-only ratio and the largest frame difference
between the two for the same seed. Target on a GPU: fast >= 1.5x plain clips/s.

    python benchmarks/fast_path.py --weights tiny --device cpu --frames 8 --height 64 --width 64
    python benchmarks/fast_path.py --weights random --device cuda --dtype bfloat16 --batch-size 4 \
        --fast-opt compile_unet=true --fast-opt compile_vae=true
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

from bench.timing.denoising import build_model, environment, parse_fast, write_figures
from models.animatediff import to_uint8
from models.device import device_name, resolve_device_dtype

PROMPT = "A person rides a bicycle along a mountain road at sunset, photorealistic"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--method", default="animatelcm")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--weights", default="random", choices=("random", "tiny", "pretrained"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=4, help="clips per fast-path call")
    ap.add_argument("--decode-chunk-size", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--fast-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="fast path option (models/fast.py FastPath), repeatable; the path is always enabled here")
    ap.add_argument("--out", default=None, help="JSON file (default: $OUT/fast_path.json or results/timing/)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = resolve_device_dtype(args.device, args.dtype)
    fast_opts = parse_fast(True, args.fast_opt)
    common = dict(weights=args.weights, device=device, dtype=dtype, cache_dir=args.cache_dir, seed=args.seed)
    plain = build_model(args.method, **common)
    fast = build_model(args.method, fast=fast_opts, **common)
    g = plain.guidance_scale
    B = args.batch_size
    geometry = dict(num_frames=args.frames, height=args.height, width=args.width)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    @torch.no_grad()
    def run_plain(seed, output_type="np"):
        return plain.pipeline(prompt=PROMPT, negative_prompt=plain.spec.negative_prompt if g > 1 else None,
                              num_inference_steps=args.steps, guidance_scale=g,
                              generator=torch.Generator("cpu").manual_seed(seed), output_type=output_type,
                              decode_chunk_size=args.decode_chunk_size, **geometry).frames

    def run_fast(seed):
        return fast.generate([PROMPT] * B, [seed + i for i in range(B)], args.steps,
                             decode_chunk_size=args.decode_chunk_size, **geometry)

    def timed(fn, *a, **kw):
        sync()
        start = time.perf_counter()
        out = fn(*a, **kw)
        sync()
        return time.perf_counter() - start, out

    t0 = time.perf_counter()
    for w in range(args.warmup):
        run_plain(args.seed)
        run_plain(args.seed, "latent")
        run_fast(args.seed)
    warm_s = time.perf_counter() - t0
    plain_s, plain_latent_s, fast_s, fast_denoise_s = [], [], [], []
    for r in range(args.repeats):
        jobs = [("plain", run_plain), ("fast", run_fast), ("latent", lambda s: run_plain(s, "latent"))]
        if r % 2:
            jobs.reverse()
        for name, fn in jobs:
            seconds, out = timed(fn, args.seed)
            if name == "plain":
                plain_s.append(seconds)
                plain_frames = to_uint8(out)
            elif name == "latent":
                plain_latent_s.append(seconds)
            else:
                fast_s.append(seconds / B)
                fast_denoise_s.append(fast.last_timing["denoise_s"] / B)
                fast_frames = out
    p, f = statistics.median(plain_s), statistics.median(fast_s)
    pl, fd = statistics.median(plain_latent_s), statistics.median(fast_denoise_s)
    diff = int(np.abs(plain_frames[0].astype(np.int16) - fast_frames[0].astype(np.int16)).max())
    dev = device_name(device)
    ratio = p / f
    print(f"\nFast path vs plain AnimateDiffPipeline on {dev} ({dtype}), {args.method} ({args.weights} weights), "
          f"{args.steps} steps, guidance {g:g}, {args.frames}x{args.height}x{args.width}, {args.repeats} repeats:")
    print(f"  fast path applied: {json.dumps(fast.fast)}; {B} clips per call; warm-up {warm_s:.1f} s")
    print(f"  plain pipeline(): {1000 * p:10.1f} ms/clip  {3600 / p:9.1f} clips/h  (end to end, one clip per call)")
    print(f"  fast generate():  {1000 * f:10.1f} ms/clip  {3600 / f:9.1f} clips/h  (end to end, {B} per call)")
    print(f"  throughput ratio fast/plain = {ratio:.2f}x (GPU target >= 1.5x: {'met' if ratio >= 1.5 else 'not met'})")
    print(f"  denoising only: plain {1000 * pl:.1f} ms/clip (pipeline to latents, includes text encoding), "
          f"fast {1000 * fd:.1f} ms/clip, ratio {pl / fd:.2f}x")
    print(f"  max |frame difference| fast vs plain, same seed: {diff}/255")
    if fast.fast.get("cudnn_benchmark"):
        print("  note: torch.backends.cudnn.benchmark is process-wide, so the plain path used autotuned "
              "convolutions too (the ratio is conservative)")
    out_path = write_figures({"kind": "lcmbench-fast-path", "device": dev, "dtype": dtype, "args": vars(args),
                              "environment": environment(device), "fast": fast.fast,
                              "plain_s_per_clip": plain_s, "fast_s_per_clip": fast_s,
                              "plain_latent_s": plain_latent_s, "fast_denoise_s_per_clip": fast_denoise_s,
                              "ratio": ratio, "denoise_ratio": pl / fd, "max_frame_diff": diff,
                              "warmup_s": warm_s}, "fast_path", args.out)
    print(f"Wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
