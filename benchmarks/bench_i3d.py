"""I3D feature throughput (clips/s) for FVD on 16x224x224 clips.

Speed does not depend on weight values, so a seeded random I3D of the real
architecture is timed (no download). Examples:

    python benchmarks/bench_i3d.py --device cpu --clips 4
    python benchmarks/bench_i3d.py --device cuda --clips 64 --batch-size 16 --dtype fp32 bf16 fp16
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from metrics.i3d import random_i3d
from models.device import device_name

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(device: torch.device, dtype: torch.dtype, clips: int, batch_size: int, frames: int,
          warmup: int, channels_last: bool) -> float:
    model = random_i3d(0).to(device=device, dtype=dtype)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(batch_size, 3, frames, 224, 224, generator=gen) * 2 - 1)
    x = x.to(device=device, dtype=dtype).contiguous(memory_format=fmt)
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync(device)
        done = 0
        start = time.perf_counter()
        while done < clips:
            n = min(batch_size, clips - done)
            out = model(x[:n])
            done += n
        sync(device)
        elapsed = time.perf_counter() - start
    if not torch.isfinite(out.float()).all():
        raise RuntimeError(f"non-finite I3D output in {dtype}; this precision is unusable here.")
    return clips / elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--clips", type=int, default=4, help="clips timed per setting (default 4)")
    ap.add_argument("--batch-size", type=int, default=None, help="clips per forward (default: min(clips, 8))")
    ap.add_argument("--frames", type=int, default=16, help="frames per clip (default 16, at least 9)")
    ap.add_argument("--dtype", nargs="+", default=None, choices=sorted(DTYPES),
                    help="precisions to time (default fp32 on CPU, fp32 bf16 fp16 on GPU)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed forwards first (default 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--no-channels-last", action="store_true", help="time the contiguous layout instead")
    args = ap.parse_args(argv)

    if args.clips < 1 or args.frames < 9:
        ap.error("--clips must be >= 1 and --frames >= 9 (I3D's temporal pooling needs 9 frames)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available on this machine; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    dtypes = args.dtype or (["fp32", "bf16", "fp16"] if device.type == "cuda" else ["fp32"])
    bs = args.batch_size or min(args.clips, 8)

    print(f"I3D throughput | device {args.device}: {device_name(str(device))} | torch {torch.__version__}")
    print(f"clips {args.clips} x {args.frames}x224x224, batch {bs}, "
          f"{'contiguous' if args.no_channels_last else 'channels_last_3d'}")
    for name in dtypes:
        rate = bench(device, DTYPES[name], args.clips, bs, args.frames, args.warmup, not args.no_channels_last)
        print(f"  {name:5s} {rate:8.2f} clips/s  ({1000.0 / rate:8.1f} ms/clip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
