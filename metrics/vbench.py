"""VBench: export videos, run the ``vbench`` package, and aggregate its scores.

The harness does not re-implement VBench's dimensions: it calls the installed
``vbench`` 0.1.5 package (installed with ``--no-deps``; see DESIGN.md section 3)
and only wraps it so that

* videos are written with VBench's naming, ``{prompt}-{i}.mp4`` (:func:`export_for_vbench`);
* only dimensions whose model files are already in the VBench cache run, and
  VBench can never download anything: every other dimension is skipped with a
  reason saying which files are missing and where VBench fetches them
  (:func:`available_dimensions`, :func:`evaluate`);
* raw per-dimension fractions become VBench's Total / Quality / Semantic scores
  with the normalisation and weights of VBench's ``scripts/constant.py`` and
  ``scripts/cal_final_score.py`` (:func:`aggregate`).

Facts about vbench 0.1.5 this module relies on (read from the installed package):
``VBench(device, full_info_json, output_dir).evaluate(videos_path, name,
prompt_list, dimension_list, local, read_frame, mode)`` writes
``{output_dir}/{name}_eval_results.json`` = ``{dim: [average, [{"video_path",
"video_results"}, ...]]}`` and returns nothing. Model files live under
``$VBENCH_CACHE_DIR`` (default ``~/.cache/vbench``), read once when
``vbench.utils`` is imported, and ``init_submodules`` downloads missing ones with
wget. In ``vbench_standard`` mode videos are found as ``{prompt}-{i}{suffix}``
(i in 0..4) where the suffix is taken from the *first* directory entry, so the
video folder must hold nothing but videos. In ``custom_input`` mode the prompt is
the file name without ``-{i}`` and the suffix (``get_prompt_from_filename``) unless
a ``{file name: prompt}`` map is given; six dimensions need the standard prompts'
extra information and are refused in that mode.
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from metrics.base import MetricFacts

# --------------------------------------------------------------------------- constants
# VBench scripts/constant.py (verified against Vchitect/VBench): quality and semantic
# groups, per-dimension (min, max) for normalisation, and weights.
QUALITY_DIMENSIONS: Tuple[str, ...] = (
    "subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
    "aesthetic_quality", "imaging_quality", "dynamic_degree",
)
SEMANTIC_DIMENSIONS: Tuple[str, ...] = (
    "object_class", "multiple_objects", "human_action", "color", "spatial_relationship", "scene",
    "appearance_style", "temporal_style", "overall_consistency",
)
ALL_DIMENSIONS: Tuple[str, ...] = QUALITY_DIMENSIONS + SEMANTIC_DIMENSIONS
SUMMARIES: Tuple[str, ...] = ("total", "quality", "semantic")


class VBenchScore(MetricFacts):
    """The VBench family: rows ``vbench_<dimension>`` and ``vbench_total`` /
    ``vbench_quality`` / ``vbench_semantic``, in percent."""

    name = "vbench"
    display_name = "VBench"
    higher_is_better = True
    decimals = 2
    tolerance = ("abs", 0.5)   # percentage points

    @classmethod
    def metrics(cls) -> Tuple[str, ...]:
        return tuple(f"vbench_{s}" for s in SUMMARIES + ALL_DIMENSIONS)

    @classmethod
    def display_for(cls, metric: str) -> str:
        return "VBench " + metric[len("vbench_"):].replace("_", " ").title()
NORMALIZE: Dict[str, Tuple[float, float]] = {d: (0.0, 1.0) for d in ALL_DIMENSIONS}
NORMALIZE.update({
    "subject_consistency": (0.1462, 1.0),
    "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0),
    "motion_smoothness": (0.706, 0.9975),
    "scene": (0.0, 0.8222),
    "appearance_style": (0.0009, 0.2855),
    "temporal_style": (0.0, 0.364),
    "overall_consistency": (0.0, 0.364),
})
DIM_WEIGHT: Dict[str, float] = {d: 1.0 for d in ALL_DIMENSIONS}
DIM_WEIGHT["dynamic_degree"] = 0.5
QUALITY_WEIGHT = 4.0
SEMANTIC_WEIGHT = 1.0
AGGREGATE_DEFINITION = (
    "n_d = (x_d - min_d) / (max_d - min_d) * w_d (w = 1, dynamic_degree 0.5; no clipping, as in VBench); "
    "Quality = sum(n_d, quality dims) / sum(w_d, quality dims) = / 6.5; "
    "Semantic = sum(n_d, semantic dims) / 9; Total = (4 Quality + Semantic) / 5. "
    "Partial (allow_missing): each group is divided by the weights of its present dimensions only; "
    "a group with no present dimension is None, and then Total is None.")

# VBench.check_dimension_requires_extra_info: refused in custom_input mode.
CUSTOM_INPUT_UNSUPPORTED = frozenset({
    "object_class", "multiple_objects", "scene", "appearance_style", "color", "spatial_relationship"})
MODES = ("vbench_standard", "custom_input")
VIDEO_SUFFIXES = (".mp4", ".gif", ".jpg", ".png")
STANDARD_VIDEOS_PER_PROMPT = 5
MAX_FILENAME_BYTES = 255

_CLIP_B32 = ("https://openaipublic.azureedge.net/clip/models/"
             "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt")
_CLIP_L14 = ("https://openaipublic.azureedge.net/clip/models/"
             "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt")
_DINO_URL = "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"
_GRIT = [("grit_model/grit_b_densecap_objectdet.pth",
          "https://datarelease.blob.core.windows.net/grit/models/grit_b_densecap_objectdet.pth")]
_VICLIP = [
    ("ViCLIP/ViClip-InternVid-10M-FLT.pth",
     "https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/ViClip-InternVid-10M-FLT.pth"),
    ("ViCLIP/bpe_simple_vocab_16e6.txt.gz",
     "nowhere: vbench 0.1.5 expects it but never fetches it; it is the CLIP BPE vocabulary, copy "
     "bpe_simple_vocab_16e6.txt.gz from the installed open_clip (or openai-clip) package"),
]
# Files each dimension reads under the VBench cache dir in local mode
# (vbench/utils.py init_submodules, the dimension modules), with where VBench gets them.
CACHE_FILES: Dict[str, List[Tuple[str, str]]] = {
    "temporal_flickering": [],
    "subject_consistency": [
        ("dino_model/facebookresearch_dino_main/hubconf.py", "git clone https://github.com/facebookresearch/dino "
                                                            "into dino_model/facebookresearch_dino_main"),
        ("dino_model/dino_vitbase16_pretrain.pth", _DINO_URL),
    ],
    "background_consistency": [("clip_model/ViT-B-32.pt", _CLIP_B32)],
    "appearance_style": [("clip_model/ViT-B-32.pt", _CLIP_B32)],
    "aesthetic_quality": [
        ("clip_model/ViT-L-14.pt", _CLIP_L14),
        ("aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth",
         "https://github.com/LAION-AI/aesthetic-predictor/blob/main/sa_0_4_vit_l_14_linear.pth?raw=true"),
    ],
    "imaging_quality": [(
        "pyiqa_model/musiq_spaq_ckpt-358bb6af.pth",
        "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth")],
    "motion_smoothness": [("amt_model/amt-s.pth", "https://huggingface.co/lalala125/AMT/resolve/main/amt-s.pth")],
    "dynamic_degree": [("raft_model/models/raft-things.pth",
                        "https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip (unzipped into raft_model/)")],
    "human_action": [(
        "umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth",
        "https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/l16_ptk710_ftk710_ftk400_f16_res224.pth")],
    "object_class": _GRIT, "multiple_objects": _GRIT, "color": _GRIT, "spatial_relationship": _GRIT,
    "scene": [("caption_model/tag2text_swin_14m.pth",
               "https://huggingface.co/spaces/xinyu1205/recognize-anything/resolve/main/tag2text_swin_14m.pth")],
    "temporal_style": _VICLIP, "overall_consistency": _VICLIP,
}
# Files outside the VBench cache: the DINO hubconf loads its weights through
# torch.hub.load_state_dict_from_url (torch hub checkpoints dir), and GRiT / Tag2Text
# load 'bert-base-uncased' from the Hugging Face cache. Groups are alternatives.
TORCH_HUB_FILES: Dict[str, List[Tuple[str, str]]] = {
    "subject_consistency": [("checkpoints/dino_vitbase16_pretrain.pth", _DINO_URL)],
}
_BERT_VOCAB = [("bert-base-uncased", ("vocab.txt",))]
HF_FILES: Dict[str, List[Tuple[str, Tuple[str, ...]]]] = {
    "object_class": _BERT_VOCAB, "multiple_objects": _BERT_VOCAB, "color": _BERT_VOCAB,
    "spatial_relationship": _BERT_VOCAB,
    "scene": _BERT_VOCAB + [("bert-base-uncased", ("model.safetensors", "pytorch_model.bin"))],
}
# Python modules each dimension imports beyond the harness' own (pip name or how to get it).
PYTHON_MODULES: Dict[str, Tuple[str, ...]] = {
    "temporal_flickering": ("cv2",),
    "subject_consistency": ("cv2",),
    "background_consistency": ("clip",),
    "appearance_style": ("clip",),
    "aesthetic_quality": ("clip",),
    "imaging_quality": ("pyiqa",),
    "motion_smoothness": ("cv2", "omegaconf"),
    "dynamic_degree": ("cv2", "easydict"),
    "human_action": ("clip", "timm"),
    "object_class": ("detectron2", "fvcore"), "multiple_objects": ("detectron2", "fvcore"),
    "color": ("detectron2", "fvcore"), "spatial_relationship": ("detectron2", "fvcore"),
    "scene": ("transformers", "timm", "fairscale"),
    "temporal_style": ("timm", "einops", "ftfy", "regex"),
    "overall_consistency": ("timm", "einops", "ftfy", "regex"),
}
BASE_MODULES = ("vbench", "decord", "torchvision", "tqdm")
PIP_NAMES = {
    "cv2": "pip install opencv-python-headless", "clip": "pip install openai-clip", "pyiqa": "pip install pyiqa",
    "omegaconf": "pip install omegaconf", "easydict": "pip install easydict", "timm": "pip install timm",
    "fvcore": "pip install fvcore", "transformers": "pip install transformers", "fairscale": "pip install fairscale",
    "einops": "pip install einops", "ftfy": "pip install ftfy", "regex": "pip install regex",
    "decord": "pip install decord", "torchvision": "pip install torchvision", "tqdm": "pip install tqdm",
    "vbench": "pip install --no-deps vbench==0.1.5",
    "detectron2": "not on PyPI: build it from https://github.com/facebookresearch/detectron2",
}


class DownloadBlocked(RuntimeError):
    """VBench tried to fetch something although the harness forbids downloads."""


# --------------------------------------------------------------------------- prompts

def full_info_path() -> Path:
    """The VBench_full_info.json bundled with the installed vbench package."""
    spec = importlib.util.find_spec("vbench")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("The 'vbench' package is not installed: pip install --no-deps vbench==0.1.5 "
                          "(its pins break diffusers/open_clip; see DESIGN.md section 3).")
    path = Path(list(spec.submodule_search_locations)[0]) / "VBench_full_info.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the vbench install is incomplete; reinstall vbench==0.1.5.")
    return path


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


def _prompt_subset_info(prompts: Iterable[str], target: Path) -> Path:
    """A copy of VBench_full_info.json with only the entries of ``prompts``."""
    keep = set(prompts)
    with open(full_info_path(), encoding="utf-8") as f:
        entries = [e for e in json.load(f) if e["prompt_en"] in keep]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(entries, ensure_ascii=False, indent=1), encoding="utf-8")
    return target


def _prompts_by_dimension() -> Dict[str, List[str]]:
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


def write_mp4(frames: np.ndarray, path: os.PathLike, fps: float = 8.0, crf: int = 0) -> None:
    """uint8 [F, H, W, 3] -> H.264 mp4 (yuv420p, libx264 at the given CRF).

    CRF 0 is lossless H.264 (only the RGB -> yuv420p conversion loses detail), so
    the encoder adds no frame-to-frame noise of its own: at CRF 18 a static
    gradient already decodes with +-2 level differences between frames, which
    temporal_flickering would count as flicker. CRF 0 files are about 7x larger.
    """
    import imageio_ffmpeg

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"video frames must be uint8 [F, H, W, 3] with F >= 1, got dtype {frames.dtype} "
                         f"shape {frames.shape}.")
    if not isinstance(crf, (int, np.integer)) or isinstance(crf, bool) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an int in 0..51 (0 = lossless), got {crf!r}.")
    if not fps or fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps!r}.")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"H.264 (yuv420p) needs even frame sizes, got {h}x{w}: crop or pad the frames first.")
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", quality=None,
                                         pix_fmt_in="rgb24", pix_fmt_out="yuv420p", macro_block_size=1,
                                         output_params=["-crf", str(int(crf))])
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def export_for_vbench(items: Iterable[Tuple[str, int, Any]], out_dir: os.PathLike,
                      mode: str = "vbench_standard", fps: float = 8.0, crf: int = 0) -> Dict[str, str]:
    """Write videos for VBench as ``{prompt}-{index}.mp4`` in ``out_dir``.

    items: (prompt, index, video) with video either uint8 frames [F, H, W, 3] or the
    path of an existing .mp4 (copied as is). In ``vbench_standard`` mode the prompt
    must be one of VBench's standard prompts and index in 0..4. In ``custom_input``
    mode any prompt works: one that cannot be a file name (contains '/', or the name
    would pass 255 bytes) is written under a sanitised name with a hash, and the
    returned map carries the real prompt. Returns {file name: prompt} for every file
    written; pass it to :func:`evaluate` as ``prompts`` in custom_input mode.
    Frames are encoded with :func:`write_mp4` (lossless H.264 by default, ``crf``).
    """
    if mode not in MODES:
        raise ValueError(f"export_for_vbench: mode must be one of {', '.join(MODES)}, got '{mode}'.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    standard = {p["prompt"] for p in standard_prompts()} if mode == "vbench_standard" else set()
    written: Dict[str, str] = {}
    for n, item in enumerate(items):
        try:
            prompt, index, video = item
        except (TypeError, ValueError):
            raise ValueError(f"export_for_vbench: item {n} must be (prompt, index, frames or mp4 path).") from None
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"export_for_vbench: item {n}: prompt must be a non-empty str, got {prompt!r}.")
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
            raise ValueError(f"export_for_vbench: item {n}: index must be an int >= 0, got {index!r}.")
        if mode == "vbench_standard":
            if not 0 <= index < STANDARD_VIDEOS_PER_PROMPT:
                raise ValueError(f"export_for_vbench: item {n}: VBench's standard suite reads indices 0..4 per "
                                 f"prompt, got {index}; use mode='custom_input' for other sets.")
            if prompt not in standard:
                close = difflib.get_close_matches(prompt, list(standard), n=1)
                raise ValueError(f"export_for_vbench: item {n}: '{prompt}' is not a VBench standard prompt"
                                 + (f" (closest: '{close[0]}')" if close else "")
                                 + "; use mode='custom_input' for your own prompts.")
        if _filename_ok(prompt, ".mp4"):
            stem = prompt
        elif mode == "vbench_standard":
            raise ValueError(f"export_for_vbench: item {n}: prompt cannot be a file name: {prompt!r}.")
        else:
            stem = _safe_stem(prompt, ".mp4")
        name = f"{stem}-{int(index)}.mp4"
        if name in written:
            raise ValueError(f"export_for_vbench: item {n}: ({prompt!r}, {index}) duplicates an earlier item "
                             f"(file {name}); give each video of a prompt its own index.")
        target = out / name
        if isinstance(video, (str, os.PathLike)):
            src = Path(video)
            if not src.is_file():
                raise FileNotFoundError(f"export_for_vbench: item {n}: video file '{src}' does not exist.")
            if src.suffix.lower() != ".mp4":
                raise ValueError(f"export_for_vbench: item {n}: only .mp4 files are copied, got '{src.name}'; "
                                 f"pass decoded uint8 frames instead.")
            if src.resolve() != target.resolve():
                shutil.copyfile(src, target)
        else:
            frames = np.asarray(video)
            try:
                write_mp4(frames, target, fps=fps, crf=crf)
            except ValueError as err:
                raise ValueError(f"export_for_vbench: item {n} ({prompt!r}, {index}): {err}") from None
        written[name] = prompt
    if not written:
        raise ValueError("export_for_vbench: no items given.")
    return written


# --------------------------------------------------------------------------- availability

def vbench_cache_dir(cache_dir: Optional[os.PathLike] = None) -> Path:
    """VBench's model cache: the argument, else $VBENCH_CACHE_DIR, else ~/.cache/vbench."""
    if cache_dir is not None:
        return Path(os.path.expanduser(str(cache_dir)))
    env = os.environ.get("VBENCH_CACHE_DIR")
    return Path(os.path.expanduser(env)) if env else Path.home() / ".cache" / "vbench"


