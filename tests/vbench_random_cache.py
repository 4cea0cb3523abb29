"""Random-weight model files for VBench 0.1.5, written where and as VBench loads them.

Each writer builds the network a dimension really runs (from the vbench package's own
third-party code, openai-clip, pyiqa or timm), with random weights, and saves it under
the file name and in the format VBench's loader reads (a plain or wrapped state dict
saved with torch.save). Running ``metrics.vbench.evaluate`` against such a cache
exercises the whole path (file names, loaders, input layout, frame counts, dtypes)
without the real weights; the scores themselves mean nothing.

Formats, read from vbench 0.1.5 (and the loaders it calls):

* CLIP ``clip_model/ViT-B-32.pt`` / ``ViT-L-14.pt``: a traced TorchScript archive in
  fp16, like OpenAI's files (``clip.load(path)``'s state-dict fallback fails, see
  :func:`_save_clip`).
* aesthetic head: ``nn.Linear(768, 1)`` state dict.
* DINO: ``torch.hub.load(<cache>/dino_model/facebookresearch_dino_main, 'dino_vitb16',
  source='local')``; DINO's hubconf reads its weights with
  ``torch.hub.load_state_dict_from_url`` from the torch hub checkpoints folder, not from
  ``dino_model/dino_vitbase16_pretrain.pth``. The DINO repository cannot be cloned
  offline, so a small stand-in ``hubconf.py`` (a ViT-B/16 from timm with DINO's
  parameter names) is written in its place.
* MUSIQ (pyiqa): plain state dict, loaded strictly.
* AMT-S: ``{"state_dict": ...}``, loaded strictly.
* RAFT: DataParallel state dict (``module.`` prefixes), loaded strictly.
* UMT ViT-L/16: plain state dict, loaded with ``strict=False``.
* ViCLIP: ``{"model": ...}``, loaded strictly (its zero-initialised projections made
  random, :func:`_fill_unset`), plus CLIP's BPE vocabulary
  ``ViCLIP/bpe_simple_vocab_16e6.txt.gz`` copied from the installed open_clip.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import sys
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional

from metrics.vbench_assets import CACHE_FILES, PIP_NAMES, PYTHON_MODULES, TORCH_HUB_FILES

_BPE = "ViCLIP/bpe_simple_vocab_16e6.txt.gz"   # ViCLIP's tokenizer vocabulary, in the VBench cache

# Dimensions that cannot run here, and why (see docs/vbench_dimensions.md).
_GRIT_REASON = ("GRiT needs detectron2 (vbench.third_party.grit_src imports detectron2.config), which is not on "
                "PyPI and must be built from source against the installed torch")
NOT_RUNNABLE: Dict[str, str] = {
    "object_class": _GRIT_REASON, "multiple_objects": _GRIT_REASON, "color": _GRIT_REASON,
    "spatial_relationship": _GRIT_REASON,
    "human_action": ("vbench.third_party.umt.datasets (imported by vbench.human_action for its video transforms) "
                     "imports numpy.lib.function_base, gone in numpy 2 (vbench's pin numpy<2 is not installed: "
                     "its pins break diffusers and open_clip); with that module stood in, timm 1.0's "
                     "create_model passes cache_dir= to UMT's VisionTransformer, which refuses it (TypeError)"),
    "scene": ("vbench.third_party.tag2Text.med imports apply_chunking_to_forward from "
              "transformers.modeling_utils, gone in transformers 5 (vbench's pin transformers==4.33.2 is not "
              "installed: its pins break diffusers and open_clip)"),
}

# The standalone DINO hub entry point: same parameter names and output (the normalised
# CLS token) as facebookresearch/dino's dino_vitb16, built from timm.
_DINO_HUBCONF = '''"""Offline stand-in for facebookresearch/dino's hubconf (ViT-B/16, CLS-token output)."""
import torch
from timm.models.vision_transformer import VisionTransformer

dependencies = ["torch", "timm"]
_URL = "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"


def dino_vitb16(pretrained=True, **kwargs):
    # VBench passes path= and read_frame= through; DINO's VisionTransformer ignores them too
    model = VisionTransformer(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4, qkv_bias=True,
                              num_classes=0, dynamic_img_size=True)
    if pretrained:
        state_dict = torch.hub.load_state_dict_from_url(url=_URL, map_location="cpu")
        model.load_state_dict(state_dict, strict=True)
    return model
