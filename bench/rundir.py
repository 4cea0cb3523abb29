"""The run directory's metadata, published once a run has passed every check: a
refused start (bad settings, a store made with other settings, a locked folder)
leaves an existing run directory exactly as it was."""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from common.files import write_atomic


def save_preflight(report, run_dir: Path) -> None:
    write_atomic(Path(run_dir) / "preflight.json",
                       json.dumps(report.to_dict(), indent=2, default=str).encode())


@contextmanager
def published(cfg: DictConfig, run_dir: Path, report) -> Iterator[None]:
    """The run's metadata, written once it has passed every check: the resolved config,
    the preflight report, Hydra's config and overrides (.hydra/), and a log file that
    receives the run's log records until the run ends (and no other run's)."""
    write_atomic(run_dir / "config.resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    save_preflight(report, run_dir)
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    write_atomic(hydra_dir / "config.yaml", OmegaConf.to_yaml(cfg).encode())
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        write_atomic(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(list(hc.overrides.task)).encode())
        write_atomic(hydra_dir / "hydra.yaml", OmegaConf.to_yaml({"hydra": hc}).encode())
    handler = logging.FileHandler(run_dir / "run_bench.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


_MADE: List[Path] = []   # the folders of this run's directory that did not exist before Hydra made them


class RunDirCallback(Callback):
    """Hydra callback (bench/configs/config.yaml): notes which folders of the run directory
    are missing before Hydra makes them, so that a refused run can remove exactly those."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _MADE.clear()
        folder = Path(str(config.hydra.run.dir)).absolute()   # ${now:...} is cached: the folder Hydra makes
        while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
            _MADE.append(folder)
            folder = folder.parent


def remove_if_made_empty() -> None:
    """Remove the folders Hydra made for this run, deepest first, while they are empty: a
    refused run leaves nothing behind. A folder that existed before, or holds anything, stays."""
    for folder in list(_MADE):
        try:
            folder.rmdir()   # only ever removes an empty folder
        except OSError:
            return
    _MADE.clear()
