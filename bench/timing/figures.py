"""Benchmark figures on disk: written whole or not at all, with the environment they
were measured in (the timing command and the scripts in benchmarks/ share this)."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from common.files import write_atomic
from models.device import device_info


def environment(device: str) -> Dict[str, Any]:
    """Python, torch, diffusers and the device's facts (``models.device.device_info``)."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "host": platform.node()}
    try:
        info["diffusers"] = importlib.metadata.version("diffusers")
    except importlib.metadata.PackageNotFoundError:
        pass
    facts = device_info(device, "")
    info.update({k: facts[k] for k in ("cuda", "torch_threads", "capability") if k in facts})
    return info


def default_out_dir() -> Path:
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"])
    return Path(__file__).resolve().parents[2] / "results" / "timing"


def write_figures(payload: Dict[str, Any], name: str, out: Optional[str] = None) -> Path:
    """A benchmark's figures as JSON, written whole or not at all: to ``out``, else under
    default_out_dir() as NAME.json (when $OUT is set) or NAME_<date-time>.json."""
    path = Path(out) if out else default_out_dir() / (
        f"{name}.json" if os.environ.get("OUT") else f"{name}_{time.strftime('%Y%m%d-%H%M%S')}.json")
    return write_atomic(path, json.dumps(payload, indent=2, default=str))


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    head = (f"{'method':<13} {'steps':>5} {'cfg':>5} {'evals':>5} {'denoise ms':>11} {'iqr':>8} {'min':>9} "
            f"{'max':>9} {'text ms':>8} {'vae ms':>8} {'peak MB':>8} {'TFLOP/s':>8} {'util':>6} {'x teacher':>9}")
    lines = [head, "-" * len(head)]

    def opt(value, fmt):
        return "-" if value is None else fmt % value

    for r in rows:
        e = r["extra"]
        cfg = "%g" % r["guidance_scale"] if r["guidance_scale"] > 1 else "off"
        util = None if r["utilisation"] is None else 100 * r["utilisation"]
        lines.append(
            f"{r['method']:<13} {r['nfe']:>5} {cfg:>5} {e['unet_evals']:>5} {r['denoise_ms_median']:>11.1f} "
            f"{r['denoise_ms_iqr']:>8.1f} {e['denoise_ms_min']:>9.1f} {e['denoise_ms_max']:>9.1f} "
            f"{r['text_encode_ms']:>8.1f} {r['vae_ms']:>8.1f} {opt(r['peak_mem_mb'], '%.0f'):>8} "
            f"{opt(e['achieved_tflops'], '%.3g'):>8} {opt(util, '%.1f%%'):>6} "
            f"{opt(e.get('speedup_vs_teacher'), '%.1fx'):>9}")
    return "\n".join(lines)
