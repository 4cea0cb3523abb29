"""Small stand-ins for a video model and a metric, so the runner's bookkeeping (shards,
resume, integrity, NaN flags, out-of-memory retries) is tested in milliseconds."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from bench.generate.runner import GenerationSettings, MethodPlan
from bench.plan.prompts import classname_captions
from bench.plan.protocol import expand
from metrics.base import ClipMetric
from models.specs import ModelSpec, SamplerSpec

SETTINGS = GenerationSettings(num_frames=4, height=8, width=8, batch_size=1, progress=False)


class FakeModel:
    """Frames are a pure function of (seed, steps), like a real seeded generator.
    ``nan_seeds``: clips whose decoded frames are flagged non-finite.
    ``max_batch``: a larger batch raises torch.cuda.OutOfMemoryError."""

    def __init__(self, nan_seeds: Sequence[int] = (), max_batch: Optional[int] = None):
        self.nan_seeds = set(nan_seeds)
        self.max_batch = max_batch
        self.calls: List[int] = []          # batch size of every call, failed ones included
        self.last_timing = {}

    def generate(self, prompts, seeds, num_inference_steps, num_frames=4, height=8, width=8, decode_chunk_size=16):
        self.calls.append(len(prompts))
        if self.max_batch is not None and len(prompts) > self.max_batch:
            import torch

            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (fake) at batch size {len(prompts)}")
        frames = np.stack([np.random.default_rng([int(s), int(num_inference_steps)]).integers(
            0, 256, (num_frames, height, width, 3), dtype=np.uint8) for s in seeds])
        self.last_timing = {"text_encode_s": 0.001, "denoise_s": 0.01 * len(prompts), "decode_s": 0.002,
                            "finite": [int(s) not in self.nan_seeds for s in seeds]}
        return frames


class FakeMetric(ClipMetric):
    """Per-clip features: the mean colour of each frame; score: their overall mean."""
    name = "fvd"
    feature_key = "fake/v1"

    def extract(self, frames, prompts):
        return frames.reshape(frames.shape[0], frames.shape[1], -1, 3).mean(axis=2).astype(np.float64)

    def score(self, features, prompts):
        return {"value": float(np.mean(features)), "n": int(len(features))}


def plans(methods=("animatelcm", "ddim"), nfe=(1, 2), classes=2, videos=3) -> List[MethodPlan]:
    prompts = classname_captions().subset(num_classes=classes)
    specs = expand(list(methods), list(nfe), prompts, videos, base_seed=0)
    out = []
    for name in methods:
        spec = ModelSpec(name=name, sampler=SamplerSpec(kind="lcm" if name.startswith("animatelcm") else "ddim"))
        from models.registry import resolve_spec

        out.append(MethodPlan(name, resolve_spec(spec), [s for s in specs if s.method == name]))
    return out
