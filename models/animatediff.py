"""AnimateLCM, AnimateLCM-R and the AnimateDiff teachers on diffusers' AnimateDiffPipeline.

All four methods share one assembly: an SD1.5 UNet (optionally moved towards a
personalized base by alpha), wrapped with a motion adapter into a UNetMotionModel
(gamma), plus an optional spatial LoRA fused at scale beta, and a scheduler with the
official settings. The weight mode only decides where the components come from.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from diffusers import (AnimateDiffPipeline, AutoencoderKL, MotionAdapter, StableDiffusionPipeline, UNet2DConditionModel,
                       UNetMotionModel)
from diffusers.utils import logging as diffusers_logging
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from common.errors import InputError
from common.files import atomic_path

from models import tiny as tiny_parts
from models.device import DTYPES, resolve_device_dtype
from models.fast import PhaseClock, apply_fast_path, decode_to_uint8
from models.lora import check_convention, diffusers_record, fuse_authors, read_lora
from models.motion_norm import apply_motion_norm, check_motion_norm
from models.registry import WEIGHT_MODES, spec_with_overrides
from models.schedulers import make_scheduler, resolve_sampler
from models.specs import QUANTIZE, ModelSpec
from models.successors import load_motion_file, merge_peft_lora
from models.weights import (UnsafeWeights, WeightsNotFound, check_sha256, fuse_residual, load_with_clear_error, looks_local,
                      resolve_file, scale_motion_residual)

log = logging.getLogger("lcmbench.models")

_BUILD_OPTIONS = ("device", "dtype", "cache_dir", "seed", "allow_unsafe_pickle", "fast", "nfe")


def _stable_hash(text: str) -> int:

    return int(hashlib.sha256(str(text).encode()).hexdigest()[:6], 16)


def default_cache_dir() -> Path:
    return Path(os.environ.get("LCMBENCH_CACHE", Path.home() / ".cache" / "lcmbench")).expanduser()


class VideoModel:
    """One method, ready to generate. ``pipeline`` is the diffusers pipeline it drives."""
    def __init__(self, pipeline, spec: ModelSpec, weights: str, device: str, dtype: str,
                 provenance: Dict[str, Any], fast: Optional[Dict[str, Any]] = None):
        self.pipeline = pipeline
        self.spec = spec
        self.weights = weights
        self.device = device
        self.dtype = dtype
        self.provenance = provenance
        self.scheduler_config = resolve_sampler(spec.sampler)
        self.last_timing: Dict[str, float] = {}
        self.fast: Dict[str, Any] = dict(fast or {"enabled": False})   # what models.fast applied

    @property
    def guidance_scale(self) -> float:
        return float(self.spec.guidance_scale)

    def describe(self) -> Dict[str, Any]:
        spec = asdict(self.spec)
        spec["sampler"] = self.scheduler_config
        return {"spec": spec, "weights_mode": self.weights, "device": self.device, "dtype": self.dtype,
                "cfg": self.guidance_scale > 1.0, "fast": self.fast, **self.provenance}

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], seeds: Sequence[int], num_inference_steps: int,
                 num_frames: int = 16, height: int = 512, width: int = 512,
                 decode_chunk_size: int = 16) -> np.ndarray:
        """uint8 frames [B, F, H, W, 3]; clip b uses torch.Generator().manual_seed(seeds[b]).

        Text encoding, denoising and VAE decoding are timed separately (last_timing) so
        denoising time can be reported without the VAE, as the paper does."""
        if len(prompts) != len(seeds):
            raise InputError(f"generate() got {len(prompts)} prompts but {len(seeds)} seeds.")
        pipe = self.pipeline
        # CPU generators keep the initial noise identical across devices and batch sizes.
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        do_cfg = self.guidance_scale > 1.0
        negative = [self.spec.negative_prompt] * len(prompts) if do_cfg else None

        clock = PhaseClock(self.device)
        self._sync()
        clock.mark()
        prompt_embeds, negative_embeds = pipe.encode_prompt(list(prompts), self.device, 1, do_cfg, negative)
        clock.mark()
        latents = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds,
                       num_frames=num_frames, height=height, width=width,
                       num_inference_steps=num_inference_steps, guidance_scale=self.guidance_scale,
                       generator=generators, output_type="latent").frames
        clock.mark()
        if self.fast.get("enabled") and self.fast.get("uint8_on_device"):
            frames, finite = decode_to_uint8(pipe, latents, decode_chunk_size, self.spec.quantize)
        else:
            video = pipe.decode_latents(latents, decode_chunk_size)
            frames = np.asarray(pipe.video_processor.postprocess_video(video=video, output_type="np"),
                                dtype=np.float32)
            finite = np.isfinite(frames).reshape(len(prompts), -1).all(axis=1)
            frames = to_uint8(frames, self.spec.quantize)
        clock.mark()
        text_s, denoise_s, decode_s = clock.intervals_s()
        self.last_timing = {"text_encode_s": text_s, "denoise_s": denoise_s, "decode_s": decode_s,
                            "batch_size": len(prompts), "clock": clock.name,
                            "finite": finite.tolist()}
        return frames


def to_uint8(frames, quantize: str = "truncate") -> np.ndarray:
    """float frames in [0, 1] (numpy or list of arrays) -> uint8 [B, F, H, W, 3].

    quantize "truncate": floor(x * 255), as the authors' save_videos_grid
    (``(x * 255).numpy().astype(np.uint8)``); "round": round half to even."""
    if quantize not in QUANTIZE:
        raise InputError(f"quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}.")
    arr = np.nan_to_num(np.asarray(frames, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    scaled = arr * np.float32(255.0)
    scaled = np.floor(scaled) if quantize == "truncate" else np.round(scaled)
    return np.clip(scaled, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- components

def _full_size_components(seed: int, cache_dir: Path) -> Dict[str, Any]:
    """The SD1.5 + AnimateDiff architecture at full size with random weights (timing only)."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
    torch.manual_seed(seed + 1)
    motion_adapter = MotionAdapter(block_out_channels=(320, 640, 1280, 1280), motion_layers_per_block=2,
                                   motion_max_seq_length=32, use_motion_mid_block=True)
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=512,
                        block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    torch.manual_seed(seed + 3)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                num_attention_heads=12, max_position_embeddings=77,
                                                vocab_size=tiny_parts.CLIP_VOCAB_SIZE, hidden_act="quick_gelu",
                                                projection_dim=768))
    return dict(unet=unet, motion_adapter=motion_adapter, vae=vae, text_encoder=text_encoder,
                tokenizer=tiny_parts.clip_tokenizer(cache_dir))


