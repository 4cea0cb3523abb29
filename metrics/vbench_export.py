"""VBench's standard prompts and the export of clips under VBench's naming
(``{prompt}-{i}.mp4``, lossless H.264)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

import numpy as np

from common.errors import InputError, MissingInput
from common.files import installed_file
from common.names import closest
from metrics.vbench_protocol import ALL_DIMENSIONS, MAX_FILENAME_BYTES, MODES, STANDARD_VIDEOS_PER_PROMPT
from metrics.vbench_static_filter import SAMPLED_PER_PROMPT
from metrics.video_io import write_mp4

# --------------------------------------------------------------------------- prompts

def full_info_path() -> Path:
    """The VBench_full_info.json bundled with the installed vbench package."""
    return installed_file("vbench", "VBench_full_info.json", "pip install --no-deps vbench==0.1.5 (its own pins, "
                          "transformers==4.33.2 and numpy<2, break diffusers and open_clip)")


def standard_prompts(distinct: bool = False) -> List[Dict[str, Any]]:
    """VBench's standard prompt suite: [{"prompt", "dimensions", "auxiliary_info"}].

    The file has 946 entries; two prompts appear twice (944 distinct), and since
    videos are looked up by prompt, one set of videos serves both. ``distinct=True``
    merges such entries (dimensions united, first-seen order).
    """
    with open(full_info_path(), encoding="utf-8") as f:
        raw = json.load(f)
    out: List[Dict[str, Any]] = []
    index: Dict[str, Dict[str, Any]] = {}
    for entry in raw:
        item = {"prompt": entry["prompt_en"], "dimensions": list(entry["dimension"]),
                "auxiliary_info": dict(entry.get("auxiliary_info", {}))}
        if distinct and item["prompt"] in index:
            seen = index[item["prompt"]]
            seen["dimensions"] += [d for d in item["dimensions"] if d not in seen["dimensions"]]
            seen["auxiliary_info"].update(item["auxiliary_info"])
            continue
        index[item["prompt"]] = item
        out.append(item)
    return out


def prompt_subset_info(prompts: Iterable[str], target: Path) -> Path:
    """A copy of VBench_full_info.json with only the entries of ``prompts``."""
    keep = set(prompts)
    with open(full_info_path(), encoding="utf-8") as f:
        entries = [e for e in json.load(f) if e["prompt_en"] in keep]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(entries, ensure_ascii=False, indent=1), encoding="utf-8")
    return target


def prompts_by_dimension() -> Dict[str, List[str]]:
    by_dim: Dict[str, List[str]] = {d: [] for d in ALL_DIMENSIONS}
    for item in standard_prompts():
        for d in item["dimensions"]:
            if item["prompt"] not in by_dim.setdefault(d, []):
                by_dim[d].append(item["prompt"])
    return by_dim


# --------------------------------------------------------------------------- export

def _filename_ok(prompt: str, suffix: str) -> bool:
    name = f"{prompt}-0{suffix}"
    return ("/" not in prompt and "\0" not in prompt and prompt not in ("", ".", "..")
            and len(name.encode("utf-8")) + 4 <= MAX_FILENAME_BYTES)


def _safe_stem(prompt: str, suffix: str) -> str:
    """A file-name-safe stand-in for a prompt; the real prompt goes in the prompt map."""
    digest = hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:10]
    clean = re.sub(r"[/\\\0]", "_", prompt).strip() or "prompt"
    budget = MAX_FILENAME_BYTES - len(f"~{digest}-0000{suffix}".encode("utf-8"))
    clean = clean.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return f"{clean}~{digest}"


def export_for_vbench(items: Iterable[Tuple[str, int, Any]], out_dir: os.PathLike,
                      mode: str = "vbench_standard", fps: float = 8.0, crf: int = 0) -> Dict[str, str]:
    """Write videos for VBench as ``{prompt}-{index}.mp4`` in ``out_dir``.

    items: (prompt, index, video) with video either uint8 frames [F, H, W, 3] or the
    path of an existing .mp4 (copied as is). In ``vbench_standard`` mode the prompt
    must be one of VBench's standard prompts and index in 0..4, or 0..24 for the prompts
    temporal_flickering reads: its protocol samples 25 and the static filter keeps 5 (the
    other dimensions of such a prompt read only 0..4, as VBench looks up no other index,
    so one folder serves every dimension). In ``custom_input``
    mode any prompt works: one that cannot be a file name (contains '/', or the name
    would pass 255 bytes) is written under a sanitised name with a hash, and the
    returned map carries the real prompt. Returns {file name: prompt} for every file
    written; pass it to :func:`evaluate` as ``prompts`` in custom_input mode.
    Frames are encoded with :func:`metrics.video_io.write_mp4` (lossless H.264 by default, ``crf``).
    """
    if mode not in MODES:
        raise InputError(f"export_for_vbench: mode must be one of {', '.join(MODES)}, got '{mode}'.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    standard = {p["prompt"] for p in standard_prompts()} if mode == "vbench_standard" else set()
    pooled = set(prompts_by_dimension()["temporal_flickering"]) if mode == "vbench_standard" else set()
    written: Dict[str, str] = {}
    for n, item in enumerate(items):
        try:
            prompt, index, video = item
        except (TypeError, ValueError):
            raise InputError(f"export_for_vbench: item {n} must be (prompt, index, frames or mp4 path).") from None
        if not isinstance(prompt, str) or not prompt:
            raise InputError(f"export_for_vbench: item {n}: prompt must be a non-empty str, got {prompt!r}.")
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
            raise InputError(f"export_for_vbench: item {n}: index must be an int >= 0, got {index!r}.")
        if mode == "vbench_standard":
            if prompt not in standard:
                close = closest(prompt, standard)
                raise InputError(f"export_for_vbench: item {n}: '{prompt}' is not a VBench standard prompt"
                                 + (f" (closest: '{close}')" if close else "")
                                 + "; use mode='custom_input' for your own prompts.")
            if index >= (SAMPLED_PER_PROMPT if prompt in pooled else STANDARD_VIDEOS_PER_PROMPT):
                which = "a temporal_flickering prompt" if prompt in pooled else \
                    "a prompt temporal_flickering does not read"
                raise InputError(f"export_for_vbench: item {n}: VBench's standard suite reads indices 0.."
                                 f"{STANDARD_VIDEOS_PER_PROMPT - 1} per prompt and 0..{SAMPLED_PER_PROMPT - 1} for "
                                 f"temporal_flickering's static-filter pool, got {index} for {which} "
                                 f"({prompt[:60]!r}); use mode='custom_input' for other sets.")
        if _filename_ok(prompt, ".mp4"):
            stem = prompt
        elif mode == "vbench_standard":
            raise InputError(f"export_for_vbench: item {n}: prompt cannot be a file name: {prompt!r}.")
        else:
            stem = _safe_stem(prompt, ".mp4")
        name = f"{stem}-{int(index)}.mp4"
        if name in written:
            raise InputError(f"export_for_vbench: item {n}: ({prompt!r}, {index}) duplicates an earlier item "
                             f"(file {name}); give each video of a prompt its own index.")
        target = out / name
        if isinstance(video, (str, os.PathLike)):
            src = Path(video)
            if not src.is_file():
                raise MissingInput(f"export_for_vbench: item {n}: video file '{src}' does not exist.")
            if src.suffix.lower() != ".mp4":
                raise InputError(f"export_for_vbench: item {n}: only .mp4 files are copied, got '{src.name}'; "
                                 f"pass decoded uint8 frames instead.")
            if src.resolve() != target.resolve():
                shutil.copyfile(src, target)
        else:
            frames = np.asarray(video)
            try:
                # CRF 0 is lossless H.264 (only the RGB -> yuv420p conversion loses detail), so the encoder
                # adds no frame-to-frame noise that temporal_flickering would count as flicker
                write_mp4(str(target), np.asarray(frames), fps=fps, crf=crf, quality=None)
            except ValueError as err:
                raise InputError(f"export_for_vbench: item {n} ({prompt!r}, {index}): {err}") from None
        written[name] = prompt
    if not written:
        raise InputError("export_for_vbench: no items given.")
    return written


