import os
import sys
from pathlib import Path

import pytest

from bench.net import offline

REPO = Path(__file__).resolve().parent.parent
# The authors' caption file (not redistributed here) for the tests that read it: the path in
# LCMBENCH_CAPTION_FILE, else the copy prefetch keeps in the lcmbench cache.
OFFICIAL_CAPTIONS = Path(os.environ.get("LCMBENCH_CAPTION_FILE") or Path(
    os.environ.get("LCMBENCH_CACHE") or Path.home() / ".cache" / "lcmbench") / "UCF101_prompts.yaml").expanduser()


def official_captions_or_skip() -> Path:
    if not OFFICIAL_CAPTIONS.is_file():
        pytest.skip(f"the official caption file is not at {OFFICIAL_CAPTIONS}: set LCMBENCH_CAPTION_FILE=PATH "
                    f"or run `lcmbench prefetch experiment=table1`")
    return OFFICIAL_CAPTIONS


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One lcmbench cache for the whole test session (tiny tokenizer files, LoRA, stats)."""
    path = tmp_path_factory.mktemp("lcmbench_cache")
    os.environ["LCMBENCH_CACHE"] = str(path)
    return path


@pytest.fixture
def one_thread():
    """torch on one thread for the test: on two busy cores, OpenMP threads fighting
    other processes make tiny models 20x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def compose(overrides=()):
    """Compose the Hydra config exactly as run_bench.py does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bench.plan.config import register

    register()
    with initialize_config_dir(config_dir=str(REPO / "bench" / "configs"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


@pytest.fixture(scope="session")
def e2e_reference(tmp_path_factory, cache_dir):
    """One uninterrupted single-process run of tests/e2e.py's small experiment, shared
    by the sharding and crash-safety tests (they compare their runs against it)."""
    from tests.e2e import reference_run

    return reference_run(tmp_path_factory.mktemp("e2e") / "reference", cache_dir)


@pytest.fixture
def no_offline_env(monkeypatch):
    """Start without offline variables; whatever bench.net.offline.enforce() sets (variables,
    the flags of already imported libraries, the network guard) is undone at teardown.
    (monkeypatch.delenv of an absent variable records nothing, so the variables are
    restored here.)"""
    keys = list(offline.OFFLINE_ENV) + ["LCMBENCH_OFFLINE"]
    saved = {key: os.environ.pop(key, None) for key in keys}
    for name, module in list(sys.modules.items()):
        if module is not None and name.startswith(offline._FLAG_OWNERS):
            for attr in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
                if isinstance(getattr(module, attr, None), bool):
                    monkeypatch.setattr(module, attr, getattr(module, attr))
    yield
    offline.release()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
