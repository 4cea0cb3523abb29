"""The protocol: which clips to make.

A clip is (method, NFE, class, video index). Its noise seed depends only on the
protocol seed, the class and the video index, so every method and every NFE is
compared on the same initial noise, and its key names it the same way whatever the
number of GPUs or the batch size.

A pool (``protocol.videos_per_prompt_by_dimension``, e.g. ``{temporal_flickering: 25}``)
gives the prompts a dimension reads more videos: indices videos_per_prompt.. are added
after the usual ones, so the keys and seeds of indices 0..videos_per_prompt-1 are those of
a run without the pool (a store made before resumes). A prompt read by several dimensions
is made once, with its largest count; the other dimensions read its first indices.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional, Sequence

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


def videos_per_class(prompts: PromptSet, videos_per_prompt: int,
                     by_dimension: Optional[Mapping[str, int]] = None) -> List[int]:
    """Videos of each class of ``prompts``, in its order: ``videos_per_prompt``, or the
    largest pool of the dimensions that read the prompt when that is more."""
    pools = {str(d): int(n) for d, n in (by_dimension or {}).items()}
    out = []
    for name in prompts.classes:
        counts = [pools[d] for d in prompts.dimensions.get(name, ()) if d in pools]
        out.append(max([int(videos_per_prompt)] + counts))
    return out


def clip_count(prompts: PromptSet, videos_per_prompt: int, by_dimension: Optional[Mapping[str, int]] = None) -> int:
    """Clips per (method, NFE): the (prompt, seed) pairs of the protocol."""
    return sum(videos_per_class(prompts, videos_per_prompt, by_dimension))


def pooled_classes(prompts: PromptSet, videos_per_prompt: int,
                   by_dimension: Optional[Mapping[str, int]] = None) -> List[str]:
    """The classes that get more than ``videos_per_prompt`` videos from a pool."""
    counts = videos_per_class(prompts, videos_per_prompt, by_dimension)
    return [c for c, n in zip(prompts.classes, counts) if n > int(videos_per_prompt)]


def expand(methods: Sequence[str], nfes: Iterable[int], prompts: PromptSet, videos_per_prompt: int,
           base_seed: int, samples_per_cell: int = 1, keep_all_frames: bool = False,
           videos_by_dimension: Optional[Mapping[str, int]] = None) -> List[ClipSpec]:
    """Every clip of the protocol. ``videos_by_dimension``: the pools ({dimension: videos
    per prompt}) for the prompts those dimensions read (``prompts.dimensions``)."""
    if videos_per_prompt < 1:
        raise InputError(f"videos_per_prompt must be >= 1, got {videos_per_prompt}.")
    small = {d: n for d, n in (videos_by_dimension or {}).items() if int(n) < videos_per_prompt}
    if small:
        raise InputError(f"protocol.videos_per_prompt_by_dimension={dict(small)} is below protocol.videos_per_prompt="
                         f"{videos_per_prompt}: a pool adds videos to a dimension's prompts; use "
                         f"{videos_per_prompt} or more.")
    nfes = list(nfes)
    bad = [n for n in nfes if int(n) < 1]
    if bad or not nfes:
        raise InputError(f"protocol.nfe must be a non-empty list of positive step counts, got {nfes}.")
    counts = videos_per_class(prompts, videos_per_prompt, videos_by_dimension)
    specs = []
    for method in methods:
        for nfe in nfes:
            for c, (name, caption) in enumerate(zip(prompts.classes, prompts.captions)):
                for v in range(counts[c]):
                    keep = keep_all_frames or (c == 0 and v < samples_per_cell)
                    specs.append(ClipSpec(method, int(nfe), name, caption, v, clip_seed(base_seed, name, v), keep))
    return specs
