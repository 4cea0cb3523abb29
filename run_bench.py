"""lcmbench entry point (Hydra).

    python run_bench.py                       # the smoke experiment (CPU, tiny weights)
    python run_bench.py experiment=table1     # the paper's Table 1 protocol
    python run_bench.py list                  # models, metrics, experiments (imports no torch)
"""
from __future__ import annotations

import sys
from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent / "bench" / "configs")


def list_registry() -> str:
    import metrics
    import models
    from bench.plan.overrides import GROUPS

    groups = {g: sorted(p.stem for p in (Path(CONFIG_DIR) / g).glob("*.yaml")) for g in GROUPS}
    lines = ["Models (models/registry.py):", models.describe(), "",
             "Metrics: " + ", ".join(metrics.available()), ""]
    lines += [f"Config group {g}/: {', '.join(names)}" for g, names in groups.items()]
    lines += ["", "Weight modes: pretrained | random | tiny (weights=...)"]
    return "\n".join(lines)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "list":
    print(list_registry())
    sys.exit(0)

if __name__ == "__main__":
    # Hydra's own message for a misspelt group option or key is several lines with no
    # suggestion: catch those first, as one line with the closest valid name.
    from bench.plan.overrides import check_overrides
    from bench.run.cli import check_environment, check_run_dir, fail

    _problem = check_overrides(sys.argv[1:], CONFIG_DIR) or check_run_dir(sys.argv[1:]) or check_environment()
    if _problem:
        fail(_problem)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from bench.plan.config import register  # noqa: E402

register()


@hydra.main(config_path="bench/configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from bench.net.offline import enforce_if_requested
    from bench.run.cli import run_with_clear_errors
    from bench.run.rundir import remove_if_made_empty

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        enforce_if_requested(cfg)
        run_with_clear_errors(cfg, output_dir)
    except SystemExit as err:
        if err.code not in (0, None):   # a refused run leaves no empty folder behind (Hydra made it)
            remove_if_made_empty()
        raise


if __name__ == "__main__":
    main()
