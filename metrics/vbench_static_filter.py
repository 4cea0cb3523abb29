"""VBench's static filter: temporal_flickering is scored only on videos that do not move.

VBench's protocol samples 25 videos per temporal_flickering prompt (its prompts/README.md)
and keeps, per prompt, the first 5 that the script ``static_filter.py`` of the VBench
repository (not part of the installed ``vbench`` package) finds static with RAFT optical
flow. This module is that selection, written for the harness from the script's facts:

* every decoded frame at its own size (no resizing, no frame skipping), read with OpenCV
  as RGB 0..255, as the script reads them;
* RAFT from vbench's third-party copy (the full model, the ``raft-things.pth`` weights that
  dynamic_degree reads, 20 refinement iterations, test mode) on each consecutive pair of
  frames and on (first, last) and (last, first), frames padded to a multiple of 8 by RAFT's
  ``InputPadder``;
* per pair, the mean of the largest 2% of per-pixel flow magnitudes of the padded frame;
* thresholds that scale with frame size and length (the constants below);
* a prompt's videos are examined in sorted file-name order until 5 are static.

Two guards the script lacks, because without them its answer is silently wrong: RAFT's
four-level correlation pyramid needs padded frames of at least 128 pixels a side (below
that its coarsest level is one pixel wide and the flow is NaN, which the script's ``>``
tests read as "static"), so smaller frames raise :class:`FramesTooSmall`; and a non-finite
flow measure raises :class:`common.errors.UnusableFile` instead of counting as static.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from common.errors import InputError, MissingInput, UnusableFile

# The values of VBench's static_filter.py (class StaticFilter):
TOP_FRACTION = 0.02                # get_score: a pair's measure is the mean of its largest 2% flow magnitudes
THRESHOLD_PX_PER_256 = 3.0         # set_params: a pair moves above 3.0 * min(H, W) / 256 pixels
PAIRS_ALLOWED_PER_16_FRAMES = 2    # set_params: round(2 * frames / 16) consecutive pairs may move
FIRST_LAST_FACTOR = 2              # check_static: (first, last) may reach threshold * allowed pairs * 2
RAFT_ITERATIONS = 20               # infer: model(image1, image2, iters=20, test_mode=True)
STATIC_PER_PROMPT = 5              # static_filter: examination of a prompt stops at 5 static videos
# VBench's prompts/README.md: 25 videos per temporal_flickering prompt, so that 5 static ones remain.
SAMPLED_PER_PROMPT = 25
# RAFT's correlation pyramid: padded side / 8, halved three times, must stay >= 2 pixels.
MIN_PADDED_SIDE = 128

Flow = Callable[[np.ndarray, np.ndarray], np.ndarray]   # two HxWx3 uint8 frames -> (2, H', W') flow


class FramesTooSmall(InputError):
    """The frames are too small for RAFT, so the static filter cannot run on them."""


# --------------------------------------------------------------------------- the decision

def thresholds(height: int, width: int, n_frames: int) -> Tuple[float, int]:
    """(pixel threshold, consecutive pairs allowed above it) for a video, as the script sets them."""
    scale = min(height, width)
    return THRESHOLD_PX_PER_256 * (scale / 256.0), round(PAIRS_ALLOWED_PER_16_FRAMES * (n_frames / 16.0))


def pairs(n_frames: int) -> List[Tuple[int, int]]:
    """Frame index pairs RAFT is run on: consecutive ones, then (first, last) and (last, first)."""
    return [(i, i + 1) for i in range(n_frames - 1)] + [(0, n_frames - 1), (n_frames - 1, 0)]


def flow_measure(flow: np.ndarray) -> float:
    """Mean of the largest TOP_FRACTION of per-pixel magnitudes of a (2, H, W) flow field."""
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise InputError(f"static filter: a flow field must be (2, H, W), got shape {flow.shape}.")
    magnitude = np.sqrt(np.square(flow[0]) + np.square(flow[1])).ravel()
    cut = int(magnitude.size * TOP_FRACTION)
    return float(np.mean(np.sort(magnitude)[::-1][:cut]))


def is_static(scores: Sequence[float], threshold: float, allowed: int) -> bool:
    """The script's check_static on the measures of :func:`pairs` (the last two are first/last)."""
    consecutive, first_last = scores[:-2], scores[-2:]
    if sum(s > threshold for s in consecutive) > allowed:
        return False
    return not any(s > threshold * allowed * FIRST_LAST_FACTOR for s in first_last)


