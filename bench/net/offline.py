"""Strict offline mode, and the runtime facts that change results or speed.

With HF_HUB_OFFLINE=1 (or ``preflight.offline=true``) the harness makes no network
attempt at all. :func:`enforce` makes that hold for the libraries too:

- it sets the offline variables that huggingface_hub, transformers, diffusers and
  datasets read (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, HF_DATASETS_OFFLINE) and turns
  their telemetry off;
- libraries that copied HF_HUB_OFFLINE into a module constant at import time
  (huggingface_hub.constants, diffusers.utils.hub_utils, diffusers.loaders.lora_base,
  ...) get the constant set too, so calling it after those imports still works;
- a guard (a Python audit hook) refuses every socket connection and name lookup to a
  host other than the loopback, with one clear error naming the host. Loopback stays
  open: torch.distributed rendezvous and local test servers are not the network.

:func:`runtime_provenance` records the attention backends, determinism flags and
versions that a result depends on.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import ipaddress
import logging
import os
import socket
import sys
import threading
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional

from huggingface_hub import constants as hf_constants

from common.errors import LcmbenchError
from common.names import env_flag

log = logging.getLogger("lcmbench")

OFFLINE_ENV: Dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
}
# the boolean variables a run reads (an unrecognised value is refused, bench/run/cli.py:check_environment)
FLAG_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "LCMBENCH_OFFLINE")
# Library modules that keep their own copy of huggingface_hub's offline flag.
_FLAG_OWNERS = ("huggingface_hub", "diffusers", "transformers", "peft", "accelerate", "open_clip", "timm", "datasets")


class NetworkBlocked(LcmbenchError, ConnectionError):
    """A network connection was attempted while strict offline mode is on."""


_state = {"guard": False, "hook": False}
_blocked: List[str] = []
_lock = threading.Lock()


def requested(cfg: Any = None) -> bool:
    """Offline is asked for by HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE / LCMBENCH_OFFLINE
    or by the config's preflight.offline."""
    if env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE") or env_flag("LCMBENCH_OFFLINE"):
        return True
    if cfg is None:
        return False
    try:
        pre = cfg.get("preflight") if hasattr(cfg, "get") else getattr(cfg, "preflight", None)
        return bool(pre is not None and (pre.get("offline") if hasattr(pre, "get") else pre.offline))
    except Exception:  # a config without the preflight group: not asked for
        return False


def is_loopback(host: Any) -> bool:
    if host is None:
        return True   # getaddrinfo(None, port): the local wildcard, not a lookup
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").lower()
    if host in ("localhost", "localhost.localdomain", "ip6-localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple) -> None:
    # Runs for every audited event in the process: return at once unless guarding a socket.
    if not _state["guard"] or not event.startswith("socket."):
        return
    host = None
    if event == "socket.connect":
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
            return
        host, port = (address[0], address[1]) if isinstance(address, tuple) else (address, None)
    elif event == "socket.getaddrinfo":
        host, port = args[0], args[1]
    elif event == "socket.gethostbyname":
        host, port = args[0], None
    else:
        return
    if is_loopback(host):
        return
    target = f"{host}:{port}" if port is not None else str(host)
    with _lock:
        _blocked.append(target)
    raise NetworkBlocked(
        f"offline mode: a network connection to {target} was attempted and refused. Put the file it needs in "
        f"place first (`python -m bench.prefetch experiment=...` on a machine with network), or unset "
        f"HF_HUB_OFFLINE / preflight.offline to allow downloads.")


def _set_library_flags() -> List[str]:
    changed = []
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(_FLAG_OWNERS):
            continue
        for attr in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
            if isinstance(getattr(module, attr, None), bool) and getattr(module, attr) is not True:
                setattr(module, attr, True)
                changed.append(f"{name}.{attr}")
    return changed


def enforce(block_network: bool = True) -> Dict[str, Any]:
    """Strict offline mode for this process: offline variables, library flags, and
    (block_network) the connection guard. Call it as early as possible; calling it
    again is harmless. Returns what it set."""
    env_set = {}
    for key, value in OFFLINE_ENV.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
            env_set[key] = value
    flags = _set_library_flags()
    if block_network:
        if not _state["hook"]:
            sys.addaudithook(_audit)   # audit hooks cannot be removed; _state["guard"] switches it
            _state["hook"] = True
        _state["guard"] = True
    return {"env": env_set, "library_flags": flags, "network_guard": _state["guard"]}


def enforce_if_requested(cfg: Any = None) -> bool:
    """enforce() when offline mode is asked for (environment or config); returns whether it was."""
    if requested(cfg):
        enforce()
        return True
    return False


def release() -> None:
    """Turn the connection guard off (the environment variables stay as they are)."""
    _state["guard"] = False


def guarding() -> bool:
    return _state["guard"]


def blocked() -> List[str]:
    """Hosts the guard refused in this process (for the run's provenance)."""
    with _lock:
        return list(_blocked)


@contextmanager
def guard() -> Iterator[None]:
    """The connection guard for the duration of a block."""
    was = _state["guard"]
    if not _state["hook"]:
        sys.addaudithook(_audit)
        _state["hook"] = True
    _state["guard"] = True
    try:
        yield
    finally:
        _state["guard"] = was


# ------------------------------------------------------------------ provenance

def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def runtime_provenance(device: str = "cpu", pipeline: Any = None) -> Dict[str, Any]:
    """Attention backends, determinism flags, library versions and the offline state.

    device: the run's device ("cpu", "cuda", "cuda:N"). pipeline: optionally the
    diffusers pipeline, to record which attention processors its UNet uses."""
    import torch  # heavy: torch, only when a run records its provenance

    cuda = torch.backends.cuda
    sdpa = {
        "flash": cuda.flash_sdp_enabled(),
        "mem_efficient": cuda.mem_efficient_sdp_enabled(),
        "math": cuda.math_sdp_enabled(),
        "cudnn": cuda.cudnn_sdp_enabled() if hasattr(cuda, "cudnn_sdp_enabled") else None,
    }
    if hasattr(cuda, "is_flash_attention_available"):   # whether this torch build has the flash kernels
        sdpa["flash_built"] = bool(cuda.is_flash_attention_available())
    xformers = _version("xformers")
    attention: Dict[str, Any] = {"torch_sdpa_enabled": sdpa,
                                 "xformers": {"installed": importlib.util.find_spec("xformers") is not None,
                                              "version": xformers}}
    if pipeline is not None and getattr(pipeline, "unet", None) is not None:
        procs = getattr(pipeline.unet, "attn_processors", {}) or {}
        attention["diffusers_processors"] = sorted({type(p).__name__ for p in procs.values()})
    determinism = {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(cuda.matmul.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
    versions = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "diffusers": _version("diffusers"),
        "transformers": _version("transformers"),
        "huggingface_hub": _version("huggingface_hub"),
        "xformers": xformers,
    }
    info: Dict[str, Any] = {"type": "cuda" if str(device).startswith("cuda") else "cpu", "id": str(device)}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        info.update({"name": props.name, "capability": f"{props.major}.{props.minor}",
                     "memory_gb": round(props.total_memory / 2 ** 30, 1)})
    try:
        hub_flag = bool(hf_constants.HF_HUB_OFFLINE)
    except ImportError:
        hub_flag = None
    offline = {
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE"),
        "TRANSFORMERS_OFFLINE": os.environ.get("TRANSFORMERS_OFFLINE"),
        "huggingface_hub_offline": hub_flag,
        "network_guard": _state["guard"],
        "blocked_connections": blocked(),
    }
    return {"device": info, "attention": attention, "determinism": determinism, "versions": versions,
            "offline": offline}
