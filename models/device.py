"""The one home of device facts: which device and dtype a run uses, what the device is
called, what is recorded about it, and its datasheet peak.

``bench.plan.shard``, preflight, the runner, the timing command and the benchmarks all read
these; none of them needs the diffusers model code for it.
"""
from __future__ import annotations

import platform
from typing import Any, Dict, Optional, Tuple

import torch
from common.errors import InputError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# Dense tensor-core peaks in TFLOP/s (bf16, fp16; fp32 accumulation as PyTorch uses;
# no structured sparsity), from the vendors' datasheets. Keyed by a substring of
# torch.cuda.get_device_name(); the first match wins, so variants come before families.
PEAK_TFLOPS: Tuple[Tuple[str, float, float], ...] = (
    ("H200 NVL", 835.5, 835.5),
    ("H200", 989.4, 989.4),          # SXM
    ("H100 PCIe", 756.5, 756.5),
    ("H100 NVL", 835.5, 835.5),
    ("H100", 989.4, 989.4),          # SXM5: "NVIDIA H100 80GB HBM3"
    ("A100", 312.0, 312.0),          # SXM4 and PCIe
    ("A800", 312.0, 312.0),
    ("L40S", 362.05, 362.05),
    ("RTX 4090", 165.2, 165.2),      # fp32 accumulation (fp16 accumulation is twice that)
)


def resolve_device_dtype(device: str = "auto", dtype: str = "auto") -> tuple:
    """(device, dtype) a run uses; ``auto`` picks a visible GPU in float16, else the CPU in float32."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device={device} was asked for but no CUDA GPU is visible. Use device=cpu or auto.")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"Unsupported device '{device}': use auto, cpu, cuda or cuda:N.")
    if dtype == "auto":
        dtype = "float16" if device.startswith("cuda") else "float32"
    if dtype not in DTYPES:
        raise InputError(f"Unsupported dtype '{dtype}': use auto, float32, float16 or bfloat16.")
    if device == "cpu" and dtype != "float32":
        raise InputError(f"dtype={dtype} on the CPU is not supported (half-precision convolutions are missing "
                         f"or very slow there). Use dtype=float32 on the CPU, or run on a GPU.")
    return device, dtype


def _cpu_model() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name


def device_name(device: str) -> str:
    """The device as timing rows and estimates name it (a GPU's product name, or the CPU model)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu: {_cpu_model()} ({torch.get_num_threads()} threads)"


def device_info(device: str, dtype: str) -> Dict[str, Any]:
    """What results record about the device (``provenance.device``)."""
    info: Dict[str, Any] = {"type": "cuda" if device.startswith("cuda") else "cpu", "dtype": dtype,
                            "cuda": torch.version.cuda, "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        info["name"] = torch.cuda.get_device_name(index)
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(index)))
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


def device_peak_tflops(name: str, dtype: str) -> Tuple[Optional[float], str]:
    """(dense peak TFLOP/s or None, why None) for a CUDA device name and dtype."""
    if dtype not in ("bfloat16", "float16"):
        return None, f"no {dtype} peak in the table (bf16/fp16 tensor-core peaks only)"
    for key, bf16, fp16 in PEAK_TFLOPS:
        if key.lower() in name.lower():
            return (bf16 if dtype == "bfloat16" else fp16), ""
    return None, (f"utilisation unknown: '{name}' is not in models/device.py PEAK_TFLOPS "
                  f"(add its dense {dtype} peak there)")
