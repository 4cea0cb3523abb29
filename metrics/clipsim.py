"""CLIPSIM: caption-frame similarity with open_clip ViT-H/14 (LAION-2B).

Definition (AnimateLCM Table 1, official metrics code): for every frame, the cosine
similarity between the CLIP image embedding of the frame and the CLIP text
embedding of the clip's caption, times 100, with no clamping at 0 (unlike the
``max(100*cos, 0)`` CLIPScore of torchmetrics). A clip's value is the mean over its
frames; the reported CLIPSIM is the mean over clips.

Per-clip features are the per-frame scores (float64 [B, F]), so the runner keeps
F numbers per clip and the frame mean can be recomputed later.

Preprocessing reproduces open_clip's eval transform (resize the shorter side to
224 with bicubic antialiasing, center crop 224, scale to [0, 1], CLIP mean/std)
on uint8 tensors, so it runs batched and on the GPU. open_clip resizes PIL images
with PIL's fixed-point bicubic filter; torchvision's tensor resize computes the
same antialiased bicubic filter in floating point and rounds back to uint8. The
resized pixels therefore match open_clip's within 2 uint8 levels (most are
identical; 224x224 inputs are bit-identical because no resize happens), about
0.03 after normalisation. ``tests/test_clipsim.py`` checks this against
``open_clip.image_transform`` on PIL images.

Weights: ``ViT-H-14`` / ``laion2b_s32b_b79k`` is read from the Hugging Face cache
(hub id ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``, file
``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``) or from a
local file or folder (``path=``). With ``HF_HUB_OFFLINE=1`` nothing is ever
downloaded; a missing file raises :class:`CLIPWeightsNotFound` saying how to fetch
it. ``weights="tiny"`` builds a small randomly initialised CLIP from
:data:`TINY_CONFIG` with a fixed seed: for plumbing tests and smoke runs only, its
numbers mean nothing.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import numpy as np
from huggingface_hub import hf_hub_download, try_to_load_from_cache

from common.errors import InputError, LcmbenchError
from common.files import sha256_file
from common.names import did_you_mean
from metrics.options import options_schema, parse_options
from models.weights import hub_cache_dir, hub_offline

if TYPE_CHECKING:  # torch is imported lazily so that listing metrics stays light
    import torch

from metrics.base import ClipMetric, MetricFacts

log = logging.getLogger(__name__)

VERSION = 1
DEFINITION = ("CLIPSIM = mean over clips of the mean over frames of "
              "100*cos(CLIP image emb, CLIP text emb); no clamping")
DEFAULT_MODEL = "ViT-H-14"
DEFAULT_PRETRAINED = "laion2b_s32b_b79k"
# open_clip's own preference order for weights in a hub repo or folder.
PAPER_MODEL = ("ViT-H-14", "laion2b_s32b_b79k")
PAPER_HUB_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"   # where open_clip fetches that tag from
WEIGHT_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

# A small CLIP with the real tokenizer (vocab 49408, context 77) and the real
# input size, so the same preprocessing and tokenisation paths are exercised.
TINY_CONFIG: Dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

_DTYPES = ("auto", "fp32", "fp16", "bf16")
_WEIGHT_MODES = ("pretrained", "tiny")


class CLIPWeightsNotFound(LcmbenchError, FileNotFoundError):
    """The CLIP weights are neither at the given path nor in the Hugging Face cache."""


# --------------------------------------------------------------------------- weights


def hub_location(model: str, pretrained: str) -> tuple:
    """(hub repo id, candidate file names) for an open_clip pretrained tag. The paper's
    model is known here, so the common case does not import open_clip (and torch)."""
    if (model, pretrained) == PAPER_MODEL:
        return PAPER_HUB_REPO, WEIGHT_FILENAMES
    import open_clip  # heavy (torch); only for tags other than the paper's

    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise InputError(f"open_clip has no pretrained tag '{pretrained}' for model '{model}'. "
                         f"Known tags: {', '.join(tags) or 'none'}. Or pass path= to a weights file.")
    hub = cfg.get("hf_hub", "")
    if not hub:
        raise InputError(f"open_clip tag '{model}/{pretrained}' is not hosted on the Hugging Face Hub "
                         f"(url: {cfg.get('url') or 'none'}); download the file yourself and pass path=.")
    repo_id, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
    if filename:
        stem, ext = os.path.splitext(filename)
        files = ((stem + ".safetensors",) if ext in (".bin", ".pth") else ()) + (filename,)
    else:
        files = WEIGHT_FILENAMES
    return repo_id, tuple(files)


def _how_to_fetch(repo_id: str, files: Sequence[str]) -> str:
    return (f"Fetch it on a machine with internet access, e.g. `huggingface-cli download {repo_id} {files[-1]}` "
            f"(or `hf download {repo_id} {files[-1]}`), then copy the Hugging Face cache here (HF_HOME / "
            f"HF_HUB_CACHE), or pass path= to the file or to a folder holding one of: {', '.join(files)}.")


def resolve_weights_file(model: str = DEFAULT_MODEL, pretrained: str = DEFAULT_PRETRAINED,
                         path: Optional[str] = None) -> Path:
    """Find the weights file: a local path, else the HF cache, else (online only) the Hub."""
    if path is not None:
        p = Path(os.path.expanduser(str(path)))
        if p.is_file():
            return p
        if p.is_dir():
            for name in WEIGHT_FILENAMES + ("open_clip_pytorch_model.safetensors", "model.safetensors",
                                            "pytorch_model.bin"):
                if (p / name).is_file():
                    return p / name
            raise CLIPWeightsNotFound(f"CLIP weights folder '{p}' holds none of "
                                      f"{', '.join(WEIGHT_FILENAMES)}: put the open_clip weights file there "
                                      f"or pass path= to the file itself.")
        raise CLIPWeightsNotFound(f"CLIP weights path '{p}' does not exist: fix path= (a weights file or a "
                                  f"folder holding {WEIGHT_FILENAMES[-1]}).")

    repo_id, files = hub_location(model, pretrained)
    cache = hub_cache_dir()

    for name in files:
        hit = try_to_load_from_cache(repo_id, name, cache_dir=cache)
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    if hub_offline():
        raise CLIPWeightsNotFound(
            f"CLIP weights for open_clip '{model}' pretrained '{pretrained}' are not in the Hugging Face cache "
            f"'{cache}': looked for hub id {repo_id} file {' or '.join(files)}. HF_HUB_OFFLINE is set, so "
            f"nothing is downloaded. " + _how_to_fetch(repo_id, files))

    errors = []
    for name in files:
        log.warning("CLIP weights %s/%s are not cached: downloading from the Hugging Face Hub into %s "
                    "(set HF_HUB_OFFLINE=1 to forbid downloads)", repo_id, name, cache)
        try:
            return Path(hf_hub_download(repo_id, name, cache_dir=cache))
        except Exception as err:  # try the next candidate, report all at the end
            errors.append(f"{name}: {type(err).__name__}: {err}")
    raise CLIPWeightsNotFound(
        f"CLIP weights for open_clip '{model}' pretrained '{pretrained}' (hub id {repo_id}, file "
        f"{' or '.join(files)}) are not cached in '{cache}' and the download failed ({'; '.join(errors)}). "
        + _how_to_fetch(repo_id, files))


def build_tiny_clip(seed: int = 0):
    """The tiny CLIP of :data:`TINY_CONFIG`, randomly initialised from ``seed``."""
    # heavy: torch / open_clip, only when CLIP is built: the metric's facts and options load without them
    import open_clip
    import torch  # heavy: as above

    # fork_rng: building the tiny model must not move the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(
            embed_dim=TINY_CONFIG["embed_dim"],
            vision_cfg=open_clip.CLIPVisionCfg(**TINY_CONFIG["vision_cfg"]),
            text_cfg=open_clip.CLIPTextCfg(**TINY_CONFIG["text_cfg"]),
        )
    return model.eval()


# --------------------------------------------------------------------------- metric

class CLIPSimScore(MetricFacts):
    """CLIPSIM's facts, read by the plug-in (metrics/clipsim_plugin.py) and the metric alike."""

    name = "clipsim"
    display_name = "CLIPSIM"
    higher_is_better = True
    decimals = 2
    tolerance = ("abs", 0.25)   # CLIPSIM points (x100 scale)
    unit = " (x100)"


