"""One run at a time in a run directory.

Each process of a run holds an exclusive ``flock`` on ``<run_dir>/.lock-<scope>``
while it works. The operating system releases the lock when the process ends,
however it ends, so a killed run never leaves a stale lock behind. The scope is
the process's share of the clips (``shard-<index>-of-<count>``): torchrun ranks and
shard jobs of one sweep hold different scopes and share the directory by design,
while a second run of the same share is refused with the holder named.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from common.errors import LcmbenchError


class RunDirLocked(LcmbenchError, RuntimeError):
    """Another process is running in this run directory (same share of the clips)."""


def scope_of(index: int, count: int) -> str:
    return f"shard-{index}-of-{count}"


@contextmanager
def run_lock(run_dir: Path, scope: str) -> Iterator[Path]:
    path = Path(run_dir) / f".lock-{scope}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown process"
            raise RunDirLocked(
                f"{run_dir} is in use by another lcmbench run ({holder}); two runs in one run directory would "
                f"both write its store. Wait for it to finish, or choose another hydra.run.dir.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                  "command": " ".join(sys.argv)[:500]}).encode(), 0)
        yield path
    finally:
        os.close(fd)   # releases the lock
