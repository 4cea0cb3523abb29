"""Generation throughput for the Table 1 mix on the device this runs on.

Table 1 makes the same number of clips in each of its 16 settings (4 methods x NFE
1/2/4/8; the teachers with CFG 7.5), so the mix's time per clip is the mean over
the settings. Prints clips per hour with and without the VAE decode, and the hours
all of Table 1 (2424 prompts x seeds x 16 settings = 38,784 clips) would take here.
Metric features (I3D, CLIP) are not included.

    python benchmarks/throughput.py --weights tiny --device cpu --frames 8 --height 64 --width 64
    python benchmarks/throughput.py --weights random --device cuda --dtype bfloat16 --batch-size 4 --fast
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from bench.timing.denoising import (ALL_METHODS, TimingSettings, environment, parse_fast, write_figures,
                                    time_methods)

TABLE1_CLIPS = 101 * 24 * 16


def mix_figures(rows, clips_total: int = TABLE1_CLIPS):
    """Per-setting and mix figures from timing rows (medians per clip, milliseconds)."""
    settings = []
    for r in rows:
        total = r["text_encode_ms"] + r["denoise_ms_median"] + r["vae_ms"]
        settings.append({"method": r["method"], "nfe": r["nfe"], "guidance_scale": r["guidance_scale"],
                         "text_ms": r["text_encode_ms"], "denoise_ms": r["denoise_ms_median"], "vae_ms": r["vae_ms"],
                         "total_ms": total, "clips_per_hour": 3.6e6 / total})
    n = len(settings)
    mean_total = sum(s["total_ms"] for s in settings) / n
    mean_denoise = sum(s["denoise_ms"] for s in settings) / n
    mean_vae = sum(s["vae_ms"] for s in settings) / n
    mean_text = sum(s["text_ms"] for s in settings) / n
    return settings, {
        "settings": n, "mean_ms_per_clip": mean_total, "mean_denoise_ms": mean_denoise, "mean_vae_ms": mean_vae,
        "mean_text_ms": mean_text, "clips_per_hour": 3.6e6 / mean_total,
        "clips_per_hour_denoise_only": 3.6e6 / mean_denoise, "vae_share": mean_vae / mean_total,
        "table1_clips": clips_total, "table1_hours": clips_total * mean_total / 3.6e6,
        "table1_hours_denoise_only": clips_total * mean_denoise / 3.6e6,
        "table1_hours_vae": clips_total * mean_vae / 3.6e6,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--weights", default="random", choices=("random", "tiny", "pretrained"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--methods", nargs="+", default=list(ALL_METHODS))
    ap.add_argument("--nfe", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--decode-chunk-size", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clips", type=int, default=TABLE1_CLIPS, help="clips to project the hours for")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fast", action="store_true", help="enable the fast path (models/fast.py)")
    ap.add_argument("--fast-opt", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=None, help="JSON file (default: $OUT/throughput.json or results/timing/)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    settings = TimingSettings(
        methods={m: None for m in args.methods}, nfe=args.nfe, teacher=None, weights=args.weights,
        device=args.device, dtype=args.dtype, num_frames=args.frames, height=args.height, width=args.width,
        batch_size=args.batch_size, decode_chunk_size=args.decode_chunk_size, warmup=args.warmup,
        repeats=args.repeats, seed=args.seed, cache_dir=args.cache_dir, fast=parse_fast(args.fast, args.fast_opt))
    started = time.time()
    rows = time_methods(settings, progress=lambda m: print(m, flush=True))
    per_setting, mix = mix_figures(rows, args.clips)
    device, dtype = rows[0]["device"], rows[0]["dtype"]

    print(f"\nThroughput on {device} ({dtype}), {args.frames}x{args.height}x{args.width}, weights={args.weights}, "
          f"batch {args.batch_size}, fast path {'on' if args.fast else 'off'} (median ms per clip):")
    print(f"{'method':<13} {'steps':>5} {'cfg':>5} {'text':>9} {'denoise':>10} {'vae':>9} {'total':>10} {'clips/h':>10}")
    for s in per_setting:
        cfg = "%g" % s["guidance_scale"] if s["guidance_scale"] > 1 else "off"
        print(f"{s['method']:<13} {s['nfe']:>5} {cfg:>5} {s['text_ms']:>9.1f} {s['denoise_ms']:>10.1f} "
              f"{s['vae_ms']:>9.1f} {s['total_ms']:>10.1f} {s['clips_per_hour']:>10.0f}")
    print(f"Table 1 mix ({mix['settings']} settings, equal clips each) on {device}: "
          f"{mix['clips_per_hour']:.0f} clips/hour with VAE decode, {mix['clips_per_hour_denoise_only']:.0f} "
          f"clips/hour denoising only; VAE decode {mix['mean_vae_ms']:.1f} ms/clip = "
          f"{100 * mix['vae_share']:.0f}% of the time")
    print(f"Projected for {mix['table1_clips']:,} clips: {mix['table1_hours']:.2f} h with VAE "
          f"({mix['table1_hours_denoise_only']:.2f} h denoising, {mix['table1_hours_vae']:.2f} h VAE decode), "
          f"metric features not included")

    out = write_figures({"kind": "lcmbench-throughput", "device": device, "dtype": dtype, "args": vars(args),
                         "environment": environment("cuda" if rows[0]["extra"]["device_type"] == "cuda" else "cpu"),
                         "mix": mix, "settings": per_setting, "timing": rows, "wall_s": time.time() - started},
                        "throughput", args.out)
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
