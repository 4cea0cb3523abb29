"""Timing protocol: denoising time per clip, as the paper reports it.

- Denoising only: text encoding and VAE decoding are timed separately and reported
  beside it, never inside it.
- GPU: CUDA events on the model's stream after warm-up; CPU: perf_counter wall clock.
- Every (method, steps) setting is timed ``repeats`` times, the settings of one model
  interleaved so drift spreads evenly; median, IQR, min and max are reported.
- Peak GPU memory per setting (torch.cuda.max_memory_allocated), device name, dtype.
- FLOPs of one UNet evaluation are counted from the model's architecture with
  torch.utils.flop_counter on the meta device (no compute, any size), so every GPU time
  comes with the achieved TFLOP/s and the fraction of the device's dense peak.

``run_timing(cfg)`` returns rows in the results ``timing`` format (results/schema.py);
``python -m bench.timing runner.device=cpu protocol.height=64 protocol.width=64 protocol.num_frames=8``
runs the same protocol standalone on ``experiment=timing`` and the same overrides as
``run_bench.py``, prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

import models
from common.errors import InputError
from models.animatediff import share_weights_as
from models.device import device_name, device_peak_tflops, resolve_device_dtype
from models.fast import FastPath, fast_options
from models.registry import resolve_spec
from models.specs import ModelSpec, SamplerSpec, step_specific

from bench.plan.config import CONFIG_DIR, compose, settings_problems
from common.errors import fail
from bench.plan.overrides import check_overrides
from bench.timing.figures import environment, format_table, write_figures

log = logging.getLogger("lcmbench")

ALL_METHODS = ("ddim", "dpmpp", "animatelcm", "animatelcm_r")
# Prompt content does not change speed: CLIP pads every prompt to 77 tokens.
TIMING_PROMPT = "A person rides a bicycle along a mountain road at sunset, photorealistic"

# ---------------------------------------------------------------- FLOPs

def unet_tflop(unet, num_frames: int, height: int, width: int, text_tokens: int = 77,
               vae_scale: int = 8) -> float:
    """TFLOP of one UNet evaluation for one clip (batch 1, one guidance branch) at a
    pixel size of height x width. The architecture is rebuilt from the model's config
    on the meta device and run under FlopCounterMode: shapes only, no compute, so the
    full-size model counts in seconds on a CPU (attention counts as its matmuls)."""
    config = dict(unet.config)
    with torch.device("meta"):
        twin = type(unet).from_config(config)
        sample = torch.empty(1, config["in_channels"], num_frames, height // vae_scale, width // vae_scale)
        text = torch.empty(num_frames, text_tokens, config["cross_attention_dim"])
        timestep = torch.tensor(999)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        twin(sample, timestep, encoder_hidden_states=text)
    return counter.get_total_flops() / 1e12


# ---------------------------------------------------------------- settings

@dataclass
class TimingSettings:
    methods: Dict[str, Any]                  # result key -> ModelSpec (or a dict of its fields)
    nfe: Sequence[int] = (1, 2, 4, 8)
    teacher: Optional[str] = "ddim"          # method also timed at teacher_nfe (with its CFG)
    teacher_nfe: Sequence[int] = (25, 50)
    reference: str = "animatelcm"            # speed-up = teacher at max(teacher_nfe) / reference at reference_nfe
    reference_nfe: int = 4
    weights: str = "random"
    device: str = "auto"
    dtype: str = "auto"
    num_frames: int = 16
    height: int = 512
    width: int = 512
    batch_size: int = 1
    decode_chunk_size: int = 16
    warmup: int = 1
    repeats: int = 5
    seed: int = 0
    cache_dir: Optional[str] = None
    fast: Any = None                         # models.fast.FastPath / dict / None
    share_random_weights: bool = True        # random weights: one build serves every method
    count_flops: bool = True
    prompt: str = TIMING_PROMPT

    def steps_for(self, method: str) -> List[int]:
        steps = list(self.nfe)
        if method == self.teacher:
            steps += [s for s in self.teacher_nfe if s not in steps]
        return sorted(set(int(s) for s in steps))


def _resolve_spec(name: str, spec: Any):
    if spec is None:  # registry defaults, its sampler included
        spec = ModelSpec(name=name, sampler=SamplerSpec(kind=None))
    elif not isinstance(spec, ModelSpec):
        data = dict(spec)
        sampler = data.pop("sampler", None)
        if sampler is not None and not isinstance(sampler, SamplerSpec):
            sampler = SamplerSpec(**dict(sampler))
        data.setdefault("name", name)
        spec = ModelSpec(**data, sampler=sampler or SamplerSpec(kind=None))
    return resolve_spec(spec)


def _overrides(spec) -> Dict[str, Any]:
    out = {f.name: getattr(spec, f.name) for f in fields(spec) if f.name != "name"}
    return out


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _stats_ms(seconds_per_clip: Sequence[float]) -> Dict[str, float]:
    ms = [1000.0 * s for s in seconds_per_clip]
    return {"median": _percentile(ms, 50), "iqr": _percentile(ms, 75) - _percentile(ms, 25),
            "min": min(ms), "max": max(ms)}


def build_model(name: str, **kwargs: Any):
    """models.build, but random weights on a GPU are initialised on the GPU: seconds
    instead of a minute of CPU initialisation of 1.3 B parameters per build (values
    differ from a CPU init; speed does not depend on them). Falls back to a CPU init."""
    device = kwargs.get("device", "cpu")
    if kwargs.get("weights") == "random" and str(device).startswith("cuda"):
        try:
            with torch.device(device):
                return models.build(name, **kwargs)
        except Exception as exc:  # an init that cannot run on the GPU: the ordinary path still works
            log.warning("GPU initialisation of random weights failed (%s: %s); initialising on the CPU",
                        type(exc).__name__, exc)
            gc.collect()
            torch.cuda.empty_cache()
    return models.build(name, **kwargs)


def _free(model) -> None:
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- the protocol

def time_methods(settings: TimingSettings, build: Optional[Callable[..., Any]] = None,
                 progress: Optional[Callable[[str], None]] = None) -> List[Dict[str, Any]]:
    """Time every method x steps setting; returns one results-format row per setting.

    ``build(name, **kwargs)`` defaults to build_model (models.build; random weights initialised on the GPU)."""
    say = progress or log.info
    if settings.repeats < 1 or settings.warmup < 0 or settings.batch_size < 1:
        raise InputError(f"timing needs repeats >= 1, warmup >= 0 and batch_size >= 1 "
                         f"(got {settings.repeats}, {settings.warmup}, {settings.batch_size}).")
    if not settings.methods:
        raise InputError("timing got no methods to time.")
    if settings.teacher is not None and settings.teacher not in settings.methods:
        say(f"timing: teacher '{settings.teacher}' is not among the methods {list(settings.methods)}; "
            f"its {list(settings.teacher_nfe)}-step settings are skipped")
    build = build or build_model
    device, dtype = resolve_device_dtype(settings.device, settings.dtype)
    fast = fast_options(settings.fast)
    on_gpu = device.startswith("cuda")
    dev_name = device_name(device)
    peak, peak_note = device_peak_tflops(dev_name, dtype) if on_gpu else (None, "no peak for CPUs")
    specs = {key: _resolve_spec(key, spec) for key, spec in settings.methods.items()}

    total_evals = sum(s * (2 if specs[k].guidance_scale > 1.0 else 1) * settings.batch_size
                      * (settings.repeats + settings.warmup * (s == min(settings.steps_for(k))))
                      for k in specs for s in settings.steps_for(k))
    say(f"timing: {len(specs)} methods on {dev_name} {dtype}, {settings.num_frames}x{settings.height}x"
        f"{settings.width}, weights={settings.weights}, batch {settings.batch_size}, {settings.warmup} warm-up + "
        f"{settings.repeats} timed calls per setting, {total_evals} UNet evaluations in all")

    rows: List[Dict[str, Any]] = []
    flops_cache: Dict[str, float] = {}
    shared = None
    prompts = [settings.prompt] * settings.batch_size
    for key, spec in specs.items():
        steps = settings.steps_for(key)
        started = time.perf_counter()
        if settings.weights == "random" and settings.share_random_weights and shared is not None:
            model = share_weights_as(shared, spec.name, **_overrides(spec))
        else:
            # a model with one motion module per step count is timed with the first one: the
            # modules share one architecture, and speed does not depend on weight values
            nfe_kw = {"nfe": min(steps)} if step_specific(spec) else {}
            model = build(spec.name, weights=settings.weights, device=device, dtype=dtype,
                          cache_dir=settings.cache_dir, seed=settings.seed, fast=fast, **nfe_kw, **_overrides(spec))
            if settings.weights == "random" and settings.share_random_weights:
                shared = model
        built_s = time.perf_counter() - started
        tflop = None
        if settings.count_flops:
            fkey = json.dumps(dict(model.pipeline.unet.config), sort_keys=True, default=str)
            if fkey not in flops_cache:
                flops_cache[fkey] = unet_tflop(model.pipeline.unet, settings.num_frames, settings.height,
                                               settings.width, vae_scale=model.pipeline.vae_scale_factor)
            tflop = flops_cache[fkey]
        guidance = model.guidance_scale
        evals_per_step = 2 if guidance > 1.0 else 1

        def call(nfe: int, repeat: int):
            seeds = [settings.seed + 1000 * repeat + i for i in range(settings.batch_size)]
            model.generate(prompts, seeds, nfe, num_frames=settings.num_frames, height=settings.height,
                           width=settings.width, decode_chunk_size=settings.decode_chunk_size)
            return dict(model.last_timing)

        warm_start = time.perf_counter()
        for w in range(settings.warmup):  # compile, cuDNN autotuning, allocator growth happen here
            call(steps[0], -1 - w)
        warm_s = time.perf_counter() - warm_start
        samples: Dict[int, List[Dict[str, float]]] = {s: [] for s in steps}
        peaks: Dict[int, float] = {s: 0.0 for s in steps}
        for r in range(settings.repeats):
            for nfe in steps:  # interleaved: slow drift (clocks, heat, other load) hits every setting alike
                if on_gpu:
                    torch.cuda.reset_peak_memory_stats(torch.device(device))
                samples[nfe].append(call(nfe, r))
                if on_gpu:
                    peaks[nfe] = max(peaks[nfe], torch.cuda.max_memory_allocated(torch.device(device)) / 2 ** 20)
        for nfe in steps:
            per_clip = [t["denoise_s"] / settings.batch_size for t in samples[nfe]]
            d = _stats_ms(per_clip)
            text = _stats_ms([t["text_encode_s"] / settings.batch_size for t in samples[nfe]])["median"]
            vae = _stats_ms([t["decode_s"] / settings.batch_size for t in samples[nfe]])["median"]
            evals = nfe * evals_per_step
            achieved = tflop * evals / (d["median"] / 1000.0) if tflop is not None else None
            util = achieved / peak if (achieved is not None and peak) else None
            clock = samples[nfe][0].get("clock", "cuda-event" if on_gpu else "wall")
            note = (f"per clip = call time / batch size ({settings.batch_size}); denoising loop only, text encoding "
                    f"and VAE decoding timed separately; {settings.warmup} warm-up call(s) per model")
            if util is None and peak_note:
                note += f"; {peak_note}"
            rows.append({
                "method": key, "nfe": int(nfe), "guidance_scale": float(guidance),
                "denoise_ms_median": d["median"], "denoise_ms_iqr": d["iqr"],
                "text_encode_ms": text, "vae_ms": vae,
                "peak_mem_mb": peaks[nfe] if on_gpu else None,
                "tflop_per_unet_eval": tflop, "utilisation": util,
                "n_repeats": settings.repeats, "n": settings.repeats * settings.batch_size,
                "device": dev_name, "dtype": dtype, "clock": clock, "note": note,
                "extra": {"source": "timing", "warmup_calls": settings.warmup,
                          "steps": int(nfe), "unet_evals": evals, "achieved_tflops": achieved,
                          "peak_tflops": peak, "denoise_ms_min": d["min"], "denoise_ms_max": d["max"],
                          "denoise_ms_all": [1000.0 * s for s in per_clip],
                          "batch_size": settings.batch_size, "num_frames": settings.num_frames,
                          "height": settings.height, "width": settings.width, "weights": settings.weights,
                          "device_type": "cuda" if on_gpu else "cpu", "fast": model.fast,
                          "build_s": built_s, "warmup_s": warm_s,
                          "shared_modules_from": model.provenance.get("shared_modules_from")},
            })
        done = ", ".join("%d steps %.1f ms" % (r["nfe"], r["denoise_ms_median"]) for r in rows if r["method"] == key)
        say(f"timing: {key} done ({done})")
        if model is not shared:
            _free(model)
        else:
            del model
    if shared is not None:
        _free(shared)
    add_speedups(rows, settings)
    return rows


def find_row(rows: Sequence[Mapping[str, Any]], method: str, nfe: int) -> Optional[Mapping[str, Any]]:
    return next((r for r in rows if r["method"] == method and r["nfe"] == nfe), None)


def add_speedups(rows: List[Dict[str, Any]], settings: TimingSettings) -> Optional[float]:
    """Every row gets extra.speedup_vs_teacher = teacher-at-max(teacher_nfe) ms / its ms;
    returns the headline ratio teacher / reference-at-reference_nfe (None if either is missing)."""
    if settings.teacher is None or not settings.teacher_nfe:
        return None
    teacher = find_row(rows, settings.teacher, max(settings.teacher_nfe))
    if teacher is None:
        return None
    for r in rows:
        r["extra"]["speedup_vs_teacher"] = teacher["denoise_ms_median"] / r["denoise_ms_median"]
        r["extra"]["teacher_setting"] = f"{settings.teacher} {teacher['nfe']} steps, guidance {teacher['guidance_scale']:g}"
    ref = find_row(rows, settings.reference, settings.reference_nfe)
    return teacher["denoise_ms_median"] / ref["denoise_ms_median"] if ref is not None else None


def summarize(rows: Sequence[Mapping[str, Any]], settings: TimingSettings) -> Dict[str, Any]:
    teacher = find_row(rows, settings.teacher, max(settings.teacher_nfe)) if settings.teacher else None
    ref = find_row(rows, settings.reference, settings.reference_nfe)
    out: Dict[str, Any] = {"teacher": None, "reference": None, "speedup": None, "ideal_speedup": None}
    if teacher is not None:
        out["teacher"] = {"method": teacher["method"], "nfe": teacher["nfe"], "guidance_scale": teacher["guidance_scale"],
                          "denoise_ms_median": teacher["denoise_ms_median"]}
    if ref is not None:
        out["reference"] = {"method": ref["method"], "nfe": ref["nfe"], "guidance_scale": ref["guidance_scale"],
                            "denoise_ms_median": ref["denoise_ms_median"]}
    if teacher is not None and ref is not None:
        out["speedup"] = teacher["denoise_ms_median"] / ref["denoise_ms_median"]
        out["ideal_speedup"] = teacher["extra"]["unet_evals"] / ref["extra"]["unet_evals"]
    return out


# ---------------------------------------------------------------- from a composed config

def settings_from_cfg(cfg: Any, device: Optional[str] = None, dtype: Optional[str] = None) -> TimingSettings:
    """TimingSettings from a composed lcmbench config (DictConfig or the BenchConfig
    dataclass): methods, weights, seed, cache_dir, protocol geometry and NFE, runner
    device/dtype/batch/decode chunk, runner.fast and runner.timing."""
    def to_plain(node):
        try:
            if OmegaConf.is_config(node):
                return OmegaConf.to_container(node, resolve=True)
        except ImportError:
            pass
        return asdict(node) if hasattr(node, "__dataclass_fields__") else node

    p, r = cfg.protocol, cfg.runner
    timing = to_plain(getattr(r, "timing", None)) or {}
    methods = {k: to_plain(v) for k, v in to_plain(cfg.methods).items()} if not isinstance(cfg.methods, dict) \
        else {k: to_plain(v) for k, v in cfg.methods.items()}
    base = TimingSettings(methods=methods)
    return TimingSettings(
        methods=methods, nfe=[int(n) for n in p.nfe],
        teacher=timing.get("teacher", base.teacher), teacher_nfe=list(timing.get("teacher_nfe", base.teacher_nfe)),
        reference=timing.get("reference", base.reference), reference_nfe=int(timing.get("reference_nfe", base.reference_nfe)),
        weights=cfg.weights, device=device or r.device, dtype=dtype or r.dtype,
        num_frames=int(p.num_frames), height=int(p.height), width=int(p.width), batch_size=int(r.batch_size),
        decode_chunk_size=int(r.decode_chunk_size), warmup=int(timing.get("warmup", base.warmup)),
        repeats=int(timing.get("repeats", base.repeats)), seed=int(cfg.seed), cache_dir=cfg.cache_dir,
        fast=to_plain(getattr(r, "fast", None)),
        share_random_weights=bool(timing.get("share_random_weights", base.share_random_weights)),
        count_flops=bool(timing.get("count_flops", base.count_flops)))


def run_timing(cfg: Any, device: Optional[str] = None, dtype: Optional[str] = None,
               build: Optional[Callable[..., Any]] = None,
               progress: Optional[Callable[[str], None]] = None) -> List[Dict[str, Any]]:
    """The timing stage: rows in the results ``timing`` format for every method x
    protocol.nfe, plus the teacher at runner.timing.teacher_nfe, from a composed config.
    ``device``/``dtype`` override the runner's (the pipeline passes its resolved ones)."""
    return time_methods(settings_from_cfg(cfg, device, dtype), build=build, progress=progress)