def _torch_hub_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir())


def _check_dimension(dim: str, cache: Path) -> List[str]:
    """Problems that stop one dimension from running offline (empty when it can run)."""
    problems: List[str] = []
    for mod in BASE_MODULES + PYTHON_MODULES.get(dim, ()):
        if importlib.util.find_spec(mod) is None:
            problems.append(f"python module '{mod}' is not installed ({PIP_NAMES.get(mod, 'pip install ' + mod)})")
    for rel, source in CACHE_FILES.get(dim, []):
        if not (cache / rel).is_file():
            problems.append(f"missing {cache / rel} (VBench fetches it from {source})")
    hub_files = TORCH_HUB_FILES.get(dim, [])
    if hub_files:
        hub = _torch_hub_dir()
        for rel, source in hub_files:
            if not (hub / rel).is_file():
                problems.append(f"missing {hub / rel} (torch hub cache; the DINO hubconf downloads it from "
                                f"{source})")
    if HF_FILES.get(dim):
        from huggingface_hub import try_to_load_from_cache

        from metrics.clipsim import hub_cache_dir

        hf_cache = hub_cache_dir()
        for repo, alternatives in HF_FILES[dim]:
            if not any(isinstance(try_to_load_from_cache(repo, f, cache_dir=hf_cache), str) for f in alternatives):
                problems.append(f"missing Hugging Face file {repo} {' or '.join(alternatives)} in {hf_cache} "
                                f"(`huggingface-cli download {repo} {alternatives[0]}`)")
    return problems


