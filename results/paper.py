"""The AnimateLCM paper's published numbers, as data.

Source: Wang et al., "AnimateLCM: Computation-Efficient Personalized Style
Video Generation without Personalized Video Data", SIGGRAPH Asia 2024
Technical Communications (arXiv:2402.00769).

- Table 1: zero-shot text-to-video on UCF-101 (101 classes x 24 videos = 2424
  clips, 16 frames, 512x512), FVD (I3D, lower is better) and CLIPSIM
  (CLIP ViT-H/14 LAION-2B, x100, higher is better) at 1/2/4/8 steps. DDIM and
  DPM++ are the teacher with classifier-free guidance 7.5; Ours (AnimateLCM)
  and Ours-R (personalized base weights) use no guidance.
- Table 2: VBench Total / Quality / Semantic for AnimateLCM.
- Timing: one A800, fp16, 2-second video, VAE decoding excluded.
- Ablation: decoupled vs joint consistency distillation.

:func:`as_results` wraps Table 1 in a schema-valid results object so the same
table code renders the paper's own numbers.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

CITATION = ("Wang et al., AnimateLCM: Computation-Efficient Personalized Style Video Generation "
            "without Personalized Video Data, SIGGRAPH Asia 2024 Technical Communications")
ARXIV = "2402.00769"

NFES = (1, 2, 4, 8)
METHODS = ("ddim", "dpmpp", "animatelcm", "animatelcm_r")
DISPLAY = {"ddim": "DDIM", "dpmpp": "DPM++", "animatelcm": "Ours", "animatelcm_r": "Ours-R"}
GUIDANCE = {"ddim": 7.5, "dpmpp": 7.5, "animatelcm": 1.0, "animatelcm_r": 1.0}
N_CLIPS = 2424  # 101 UCF-101 classes x 24 videos

# Table 1: metric -> method -> nfe -> value.
TABLE1: Dict[str, Dict[str, Dict[int, float]]] = {
    "fvd": {
        "ddim": {1: 4940.83, 2: 3218.74, 4: 1944.82, 8: 1209.88},
        "dpmpp": {1: 2731.37, 2: 2093.47, 4: 1043.82, 8: 932.43},
        "animatelcm": {1: 1256.50, 2: 1081.26, 4: 925.71, 8: 910.34},
        "animatelcm_r": {1: 1071.50, 2: 790.99, 4: 929.79, 8: 1081.72},
    },
    "clipsim": {
        "ddim": {1: 4.43, 2: 5.26, 4: 14.87, 8: 24.38},
        "dpmpp": {1: 10.48, 2: 18.04, 4: 26.82, 8: 29.50},
        "animatelcm": {1: 22.16, 2: 25.99, 4: 28.89, 8: 30.03},
        "animatelcm_r": {1: 25.41, 2: 29.39, 4: 30.62, 8: 30.71},
    },
}

# Table 2: AnimateLCM on VBench, percent.
VBENCH_ANIMATELCM: Dict[str, float] = {"total": 79.42, "quality": 82.36, "semantic": 67.65}

# Inference time of a 2-second video, denoising only (VAE decoding excluded).
TIMING: Dict[str, Any] = {
    "device": "NVIDIA A800",
    "dtype": "float16",
    "animatelcm_ms": 963.0,
    "animatelcm_nfe": 4,
    "animatelcm_guidance_scale": 1.0,
    "teacher_ms": 23564.0,
    "teacher_nfe": 50,
    "teacher_guidance_scale": 7.5,
}
# (50 steps x 2 for CFG) / 4 steps: the UNet-evaluation ratio.
THEORETICAL_SPEEDUP = (TIMING["teacher_nfe"] * 2) / TIMING["animatelcm_nfe"]
MEASURED_SPEEDUP = TIMING["teacher_ms"] / TIMING["animatelcm_ms"]

# Ablation: distillation strategy -> metric -> value (4 h + 4 h decoupled vs 8 h joint).
ABLATION: Dict[str, Dict[str, float]] = {
    "decoupled": {"fvd": 985.9, "clipsim": 27.7},
    "joint": {"fvd": 1060.6, "clipsim": 18.8},
}
ABLATION_NOTE = "decoupled: 4 h image LoRA + 4 h video distillation; joint: 8 h end to end"


def table1_value(metric: str, method: str, nfe: int) -> Optional[float]:
    """The paper's Table 1 value, or None when the paper has no such cell."""
    return TABLE1.get(metric, {}).get(method, {}).get(nfe)


