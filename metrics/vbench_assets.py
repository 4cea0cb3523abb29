"""The model files each VBench dimension reads, declared once (the VBench cache, torch hub
and Hugging Face files), and the check of which dimensions can run offline. Preflight,
prefetch and the VBench stage read these declarations."""
from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from huggingface_hub import try_to_load_from_cache

from common.errors import InputError, LcmbenchError
from common.names import closest
from metrics.vbench_protocol import ALL_DIMENSIONS
from models.weights import hub_cache_dir

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
     "https://raw.githubusercontent.com/openai/CLIP/main/clip/bpe_simple_vocab_16e6.txt.gz (wget, when "
     "vbench.third_party.ViCLIP is first imported); it is the CLIP BPE vocabulary: copy "
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
# Optional files: present, they make a dimension follow VBench's full protocol; absent, the
# dimension still runs and its result says it is non-standard. temporal_flickering's static
# filter (VBench's static_filter.py) reads the RAFT weights dynamic_degree reads.
OPTIONAL_CACHE_FILES: Dict[str, List[Tuple[str, str]]] = {
    "temporal_flickering": CACHE_FILES["dynamic_degree"],
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
    "background_consistency": ("clip", "pkg_resources"),
    "appearance_style": ("clip", "pkg_resources"),
    "aesthetic_quality": ("clip", "pkg_resources"),
    "imaging_quality": ("pyiqa",),
    "motion_smoothness": ("cv2", "omegaconf"),
    "dynamic_degree": ("cv2", "easydict"),
    "human_action": ("clip", "pkg_resources", "timm", "numpy.lib.function_base"),
    "object_class": ("detectron2", "fvcore"), "multiple_objects": ("detectron2", "fvcore"),
    "color": ("detectron2", "fvcore"), "spatial_relationship": ("detectron2", "fvcore"),
    "scene": ("transformers", "timm", "fairscale"),
    "temporal_style": ("clip", "pkg_resources", "timm", "einops", "ftfy", "regex"),
    "overall_consistency": ("clip", "pkg_resources", "timm", "einops", "ftfy", "regex"),
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
    # openai-clip 1.0.1 and vbench's ViCLIP do `from pkg_resources import packaging`
    "pkg_resources": "pip install 'setuptools<81': openai-clip 1.0.1 and vbench's ViCLIP import pkg_resources, "
                     "which setuptools 81+ no longer ships",
    "numpy.lib.function_base": "vbench's UMT code imports it and it is gone in numpy 2; vbench's pin numpy<2 is not "
                               "installed (its pins break diffusers and open_clip), so human_action does not run",
}


class DownloadBlocked(LcmbenchError, RuntimeError):
    """VBench tried to fetch something although the harness forbids downloads."""


# --------------------------------------------------------------------------- availability

def vbench_cache_dir(cache_dir: Optional[os.PathLike] = None) -> Path:
    """VBench's model cache: the argument, else $VBENCH_CACHE_DIR, else ~/.cache/vbench."""
    if cache_dir is not None:
        return Path(os.path.expanduser(str(cache_dir)))
    env = os.environ.get("VBENCH_CACHE_DIR")
    return Path(os.path.expanduser(env)) if env else Path.home() / ".cache" / "vbench"


def static_filter_weights(cache_dir: Optional[os.PathLike] = None) -> Path:
    """Where the RAFT weights of VBench's static filter live in the VBench cache (they may be absent)."""
    return vbench_cache_dir(cache_dir) / OPTIONAL_CACHE_FILES["temporal_flickering"][0][0]


def torch_hub_dir() -> Path:
    import torch.hub  # heavy: torch, only to find the torch hub cache

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
        hub = torch_hub_dir()
        for rel, source in hub_files:
            if not (hub / rel).is_file():
                problems.append(f"missing {hub / rel} (torch hub cache; the DINO hubconf downloads it from "
                                f"{source})")
    if HF_FILES.get(dim):
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
    dims = check_dimensions(dimensions if dimensions is not None else ALL_DIMENSIONS)
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


def check_dimensions(dimensions: Any) -> List[str]:
    """The requested dimensions, deduplicated in order; an unknown name is an InputError."""
    if isinstance(dimensions, str):
        dimensions = [dimensions]
    dims = list(dict.fromkeys(dimensions))
    if not dims:
        raise InputError("VBench: no dimensions given; choose from " + ", ".join(ALL_DIMENSIONS) + ".")
    for d in dims:
        if d not in ALL_DIMENSIONS:
            close = closest(str(d), ALL_DIMENSIONS)
            raise InputError(f"VBench: unknown dimension '{d}'" + (f" (did you mean '{close}'?)" if close else "")
                             + ". Known: " + ", ".join(ALL_DIMENSIONS) + ".")
    return dims