'''


def ensure_pkg_resources() -> Optional[types.ModuleType]:
    """openai-clip 1.0.1 does ``from pkg_resources import packaging``; setuptools 81+ has no
    pkg_resources. Returns a minimal stand-in module to put in sys.modules when it is
    missing (None when the real one imports)."""
    if importlib.util.find_spec("pkg_resources") is not None:
        return None
    try:
        import packaging.version  # noqa: F401  (makes packaging.version an attribute)
        import packaging
    except ImportError:   # nothing to stand in with; clip's import then names what is missing
        return None

    shim = types.ModuleType("pkg_resources")
    shim.__spec__ = importlib.machinery.ModuleSpec("pkg_resources", None)
    shim.packaging = packaging
    return shim


def missing_modules(dimension: str) -> List[str]:
    """The python packages ``dimension`` needs that are not installed, each with how to
    install it (``pkg_resources`` is left out: :func:`ensure_pkg_resources` stands in)."""
    return [f"{m} ({PIP_NAMES.get(m, 'pip install ' + m)})" for m in PYTHON_MODULES.get(dimension, ())
            if m != "pkg_resources" and importlib.util.find_spec(m) is None]


def _not_installed(module: str) -> ImportError:
    # VBench's optional packages are not part of `make install`; say how to get one
    return ImportError(f"{module} is not installed: {PIP_NAMES.get(module, 'pip install ' + module)}")


def _save(obj, path: Path) -> None:
    import torch  # heavy: only when files are written

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _fill_unset(model) -> None:
    """Weights a network leaves for its checkpoint to fill (zeros, or torch.empty garbage):
    ViCLIP's projections are all zeros, so every feature is 0 and its cosine NaN. Matrices
    that are (nearly) zero, non-finite or huge get N(0, 0.02), as CLIP initialises them."""
    import torch  # heavy: torch

    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2 and (not torch.isfinite(p).all() or not 1e-6 < p.abs().max() < 100):
                p.normal_(0.0, 0.02)


def _half(state_dict):
    return {k: (v.half() if v.is_floating_point() else v) for k, v in state_dict.items()}


# --------------------------------------------------------------------------- networks

def _save_clip(target: Path, width: int, layers: int, patch: int, embed_dim: int, text_width: int,
               text_heads: int) -> None:
    """A traced CLIP in fp16, as OpenAI's files are. openai-clip 1.0.1's state-dict fallback
    reads the file handle its failed torch.jit.load left at the end (EOFError), so only a
    TorchScript archive loads."""
    if target.is_file():
        return
    import torch  # heavy: torch, openai-clip

    try:
        from clip.model import CLIP
    except ImportError:
        raise _not_installed("clip") from None

    model = CLIP(embed_dim=embed_dim, image_resolution=224, vision_layers=layers, vision_width=width,
                 vision_patch_size=patch, context_length=77, vocab_size=49408, transformer_width=text_width,
                 transformer_heads=text_heads, transformer_layers=12).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, (torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long)),
                                 check_trace=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    torch.jit.save(traced.half(), str(tmp))
    os.replace(tmp, target)


def _write_clip_b32(cache: Path) -> None:
    _save_clip(cache / "clip_model" / "ViT-B-32.pt", 768, 12, 32, 512, 512, 8)


def _write_clip_l14(cache: Path) -> None:
    _save_clip(cache / "clip_model" / "ViT-L-14.pt", 1024, 24, 14, 768, 768, 12)


def _dino(cache: Path, torch_home: Path) -> None:
    try:
        from timm.models.vision_transformer import VisionTransformer  # heavy: timm imports torch
    except ImportError:
        raise _not_installed("timm") from None

    repo = cache / "dino_model" / "facebookresearch_dino_main"
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "hubconf.py").write_text(_DINO_HUBCONF, encoding="utf-8")
    model = VisionTransformer(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4, qkv_bias=True,
                              num_classes=0)
    state = model.state_dict()
    _save(state, cache / "dino_model" / "dino_vitbase16_pretrain.pth")
    for rel, _ in TORCH_HUB_FILES["subject_consistency"]:
        _save(state, torch_home / "hub" / rel)


def _aesthetic(cache: Path) -> None:
    import torch.nn as nn  # heavy: torch

    _write_clip_l14(cache)
    _save(nn.Linear(768, 1).state_dict(), cache / "aesthetic_model" / "emb_reader" / "sa_0_4_vit_l_14_linear.pth")


def _musiq(cache: Path) -> None:
    try:
        from pyiqa.archs.musiq_arch import MUSIQ  # heavy: pyiqa imports torch
    except ImportError:
        raise _not_installed("pyiqa") from None

    # VBench builds MUSIQ(pretrained_model_path=...): num_class stays 1 (the SPAQ head)
    _save(MUSIQ(pretrained=False, num_class=1).state_dict(), cache / "pyiqa_model" / "musiq_spaq_ckpt-358bb6af.pth")


def _amt(cache: Path) -> None:
    from omegaconf import OmegaConf
    import vbench  # heavy: vbench imports torch
    from vbench.third_party.amt.utils.build_utils import build_from_cfg

    cfg = OmegaConf.load(Path(vbench.__file__).parent / "third_party" / "amt" / "cfgs" / "AMT-S.yaml").network
    _save({"state_dict": build_from_cfg(cfg).state_dict()}, cache / "amt_model" / "amt-s.pth")


def _raft(cache: Path) -> None:
    try:
        from easydict import EasyDict
    except ImportError:
        raise _not_installed("easydict") from None
    from vbench.third_party.RAFT.core.raft import RAFT  # heavy: torch

    model = RAFT(EasyDict({"small": False, "mixed_precision": False, "alternate_corr": False}))
    # raft-things.pth was saved from nn.DataParallel: every key starts with 'module.'
    _save({f"module.{k}": v for k, v in model.state_dict().items()}, cache / "raft_model" / "models" / "raft-things.pth")


def _umt(cache: Path) -> None:
    from vbench.third_party.umt.models.modeling_finetune import vit_large_patch16_224  # heavy: torch, timm

    # the arguments vbench.human_action passes to timm's create_model
    model = vit_large_patch16_224(pretrained=False, num_classes=400, all_frames=16, tubelet_size=1,
                                  use_learnable_pos_emb=False, fc_drop_rate=0., drop_rate=0., drop_path_rate=0.2,
                                  attn_drop_rate=0., use_checkpoint=False, checkpoint_num=16, use_mean_pooling=True,
                                  init_scale=0.001)
    _save(_half(model.state_dict()), cache / "umt_model" / "l16_ptk710_ftk710_ftk400_f16_res224.pth")


def _viclip_tokenizer(cache: Path):
    """vbench's ViCLIP SimpleTokenizer class, imported so that its import-time default
    (``default_bpe()``: ``{vbench.utils.CACHE_DIR}/ViCLIP/...``, which runs wget when missing)
    looks in ``cache``, where the vocabulary already is."""
    import vbench.utils  # heavy: vbench imports torch

    saved = vbench.utils.CACHE_DIR
    vbench.utils.CACHE_DIR = str(cache)
    try:
        from vbench.third_party.ViCLIP.simple_tokenizer import SimpleTokenizer
    finally:
        vbench.utils.CACHE_DIR = saved
    return SimpleTokenizer


def _viclip(cache: Path) -> None:
    import open_clip  # heavy: torch; only to find its copy of CLIP's BPE vocabulary

    bpe = cache / _BPE
    bpe.parent.mkdir(parents=True, exist_ok=True)
    if not bpe.is_file():
        shutil.copyfile(Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz", bpe)
    target = cache / "ViCLIP" / "ViClip-InternVid-10M-FLT.pth"
    if target.is_file():
        return
    tokenizer = _viclip_tokenizer(cache)
    from vbench.third_party.ViCLIP.viclip import ViCLIP  # heavy: vbench

    saved = tokenizer.__init__.__defaults__
    tokenizer.__init__.__defaults__ = (str(bpe),)   # the text encoder's own tokenizer
    try:
        model = ViCLIP(tokenizer=tokenizer(str(bpe)), pretrain=None)
    finally:
        tokenizer.__init__.__defaults__ = saved
    _fill_unset(model)
    _save({"model": _half(model.state_dict())}, target)


_WRITERS: Dict[str, Callable[[Path, Path], None]] = {
    "temporal_flickering": lambda cache, home: None,
    "subject_consistency": _dino,
    "background_consistency": lambda cache, home: _write_clip_b32(cache),
    "appearance_style": lambda cache, home: _write_clip_b32(cache),
    "aesthetic_quality": lambda cache, home: _aesthetic(cache),
    "imaging_quality": lambda cache, home: _musiq(cache),
    "motion_smoothness": lambda cache, home: _amt(cache),
    "dynamic_degree": lambda cache, home: _raft(cache),
    "temporal_style": lambda cache, home: _viclip(cache),
    "overall_consistency": lambda cache, home: _viclip(cache),
}
RUNNABLE = tuple(_WRITERS)
# human_action's file, for an environment where vbench.human_action runs (numpy < 2, timm < 1.0)
_EXTRA_WRITERS: Dict[str, Callable[[Path, Path], None]] = {"human_action": lambda cache, home: _umt(cache)}


def write_random_cache(dimension: str, cache: os.PathLike, torch_home: os.PathLike, seed: int = 0) -> List[Path]:
    """Write random-weight files for ``dimension`` into the VBench cache ``cache`` (and the
    torch hub folder under ``torch_home``, for DINO). Files another dimension already wrote
    (CLIP, ViCLIP) are kept. Returns the files the dimension's declaration in
    metrics/vbench_assets.py names, all of which exist afterwards."""
    writer = _WRITERS.get(dimension) or _EXTRA_WRITERS.get(dimension)
    if writer is None:
        raise ValueError(f"no random-weight writer for {dimension!r}: "
                         + NOT_RUNNABLE.get(dimension, "unknown VBench dimension"))
    import torch  # heavy: seeding the random weights

    torch.manual_seed(seed)
    cache, torch_home = Path(cache), Path(torch_home)
    writer(cache, torch_home)
    declared = [cache / rel for rel, _ in CACHE_FILES[dimension]]
    declared += [torch_home / "hub" / rel for rel, _ in TORCH_HUB_FILES.get(dimension, [])]
    missing = [str(p) for p in declared if not p.is_file()]
    if missing:
        raise AssertionError(f"{dimension}: declared files not written: {missing}")
    return declared


def install_pkg_resources_if_missing(monkeypatch) -> bool:
    """Put :func:`ensure_pkg_resources`'s stand-in into sys.modules for one test."""
    shim = ensure_pkg_resources()
    if shim is not None:
        monkeypatch.setitem(sys.modules, "pkg_resources", shim)
    return shim is not None
