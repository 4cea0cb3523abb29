import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_CAPTIONS = REPO.parent / "shared" / "data" / "UCF101_prompts.yaml"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One lcmbench cache for the whole test session (tiny tokenizer files, LoRA, stats)."""
    path = tmp_path_factory.mktemp("lcmbench_cache")
    os.environ["LCMBENCH_CACHE"] = str(path)
    return path


def compose(overrides=()):
    """Compose the Hydra config exactly as run_bench.py does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bench.config import register

    register()
    with initialize_config_dir(config_dir=str(REPO / "bench" / "configs"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))