def _pretrained_components(spec: ModelSpec, dtype: torch.dtype) -> Dict[str, Any]:

    base, rev = spec.base, spec.revision
    kw = dict(torch_dtype=dtype, revision=rev)
    return dict(
        unet=load_with_clear_error(lambda: UNet2DConditionModel.from_pretrained(base, subfolder="unet", **kw),
                                   base, "model.base"),
        vae=load_with_clear_error(lambda: AutoencoderKL.from_pretrained(base, subfolder="vae", **kw),
                                  base, "model.base"),
        text_encoder=load_with_clear_error(
            lambda: CLIPTextModel.from_pretrained(base, subfolder="text_encoder", **kw), base, "model.base"),
        tokenizer=load_with_clear_error(
            lambda: CLIPTokenizer.from_pretrained(base, subfolder="tokenizer", revision=rev), base, "model.base"),
        # a bare state-dict file goes into a default MotionAdapter (models/successors.py)
        motion_adapter=MotionAdapter() if spec.motion_adapter_file else load_with_clear_error(
            lambda: MotionAdapter.from_pretrained(spec.motion_adapter, **kw), spec.motion_adapter,
            "model.motion_adapter"),
    )


def _personalized_pretrained(spec: ModelSpec, base_components: Dict[str, Any], dtype: torch.dtype,
                             allow_unsafe_pickle: bool = False):
    """UNet, text encoder and VAE (None when the checkpoint has none) of the personalized
    base: a diffusers folder / Hub id, or a single-file SD1.5 checkpoint converted with the
    base repo's config (single files carry their own VAE)."""

    ref = spec.personalized
    if ref.endswith((".safetensors", ".ckpt")):
        path = resolve_file(ref, None, "model.personalized") if looks_local(ref) else None
        if path is None:
            raise InputError(f"model.personalized='{ref}': a single-file checkpoint must be a local path.")
        if path.suffix != ".safetensors" and not allow_unsafe_pickle:
            raise UnsafeWeights(f"{path}: a pickle .ckpt can run code when loaded. Convert it to .safetensors, or if "
                                f"you trust its source run with runner.allow_unsafe_pickle=true.")
        pipe = load_with_clear_error(lambda: StableDiffusionPipeline.from_single_file(
            str(path), config=spec.base, torch_dtype=dtype, safety_checker=None), spec.base, "model.base")
        return pipe.unet, pipe.text_encoder, pipe.vae, {"personalized_sha256": check_sha256(path, None)}
    kw = dict(torch_dtype=dtype, revision=spec.revision)
    unet = load_with_clear_error(lambda: UNet2DConditionModel.from_pretrained(ref, subfolder="unet", **kw),
                                 ref, "model.personalized")
    text = load_with_clear_error(lambda: CLIPTextModel.from_pretrained(ref, subfolder="text_encoder", **kw),
                                 ref, "model.personalized")
    vae = None
    if spec.personalized_vae:
        try:
            vae = load_with_clear_error(lambda: AutoencoderKL.from_pretrained(ref, subfolder="vae", **kw),
                                        ref, "model.personalized")
        except WeightsNotFound:
            log.warning("personalized base %s has no vae/ folder: SD1.5's VAE is kept", ref)
    return unet, text, vae, {}