# ---------------------------------------------------------------- output









def parse_fast(enabled: bool, pairs: Sequence[str]) -> Dict[str, Any]:
    """'--fast-opt compile_unet=true' style pairs -> a FastPath dict (values typed by the dataclass)."""
    types = {f.name: type(getattr(FastPath(), f.name)) for f in fields(FastPath)}
    out: Dict[str, Any] = {"enabled": enabled}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"--fast-opt expects KEY=VALUE, got '{pair}'.")
        k, v = pair.split("=", 1)
        if k not in types:
            raise InputError(f"Unknown fast path option '{k}'. Options: {', '.join(types)}.")
        if types[k] is bool:
            if v.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise InputError(f"--fast-opt {k}={v}: use true or false.")
            out[k] = v.lower() in ("1", "true", "yes")
        else:
            out[k] = types[k](v)
    fast_options(out)  # validate now, before any model is built
    return out


def _problems(cfg: Any) -> List[str]:
    """What the config schema admits but the timing protocol cannot run."""
    problems = settings_problems(cfg)
    methods = list(cfg.methods or {})
    t = cfg.runner.timing
    for key, name in (("teacher", t.teacher), ("reference", t.reference)):
        if name is not None and name not in methods:
            problems.append(f"runner.timing.{key}={name!r} is not one of the timed methods ({', '.join(methods)}): "
                            f"keep it among them or set runner.timing.{key}=null.")
    if any(int(n) < 1 for n in list(t.teacher_nfe) + [t.reference_nfe]):
        problems.append(f"runner.timing.teacher_nfe / reference_nfe take step counts of 1 or more (got "
                        f"{list(t.teacher_nfe)} / {t.reference_nfe}).")
    return problems


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.timing", description=__doc__.split("\n\n")[0],
        epilog="Other arguments are Hydra overrides of experiment=timing, as for run_bench.py: e.g. weights=tiny "
               "runner.device=cpu protocol.height=64 protocol.width=64 protocol.num_frames=8 'protocol.nfe=[1,4]' "
               "'~methods.dpmpp' runner.timing.repeats=3 runner.fast.compile_unet=true.")
    ap.add_argument("--out", default=None, help="JSON file (default: $OUT/timing.json or results/timing/)")
    args, overrides = ap.parse_known_args(argv)
    overrides = ["experiment=timing", *overrides]
    bad = [o for o in overrides if o.startswith("-")]
    problem = (f"unknown option(s) {bad}: the settings are Hydra overrides (see --help)" if bad else None) \
        or check_overrides(overrides, str(CONFIG_DIR))
    if problem:
        fail(problem)
    try:
        cfg = compose(overrides)
    except Exception as err:   # a Hydra composition error is a user error: one line
        fail(str(err).splitlines()[0])
    problems = _problems(cfg)
    if problems:
        fail(" ".join(problems))
    try:
        return _main(cfg, args.out)
    except (ValueError, FileNotFoundError) as err:   # settings only the build can check (device, weights)
        fail(str(err))


