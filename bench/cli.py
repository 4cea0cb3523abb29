"""Turn the errors a user can fix into one clear line instead of a stack trace."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger("lcmbench")


def run_with_clear_errors(cfg: DictConfig, run_dir: Path) -> None:
    from models.weights import UnsafeWeights, WeightsNotFound

    from .pipeline import run
    from .runner import StoreMismatch

    try:
        run(cfg, run_dir)
    except (WeightsNotFound, UnsafeWeights, StoreMismatch, FileNotFoundError, ValueError) as err:
        print(f"lcmbench: error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if getattr(err, "errno", None) == 28:  # ENOSPC
            print(f"lcmbench: error: disk full while writing under {run_dir}. Everything already written is "
                  f"intact; free space and run again with hydra.run.dir={run_dir} to resume.", file=sys.stderr)
            sys.exit(2)
        raise