def available_dimensions(cache_dir: Optional[os.PathLike] = None,
                         dimensions: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Which VBench dimensions can run here without downloading anything.

    Returns {"cache_dir": str, "available": [dims], "unavailable": {dim: reason}}.
    temporal_flickering needs no model; every other dimension needs the files in
    :data:`CACHE_FILES` (and a few outside the cache, see TORCH_HUB_FILES, HF_FILES).
    """
    dims = _check_dimensions(dimensions if dimensions is not None else ALL_DIMENSIONS)
    cache = vbench_cache_dir(cache_dir)
    available: List[str] = []
    unavailable: Dict[str, str] = {}
    for d in dims:
        problems = _check_dimension(d, cache)
        if problems:
            unavailable[d] = "; ".join(problems)
        else:
            available.append(d)
    return {"cache_dir": str(cache), "available": available, "unavailable": unavailable}


def _check_dimensions(dimensions: Any) -> List[str]:
    if isinstance(dimensions, str):
        dimensions = [dimensions]
    dims = list(dict.fromkeys(dimensions))
    if not dims:
        raise ValueError("VBench: no dimensions given; choose from " + ", ".join(ALL_DIMENSIONS) + ".")
    for d in dims:
        if d not in ALL_DIMENSIONS:
            close = difflib.get_close_matches(str(d), ALL_DIMENSIONS, n=1)
            raise ValueError(f"VBench: unknown dimension '{d}'" + (f" (did you mean '{close[0]}'?)" if close else "")
                             + ". Known: " + ", ".join(ALL_DIMENSIONS) + ".")
    return dims


# --------------------------------------------------------------------------- evaluate

class _NoSubprocess:
    """Stands in for the subprocess module inside vbench: every call is a download (wget/git/unzip)."""

    CalledProcessError = subprocess.CalledProcessError

    @staticmethod
    def run(cmd, *args, **kwargs):
        raise DownloadBlocked(f"VBench tried to run {' '.join(map(str, cmd))!r} (a download); the harness never "
                              f"lets VBench download: put the file in the VBench cache dir first.")


def _blocked(*args, **kwargs):
    raise DownloadBlocked(f"VBench tried to download {args[0] if args else kwargs}; the harness never lets VBench "
                          f"download: put the file in place first.")


@contextlib.contextmanager
def _offline_vbench(cache: Path):
    """Point every loaded vbench module at ``cache`` and make downloads raise."""
    import torch.hub

    saved: List[Tuple[Any, str, Any]] = []

    def patch(obj, attr, value):
        saved.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    env_saved = {k: os.environ.get(k) for k in ("VBENCH_CACHE_DIR", "HF_HUB_OFFLINE")}
    os.environ["VBENCH_CACHE_DIR"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        try:
            from huggingface_hub import constants as hf_constants
            patch(hf_constants, "HF_HUB_OFFLINE", True)
        except ImportError:
            pass
        patch(torch.hub, "download_url_to_file", _blocked)
        for name, mod in list(sys.modules.items()):
            # Only vbench's own modules download (utils, aesthetic_quality); third_party code is left alone.
            if mod is None or not (name == "vbench" or (name.startswith("vbench.") and name.count(".") == 1)):
                continue
            if hasattr(mod, "CACHE_DIR"):
                patch(mod, "CACHE_DIR", str(cache))
            if getattr(mod, "subprocess", None) is not None:
                patch(mod, "subprocess", _NoSubprocess)
            if hasattr(mod, "urlretrieve"):
                patch(mod, "urlretrieve", _blocked)
        yield
    finally:
        for obj, attr, value in reversed(saved):
            setattr(obj, attr, value)
        for k, v in env_saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _list_videos(videos_dir: Path, mode: str) -> List[str]:
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"VBench: videos folder '{videos_dir}' does not exist; write it with "
                                f"export_for_vbench first.")
    entries = sorted(os.listdir(videos_dir))
    videos = [e for e in entries if Path(e).suffix.lower() in VIDEO_SUFFIXES and (videos_dir / e).is_file()]
    if not videos:
        raise ValueError(f"VBench: no videos ({', '.join(VIDEO_SUFFIXES)}) in '{videos_dir}'.")
    if mode == "vbench_standard":
        # VBench takes the video suffix from the first directory entry.
        others = [e for e in entries if e not in videos]
        suffixes = {Path(v).suffix for v in videos}
        if others or len(suffixes) > 1:
            raise ValueError(f"VBench standard mode needs a folder holding only videos of one type, but "
                             f"'{videos_dir}' also has {', '.join((others or sorted(suffixes))[:5])}: VBench takes "
                             f"the suffix from the first directory entry. Move the other files out.")
    return videos


def evaluate(videos_dir: os.PathLike, name: str, dimensions: Sequence[str], mode: str = "vbench_standard",
             out_dir: Optional[os.PathLike] = None, device: Optional[str] = None,
             prompts: Optional[Mapping[str, str]] = None, cache_dir: Optional[os.PathLike] = None,
             require_complete: bool = True) -> Dict[str, Any]:
    """Run VBench on a folder of videos, offline.

    Dimensions whose files are missing are skipped (never downloaded), with the
    reason. ``prompts`` ({file name: prompt}, as :func:`export_for_vbench` returns)
    is for custom_input mode; files not in it use VBench's name rule. In standard
    mode every video the chosen dimensions expect must exist unless
    ``require_complete=False`` (then the counts of missing videos are reported).

    Returns {"scores": {dim: raw fraction}, "per_video": {dim: {file name: value}},
    "skipped": {dim: reason}, "failed": {dim: error}, "n_videos": {dim: n},
    "missing_videos": {dim: n}, "mode", "name", "device", "cache_dir",
    "vbench_version", "results_files": {dim: json path}, "notes": [...]}.
    """
    if mode not in MODES:
        raise ValueError(f"VBench: mode must be one of {', '.join(MODES)}, got '{mode}'.")
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"VBench: name must be a non-empty string without '/', got {name!r}.")
    if out_dir is None:
        raise ValueError("VBench: out_dir is required (VBench writes its json files there).")
    dims = _check_dimensions(dimensions)
    videos_dir = Path(videos_dir)
    cache = vbench_cache_dir(cache_dir)
    if device is None:
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"

    if mode == "custom_input":
        refused = [d for d in dims if d in CUSTOM_INPUT_UNSUPPORTED]
        if refused:
            raise ValueError(f"VBench: {', '.join(refused)} need the standard prompts' extra information and do "
                             f"not run in custom_input mode; use mode='vbench_standard' with VBench's prompts.")
    elif prompts is not None:
        raise ValueError("VBench: prompts= is only for custom_input mode; standard mode reads prompts from the "
                         "file names and VBench_full_info.json.")
    videos = _list_videos(videos_dir, mode)

    status = available_dimensions(cache, dims)
    skipped: Dict[str, str] = dict(status["unavailable"])
    runnable = [d for d in dims if d in status["available"]]
    missing_videos: Dict[str, int] = {}
    n_expected: Dict[str, int] = {}

    prompt_list: Any = []
    info_file = full_info_path()
    if mode == "vbench_standard":
        present = set(videos)
        suffix = Path(videos[0]).suffix
        by_dim = _prompts_by_dimension()
        problems = []
        for d in list(runnable):
            expected = [f"{p}-{i}{suffix}" for p in by_dim[d] for i in range(STANDARD_VIDEOS_PER_PROMPT)]
            missing = [e for e in expected if e not in present]
            n_expected[d] = len(expected) - len(missing)
            if missing:
                missing_videos[d] = len(missing)
                problems.append(f"{d}: {len(missing)} of {len(expected)} videos missing, e.g. {missing[0]!r}")
            if len(missing) == len(expected):
                runnable.remove(d)
                skipped[d] = f"no videos for this dimension's {len(by_dim[d])} standard prompts in {videos_dir}"
        if problems and require_complete:
            raise ValueError("VBench standard mode: missing benchmark videos make the scores incomparable ("
                             + "; ".join(problems) + "). Generate all 5 videos per prompt, or pass "
                             "require_complete=False to score what is there (reported as missing_videos).")
        if problems:
            # VBench warns once per missing video (hundreds of lines for a subset run): hand it
            # a copy of its prompt file holding only the prompts that have videos here
            with_videos = {v.rsplit("-", 1)[0] for v in present}   # "{prompt}-{i}{suffix}"
            info_file = _prompt_subset_info(with_videos, Path(out_dir) / f"{name}_prompt_subset_full_info.json")
    else:
        mapping = dict(prompts or {})
        unknown = [k for k in mapping if k not in videos]
        if unknown:
            raise ValueError(f"VBench: prompts= names files that are not videos in '{videos_dir}': "
                             f"{', '.join(unknown[:5])}; keys are file names as export_for_vbench returns them.")
        if mapping:
            from_name = re.compile(r"-\d+$")
            prompt_list = {v: mapping.get(v, from_name.sub("", Path(v).stem)) for v in videos}
        for d in runnable:
            n_expected[d] = len(videos)

    # Import each dimension's module now: a missing python dependency is a skip, not a crash.
    for d in list(runnable):
        try:
            importlib.import_module(f"vbench.{d}")
        except Exception as err:  # ImportError or a version clash inside third-party code
            runnable.remove(d)
            skipped[d] = f"importing vbench.{d} failed: {type(err).__name__}: {err}"

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores: Dict[str, float] = {}
    per_video: Dict[str, Dict[str, Any]] = {}
    failed: Dict[str, str] = {}
    files: Dict[str, str] = {}
    n_videos: Dict[str, int] = {}
    if runnable:
        from vbench import VBench

        with _offline_vbench(cache):
            for d in runnable:
                run_name = f"{name}_{d}"
                result_file = out / f"{run_name}_eval_results.json"
                if result_file.exists():
                    result_file.unlink()  # never read a stale result back
                try:
                    VBench(device, str(info_file), str(out)).evaluate(
                        videos_path=str(videos_dir), name=run_name, prompt_list=prompt_list, dimension_list=[d],
                        local=True, read_frame=False, mode=mode)
                    with open(result_file, encoding="utf-8") as f:
                        avg, rows = json.load(f)[d]
                except DownloadBlocked as err:
                    skipped[d] = str(err)
                    continue
                except Exception as err:
                    failed[d] = (f"VBench's {d} raised {type(err).__name__}: {err} (a corrupt or incompatible "
                                 f"model file under {cache}, or a package version clash)")
                    continue
                if avg is None or not math.isfinite(float(avg)):
                    failed[d] = f"VBench returned {avg!r} (no readable videos?)"
                    continue
                scores[d] = float(avg)
                per_video[d] = {Path(r["video_path"]).name: r["video_results"] for r in rows}
                n_videos[d] = len(rows)
                files[d] = str(result_file)
                if d in n_expected and len(rows) < n_expected[d]:
                    failed_reads = n_expected[d] - len(rows)
                    missing_videos[d] = missing_videos.get(d, 0) + failed_reads

    notes = []
    non_standard = {}
    if "temporal_flickering" in scores:
        # VBench's standard protocol samples more videos per prompt and keeps only the static
        # ones (its RAFT static filter, a script outside the package); without it the figure
        # also counts motion as flicker and is not VBench's number
        non_standard["temporal_flickering"] = (
            "scored on every video given: VBench's RAFT static filter (keep only static videos) was not "
            "applied, so motion counts as flicker; not comparable to published temporal_flickering")
        notes.append("temporal_flickering: " + non_standard["temporal_flickering"])
    import importlib.metadata as md

    return {
        "scores": scores, "per_video": per_video, "skipped": skipped, "failed": failed,
        "n_videos": n_videos, "missing_videos": missing_videos, "mode": mode, "name": name,
        "device": str(device), "cache_dir": str(cache), "vbench_version": md.version("vbench"),
        "results_files": files, "notes": notes, "non_standard": non_standard,
    }


# --------------------------------------------------------------------------- aggregate

def aggregate(scores: Mapping[str, float], allow_missing: bool = False) -> Dict[str, Any]:
    """VBench Total / Quality / Semantic (fractions; x100 for the paper's table) from raw dimension scores.

    scores: {dimension: raw fraction as VBench reports it}; VBench's spaced names
    ("subject consistency") are accepted too. See :data:`AGGREGATE_DEFINITION`.
    Missing dimensions raise ValueError unless ``allow_missing=True``, which returns
    a result marked ``partial`` with the ``missing`` list.
    """
    if not isinstance(scores, Mapping):
        raise TypeError(f"aggregate: scores must be a mapping {{dimension: raw fraction}}, got {type(scores).__name__}.")
    raw: Dict[str, float] = {}
    for key, value in scores.items():
        dim = str(key).strip().replace(" ", "_")
        if dim not in ALL_DIMENSIONS:
            close = difflib.get_close_matches(dim, ALL_DIMENSIONS, n=1)
            raise ValueError(f"aggregate: unknown VBench dimension '{key}'"
                             + (f" (did you mean '{close[0]}'?)" if close else "") + ".")
        if dim in raw:
            raise ValueError(f"aggregate: dimension '{dim}' given twice.")
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"aggregate: {dim} must be a number, got {value!r}.") from None
        if not math.isfinite(x):
            raise ValueError(f"aggregate: {dim} is {x}; drop it or pass a finite raw score.")
        if abs(x) > 1.0:
            raise ValueError(f"aggregate: {dim} = {x} is not a raw VBench fraction (they lie in [0, 1], e.g. "
                             f"0.9652); divide percentages by 100.")
        raw[dim] = x
    missing = [d for d in ALL_DIMENSIONS if d not in raw]
    if missing and not allow_missing:
        raise ValueError(f"aggregate: missing VBench dimensions: {', '.join(missing)}. Run them, or pass "
                         f"allow_missing=True for a partial score (marked partial).")
    normalized = {d: (raw[d] - NORMALIZE[d][0]) / (NORMALIZE[d][1] - NORMALIZE[d][0]) * DIM_WEIGHT[d] for d in raw}

    def group(dims: Sequence[str]) -> Optional[float]:
        present = [d for d in dims if d in normalized]
        if not present:
            return None
        return sum(normalized[d] for d in present) / sum(DIM_WEIGHT[d] for d in present)

    quality = group(QUALITY_DIMENSIONS)
    semantic = group(SEMANTIC_DIMENSIONS)
    total = None
    if quality is not None and semantic is not None:
        total = (QUALITY_WEIGHT * quality + SEMANTIC_WEIGHT * semantic) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    return {
        "total": total, "quality": quality, "semantic": semantic,
        "normalized": normalized, "partial": bool(missing), "missing": missing,
        "present": [d for d in ALL_DIMENSIONS if d in raw], "definition": AGGREGATE_DEFINITION,
    }