def timing_ms(method: str, nfe: int, guidance_scale: float) -> Optional[float]:
    """The paper's denoising time for a matching setting (AnimateLCM 4 steps, teacher 50 steps + CFG)."""
    if method in ("animatelcm", "animatelcm_r") and nfe == TIMING["animatelcm_nfe"] and guidance_scale <= 1.0:
        return TIMING["animatelcm_ms"]
    if method in ("ddim", "dpmpp") and nfe == TIMING["teacher_nfe"] and guidance_scale > 1.0:
        return TIMING["teacher_ms"]
    return None


def as_results() -> Dict[str, Any]:
    """The paper's Table 1 (and VBench row) as a schema-valid results dict, without intervals.

    Its protocols are named ``paper`` so it can never pass for, or be
    compared with, a measured run.
    """
    rows: List[Dict[str, Any]] = []
    for metric, by_method in TABLE1.items():
        for method, by_nfe in by_method.items():
            for nfe, value in by_nfe.items():
                rows.append({"method": method, "nfe": nfe, "metric": metric, "value": value, "ci_low": None,
                             "ci_high": None, "n": N_CLIPS, "protocol": f"{metric}-paper-v2024",
                             "extra": {}})
    protocols = {m: {"name": f"{m}-paper", "version": "2024", "source": CITATION} for m in ("fvd", "clipsim")}
    protocols["vbench"] = {"name": "vbench-paper", "version": "2024", "source": CITATION}
    return {
        "schema_version": "1.0",
        "run": {"experiment": "paper", "run_dir": "-", "started_at": "2024-02-01T00:00:00+00:00",
                "finished_at": "2024-02-01T00:00:00+00:00", "wall_time_s": 0.0, "weights_mode": "pretrained",
                "label": "Published numbers from the AnimateLCM paper"},
        "provenance": {"git_commit": None, "git_dirty": None, "config": {"source": CITATION, "arxiv": ARXIV},
                       "seeds": {"base_seed": 0, "bootstrap_seed": 0}, "packages": {},
                       "device": {"type": "cuda", "name": TIMING["device"], "cuda": None, "dtype": TIMING["dtype"]},
                       "protocols": protocols, "prompt_set": {"name": "ucf101-gpt4-captions", "sha256": None}},
        "methods": {m: {"display_name": DISPLAY[m], "weights": {}, "scheduler": {}, "guidance_scale": GUIDANCE[m]}
                    for m in METHODS},
        "rows": rows,
        "timing": [
            {"method": "ddim", "nfe": TIMING["teacher_nfe"], "guidance_scale": TIMING["teacher_guidance_scale"],
             "denoise_ms_median": TIMING["teacher_ms"], "denoise_ms_iqr": 0.0, "device": TIMING["device"],
             "dtype": TIMING["dtype"]},
            {"method": "animatelcm", "nfe": TIMING["animatelcm_nfe"], "guidance_scale": 1.0,
             "denoise_ms_median": TIMING["animatelcm_ms"], "denoise_ms_iqr": 0.0, "device": TIMING["device"],
             "dtype": TIMING["dtype"]},
        ],
        "vbench": {"animatelcm": {"nfe": None, "scores": {}, "total": VBENCH_ANIMATELCM["total"],
                                  "quality": VBENCH_ANIMATELCM["quality"],
                                  "semantic": VBENCH_ANIMATELCM["semantic"], "partial": True,
                                  "skipped": {}}},
        "bootstrap": {"n_boot": 0, "seed": 0, "alpha": 0.05, "method": "none (published point values)"},
    }
