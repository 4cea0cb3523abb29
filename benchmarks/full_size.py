"""One clip at full size, for real, on the CPU: its peak memory and time per stage.

AnimateLCM at 16x512x512 with the full-size architecture and random weights
(``weights=random``), NFE 1, through the VAE, then the real Kinetics-400 I3D (the FVD
metric as smoke runs build it) and CLIP ViT-H/14 (open_clip's full-size architecture,
random weights: nothing is downloaded). Prints the resident-set peak after each stage.
A watchdog stops the script (exit 3) before the machine runs out of memory, saying how
far it got, so a shared machine's other processes are never the ones killed.

    python benchmarks/full_size.py                       # about 20-40 minutes on 2 cores
    python benchmarks/full_size.py --decode-chunk-size 2 # the VAE decodes 2 frames at a time
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time

import numpy as np
import open_clip
import torch

import models
from bench.plan.config import compose
from bench.run.pipeline import build_metrics
from metrics.clipsim import CLIPSimMetric

PROMPT = "A person is playing the cello in a concert hall"
GiB = 2 ** 30


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB   # ru_maxrss is in KiB on Linux


def available_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / GiB
    return float("inf")


def watchdog(floor_gib: float, stage: list) -> None:
    while True:
        if available_gib() < floor_gib:
            print(f"\nSTOPPED in stage '{stage[0]}': the machine had under {floor_gib:.1f} GiB available "
                  f"(this process's peak so far {peak_gib():.2f} GiB)", flush=True)
            os._exit(3)
        time.sleep(0.2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decode-chunk-size", type=int, default=16, help="frames per VAE decode call (the default's 16)")
    ap.add_argument("--floor-gib", type=float, default=1.5, help="stop when the machine has less available")
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/lcmbench"))
    args = ap.parse_args(argv)
    stage = ["start"]
    threading.Thread(target=watchdog, args=(args.floor_gib, stage), daemon=True).start()
    torch.set_grad_enabled(False)
    rows = []

    def mark(name: str, start: float) -> None:
        rows.append((name, time.perf_counter() - start, peak_gib()))
        print(f"  {name:<44} {rows[-1][1]:8.1f} s   peak RSS {rows[-1][2]:6.2f} GiB", flush=True)

    print(f"full size on the CPU: {os.cpu_count()} cores, {available_gib():.1f} GiB available, "
          f"torch {torch.__version__}, float32, decode_chunk_size {args.decode_chunk_size}")
    stage[0] = "build AnimateLCM (random weights)"
    t = time.perf_counter()
    model = models.build("animatelcm", weights="random", device="cpu", dtype="float32", cache_dir=args.cache_dir)
    mark(stage[0], t)
    stage[0] = "generate 16x512x512, NFE 1 (text, UNet, VAE)"
    t = time.perf_counter()
    frames = model.generate([PROMPT], [0], 1, num_frames=16, height=512, width=512,
                            decode_chunk_size=args.decode_chunk_size)
    mark(stage[0], t)
    timing = model.last_timing
    print(f"    text {timing['text_encode_s']:.1f} s, denoise {timing['denoise_s']:.1f} s, "
          f"VAE + frames to uint8 {timing['decode_s']:.1f} s; frames {frames.shape} {frames.dtype}")
    del model

    stage[0] = "FVD features: real Kinetics-400 I3D"
    t = time.perf_counter()
    cfg = compose(["experiment=smoke", "metrics.clipsim.enabled=false", f"cache_dir={args.cache_dir}"])
    (fvd,) = build_metrics(cfg, "cpu")
    i3d = fvd.extract(frames, [PROMPT])
    mark(stage[0], t)
    print(f"    {i3d.shape[1]} logits, finite {bool(np.isfinite(i3d).all())}")
    del fvd

    stage[0] = "CLIPSIM features: ViT-H/14 (random weights)"
    t = time.perf_counter()
    clip_model = open_clip.create_model("ViT-H-14", pretrained=None)   # the full architecture, nothing downloaded
    params = sum(p.numel() for p in clip_model.parameters())
    clip = CLIPSimMetric(clip_model, open_clip.get_tokenizer("ViT-H-14"), device="cpu", weights="random",
                         model="ViT-H-14", pretrained=None, batch_size=16)
    sims = clip.extract(frames, [PROMPT])
    mark(stage[0], t)
    print(f"    {params / 1e6:.0f} M parameters; per-frame similarities {np.asarray(sims).shape}")
    total = sum(r[1] for r in rows)
    print(f"\none clip end to end: {total:.0f} s, peak resident memory {max(r[2] for r in rows):.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