def _lora_path(spec: ModelSpec, weights: str, seed: int, cache_dir: Path, unet2d) -> Path:
    """The spatial LoRA file; tiny runs write a seeded tiny one (kohya keys, as the real
    file) so that the same reading and fusing code runs."""
    if weights != "tiny" or looks_local(spec.lora):   # a file the user wrote is read in tiny mode too
        return resolve_file(spec.lora, spec.lora_file, "model.lora", spec.revision)

    path = cache_dir / "tiny" / f"tiny_lcm_lora_kohya_seed{seed}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        with atomic_path(path, ".safetensors") as tmp:
            save_file(tiny_parts.tiny_lora_state_dict(unet2d, seed), str(tmp))
    return path


def _load_lora(pipe, spec: ModelSpec, weights: str, seed: int, cache_dir: Path, unet2d,
               allow_unsafe_pickle: bool = False) -> Dict[str, Any]:
    """Fuse the spatial LoRA at scale beta (equation 2) with the spec's convention:
    "authors" W += beta/8 * up @ down (alpha keys ignored), "diffusers" through
    diffusers' loader (alpha / rank). The record says what the file implies and what
    was applied."""
    if spec.lora in (None, "none") or spec.lora_scale == 0.0:
        return {"lora": None}
    if spec.lora_convention == "peft":   # a PEFT adapter over the whole motion UNet (MCM)
        pipe.unet, record = merge_peft_lora(pipe.unet, spec, weights, cache_dir, seed)
        return record
    if weights == "random":
        return {"lora": None, "lora_note": "random weight mode: LoRA skipped (fused weights do not change speed)"}
    path = _lora_path(spec, weights, seed, cache_dir, unet2d)
    sha = check_sha256(path, None)
    state = read_lora(path, allow_unsafe_pickle)
    if spec.lora_convention == "authors":
        fused = fuse_authors(pipe.unet, state, float(spec.lora_scale))
    else:
        fused = diffusers_record(state, pipe.unet, float(spec.lora_scale))
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="spatial_lora")
        pipe.fuse_lora(lora_scale=float(spec.lora_scale), adapter_names=["spatial_lora"])
        pipe.unload_lora_weights()  # weights are fused: drop the adapter layers for speed
    seeded = weights == "tiny" and not looks_local(spec.lora)
    return {"lora": "tiny seeded LoRA (kohya keys)" if seeded else str(path),
            "lora_sha256": sha, "lora_fusion": fused}


