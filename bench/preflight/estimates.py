"""Cost, time and disk estimates of a run, from the cost figures in docs/speed.md, timing results
measured on the target device, and a representative clip file written by the store."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

import metrics as metric_registry
from bench.generate.store import ClipStore
from bench.plan.config import get
from bench.plan.metric_settings import enabled_metrics, run_facts
from bench.preflight.report import MethodCost, PreflightReport, Problem
from metrics.plugin import Cost
from models.device import device_name, device_peak_tflops, resolve_device_dtype
from models.specs import step_specific

REPO_ROOT = Path(__file__).resolve().parents[2]

# Cost figures (TFLOP, multiply-adds counted as 2 FLOPs); docs/speed.md, "FLOPs per unit of work".
UNET_TFLOP = 17.75           # one SD1.5 + motion module UNet evaluation, 16 frames at 512x512 (64x64 latents)
UNET_REF_FRAMES, UNET_REF_LATENT = 16, 64 * 64
VAE_TFLOP_PER_FRAME = 2.5    # SD VAE decoder, one 512x512 frame
# (the metrics' own figures are their plug-ins' Metric.cost)
MP4_BITS_PER_PIXEL = 0.4     # H.264 crf 17 (metrics.video_io.write_mp4) measured 0.20-0.37 on real footage
RESULTS_ALLOWANCE = 64 * 2 ** 20   # results.json, tables, plots, sample strips, logs
GENERATION_KEYS = ("unet", "vae")   # the plan's tflop entries that are not a metric's (besides "total")

# Set metrics that estimate their scoring (a plug-in's scoring_seconds hook) give seconds on
# one H100; other devices scale by their datasheet peak (the CPU by its measured matmul rate).
SCORING_REFERENCE = "H100"
SCORING_STAGE = "score: "     # prefix of the time stages that are one part of a set metric's scoring

# The harness's own work beside the GPU FLOPs, measured on 2 CPU cores by
# benchmarks/full_size.py and benchmarks/scale.py (figures in docs/speed.md).
MODEL_LOAD_S = {"pretrained": 30.0, "random": 140.0, "tiny": 2.0}   # one build (pretrained: from local disk, assumed)
HOST_MS_PER_CLIP = {"device": 3.0, "plain": 500.0}   # 16x512x512 frames to uint8: on the device vs on the host
STORE_WRITE_MS_PER_CLIP = 5.0                         # one clip file with a batch's grouped flush


def existing_parent(path: Path) -> Path:
    path = Path(os.path.abspath(os.path.expanduser(str(path))))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def unet_tflop(num_frames: int, height: int, width: int) -> float:
    """17.75 TFLOP at 16x512x512 (docs/speed.md), scaled linearly by frames x latent pixels
    (attention grows faster than that, so larger sizes are slightly underestimated)."""
    return UNET_TFLOP * (num_frames / UNET_REF_FRAMES) * ((height // 8) * (width // 8) / UNET_REF_LATENT)


def method_costs(specs: Dict[str, Any], nfes: Sequence[int], prompts: int, videos: int) -> List[MethodCost]:
    out = []
    for name, spec in specs.items():
        per = sum(int(n) * (2 if float(spec.guidance_scale) > 1.0 else 1) for n in nfes)
        clips = len(nfes) * prompts * videos
        out.append(MethodCost(name, float(spec.guidance_scale), [int(n) for n in nfes], per, clips,
                              per * prompts * videos))
    return out


def compute_tflop(costs: Sequence[MethodCost], f: int, h: int, w: int, metric_costs: Dict[str, Cost],
                  clips: int) -> Dict[str, float]:
    """TFLOP of the run: "unet", "vae", one entry per metric that costs device work (its
    Metric.cost per clip x the clips), and "total"."""
    frame_scale = (h * w) / (512 * 512)
    out = {"unet": sum(c.unet_evals for c in costs) * unet_tflop(f, h, w),
           "vae": clips * f * VAE_TFLOP_PER_FRAME * frame_scale}
    counted: set = set()
    for name, cost in metric_costs.items():
        # metrics on the same stored features (KVD, FVD-inf on FVD's I3D logits) extract them once
        if cost.tflop_per_clip > 0 and not (cost.features and set(cost.features) <= counted):
            out[name] = clips * cost.tflop_per_clip
        counted |= set(cost.features)
    out["total"] = sum(out.values())
    return out


def metric_tflop(tflop: Dict[str, float]) -> Dict[str, float]:
    """The metrics' entries of a plan's tflop (feature extraction)."""
    return {k: v for k, v in tflop.items() if k not in GENERATION_KEYS + ("total",)}


def harness_seconds(cfg: Any, costs: Sequence[MethodCost], clips: int, f: int, h: int, w: int,
                    metric_costs: Dict[str, Cost], specs: Dict[str, Any]) -> Dict[str, float]:
    """The run's work besides the GPU FLOPs, per stage: model loading, host work on the
    generation's critical path (frames to uint8, store writes), and the statistics
    (each metric's bootstrap resample per cell, Cost.resample_s; a paired difference reuses the
    resamples of its two cells, results.stats' memo)."""
    r, rep = cfg.runner, cfg.report
    builds = sum(len(c.nfe) if step_specific(specs[c.name]) else 1 for c in costs if c.name in specs)
    load = builds * MODEL_LOAD_S.get(str(get(cfg, "weights", "pretrained")), MODEL_LOAD_S["pretrained"])
    device_path = bool(r.fast.enabled) and bool(r.fast.uint8_on_device)
    scale = (f * h * w) / (16 * 512 * 512)   # host work grows with the pixels
    host_ms = HOST_MS_PER_CLIP["device" if device_path else "plain"] * scale + STORE_WRITE_MS_PER_CLIP
    out = {"model loading": load, "host work": clips * host_ms / 1000.0}
    resample_s = sum(cost.resample_s for cost in metric_costs.values())
    if resample_s > 0 and int(rep.bootstrap) > 0:
        cells = sum(len(c.nfe) for c in costs)
        out["statistics"] = cells * int(rep.bootstrap) * resample_s
    return out


def detect_device(cfg: Any, report: PreflightReport) -> Tuple[str, str, str]:
    """(device, dtype, device name) the run would use; an impossible choice is a problem."""
    try:
        device, dtype = resolve_device_dtype(str(cfg.runner.device), str(cfg.runner.dtype))
    except ValueError as err:
        report.problems.append(Problem("device", str(err).split(". ")[0] + ".",
                                       "Set runner.device / runner.dtype to a combination this machine has."))
        return "cpu", "float32", "unknown"
    return device, dtype, device_name(device)


def _timing_files(explicit: Optional[str]) -> List[Path]:
    if explicit:
        return [Path(os.path.expanduser(explicit))]
    found = [p for d in ("gpu", "timing") for p in (REPO_ROOT / "results" / d).glob("*.json")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _timing_rows(path: Path) -> List[Dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    rows = data if isinstance(data, list) else data.get("timing", []) if isinstance(data, dict) else []
    default_device = None
    if isinstance(data, dict):
        dev = (data.get("provenance") or {}).get("device") or {}
        default_device = dev.get("name") if isinstance(dev, dict) else None
    out = []
    for r in rows:
        if not isinstance(r, dict) or not r.get("denoise_ms_median"):
            continue
        extra = r.get("extra") or {}
        if extra.get("weights") == "tiny":   # tiny models are not the real architecture
            continue
        name = r.get("device") if r.get("device") not in (None, "cuda", "cpu") else default_device
        out.append(dict(r, device_name=name or "", _extra=extra))
    return out


def _same_device(a: str, b: str) -> bool:
    a, b = a.lower().strip(), b.lower().strip()
    return bool(a) and bool(b) and (a == b or a in b or b in a)


def _measured_cpu_tflops() -> float:
    n = 1024
    x, y = torch.randn(n, n), torch.randn(n, n)
    x @ y
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        x @ y
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e12


def scoring_speed(cfg: Any, device: str, name: str) -> Tuple[Optional[float], str]:
    """(speed relative to one H100 or None, how) for the set metrics' scoring estimates."""
    ref, _ = device_peak_tflops(SCORING_REFERENCE, "float16")
    if device == "cpu":
        util = float(get(get(cfg, "preflight", {}) or {}, "utilisation", 0.5))
        rate = _measured_cpu_tflops()
        return rate / (ref * util), (f"{SCORING_REFERENCE} figures x this CPU's measured {rate * 1000:.0f} GFLOP/s "
                                     f"over the {SCORING_REFERENCE}'s {ref:.0f} TFLOP/s at {util:.0%}")
    peak, why = device_peak_tflops(name, "float16")
    if peak is None:
        return None, why
    return peak / ref, f"{SCORING_REFERENCE} figures x the datasheet peak ratio {peak / ref:.2f}"


def scoring_stages(cfg: Any, costs: Sequence[MethodCost], device: str, name: str) -> Tuple[Dict[str, float], str]:
    """Seconds per part (e.g. a dimension) of every enabled set metric that estimates its
    scoring, keyed SCORING_STAGE + "<display name> <part>", and how they were scaled."""
    if "score" not in list(get(cfg, "stages", ["score"]) or []) or not costs:
        return {}, ""
    cells = costs[0].clips // max(len(costs[0].nfe), 1)
    run = run_facts(cfg, cells)
    hooks = [(metric_registry.plugin(n), o) for n, o in enabled_metrics(cfg).items()]
    hooks = [(p, o) for p, o in hooks if p.kind == "set" and callable(getattr(p, "scoring_seconds", None))]
    if not hooks:
        return {}, ""
    speed, how = scoring_speed(cfg, device, name)
    if speed is None:
        return {}, f"set metrics' scoring not estimated: {how}"
    out = {}
    for plugin, options in hooks:
        for part, seconds in plugin.scoring_seconds(options, run, len(costs)).items():
            out[f"{SCORING_STAGE}{plugin.display_name} {part}"] = seconds / speed
    return out, f"scoring from per-video estimates ({how})"


def estimate_time(cfg: Any, costs: Sequence[MethodCost], tflop: Dict[str, float], device: str, dtype: str,
                  name: str, f: int, h: int, w: int) -> Tuple[Optional[float], str, Dict[str, float]]:
    """Seconds of device work (generation, feature extraction, set metrics' scoring), how
    that was estimated, and the same seconds per stage."""
    seconds, how, stages = _device_time(cfg, costs, tflop, device, dtype, name, f, h, w)
    if seconds is None:
        return seconds, how, stages
    scoring, basis = scoring_stages(cfg, costs, device, name)
    stages.update(scoring)
    return seconds + sum(scoring.values()), how + (f"; {basis}" if basis else ""), stages


def _device_time(cfg: Any, costs: Sequence[MethodCost], tflop: Dict[str, float], device: str, dtype: str,
                 name: str, f: int, h: int, w: int) -> Tuple[Optional[float], str, Dict[str, float]]:
    """Seconds of generation and feature extraction, how that was estimated, and per stage."""
    by_metric = metric_tflop(tflop)
    features = sum(by_metric.values())
    feature_stage = "features (" + " + ".join(metric_registry.plugin(n).display_name for n in by_metric) + ")" \
        if by_metric else "features"

    def stages(total: float, feature_rate: float) -> Dict[str, float]:
        return {"generation (UNet + VAE)": total - features / feature_rate, feature_stage: features / feature_rate}

    pre = get(cfg, "preflight", {}) or {}
    util = float(get(pre, "utilisation", 0.5))
    target = get(pre, "time_on") or name
    explicit = get(pre, "timing_file")
    for path in _timing_files(explicit):
        rows = [r for r in _timing_rows(path) if _same_device(r["device_name"], target)
                and (r.get("dtype") in (None, dtype) or get(pre, "time_on"))]
        if not rows:
            continue
        # achieved UNet TFLOP/s per row, from its own geometry
        rates, vae_rates, exact = [], [], {}
        for r in rows:
            e = r["_extra"]
            rf, rh, rw = int(e.get("num_frames", 16)), int(e.get("height", 512)), int(e.get("width", 512))
            per_eval = r.get("tflop_per_unet_eval") or unet_tflop(rf, rh, rw)
            evals = int(e.get("unet_evals") or r["nfe"] * (2 if float(r.get("guidance_scale", 1)) > 1 else 1))
            rates.append(per_eval * evals / (r["denoise_ms_median"] / 1000.0))
            if r.get("vae_ms"):
                vae_rates.append(rf * VAE_TFLOP_PER_FRAME * rh * rw / 512 ** 2 / (r["vae_ms"] / 1000.0))
            if (rf, rh, rw) == (f, h, w):
                exact[(r.get("method"), int(r["nfe"]))] = r
        rate = float(np.median(rates))
        vae_rate = float(np.median(vae_rates)) if vae_rates else rate
        seconds = 0.0
        used_exact = 0
        per_eval = unet_tflop(f, h, w)
        for c in costs:
            for n in c.nfe:
                clips = c.clips // max(len(c.nfe), 1)
                row = exact.get((c.name, n))
                if row is not None:
                    seconds += clips * row["denoise_ms_median"] / 1000.0
                    used_exact += 1
                else:
                    seconds += clips * n * (2 if c.guidance_scale > 1 else 1) * per_eval / rate
        seconds += tflop["vae"] / vae_rate + features / rate
        when = time.strftime("%Y-%m-%d", time.localtime(path.stat().st_mtime))
        settings = sum(len(c.nfe) for c in costs)
        how = (f"from timing results {path.name} ({when}) on {rows[0]['device_name']}: "
               f"{used_exact} of {settings} settings timed at this size, the rest at the measured "
               f"{rate:.0f} TFLOP/s (UNet), VAE at {vae_rate:.0f} TFLOP/s, metrics at the UNet rate; batch 1 timings")
        return seconds, how, stages(seconds, rate)
    if explicit:
        note = f"timing file {explicit} has no rows for '{target}'; "
    else:
        note = ""
    if device == "cpu" and not get(pre, "time_on"):
        peak = _measured_cpu_tflops()
        rate = peak * util
        return tflop["total"] / rate, (f"{note}no timing results for this CPU: {peak * 1000:.0f} GFLOP/s measured "
                                       f"with a 1024x1024 float32 matmul x an assumed {util:.0%} utilisation"), \
            stages(tflop["total"] / rate, rate)
    peak_dtype = dtype if dtype in ("float16", "bfloat16") else "float16"
    peak, why = device_peak_tflops(target, peak_dtype)
    if peak is None:
        return None, f"{note}no timing results and no known peak for '{target}' ({why})", {}
    rate = peak * util
    return tflop["total"] / rate, (f"{note}no timing results for '{target}': its {peak:.0f} TFLOP/s dense "
                                   f"{peak_dtype} peak (datasheet) x an assumed {util:.0%} utilisation"), \
        stages(tflop["total"] / rate, rate)


def _clip_file_bytes(prompt: str, features: Dict[str, Tuple[Tuple[int, ...], str]],
                     frames: Optional[Tuple[int, ...]]) -> int:
    """Size of one clip file as bench.generate.store.ClipStore writes it: a representative clip is
    written to a scratch folder by the store itself, so format changes are followed."""
    meta = {"key": "animatelcm_r/nfe8/BoxingPunchingBag/023", "method": "animatelcm_r", "nfe": 8,
            "class_name": "BoxingPunchingBag", "prompt": prompt, "video_index": 23, "seed": 2147483647,
            "fingerprint": "0" * 16, "finite": True, "batch_size": 4, "denoise_ms": 123456.789,
            "text_encode_ms": 12.345678, "decode_ms": 123456.789, "created": "2025-01-01T00:00:00"}
    arrays = {key: np.zeros(shape, dtype=dtype) for key, (shape, dtype) in features.items()}
    with tempfile.TemporaryDirectory(prefix="lcmbench-preflight-") as scratch:
        path = ClipStore(scratch).write(meta["key"], meta, arrays,
                                        np.zeros(frames, dtype=np.uint8) if frames is not None else None)
        return path.stat().st_size


def _on_disk(nbytes: int, block: int) -> int:
    return -(-nbytes // block) * block


def estimate_disk(cfg: Any, clips: int, cells: int, longest_prompt: str, metric_costs: Dict[str, Cost],
                  run_dir: Path, frame_nfes: int = 0) -> Dict[str, Any]:
    """Bytes the run writes under run_dir: each clip file with the metrics' features
    (Cost.features), frames where kept, mp4s, the set metrics' exports. frame_nfes: how many
    step counts keep every clip's frames for set metrics; each set metric's scored clips
    (one step count per method) are exported once more (Cost.export_bytes_per_clip)."""
    p, r = cfg.protocol, cfg.runner
    f, h, w = int(p.num_frames), int(p.height), int(p.width)
    features: Dict[str, Tuple[Tuple[int, ...], str]] = {}
    for cost in metric_costs.values():
        features.update(cost.features)
    methods = cells // max(len(p.nfe), 1)
    scored_clips = methods * (clips // max(cells, 1))   # the clips of one step count, every method
    kept_clips = frame_nfes * scored_clips
    where = existing_parent(run_dir)
    try:
        block = os.statvfs(where).f_frsize or 4096
    except (AttributeError, OSError):
        block = 4096
    store = run_dir / "store"
    already = sum(1 for q in store.rglob("*.npz") if not q.name.startswith(".")) if store.is_dir() else 0
    todo = max(clips - already, 0)
    small = _on_disk(_clip_file_bytes(longest_prompt, features, None), block)
    big = _on_disk(_clip_file_bytes(longest_prompt, features, (f, h, w, 3)), block)
    if bool(r.save_frames):
        with_frames, without = todo, 0
    else:
        per_cell = min(int(r.samples_per_cell), int(p.videos_per_prompt))
        # the sample clips at a set metric's step count are among the clips it keeps
        samples = cells * per_cell - frame_nfes * methods * per_cell
        with_frames = min(todo, samples + kept_clips)
        without = todo - with_frames
    detail = {"clip_files": todo, "already_stored": already, "bytes_per_clip": small, "bytes_per_clip_with_frames": big,
              "clips_with_frames": with_frames, "store": without * small + with_frames * big, "block": block}
    detail["videos"] = _on_disk(int(f * h * w * MP4_BITS_PER_PIXEL / 8), block) * todo if bool(r.save_videos) else 0
    detail["exports_by_metric"] = {name: _on_disk(cost.export_bytes_per_clip, block) * scored_clips
                                   for name, cost in metric_costs.items() if cost.export_bytes_per_clip}
    detail["exports"] = sum(detail["exports_by_metric"].values())
    detail["results"] = RESULTS_ALLOWANCE
    detail["total"] = detail["store"] + detail["videos"] + detail["exports"] + detail["results"]
    try:
        usage = shutil.disk_usage(where)
        detail["free"], detail["filesystem"] = usage.free, str(where)
    except OSError:
        detail["free"], detail["filesystem"] = None, str(where)
    return detail
