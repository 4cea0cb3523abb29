"""Synthetic, clearly labelled results for tests and demos of the results package.

Nothing here is a measurement. The numbers come from synthetic per-clip
values and features drawn with a fixed seed and are scored with the real
statistics code (bootstrap intervals, Fréchet distance), so tables, plots,
reports and regression checks can be exercised end to end without a GPU.
Every object produced is marked ``weights_mode="tiny"`` and experiment
``synthetic``.

``python -m results.synthetic OUT_DIR`` writes a complete demo run (all
tables, plots and report.html) to OUT_DIR.
"""
from __future__ import annotations

import argparse
import copy
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from metrics.vbench_protocol import ALL_DIMENSIONS as VBENCH_DIMENSIONS
from metrics.vbench_protocol import QUALITY_DIMENSIONS as VBENCH_QUALITY_DIMENSIONS
from results.model import DEFAULT_LABELS, protocol_id
from metrics.frechet import FrechetToReference
from results.stats import bootstrap_ci

NFES = (1, 2, 4, 8)
METHODS = ("ddim", "dpmpp", "animatelcm", "animatelcm_r")
DISPLAY = {"ddim": "DDIM", "dpmpp": "DPM++", "animatelcm": "Ours", "animatelcm_r": "Ours-R"}   # as the registry
FEATURE_DIM = 16

# How far each method's synthetic features sit from the reference, per step count
# (shapes loosely follow the paper: few-step teachers are far off, Ours is close).
_SHIFT = {"ddim": {1: 3.0, 2: 2.4, 4: 1.6, 8: 1.0}, "dpmpp": {1: 2.2, 2: 1.8, 4: 0.9, 8: 0.8},
          "animatelcm": {1: 1.1, 2: 0.9, 4: 0.75, 8: 0.72}, "animatelcm_r": {1: 0.95, 2: 0.7, 4: 0.78, 8: 0.9}}
_CLIP_MEAN = {"ddim": {1: 5.0, 2: 6.0, 4: 15.0, 8: 24.0}, "dpmpp": {1: 10.5, 2: 18.0, 4: 26.5, 8: 29.0},
              "animatelcm": {1: 22.0, 2: 26.0, 4: 28.5, 8: 30.0}, "animatelcm_r": {1: 25.5, 2: 29.0, 4: 30.5, 8: 30.5}}
_GUIDANCE = {"ddim": 7.5, "dpmpp": 7.5, "animatelcm": 1.0, "animatelcm_r": 1.0}
_VB_RANGE = {"subject_consistency": (0.1462, 1.0), "background_consistency": (0.2615, 1.0),
             "temporal_flickering": (0.6293, 1.0), "motion_smoothness": (0.706, 0.9975)}

PROTOCOLS = {
    "fvd": {"name": "animatelcm", "version": "1", "detector": "i3d_pretrained_400 (synthetic features)",
            "resize": "bilinear 224", "covariance": "unbiased"},
    "clipsim": {"name": "animatelcm", "version": "1", "model": "ViT-H-14 laion2b_s32b_b79k (synthetic values)",
                "scale": 100},
    "vbench": {"name": "vbench", "version": "0.1.5", "mode": "custom_input"},
}


def reference_stats(seed: int = 0, dim: int = FEATURE_DIM, n: int = 512) -> Tuple[np.ndarray, np.ndarray]:
    """Synthetic 'real video' feature statistics (mean, covariance)."""
    rng = np.random.default_rng(seed + 7919)
    ref = rng.normal(size=(n, dim))
    return ref.mean(axis=0), np.cov(ref, rowvar=False)


def clip_data(method: str, nfe: int, n_clips: int = 24, seed: int = 0,
              dim: int = FEATURE_DIM) -> Dict[Tuple[int, int], Dict[str, Any]]:
    """Synthetic per-clip data keyed by (prompt_index, seed): {'clipsim': float, 'features': [dim]}."""
    shift = _SHIFT.get(method, {}).get(nfe, 1.0)
    mean = _CLIP_MEAN.get(method, {}).get(nfe, 20.0)
    # One generator per (method, nfe) cell so cells are independent of which others exist.
    rng = np.random.default_rng([seed, METHODS.index(method) if method in METHODS else 9, nfe])
    feats = rng.normal(size=(n_clips, dim)) * (1.0 + 0.2 * shift) + shift / np.sqrt(dim) * 2.0
    vals = rng.normal(mean, 3.0, size=n_clips)
    return {(i, seed): {"clipsim": float(vals[i]), "features": feats[i]} for i in range(n_clips)}