def raft_supports(height: int, width: int) -> bool:
    """Whether RAFT gives a finite flow for frames of this size (see MIN_PADDED_SIDE)."""
    return all(math.ceil(side / 8) * 8 >= MIN_PADDED_SIDE for side in (height, width))


# --------------------------------------------------------------------------- frames and RAFT

def read_frames(path: os.PathLike) -> List[np.ndarray]:
    """Every frame of a video as HxWx3 uint8 RGB, decoded with OpenCV like the script."""
    if not Path(path).is_file():
        raise MissingInput(f"static filter: video '{path}' does not exist.")
    import cv2  # optional (temporal_flickering's own dependency), only when the filter runs

    frames: List[np.ndarray] = []
    video = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = video.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        video.release()
    if not frames:
        raise InputError(f"static filter: OpenCV decoded no frame of '{path}'; re-export the video as mp4.")
    return frames


def frame_size(path: os.PathLike) -> Tuple[int, int]:
    """(height, width) of a video's frames."""
    import cv2  # as in read_frames

    video = cv2.VideoCapture(str(path))
    try:
        ok, frame = video.read()
    finally:
        video.release()
    if not ok:
        raise InputError(f"static filter: OpenCV decoded no frame of '{path}'; re-export the video as mp4.")
    return int(frame.shape[0]), int(frame.shape[1])


class RaftFlow:
    """vbench's RAFT with the weights file VBench loads, as a :data:`Flow` function."""

    def __init__(self, weights: os.PathLike, device: str = "cpu"):
        import torch  # heavy: torch and vbench's RAFT, only when the filter runs
        from vbench.third_party.RAFT.core.raft import RAFT
        from vbench.third_party.RAFT.core.utils_core.utils import InputPadder

        self._torch, self._padder, self.device = torch, InputPadder, device
        weights = Path(weights)
        if not weights.is_file():
            raise MissingInput(f"static filter: RAFT weights '{weights}' do not exist; put raft-things.pth there.")
        # the script's RAFT arguments (full model, no mixed precision, plain correlation)
        model = RAFT(argparse.Namespace(small=False, mixed_precision=False, alternate_corr=False))
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            # saved from torch.nn.DataParallel, as the script loads it: keys start with 'module.'
            model.load_state_dict({re.sub(r"^module\.", "", k): v for k, v in state.items()})
        except Exception as err:
            raise UnusableFile(f"static filter: cannot load RAFT weights '{weights}' ({type(err).__name__}: "
                               f"{str(err).splitlines()[0][:200]}); replace it with VBench's raft-things.pth.")
        self.model = model.to(device).eval()

    def _tensor(self, frame: np.ndarray):
        return self._torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float()[None].to(self.device)

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        a, b = self._tensor(first), self._tensor(second)
        a, b = self._padder(a.shape).pad(a, b)
        with self._torch.no_grad():
            _, flow_up = self.model(a, b, iters=RAFT_ITERATIONS, test_mode=True)
        return flow_up[0].float().cpu().numpy()


# --------------------------------------------------------------------------- videos and prompts

def video_decision(path: os.PathLike, flow: Flow) -> Dict[str, Any]:
    """The measures of one video's frame pairs and whether it is static."""
    frames = read_frames(path)
    height, width = frames[0].shape[:2]
    if not raft_supports(height, width):
        raise FramesTooSmall(f"static filter: frames of {height}x{width} are too small for RAFT (padded to a "
                             f"multiple of 8 they need {MIN_PADDED_SIDE} pixels a side, else its flow is NaN).")
    threshold, allowed = thresholds(height, width, len(frames))
    scores = [flow_measure(flow(frames[i], frames[j])) for i, j in pairs(len(frames))]
    if not all(math.isfinite(s) for s in scores):
        raise UnusableFile(f"static filter: RAFT gave a non-finite flow for '{Path(path).name}'; the RAFT "
                           f"weights file is corrupt or not raft-things.pth.")
    consecutive = scores[:-2]
    return {"flow_max": max(consecutive, default=0.0), "pairs_above": sum(s > threshold for s in consecutive),
            "flow_first_last": max(scores[-2:]), "threshold": threshold, "pairs_allowed": allowed,
            "first_last_limit": threshold * allowed * FIRST_LAST_FACTOR,
            "static": is_static(scores, threshold, allowed)}


