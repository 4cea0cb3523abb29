"""Which share of the clips this process makes, and how the processes meet.

A clip belongs to shard ``sha256(key) mod count``: the key names the clip the same way
whatever the number of processes or the batch size, so a store made with 8 processes
is resumed by 1 or 3 without regenerating anything (a split by position would move
every clip to another shard when the count changes).

Where the shard comes from, combined when several are given:

- ``shard.index`` / ``shard.count`` in the config: independent jobs (a SLURM job array
  through Hydra's submitit launcher) that share one ``run_dir``. They never score: the
  score job runs ``stages=[score,report]`` once every shard is done.
- torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``): the ranks join a
  torch.distributed group (gloo on the CPU, nccl on GPUs); after a barrier rank 0
  scores and reports. Each rank uses ``cuda:LOCAL_RANK``.
- ``srun`` tasks (``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS``, ``SLURM_LOCALID``): a
  group as with torchrun when ``MASTER_ADDR``/``MASTER_PORT`` are set, else independent
  shards like the config case.

Config and process shards nest: with ``shard.count=4`` and 2 ranks per job there are
8 shards, ``index * ranks + rank``.
"""
from __future__ import annotations

import datetime
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional
from common.errors import InputError


log = logging.getLogger("lcmbench")


def _torch():
    """torch with torch.distributed, imported on first use: only multi-process runs need
    it, and the command line's start-up (which imports this module) stays light."""
    import torch  # heavy: see above
    import torch.distributed  # noqa: F401  (makes torch.distributed an attribute)

    return torch


def shard_of(key: str, count: int) -> int:
    """The shard that makes clip ``key`` out of ``count``: stable across processes,
    machines and Python versions (no ``hash()``, which is salted per process)."""
    if count < 1:
        raise InputError(f"shard count must be >= 1, got {count}.")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1
    local_rank: int = 0
    source: str = "single"          # single | config | torchrun | slurm, joined by '+'
    group: bool = False             # a torch.distributed process group joins the processes
    config_count: int = 1           # the part of ``count`` given by shard.count
    rank: int = 0                   # rank within the process group (0 without one)
    world: int = 1                  # size of the process group (1 without one)

    @property
    def sharded(self) -> bool:
        return self.count > 1

    @property
    def is_main(self) -> bool:
        """The process that writes run-level files (config, results)."""
        return self.index == 0

    @property
    def scores(self) -> bool:
        """Whether this process may run the score and report stages: an unsharded
        run, or rank 0 of a group that covers every shard (after its barrier).
        Independent shard jobs leave scoring to a separate score job."""
        return self.config_count == 1 and (not self.sharded or (self.group and self.rank == 0))

    def owns(self, key: str) -> bool:
        return self.count == 1 or shard_of(key, self.count) == self.index

    def label(self) -> str:
        return f"shard {self.index} of {self.count} ({self.source})" if self.sharded else "unsharded"

    def describe(self) -> dict:
        return {"index": self.index, "count": self.count, "source": self.source, "process_group": self.group,
                "assignment": "sha256(clip key) mod count"}


def _int(env: Mapping[str, str], name: str) -> Optional[int]:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise InputError(f"environment variable {name}={value!r} is not an integer.") from None