def _tiny_checkpoint(path: str, tiny_adapter) -> tuple:
    """A MotionAdapter folder (save_pretrained) read in tiny mode, where it must have the
    tiny architecture; returns the adapter and what was read."""
    adapter = load_with_clear_error(lambda: MotionAdapter.from_pretrained(os.path.expanduser(path)), path,
                                    "model.motion_adapter")
    want = {k: tiny_adapter.config[k] for k in ("block_out_channels", "motion_layers_per_block",
                                                "motion_num_attention_heads", "motion_norm_num_groups")
            if k in tiny_adapter.config}
    got = {k: adapter.config.get(k) for k in want}
    if {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in got.items()} != \
            {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in want.items()}:
        raise InputError(f"{path} is not a motion module of the tiny architecture ({got}; tiny: {want}): "
                         f"weights=tiny reads checkpoints saved from models.tiny's components. Evaluate "
                         f"full-size checkpoints with weights=pretrained.")
    files = sorted(Path(os.path.expanduser(path)).glob("diffusion_pytorch_model*"))
    return adapter, {"motion_adapter": path,
                     "motion_adapter_sha256": check_sha256(files[0], None) if files else None}


def _quiet_libraries() -> None:

    diffusers_logging.set_verbosity_error()


def build_model(name: str, weights: str = "tiny", device: str = "auto", dtype: str = "auto",
                cache_dir: Optional[str] = None, seed: int = 0, allow_unsafe_pickle: bool = False,
                fast: Any = None, nfe: Optional[int] = None, **overrides: Any) -> VideoModel:
    """One method, ready to generate. ``nfe``: the step count, for models whose motion
    module depends on it (``motion_adapter_file`` with ``{nfe}``)."""

    _quiet_libraries()
    if weights not in WEIGHT_MODES:
        raise InputError(f"Unknown weight mode '{weights}': use one of {', '.join(WEIGHT_MODES)}.")
    spec_fields = set(ModelSpec.__dataclass_fields__)
    unknown = set(overrides) - spec_fields
    if unknown:
        raise InputError(f"Unknown model setting(s) {sorted(unknown)} for '{name}'. Model settings: "
                         f"{', '.join(sorted(spec_fields - {'name'}))}; build options: {', '.join(_BUILD_OPTIONS)}.")
    spec = spec_with_overrides(name, overrides)
    resolve_sampler(spec.sampler)  # fail early on a bad sampler setting
    check_motion_norm(spec.motion_norm)
    check_convention(spec.lora_convention)
    to_uint8(np.zeros((1,), np.float32), spec.quantize)
    device, dtype_name = resolve_device_dtype(device, dtype)
    torch_dtype = DTYPES[dtype_name]
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    provenance: Dict[str, Any] = {}

    if weights == "tiny":
        parts = tiny_parts.tiny_components(seed, cache)
        provenance["weights"] = {"mode": "tiny", "seed": seed}
        if looks_local(spec.motion_adapter) and not spec.motion_adapter_file:
            # a checkpoint the user wrote is read, also in tiny mode (saved from the tiny architecture)
            parts["motion_adapter"], record = _tiny_checkpoint(spec.motion_adapter, parts["motion_adapter"])
            provenance["weights"].update(record)
        else:
            # each distinct motion-module reference gets its own tiny motion module, so the
            # teachers differ from AnimateLCM as their checkpoints do
            torch.manual_seed(seed + _stable_hash(spec.motion_adapter))
            parts["motion_adapter"] = type(parts["motion_adapter"])(**parts["motion_adapter"].config)
    elif weights == "random":
        parts = _full_size_components(seed, cache)
        provenance["weights"] = {"mode": "random", "seed": seed, "architecture": "SD1.5 + AnimateDiff, full size"}
    else:
        parts = _pretrained_components(spec, torch_dtype)
        provenance["weights"] = {"mode": "pretrained", "base": spec.base, "motion_adapter": spec.motion_adapter,
                                 "revision": spec.revision}

    unet2d = parts["unet"]
    if spec.personalized and spec.personalized_alpha:
        pers_unet = pers_text = pers_vae = None
        if weights == "tiny" and looks_local(spec.personalized):   # a tiny diffusers folder the user saved
            pers_unet, pers_text, pers_vae, extra = _personalized_pretrained(spec, parts, torch.float32)
            provenance["personalized"] = {"ref": spec.personalized, **extra}
        elif weights == "tiny":
            pers_unet = tiny_parts.tiny_personalized_unet(unet2d, seed + 7)
            if spec.personalized_vae:
                pers_vae = tiny_parts.tiny_personalized_unet(parts["vae"], seed + 8)
            provenance["personalized"] = {"ref": "tiny seeded perturbation of the base"}
        elif weights == "random":
            provenance["personalized"] = {"ref": "skipped in random weight mode"}
        else:
            pers_unet, pers_text, pers_vae, extra = _personalized_pretrained(spec, parts, torch_dtype, allow_unsafe_pickle)
            provenance["personalized"] = {"ref": spec.personalized, **extra}
        alpha = float(spec.personalized_alpha)
        swapped = []
        for part, pers in (("unet", pers_unet), ("text_encoder", pers_text),
                           ("vae", pers_vae if spec.personalized_vae else None)):
            if pers is not None:
                fuse_residual(unet2d if part == "unet" else parts[part], pers, alpha)
                swapped.append(part)
        # alpha = 1 replaces each part, as the authors' code does (UNet, text encoder and VAE)
        provenance["personalized"].update({"alpha": alpha, "parts": swapped})

    if spec.motion_adapter_file:
        provenance.update(load_motion_file(parts["motion_adapter"], spec, weights, nfe, cache,
                                           seed + _stable_hash(spec.motion_adapter), allow_unsafe_pickle))
    unet = UNetMotionModel.from_unet2d(unet2d, parts["motion_adapter"])
    provenance["motion_norm"] = {"mode": spec.motion_norm, "modules": apply_motion_norm(unet, spec.motion_norm)}
    scale_motion_residual(unet, float(spec.motion_scale))
    pipe = AnimateDiffPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
                               unet=unet, motion_adapter=parts["motion_adapter"],
                               scheduler=make_scheduler(resolve_sampler(spec.sampler)))
    provenance.update(_load_lora(pipe, spec, weights, seed + _stable_hash(f"{spec.lora}/{spec.lora_file}"), cache,
                                 unet2d, allow_unsafe_pickle))
    pipe.to(device=device, dtype=None if torch_dtype == torch.float32 else torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    fast_info = apply_fast_path(pipe, fast, device)   # fast=None: the plain diffusers path
    return VideoModel(pipe, spec, weights, device, dtype_name, provenance, fast=fast_info)


def share_weights_as(model, name: str, **overrides: Any):
    """A VideoModel for method ``name`` that reuses ``model``'s modules with the other
    method's scheduler and guidance. Only for random weights, where every method has
    the same architecture and speed does not depend on weight values: it saves a
    build (and a compile) per method when timing."""
    if model.weights != "random":
        raise InputError(f"share_weights_as() is for random weights only (this model has '{model.weights}' "
                         f"weights, which differ between methods): build '{name}' with models.build().")
    spec = spec_with_overrides(name, overrides)
    parts = dict(model.pipeline.components)
    parts["scheduler"] = make_scheduler(resolve_sampler(spec.sampler))
    pipe = AnimateDiffPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    provenance = dict(model.provenance)
    provenance["shared_modules_from"] = model.spec.name
    return VideoModel(pipe, spec, model.weights, model.device, model.dtype, provenance, fast=model.fast)