def _main(cfg: Any, out: Optional[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device, dtype = resolve_device_dtype(str(cfg.runner.device), str(cfg.runner.dtype))
    settings = settings_from_cfg(cfg, device, dtype)
    started = time.time()
    rows = time_methods(settings, progress=lambda m: print(m, flush=True))
    summary = summarize(rows, settings)
    dev = rows[0]["device"]
    fast = bool((settings.fast or {}).get("enabled"))
    print(f"\nDenoising time per clip on {dev} ({dtype}), {settings.num_frames}x{settings.height}x{settings.width}, "
          f"weights={settings.weights}, batch {settings.batch_size}, fast path {'on' if fast else 'off'}:")
    print(format_table(rows))
    if rows[0]["tflop_per_unet_eval"] is not None:
        print("FLOPs of one UNet evaluation (one clip, %dx%dx%d): %.4g TFLOP"
              % (settings.num_frames, settings.height, settings.width, rows[0]["tflop_per_unet_eval"]))
    if summary["speedup"] is not None:
        t, s = summary["teacher"], summary["reference"]
        print(f"Speed-up {t['method']} {t['nfe']} steps (CFG {t['guidance_scale']:g}) / {s['method']} {s['nfe']} steps: "
              f"{summary['speedup']:.1f}x measured, {summary['ideal_speedup']:.0f}x ideal "
              f"({t['denoise_ms_median']:.1f} ms / {s['denoise_ms_median']:.1f} ms) on {dev}")
    payload = {"kind": "lcmbench-timing", "settings": {k: v for k, v in asdict(settings).items() if k != "methods"}
               | {"methods": list(settings.methods)}, "environment": environment(device), "summary": summary,
               "timing": rows, "wall_s": time.time() - started}
    print(f"Wrote {write_figures(payload, 'timing', out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