def _row(method, nfe, metric, iv, n, proto) -> Dict[str, Any]:
    return {"method": method, "nfe": nfe, "metric": metric, "value": round(iv.point, 4),
            "ci_low": None if iv.lo is None else round(iv.lo, 4),
            "ci_high": None if iv.hi is None else round(iv.hi, 4), "n": n, "protocol": proto, "extra": {}}


def _score_cell(method, nfe, n_clips, seed, n_boot, stat) -> List[Dict[str, Any]]:
    data = clip_data(method, nfe, n_clips, seed)
    feats = np.stack([v["features"] for v in data.values()])
    vals = np.array([v["clipsim"] for v in data.values()])
    return [_row(method, nfe, "fvd", bootstrap_ci(feats, stat, n_boot=n_boot, seed=seed, interval="bias_corrected"),
                 n_clips, protocol_id(PROTOCOLS["fvd"])),
            _row(method, nfe, "clipsim", bootstrap_ci(vals, n_boot=n_boot, seed=seed), n_clips,
                 protocol_id(PROTOCOLS["clipsim"]))]


def _vbench_entry(seed: int, nfe: int, dims: Sequence[str]) -> Dict[str, Any]:
    rng = np.random.default_rng(seed + 31)
    scores = {d: round(float(rng.uniform(0.9, 0.99)), 4) for d in dims}
    # VBench aggregation restricted to the scored dimensions (min-max normalised, weights 1).
    norm = {d: (v - _VB_RANGE.get(d, (0.0, 1.0))[0]) / (_VB_RANGE.get(d, (0.0, 1.0))[1] - _VB_RANGE.get(d, (0.0, 1.0))[0])
            for d, v in scores.items()}
    q = [norm[d] for d in dims if d in VBENCH_QUALITY_DIMENSIONS]
    s = [norm[d] for d in dims if d not in VBENCH_QUALITY_DIMENSIONS]
    quality = 100 * float(np.mean(q)) if q else None
    semantic = 100 * float(np.mean(s)) if s else None
    total = None if quality is None else ((4 * quality + semantic) / 5 if semantic is not None else quality)
    missing = [d for d in VBENCH_DIMENSIONS if d not in dims]
    return {"nfe": nfe, "scores": scores, "total": None if total is None else round(total, 3),
            "quality": None if quality is None else round(quality, 3),
            "semantic": None if semantic is None else round(semantic, 3), "partial": bool(missing),
            "skipped": {d: "needs model weights (offline run)" for d in missing}, "n_videos": 20}