def select_static(videos: Mapping[str, Sequence[os.PathLike]], flow: Flow,
                  per_prompt: int = STATIC_PER_PROMPT) -> Dict[str, Any]:
    """Per prompt, examine its videos in sorted name order and keep the first ``per_prompt`` static ones.

    Returns {"videos": {file name: {"prompt", measures..., "static", "kept"}}, "kept": {prompt: [file names]}};
    videos after the prompt's quota are not examined ("static": None), as in the script.
    """
    record: Dict[str, Dict[str, Any]] = {}
    kept: Dict[str, List[str]] = {}
    for prompt, paths in videos.items():
        kept[prompt] = []
        for path in sorted(map(Path, paths), key=lambda p: p.name):
            if len(kept[prompt]) >= per_prompt:
                record[path.name] = {"prompt": prompt, "static": None, "kept": False}
                continue
            decision = video_decision(path, flow)
            if decision["static"]:
                kept[prompt].append(path.name)
            record[path.name] = {"prompt": prompt, **decision, "kept": bool(decision["static"])}
    return {"videos": record, "kept": kept}


@dataclass
class Selection:
    """The static videos as a folder VBench can read, and the record of the choice."""

    folder: Path
    originals: Dict[str, str] = field(default_factory=dict)   # name in folder -> original file name
    prompts: Dict[str, str] = field(default_factory=dict)     # name in folder -> prompt
    record: Dict[str, Any] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


def select_for_flickering(videos_dir: os.PathLike, prompt_of: Mapping[str, str], target: os.PathLike,
                          weights: os.PathLike, device: str = "cpu", renumber: bool = False,
                          flow: Optional[Flow] = None) -> Selection:
    """Run the static filter on the videos of ``prompt_of`` ({file name: prompt}) in ``videos_dir``
    and link the kept ones into ``target``, a folder this function owns.

    ``renumber`` names the links ``{prompt stem}-{j}{suffix}`` (j from 0, VBench's standard
    naming, as the script's copies are named); otherwise they keep their names. Raises
    :class:`FramesTooSmall` before loading RAFT when the frames cannot be filtered.
    """
    videos_dir, target = Path(videos_dir), Path(target)
    names = sorted(prompt_of)
    if not names:
        raise InputError(f"static filter: no temporal_flickering videos in '{videos_dir}'.")
    height, width = frame_size(videos_dir / names[0])
    if not raft_supports(height, width):
        raise FramesTooSmall(f"frames of {height}x{width} are too small for RAFT's static filter (it needs "
                             f"{MIN_PADDED_SIDE} pixels a side after padding to a multiple of 8; below that "
                             f"its flow is NaN)")
    flow = flow or RaftFlow(weights, device)
    groups: Dict[str, List[Path]] = {}
    for n in names:
        groups.setdefault(prompt_of[n], []).append(videos_dir / n)
    chosen = select_static(groups, flow)

    if target.exists():
        shutil.rmtree(target)   # never score links left by an earlier selection
    target.mkdir(parents=True)
    sel = Selection(folder=target, record={"applied": True, "weights": str(weights),
                                           "per_prompt": STATIC_PER_PROMPT, **chosen})
    for prompt, kept in chosen["kept"].items():
        for j, original in enumerate(kept):
            link = original
            if renumber:
                stem, suffix = Path(original).stem, Path(original).suffix
                link = f"{re.sub(r'-[0-9]+$', '', stem)}-{j}{suffix}"
            os.symlink((videos_dir / original).resolve(), target / link)
            sel.originals[link], sel.prompts[link] = original, prompt
    sel.notes = _shortfall_notes(chosen["kept"], groups)
    return sel


def _shortfall_notes(kept: Mapping[str, List[str]], groups: Mapping[str, List[Path]]) -> List[str]:
    """The script warns for each prompt with fewer than 5 static videos and scores what there is."""
    short = {p: len(k) for p, k in kept.items() if len(k) < STATIC_PER_PROMPT}
    if not short:
        return []
    examples = ", ".join(f"'{p}': {n} of {len(groups[p])}" for p, n in list(short.items())[:3])
    none = sum(1 for n in short.values() if n == 0)
    return [f"temporal_flickering: {len(short)} of {len(kept)} prompts have fewer than {STATIC_PER_PROMPT} static "
            f"videos (static of examined, e.g. {examples})" + (f"; {none} have none and do not count" if none else "")
            + f". VBench's protocol samples {SAMPLED_PER_PROMPT} videos per temporal_flickering prompt so that "
            f"{STATIC_PER_PROMPT} static ones remain; the score averages the static videos there are."]
