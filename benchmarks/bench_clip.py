"""CLIP ViT-H/14 image-tower throughput (frames/s) for CLIPSIM on 224x224 frames.

Speed does not depend on weight values, so the image tower is built with random
weights at open_clip ViT-H-14's architecture (width 1280, 32 layers, 16 heads, patch 14,
MLP 5120, 224 px, 1024-d projection) through transformers' CLIPVisionModelWithProjection,
which every GPU machine has (open_clip needs ftfy and regex, which they may lack).
A CLIPSIM clip is 16 frames. Examples:

    python benchmarks/bench_clip.py --device cpu --frames 4 --tiny
    python benchmarks/bench_clip.py --device cuda --frames 512 --batch-size 64 --dtype fp32 bf16 fp16
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from models.device import device_name

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
VIT_H_14 = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu")
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            image_size=224, patch_size=14, projection_dim=32, hidden_act="gelu")


def tflop_per_frame(cfg: dict) -> float:
    """Matmul FLOPs of one 224x224 frame through the tower (2 per multiply-add)."""
    tokens = (cfg["image_size"] // cfg["patch_size"]) ** 2 + 1
    d, m, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    per_layer = 2 * tokens * (4 * d * d + 2 * d * m) + 2 * 2 * tokens * tokens * d
    patch = 2 * (tokens - 1) * 3 * cfg["patch_size"] ** 2 * d
    return (layers * per_layer + patch + 2 * d * cfg["projection_dim"]) / 1e12


def bench(device: torch.device, dtype: torch.dtype, cfg: dict, frames: int, batch_size: int, warmup: int) -> float:
    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg)).to(device=device, dtype=dtype).eval()
    x = torch.rand(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
    with torch.inference_mode():
        for _ in range(warmup):
            model(pixel_values=x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        done = 0
        start = time.perf_counter()
        while done < frames:
            n = min(batch_size, frames - done)
            out = model(pixel_values=x[:n]).image_embeds
            done += n
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
    if not torch.isfinite(out.float()).all():
        raise RuntimeError(f"non-finite CLIP embeddings in {dtype}")
    return frames / elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--frames", type=int, default=256, help="frames timed per dtype")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--dtype", nargs="+", default=["fp32"], choices=sorted(DTYPES))
    ap.add_argument("--tiny", action="store_true", help="a tiny tower (proves the script on a CPU)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cfg = TINY if args.tiny else VIT_H_14
    name = "tiny CLIP tower" if args.tiny else "CLIP ViT-H/14 image tower"
    per_frame = tflop_per_frame(cfg)
    for key in args.dtype:
        fps = bench(device, DTYPES[key], cfg, args.frames, args.batch_size, args.warmup)
        print(f"CLIP throughput on {device_name(str(device))} ({name}, {key}, batch {args.batch_size}): "
              f"{fps:.1f} frames/s = {fps / 16:.2f} clips/s of 16 frames; {fps * per_frame:.1f} TFLOP/s "
              f"({per_frame:.3f} TFLOP per frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