class CLIPSimMetric(CLIPSimScore, ClipMetric):
    """Per-frame caption similarity; see the module docstring for the definition."""

    def __init__(self, model_obj, tokenizer, *, device: str = "cpu", weights: str = "pretrained",
                 model: str = DEFAULT_MODEL, pretrained: Optional[str] = DEFAULT_PRETRAINED,
                 weights_file: Optional[str] = None, weights_sha256: Optional[str] = None,
                 from_path: bool = False, batch_size: int = 32, dtype: str = "fp32", seed: Optional[int] = None,
                 mean: Sequence[float] = (0.48145466, 0.4578275, 0.40821073),
                 std: Sequence[float] = (0.26862954, 0.26130258, 0.27577711)):
        # heavy: as above
        import torch

        self.device = torch.device(device)
        self.model = model_obj.to(self.device).eval()
        self.tokenizer = tokenizer
        self.weights = weights
        self.model_name = model
        self.pretrained = pretrained
        self.weights_file = weights_file
        self.weights_sha256 = weights_sha256
        self.from_path = from_path
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self.seed = seed
        size = self.model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._text_cache: Dict[str, "torch.Tensor"] = {}
        if weights == "tiny":
            tag = f"tiny-seed{seed}"
        elif from_path:
            # A user-supplied file may hold any fine-tune: key it by content.
            tag = f"{model}-sha256-{(weights_sha256 or 'unknown')[:12]}"
        else:
            tag = f"{model}-{pretrained}"
        # Half-precision embeddings differ slightly from fp32 ones: keep them apart.
        self.feature_key = f"clipsim/{tag}" + ("" if dtype == "fp32" else f"/{dtype}")

    # -- provenance
    def describe(self) -> Dict[str, Any]:
        # heavy: as above
        import open_clip

        out = super().describe()
        out.update({
            "version": VERSION,
            "definition": DEFINITION,
            "model": self.model_name if self.weights != "tiny" else "tiny",
            "pretrained": self.pretrained if self.weights != "tiny" else None,
            "weights": self.weights,
            "weights_file": self.weights_file,
            "weights_source": "path" if self.from_path else ("random" if self.weights == "tiny" else "hf_cache"),
            "weights_sha256": self.weights_sha256,
            "seed": self.seed,
            "dtype": self.dtype,
            "device": str(self.device),
            "batch_size": self.batch_size,
            "preprocess": {"resize": f"shorter side to {self.image_size}, bicubic, antialias",
                           "crop": f"center {self.image_size}x{self.image_size}",
                           "mean": list(self.mean), "std": list(self.std),
                           "matches": "open_clip eval transform within 2/255 per pixel"},
            "open_clip_version": open_clip.__version__,
        })
        if self.weights == "tiny":
            out["tiny_config"] = TINY_CONFIG
            out["note"] = "randomly initialised tiny CLIP: plumbing only, values are meaningless"
        return out

    # -- internals
    def _autocast(self):
        # heavy: as above
        import torch

        if self.dtype == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type,
                              dtype=torch.float16 if self.dtype == "fp16" else torch.bfloat16)

    def preprocess(self, frames_uint8) -> "torch.Tensor":
        """uint8 [N, H, W, 3] (numpy or tensor) -> normalised float [N, 3, S, S] on the device."""
        # heavy: as above
        import torch
        # heavy: as above
        from torchvision.transforms import InterpolationMode
        # heavy: as above
        from torchvision.transforms.v2 import functional as TF

        x = torch.as_tensor(frames_uint8).to(self.device).permute(0, 3, 1, 2)
        x = TF.resize(x, self.image_size, interpolation=InterpolationMode.BICUBIC, antialias=True)
        x = TF.center_crop(x, [self.image_size, self.image_size])
        x = x.float().div_(255.0)
        return TF.normalize(x, list(self.mean), list(self.std))

    def encode_frames(self, frames_uint8) -> "torch.Tensor":
        """Unit-norm float64 image embeddings [N, D], batched over frames."""
        # heavy: as above
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(frames_uint8), self.batch_size):
                x = self.preprocess(frames_uint8[i:i + self.batch_size])
                with self._autocast():
                    emb = self.model.encode_image(x)
                out.append(emb.double())
        emb = torch.cat(out)
        return emb / emb.norm(dim=-1, keepdim=True)

    def encode_prompts(self, prompts: Sequence[str]) -> "torch.Tensor":
        """Unit-norm float64 text embeddings [len(prompts), D]; each distinct caption is encoded once."""
        # heavy: as above
        import torch

        # one caption per call: float32 kernels round differently for other batch sizes,
        # and a caption's embedding must not depend on which captions came with it
        for p in dict.fromkeys(prompts):
            if p in self._text_cache:
                continue
            with torch.inference_mode():
                tokens = self.tokenizer([p]).to(self.device)
                with self._autocast():
                    emb = self.model.encode_text(tokens)
                emb = emb.double()
                self._text_cache[p] = (emb / emb.norm(dim=-1, keepdim=True))[0]
        return torch.stack([self._text_cache[p] for p in prompts])

    # -- ClipMetric
    def extract(self, frames: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """Per-frame scores 100*cos(frame, caption), float64 [B, F]."""
        frames = _check_frames(frames)
        prompts = _check_prompts(prompts, frames.shape[0])
        b, f = frames.shape[:2]
        img = self.encode_frames(frames.reshape(b * f, *frames.shape[2:])).reshape(b, f, -1)
        txt = self.encode_prompts(prompts)
        scores = 100.0 * (img * txt[:, None, :]).sum(-1)
        return scores.cpu().numpy().astype(np.float64)

    def per_clip(self, features: np.ndarray) -> np.ndarray:
        return _check_features(features).mean(axis=1)

    def score(self, features: np.ndarray, prompts: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        feats = _check_features(features)
        if prompts is not None and len(prompts) != feats.shape[0]:
            raise InputError(f"CLIPSIM score: {feats.shape[0]} feature rows but {len(prompts)} prompts; "
                             f"pass one prompt per stored clip (or prompts=None).")
        per_clip = feats.mean(axis=1)
        return {
            "value": float(per_clip.mean()),
            "n": int(feats.shape[0]),
            "per_clip": [float(v) for v in per_clip],
            "std": float(per_clip.std(ddof=1)) if len(per_clip) > 1 else 0.0,
            "n_frames": int(feats.shape[1]),
            "definition": DEFINITION,
        }


def _check_frames(frames: Any) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"CLIPSIM extract: frames must be a numpy uint8 array [B, F, H, W, 3], "
                        f"got {type(frames).__name__}; convert with np.asarray(...).")
    if frames.dtype != np.uint8:
        raise InputError(f"CLIPSIM extract: frames must be uint8 in [0, 255], got dtype {frames.dtype}; "
                         f"convert float frames in [0, 1] with (x * 255).round().astype(np.uint8).")
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise InputError(f"CLIPSIM extract: frames must have shape [B, F, H, W, 3] (channels last, RGB), "
                         f"got {tuple(frames.shape)}.")
    if min(frames.shape[:4]) == 0:
        raise InputError(f"CLIPSIM extract: empty frames array {tuple(frames.shape)}.")
    return frames


def _check_prompts(prompts: Any, batch: int) -> List[str]:
    if isinstance(prompts, str):
        raise TypeError("CLIPSIM extract: prompts must be a sequence of B captions, got a single string; "
                        "wrap it in a list.")
    prompts = list(prompts)
    if len(prompts) != batch:
        raise InputError(f"CLIPSIM extract: {batch} clips but {len(prompts)} prompts; pass one caption per clip.")
    for p in prompts:
        if not isinstance(p, str):
            raise TypeError(f"CLIPSIM extract: every prompt must be a str, got {type(p).__name__}.")
    return prompts


def _check_features(features: Any) -> np.ndarray:
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[1] == 0:
        raise InputError(f"CLIPSIM: features must be per-frame scores [N clips, F frames] as returned by "
                         f"extract(), got shape {feats.shape}.")
    if not np.all(np.isfinite(feats)):
        raise InputError("CLIPSIM: features contain NaN or inf; the stored features are corrupt, re-extract them.")
    return feats


# --------------------------------------------------------------------------- builder

@options_schema
class CLIPSimOptions:
    """``metrics.clipsim.options``: see :func:`build`."""
    device: str = "cpu"
    weights: str = "pretrained"          # pretrained | tiny
    path: Optional[str] = None           # a weights file or folder instead of the HF cache
    model: str = DEFAULT_MODEL
    pretrained: Optional[str] = DEFAULT_PRETRAINED
    batch_size: int = 32
    dtype: str = "auto"                  # auto | fp32 | fp16 | bf16
    seed: int = 0


def build(**kwargs: Any) -> CLIPSimMetric:
    """Build the CLIPSIM metric.

    build(device="cpu", weights="pretrained"|"tiny", path=None, model="ViT-H-14",
          pretrained="laion2b_s32b_b79k", batch_size=32, dtype="auto"|"fp32"|"fp16"|"bf16", seed=0)

    ``dtype="auto"`` is fp16 autocast on CUDA and fp32 elsewhere; half precision is
    GPU-only. ``path`` (a weights file or a folder) replaces the cache lookup.
    """
    o = parse_options(CLIPSimOptions, kwargs, "clipsim")
    device, weights, path, model, pretrained = o.device, o.weights, o.path, o.model, o.pretrained
    batch_size, dtype, seed = o.batch_size, o.dtype, o.seed

    import torch  # heavy: as above

    if weights not in _WEIGHT_MODES:
        raise InputError(f"clipsim: weights must be one of {', '.join(_WEIGHT_MODES)}, got '{weights}'.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"clipsim: batch_size must be a positive int, got {batch_size!r}.")
    if dtype not in _DTYPES:
        raise InputError(f"clipsim: dtype must be one of {', '.join(_DTYPES)}, got '{dtype}'.")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(f"clipsim: device '{device}' is not a torch device; use 'cpu', 'cuda' or 'cuda:N'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("clipsim: device='cuda' was asked for but torch sees no CUDA GPU; use device='cpu'.")
    if dtype == "auto":
        dtype = "fp16" if dev.type == "cuda" else "fp32"
    if dtype != "fp32" and dev.type != "cuda":
        raise InputError(f"clipsim: dtype='{dtype}' autocast is only used on CUDA; on {dev.type} use "
                         f"dtype='fp32' (or 'auto').")

    common = dict(device=device, batch_size=batch_size, dtype=dtype)
    if weights == "tiny":
        if path is not None:
            raise InputError("clipsim: weights='tiny' builds a random model and takes no path=; "
                             "use weights='pretrained' with path= to load a file.")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"clipsim: seed must be an int, got {seed!r}.")
        # heavy: as above
        import open_clip

        tokenizer = open_clip.SimpleTokenizer(context_length=TINY_CONFIG["text_cfg"]["context_length"])
        return CLIPSimMetric(build_tiny_clip(seed), tokenizer, weights="tiny", model="tiny", pretrained=None,
                             seed=seed, **common)

    # heavy: as above
    import open_clip

    if model not in open_clip.list_models():
        raise InputError(f"clipsim: open_clip has no model '{model}'.{did_you_mean(model, open_clip.list_models())}")
    file = resolve_weights_file(model, pretrained, path)
    digest = sha256_file(file)
    # Build the architecture without weights, then load the resolved file: open_clip's
    # own tag loading would go to the network on its own.
    clip_model = open_clip.create_model(model, pretrained=None, device="cpu", precision="fp32")
    try:
        open_clip.load_checkpoint(clip_model, str(file))
    except Exception as err:
        raise InputError(f"clipsim: weights file '{file}' does not fit open_clip model '{model}' "
                         f"({type(err).__name__}: {err}); check model= and the file.") from None
    pcfg = open_clip.get_pretrained_cfg(model, pretrained) if pretrained else {}
    pcfg = pcfg or {}
    if pcfg.get("resize_mode", "shortest") != "shortest" or pcfg.get("interpolation", "bicubic") != "bicubic":
        raise InputError(f"clipsim: pretrained '{pretrained}' uses resize_mode={pcfg.get('resize_mode')} "
                         f"interpolation={pcfg.get('interpolation')}; only shortest-side bicubic is implemented.")
    mean = pcfg.get("mean") or open_clip.OPENAI_DATASET_MEAN
    std = pcfg.get("std") or open_clip.OPENAI_DATASET_STD
    return CLIPSimMetric(clip_model, open_clip.get_tokenizer(model), weights="pretrained", model=model,
                         pretrained=pretrained, weights_file=str(file), weights_sha256=digest,
                         from_path=path is not None, seed=None, mean=mean, std=std, **common)
