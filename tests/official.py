"""Import pieces of the authors' code (G-U-N/AnimateLCM) from a checkout the user
points to with LCMBENCH_OFFICIAL_REPO. Nothing of it is copied into this project:
tests that need it skip, with the reason, when the variable is unset.

Some of the authors' files import modules that are absent or renamed today (their
fvd.py imports ``scripts.fvd.pytorch_i3d`` and scikit-learn; their motion module the
diffusers 0.11 API). :func:`load` stands in only those import names, while the code
under test is theirs, unchanged.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator

import pytest

ENV = "LCMBENCH_OFFICIAL_REPO"


def repo() -> Path:
    root = os.environ.get(ENV)
    if not root:
        pytest.skip(f"{ENV} is not set: point it at a checkout of G-U-N/AnimateLCM to run the parity tests "
                    f"against the authors' code")
    path = Path(root).expanduser()
    if not (path / "metrics" / "pytorch_i3d.py").is_file():
        pytest.skip(f"{ENV}={root} is not a checkout of G-U-N/AnimateLCM (no metrics/pytorch_i3d.py)")
    return path


@contextmanager
def stand_ins(modules: Dict[str, types.ModuleType]) -> Iterator[None]:
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def load(relative: str, name: str, modules: Dict[str, types.ModuleType] | None = None) -> types.ModuleType:
    """Import ``<repo>/<relative>`` as module ``name`` (with stand-in import names)."""
    path = repo() / relative
    if not path.is_file():
        pytest.skip(f"the checkout lacks {relative}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    with stand_ins(modules or {}):
        spec.loader.exec_module(module)
    return module


def module(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


def i3d_module() -> types.ModuleType:
    return load("metrics/pytorch_i3d.py", "official_pytorch_i3d")


def fvd_module() -> types.ModuleType:
    """The authors' metrics/fvd.py; its I3D import points at their pytorch_i3d.py. Its
    scikit-learn import serves only polynomial_mmd, which no test calls."""
    i3d = i3d_module()

    def _no_sklearn(*_a, **_k):
        raise RuntimeError("polynomial_kernel is not available in the parity tests")

    stand = {"scripts": module("scripts"), "scripts.fvd": module("scripts.fvd"),
             "scripts.fvd.pytorch_i3d": i3d}
    try:
        import sklearn.metrics.pairwise  # noqa: F401 - the real one when installed
    except ImportError:
        stand.update({"sklearn": module("sklearn"), "sklearn.metrics": module("sklearn.metrics"),
                      "sklearn.metrics.pairwise": module("sklearn.metrics.pairwise", polynomial_kernel=_no_sklearn)})
    return load("metrics/fvd.py", "official_fvd", stand)


def lcm_utils_module() -> types.ModuleType:
    return load("animatelcm_sd15/animatelcm/utils/lcm_utils.py", "official_lcm_utils")


DIFFUSERS_011_ENV = "LCMBENCH_DIFFUSERS_0_11"


def dpmsolver_011() -> types.ModuleType:
    """diffusers 0.11.1's DPMSolverMultistepScheduler (the authors' pinned release), from
    an unpacked wheel that LCMBENCH_DIFFUSERS_0_11 points to (``pip download --no-deps
    diffusers==0.11.1`` and unzip it). Only its scheduler file is run; its three
    package-relative imports resolve to today's ConfigMixin / SchedulerMixin, which
    hold no arithmetic, and its deprecation checks are silenced."""
    root = os.environ.get(DIFFUSERS_011_ENV)
    if not root:
        pytest.skip(f"{DIFFUSERS_011_ENV} is not set: point it at an unpacked diffusers 0.11.1 wheel")
    path = Path(root).expanduser() / "diffusers" / "schedulers" / "scheduling_dpmsolver_multistep.py"
    if not path.is_file():
        pytest.skip(f"{path} does not exist")
    src = path.read_text()
    src = src.replace("from ..configuration_utils import", "from diffusers.configuration_utils import")
    src = src.replace("from ..utils import _COMPATIBLE_STABLE_DIFFUSION_SCHEDULERS, deprecate",
                      "_COMPATIBLE_STABLE_DIFFUSION_SCHEDULERS = []\ndef deprecate(*args, **kwargs):\n    return None")
    src = src.replace("from .scheduling_utils import", "from diffusers.schedulers.scheduling_utils import")
    module = types.ModuleType("diffusers_0_11_dpmsolver")
    exec(compile(src, str(path), "exec"), module.__dict__)
    return module