def make_results(seed: int = 0, n_clips: int = 24, n_boot: int = 200, methods: Iterable[str] = METHODS,
                 nfes: Iterable[int] = NFES, with_timing: bool = True, with_vbench: bool = True,
                 with_ablation: bool = True, weights_mode: str = "tiny",
                 vbench_dims: Sequence[str] = ("subject_consistency", "background_consistency",
                                               "temporal_flickering", "motion_smoothness")) -> Dict[str, Any]:
    """A complete, schema-valid synthetic results dict (weights_mode 'tiny' by default)."""
    methods, nfes = list(methods), list(nfes)
    mu, sigma = reference_stats(seed)
    stat = FrechetToReference(mu, sigma)
    rows: List[Dict[str, Any]] = []
    for m in methods:
        for k in nfes:
            rows += _score_cell(m, k, n_clips, seed, n_boot, stat)
    timing: List[Dict[str, Any]] = []
    if with_timing:
        unet_ms = 41.0  # one tiny UNet evaluation on the CPU, roughly
        settings = [(m, k) for m in methods for k in nfes] + [("ddim", 50)] * ("ddim" in methods)
        rng = np.random.default_rng(seed + 5)
        for m, k in settings:
            g = _GUIDANCE.get(m, 1.0)
            evals = k * (2 if g > 1 else 1)
            med = evals * unet_ms * float(rng.uniform(0.95, 1.05)) + 3.0
            timing.append({"method": m, "nfe": k, "guidance_scale": g, "denoise_ms_median": round(med, 2),
                           "denoise_ms_iqr": round(0.04 * med, 2), "text_encode_ms": 2.1, "vae_ms": 18.5,
                           "peak_mem_mb": 310.0 + 2 * evals, "device": "cpu", "dtype": "float32",
                           "tflop_per_unet_eval": 0.0021, "utilisation": None, "n_repeats": 5, "extra": {}})
    vbench = {}
    if with_vbench and "animatelcm" in methods:
        vbench["animatelcm"] = _vbench_entry(seed, 4, list(vbench_dims))
    ablation = None
    if with_ablation:
        ablation = []
        for dist, offset in (("decoupled", 0.0), ("joint", 0.35)):
            for step in (500, 1000, 2000, 4000):
                shift = 0.7 + offset + 1.2 * np.exp(-step / 1200.0)
                rng = np.random.default_rng([seed, step, int(offset * 100)])
                feats = rng.normal(size=(n_clips, FEATURE_DIM)) * (1 + 0.2 * shift) + shift / np.sqrt(FEATURE_DIM) * 2
                vals = rng.normal(29.0 - 8 * offset - 6 * np.exp(-step / 1200.0), 3.0, size=n_clips)
                ablation.append({"variant": f"{dist}-{step}", "train_step": step, "distillation": dist, "rows": [
                    _row("animatelcm", 4, "fvd", bootstrap_ci(feats, stat, n_boot=n_boot, seed=seed,
                                                               interval="bias_corrected"),
                         n_clips, protocol_id(PROTOCOLS["fvd"])),
                    _row("animatelcm", 4, "clipsim", bootstrap_ci(vals, n_boot=n_boot, seed=seed), n_clips,
                         protocol_id(PROTOCOLS["clipsim"]))]})
    label = DEFAULT_LABELS[weights_mode]
    if weights_mode != "pretrained":
        label = f"SYNTHETIC DATA, {label}"
    return {
        "schema_version": "1.0",
        "run": {"experiment": "synthetic", "run_dir": "runs/synthetic", "started_at": "2025-01-01T10:00:00+00:00",
                "finished_at": "2025-01-01T10:03:20+00:00", "wall_time_s": 200.0, "weights_mode": weights_mode,
                "label": label},
        "provenance": {
            "git_commit": "0123456789abcdef0123456789abcdef01234567", "git_dirty": False,
            "config": {"experiment": "synthetic", "n_clips": n_clips, "nfes": nfes, "methods": methods,
                       "resolution": [64, 64], "frames": 16},
            "seeds": {"base_seed": seed, "bootstrap_seed": seed},
            "packages": {"torch": "2.14.1", "diffusers": "0.42.1", "numpy": np.__version__},
            "device": {"type": "cpu", "name": "synthetic CPU", "cuda": None, "dtype": "float32"},
            "protocols": copy.deepcopy(PROTOCOLS),
            "prompt_set": {"name": "ucf101-classnames", "sha256": "ab" * 32},
        },
        "methods": {m: {"display_name": DISPLAY.get(m, m),
                        "weights": {"base": "tiny-sd15", "motion_adapter": "tiny-motion"},
                        "scheduler": {"class": "LCMScheduler" if m.startswith("animatelcm") else
                                      ("DDIMScheduler" if m == "ddim" else "DPMSolverMultistepScheduler"),
                                      "timestep_spacing": "trailing"},
                        "guidance_scale": _GUIDANCE.get(m, 1.0)} for m in methods},
        "rows": rows,
        "timing": timing,
        "vbench": vbench,
        "ablation": ablation,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "alpha": 0.05,
                      "method": "percentile over clip resampling (FVD: bias-corrected)"},
    }


def make_samples(methods: Iterable[str] = METHODS, nfes: Iterable[int] = NFES, frames: int = 8,
                 size: int = 48, seed: int = 0) -> Dict[Tuple[str, int], np.ndarray]:
    """Synthetic sample clips {(method, nfe): uint8 [F, H, W, 3]}: a moving blob, noisier at fewer steps."""
    out = {}
    yy, xx = np.mgrid[0:size, 0:size] / size
    for mi, m in enumerate(methods):
        for k in nfes:
            rng = np.random.default_rng([seed, mi, k])
            noise = 0.6 / np.sqrt(k)
            clip = np.empty((frames, size, size, 3), dtype=np.uint8)
            for f in range(frames):
                cx, cy = 0.3 + 0.4 * f / max(1, frames - 1), 0.5 + 0.15 * np.sin(f / 2 + mi)
                blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)
                img = np.stack([blob, 0.5 * blob + 0.3 * yy, 0.6 * xx * (1 - blob) + 0.2 * mi / 3], axis=-1)
                img = img + noise * rng.normal(size=img.shape)
                clip[f] = (np.clip(img, 0, 1) * 255).astype(np.uint8)
            out[(m, k)] = clip
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m results.synthetic",
                                 description="Write a synthetic (tiny-labelled) demo run: tables, plots, report.")
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from .report import write_all

    res = make_results(seed=args.seed)
    res["run"]["run_dir"] = args.out_dir
    for p in write_all(res, args.out_dir, samples=make_samples(seed=args.seed)):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
