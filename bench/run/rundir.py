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

from common.errors import InputError
from common.files import write_atomic


# what makes a run folder's results what they are: another value here is another experiment
# configuration (metrics, report and runner settings may change: re-scoring, re-rendering, resuming)
IDENTITY = ("experiment", "weights", "seed", "protocol", "methods")


def _differences(before: Any, now: Any, key: str) -> List[str]:
    if isinstance(before, dict) and isinstance(now, dict) and (key != "methods" or set(before) == set(now)):
        return [d for k in sorted(set(before) | set(now), key=str)
                for d in _differences(before.get(k), now.get(k), f"{key}.{k}" if key else str(k))]
    if isinstance(before, dict) and isinstance(now, dict):   # another method set: name the sets
        before, now = sorted(before), sorted(now)
    if before == now:
        return []
    return [f"{key} {str(before)[:60]}, this run {str(now)[:60]}"]


def check_same_experiment(cfg: DictConfig, run_dir: Path) -> None:
    """A run folder belongs to one experiment configuration: a run of another one would
    replace its results and leave the old run's other files beside them. Refused before
    anything is written; the same configuration resumes, re-scores and re-renders."""
    recorded = Path(run_dir) / "config.resolved.yaml"
    if not recorded.is_file():
        return
    before = OmegaConf.to_container(OmegaConf.load(recorded), resolve=False)
    now = OmegaConf.to_container(cfg, resolve=True)
    diffs = _differences({k: before.get(k) for k in IDENTITY}, {k: now.get(k) for k in IDENTITY}, "")
    if diffs:
        more = f"; and {len(diffs) - 3} more" if len(diffs) > 3 else ""
        raise InputError(f"{run_dir} holds a run of experiment '{before.get('experiment')}' made with other settings "
                         f"({'; '.join(diffs[:3])}{more}), and a run folder belongs to one experiment configuration: "
                         f"nothing was written. Run this one in a new folder: leave hydra.run.dir out (a new "
                         f"runs/{now.get('experiment')}/<time>) or give hydra.run.dir=NEW_FOLDER.")


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
