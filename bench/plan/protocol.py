"""The protocol: which clips to make.

A clip is (method, NFE, class, video index). Its noise seed depends only on the
protocol seed, the class and the video index, so every method and every NFE is
compared on the same initial noise, and its key names it the same way whatever the
number of GPUs or the batch size.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, List, Sequence

from bench.plan.prompts import PromptSet
from common.errors import InputError


@dataclass(frozen=True)
class ClipSpec:
    method: str
    nfe: int
    class_name: str
    prompt: str
    video_index: int
    seed: int
    keep_frames: bool = False   # frames kept in the store (samples for plots/report)

    @property
    def key(self) -> str:
        return clip_key(self.method, self.nfe, self.class_name, self.video_index)

    @property
    def sample_key(self) -> str:
        """Identifies the (prompt, seed) pair across methods and NFEs (for paired statistics)."""
        return f"{self.class_name}/{self.video_index:03d}"


def clip_key(method: str, nfe: int, class_name: str, video_index: int) -> str:
    return f"{method}/nfe{nfe}/{class_name}/{video_index:03d}"


def clip_seed(base_seed: int, class_name: str, video_index: int) -> int:
    digest = hashlib.sha256(f"{base_seed}|{class_name}|{video_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def expand(methods: Sequence[str], nfes: Iterable[int], prompts: PromptSet, videos_per_prompt: int,
           base_seed: int, samples_per_cell: int = 1, keep_all_frames: bool = False) -> List[ClipSpec]:
    if videos_per_prompt < 1:
        raise InputError(f"videos_per_prompt must be >= 1, got {videos_per_prompt}.")
    nfes = list(nfes)
    bad = [n for n in nfes if int(n) < 1]
    if bad or not nfes:
        raise InputError(f"protocol.nfe must be a non-empty list of positive step counts, got {nfes}.")
    specs = []
    for method in methods:
        for nfe in nfes:
            for c, (name, caption) in enumerate(zip(prompts.classes, prompts.captions)):
                for v in range(videos_per_prompt):
                    keep = keep_all_frames or (c == 0 and v < samples_per_cell)
                    specs.append(ClipSpec(method, int(nfe), name, caption, v, clip_seed(base_seed, name, v), keep))
    return specs
