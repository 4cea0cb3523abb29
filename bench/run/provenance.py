"""Where a result came from: code version, packages, device. The packages recorded are the
harness's own and those each metric plug-in declares (its ``packages``)."""
from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import metrics

PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "open_clip_torch", "hydra-core", "numpy",
            "scipy", "pandas", "decord", "safetensors", "huggingface_hub")
REPO_ROOT = Path(__file__).resolve().parents[2]


def git_state(root: Path = REPO_ROOT) -> Dict[str, Optional[Any]]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10)
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"git_commit": commit, "git_dirty": dirty}


def package_names() -> List[str]:
    """The harness's packages, then each metric plug-in's declared ``packages`` (optional on a
    plug-in: a metric that needs no distribution of its own declares none)."""
    extra = [name for p in metrics.plugins() for name in getattr(p, "packages", ())]
    return list(dict.fromkeys(list(PACKAGES) + extra))


def package_versions() -> Dict[str, Optional[str]]:
    out = {}
    for name in package_names():
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out
