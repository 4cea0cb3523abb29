"""The fast generation path: switchable speed options applied to a built pipeline.

Every option keeps the output equal to the plain diffusers path within a stated
tolerance (docs/speed.md: max |difference| of uint8 frames <= 2). What was applied is
returned as a plain dict so results can record it.

Module level imports no torch: bench/plan/config.py reuses the ``FastPath`` dataclass
as its Hydra schema.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any, Dict, List, Mapping
from common.errors import InputError

ATTENTION_CHOICES = ("sdpa", "eager", "default")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class FastPath:
    enabled: bool = False             # False: the plain diffusers path; every option below is ignored
    attention: str = "sdpa"           # sdpa: AttnProcessor2_0 (torch SDPA) | eager: AttnProcessor (bmm) | default: as built
    fuse_qkv: bool = False            # one QKV matmul per self-attention, one KV matmul per cross-attention
    channels_last_unet: bool = False  # NHWC convolutions in the UNet (motion modules reshape around them)
    channels_last_vae: bool = True    # NHWC convolutions in the VAE (convolutions only: usually a win on GPUs)
    compile_unet: bool = False        # torch.compile the UNet (first call compiles: warm up before timing)
    compile_vae: bool = False         # torch.compile the VAE decoder
    compile_mode: str = "default"     # default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs
    compile_fullgraph: bool = False
    cudnn_benchmark: bool = True      # GPU: pick the fastest convolution algorithm per shape
    uint8_on_device: bool = True      # frames become uint8 before the host copy (4x less traffic, same values)
    writer_threads: int = 1           # runner: threads that extract features / write clips while the next batch runs (0: inline)
    max_pending: int = 2              # runner: finished batches that may wait for the writer before generation blocks


def fast_options(fast: Any) -> FastPath:
    """FastPath from None, a FastPath (or subclass), a dict or a DictConfig; unknown keys are an error."""
    if fast is None:
        return FastPath()
    if isinstance(fast, FastPath):
        data = {f.name: getattr(fast, f.name) for f in fields(FastPath)}
    elif is_dataclass(fast):
        data = asdict(fast)
    elif isinstance(fast, Mapping) or hasattr(fast, "items"):
        data = {str(k): v for k, v in fast.items()}
    else:
        raise TypeError(f"fast path options must be a FastPath, a dict or None, not {type(fast).__name__}.")
    known = {f.name for f in fields(FastPath)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"Unknown fast path option(s) {unknown}. Options: {', '.join(sorted(known))}.")
    opts = FastPath(**data)
    if opts.attention not in ATTENTION_CHOICES:
        raise InputError(f"fast.attention='{opts.attention}': use one of {', '.join(ATTENTION_CHOICES)}.")
    if opts.compile_mode not in COMPILE_MODES:
        raise InputError(f"fast.compile_mode='{opts.compile_mode}': use one of {', '.join(COMPILE_MODES)}.")
    if opts.fuse_qkv and opts.attention == "eager":
        raise InputError("fast.fuse_qkv uses diffusers' fused SDPA processor: it cannot be combined with "
                         "fast.attention=eager. Use attention=sdpa (or default) with fuse_qkv.")
    if opts.writer_threads < 0 or opts.max_pending < 1:
        raise InputError(f"fast.writer_threads must be >= 0 and fast.max_pending >= 1 "
                         f"(got {opts.writer_threads}, {opts.max_pending}).")
    return opts


def pixel_settings(fast: Any) -> Dict[str, Any]:
    """The fast-path options in effect that may change a clip's pixels (each stays
    within the 2/255 tolerance, but not bit for bit): part of the clip fingerprint, so
    a resume never mixes clips made with and without them. Empty for the plain path
    and for pixel-neutral settings (the background writer, uint8 on device)."""
    opts = fast_options(fast)
    if not opts.enabled:
        return {}
    out: Dict[str, Any] = {}
    if opts.attention != "default":
        out["attention"] = opts.attention
    for name in ("fuse_qkv", "channels_last_unet", "channels_last_vae", "cudnn_benchmark"):
        if getattr(opts, name):
            out[name] = True
    compiled = [m for m in ("unet", "vae") if getattr(opts, f"compile_{m}")]
    if compiled:
        out.update(compiled=compiled, compile_mode=opts.compile_mode, compile_fullgraph=opts.compile_fullgraph)
    return out


def _processor_names(module) -> List[str]:
    return sorted({type(p).__name__ for p in module.attn_processors.values()})


def apply_fast_path(pipe, fast: Any, device: str) -> Dict[str, Any]:
    """Apply the enabled options to ``pipe`` (an AnimateDiffPipeline already on its
    device and dtype), in place. Returns what was applied."""
    import torch  # heavy: torch / diffusers: bench.plan.config reads FastPath, and the config schema must not load them
    # heavy: as above
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    opts = fast_options(fast)
    info: Dict[str, Any] = {"enabled": opts.enabled, "default_attention": _processor_names(pipe.unet)}
    if not opts.enabled:
        info["attention"] = info["default_attention"]
        return info
    on_gpu = device.startswith("cuda")
    if opts.attention != "default":
        processor = AttnProcessor2_0 if opts.attention == "sdpa" else AttnProcessor
        pipe.unet.set_attn_processor(processor())
        pipe.vae.set_attn_processor(processor())
    if opts.fuse_qkv:
        with torch.no_grad():  # the fused layers are built by copying parameters
            pipe.unet.fuse_qkv_projections()
            pipe.vae.fuse_qkv_projections()
    info["attention"] = _processor_names(pipe.unet)
    info["fuse_qkv"] = opts.fuse_qkv
    layouts = []
    if opts.channels_last_unet:
        pipe.unet.to(memory_format=torch.channels_last)
        layouts.append("unet")
    if opts.channels_last_vae:
        pipe.vae.to(memory_format=torch.channels_last)
        layouts.append("vae")
    info["channels_last"] = layouts
    if on_gpu and opts.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    info["cudnn_benchmark"] = bool(on_gpu and opts.cudnn_benchmark)
    compiled = []
    # Module.compile keeps the module's class, so pipeline code reading unet.config keeps working.
    if opts.compile_unet:
        pipe.unet.compile(mode=opts.compile_mode, fullgraph=opts.compile_fullgraph)
        compiled.append("unet")
    if opts.compile_vae:
        pipe.vae.decoder.compile(mode=opts.compile_mode, fullgraph=opts.compile_fullgraph)
        compiled.append("vae.decoder")
    info["compiled"] = compiled
    info["compile_mode"] = opts.compile_mode if compiled else None
    info["uint8_on_device"] = opts.uint8_on_device
    info["writer_threads"] = opts.writer_threads
    return info


# ---------------------------------------------------------------- generation helpers

class PhaseClock:
    """Phase boundaries of one generate() call. On a GPU: CUDA events on the model's
    stream, read after one synchronisation at the end (no host sync between phases);
    on the CPU: perf_counter."""

    def __init__(self, device: str):
        import torch  # heavy: as above

        self.cuda = device.startswith("cuda")
        self.name = "cuda-event" if self.cuda else "wall"
        self._stream = torch.cuda.current_stream(torch.device(device)) if self.cuda else None
        self._marks: List[Any] = []

    def mark(self) -> None:
        if self.cuda:
            # heavy: as above
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record(self._stream)
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter())

    def intervals_s(self) -> List[float]:
        """Seconds between consecutive marks."""
        if self.cuda:
            self._marks[-1].synchronize()
            return [a.elapsed_time(b) / 1000.0 for a, b in zip(self._marks, self._marks[1:])]
        return [b - a for a, b in zip(self._marks, self._marks[1:])]


def video_to_uint8(video, quantize: str = "truncate"):
    """Decoded float video [B, C, F, H, W] in [-1, 1] -> (uint8 frames [B, F, H, W, 3],
    finite per clip), both on the video's device, with the same arithmetic as the host
    path (denormalise, clamp, NaN -> 0, then floor for "truncate" or round half to even
    for "round"), so the frames are identical."""
    import torch  # heavy: as above

    with torch.no_grad():
        finite = torch.isfinite(video).flatten(1).all(dim=1)
        video = (video * 0.5 + 0.5).clamp(0, 1)
        video = torch.nan_to_num(video, nan=0.0, posinf=1.0, neginf=0.0)
        scaled = video * 255.0
        scaled = torch.floor(scaled) if quantize == "truncate" else torch.round(scaled)
        frames = scaled.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1).contiguous()
    return frames, finite


def decode_to_uint8(pipe, latents, decode_chunk_size: int, quantize: str = "truncate"):
    """VAE-decode latents and convert to uint8 on the device (:func:`video_to_uint8`);
    the host receives only the uint8 frames (a quarter of the float32 bytes) and the
    flags. Returns (frames [B, F, H, W, 3] numpy, finite per clip)."""
    import torch  # heavy: as above

    with torch.no_grad():
        frames, finite = video_to_uint8(pipe.decode_latents(latents, decode_chunk_size), quantize)
    return frames.cpu().numpy(), finite.cpu().numpy()


class UnetCallCounter:
    """Counts UNet forward calls and the batch size of each (a CFG step runs the
    conditional and unconditional branches as one batch of 2 x clips)."""

    def __init__(self, unet):
        self.unet = unet
        self.batches: List[int] = []
        self._handle = None

    def __enter__(self) -> "UnetCallCounter":
        def hook(module, args, kwargs):
            sample = args[0] if args else kwargs["sample"]
            self.batches.append(int(sample.shape[0]))

        self._handle = self.unet.register_forward_pre_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    @property
    def calls(self) -> int:
        return len(self.batches)