def detect(index: Optional[int] = None, count: Optional[int] = None, use_env: bool = True,
           env: Optional[Mapping[str, str]] = None) -> Shard:
    """The shard of this process from the config (``index``/``count``) and, when
    ``use_env``, from torchrun or srun variables."""
    env = os.environ if env is None else env
    if count is None and index is not None:
        raise InputError(f"shard.index={index} was given without shard.count: set both, e.g. "
                         f"shard.count=8 'shard.index=range(8)'.")
    config_count = 1 if count is None else int(count)
    config_index = 0 if index is None else int(index)
    if config_count < 1:
        raise InputError(f"shard.count must be >= 1, got {config_count}.")
    if not 0 <= config_index < config_count:
        raise InputError(f"shard.index={config_index} is outside 0..{config_count - 1} (shard.count={config_count}).")

    rank, world, local_rank, source, group = 0, 1, 0, "single", False
    if use_env:
        if _int(env, "WORLD_SIZE") is not None and _int(env, "RANK") is not None:
            rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
            local_rank = _int(env, "LOCAL_RANK") or 0
            source, group = "torchrun", world > 1
        elif _int(env, "SLURM_PROCID") is not None and _int(env, "SLURM_STEP_NUM_TASKS") is not None:
            # SLURM_STEP_NUM_TASKS is set by srun only: a batch script that runs python
            # directly (SLURM_NTASKS>1, one process) must not take a share of the clips.
            rank, world = _int(env, "SLURM_PROCID"), _int(env, "SLURM_STEP_NUM_TASKS")
            local_rank = _int(env, "SLURM_LOCALID") or 0
            source = "slurm"
            group = world > 1 and bool(env.get("MASTER_ADDR")) and bool(env.get("MASTER_PORT"))
        if world < 1 or not 0 <= rank < world:
            raise InputError(f"{source}: rank {rank} is outside 0..{world - 1}; check the launcher's environment.")
    sources = [s for s, on in (("config", config_count > 1), (source, world > 1)) if on]
    return Shard(index=config_index * world + rank, count=config_count * world, local_rank=local_rank,
                 source="+".join(sources) or "single", group=group, config_count=config_count,
                 rank=rank, world=world)


# ------------------------------------------------------------------ the process group

def rank_device(device: str, shard: Shard) -> str:
    """cuda:LOCAL_RANK for every rank of a multi-process job on GPUs; an explicit
    cuda:N or the CPU is kept."""
    if shard.world > 1 and device == "cuda":
        return f"cuda:{shard.local_rank}"
    return device


class Group:
    """The torch.distributed group of a torchrun or srun job, or a no-op stand-in."""

    def __init__(self, shard: Shard, device: str = "cpu", timeout_min: float = 1440.0):
        self.shard = shard
        self.active = False
        if not shard.group:
            return
        torch = _torch()
        dist = torch.distributed

        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        if not dist.is_initialized():
            # generation is unbalanced across ranks: the barrier waits as long as a shard may take
            dist.init_process_group(backend, init_method="env://", rank=shard.rank, world_size=shard.world,
                                    timeout=datetime.timedelta(minutes=float(timeout_min)))
        self.backend = backend
        self.device = device
        self.active = True

    def barrier(self) -> None:
        if self.active:
            dist = _torch().distributed

            if self.backend == "nccl":
                torch = _torch()

                dist.barrier(device_ids=[torch.device(self.device).index or 0])
            else:
                dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value on every rank."""
        if not self.active:
            return value
        dist = _torch().distributed

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> List[Any]:
        """Every rank's value, in rank order (on every rank)."""
        if not self.active:
            return [value]
        dist = _torch().distributed

        out: List[Any] = [None] * self.shard.world
        dist.all_gather_object(out, value)
        return out

    def close(self) -> None:
        if self.active:
            dist = _torch().distributed

            if dist.is_initialized():
                dist.destroy_process_group()
            self.active = False


def open_group(shard: Shard, device: str = "auto", dtype: str = "auto", timeout_min: float = 1440.0) -> Group:
    """The process group of ``shard`` on this rank's device (nothing for one process)."""
    if not shard.group:
        return Group(shard)

    from models.device import resolve_device_dtype  # heavy (torch): multi-process runs only

    resolved, _ = resolve_device_dtype(device, dtype)
    return Group(shard, rank_device(resolved, shard), timeout_min)


def shared_run_dir(group: Group, run_dir: Path) -> Path:
    """Every rank writes into rank 0's run directory: Hydra names its output folder by
    the start time, which can differ by a second between ranks."""
    return Path(group.broadcast(str(run_dir)))
