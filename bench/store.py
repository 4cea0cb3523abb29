"""The clip store: one file per clip, written atomically.

Each clip is an .npz holding its metadata (JSON), the per-clip features of every
metric (``feat::<feature_key>``) and, when asked, its lossless uint8 frames. A file
is written to a temporary name and renamed, so a kill leaves either the old file or
the new one, never a torn one. Each file also carries a sha256 per member
(``integrity``), checked on every read on top of the zip CRCs; a file that fails to
load or to match its digests is treated as missing and regenerated.

Several processes (torchrun ranks, SLURM array jobs, possibly on different hosts)
write into one store at once; they never write the same clip, and a temporary file
is only removed when its writer is known to be dead or it is stale.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

FEATURE_PREFIX = "feat::"
_META = "meta"
_FRAMES = "frames"
_INTEGRITY = "integrity"
# A temporary file of a writer on another host is removed only when it is older than
# this: writing one clip takes seconds, so an hour-old temporary has no live writer.
STALE_TEMPORARY_S = 3600.0


@dataclass
class ClipRecord:
    meta: Dict[str, Any]
    features: Dict[str, np.ndarray] = field(default_factory=dict)
    frames: Optional[np.ndarray] = None


def _digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}|{array.shape}|".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def _host() -> str:
    # no dots: the temporary's name is parsed back from its last dot-separated parts
    return socket.gethostname().split(".")[0] or "host"


def temporary_name(target: Path) -> Path:
    """``.<name>.tmp.<host>.<pid>`` next to the target: same filesystem, so the rename is atomic."""
    return target.with_name(f".{target.name}.tmp.{_host()}.{os.getpid()}")


_WRITER = re.compile(r"\.tmp(?:\.(?P<host>[^.]+)\.|)(?P<pid>\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_gone(host: Optional[str], pid: Optional[int], mtime_path: Path, stale_s: float) -> bool:
    if pid is not None and host == _host():
        return pid != os.getpid() and not _pid_alive(pid)
    try:
        return time.time() - mtime_path.stat().st_mtime > stale_s
    except FileNotFoundError:
        return False


def is_abandoned(tmp: Path, stale_s: float = STALE_TEMPORARY_S) -> bool:
    """True when no live writer can still rename this temporary into place: its writer
    ran on this host and is dead, or it ran elsewhere and the file is stale."""
    m = _WRITER.search(tmp.name)
    if m and m["host"] is None:
        return True   # ".tmp<pid>": the single-process writer of older versions
    return _writer_gone(m["host"] if m else None, int(m["pid"]) if m else None, tmp, stale_s)


def atomic_write_bytes(target: Path, data: bytes) -> Path:
    """Write to a temporary in the same folder, fsync, rename. On any error (ENOSPC
    included) the temporary is removed and the old target, if any, is untouched. The
    store's own form of common.files.write_atomic: its temporary names carry the
    writer's pid, so a resume can tell a killed run's leftovers from a live writer's."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def publish_dir(staging: Path, target: Path, last: Sequence[str] = ("results.json",)) -> List[Path]:
    """Move every file of ``staging`` to the same place under ``target``, each by an
    atomic rename; the files named in ``last`` go last, so their presence means the
    whole set was published. ``staging`` is removed. Returns the published paths."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    files.sort(key=lambda p: str(p.relative_to(staging)) in last)
    # withdraw the old completion marker first: a kill part-way then leaves no marker
    # beside a mix of old and new files
    for name in last:
        (target / name).unlink(missing_ok=True)
    out = []
    for src in files:
        dst = target / src.relative_to(staging)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        out.append(dst)
    shutil.rmtree(staging, ignore_errors=True)
    return out


def staging_dir(run_dir: Path, prefix: str = ".staging-") -> Path:
    """A private folder in ``run_dir`` for files that are published together."""
    return Path(run_dir) / f"{prefix}{_host()}.{os.getpid()}"


def remove_abandoned_staging(run_dir: Path, prefix: str = ".staging-") -> int:
    """Staging folders left by killed writers."""
    count = 0
    for d in Path(run_dir).glob(prefix + "*"):
        host, _, pid = d.name[len(prefix):].rpartition(".")
        if d.is_dir() and _writer_gone(host or None, int(pid) if pid.isdigit() else None, d, STALE_TEMPORARY_S):
            shutil.rmtree(d, ignore_errors=True)
            count += 1
    return count


class ClipStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.corrupt: List[str] = []   # keys whose file failed to load (regenerated on resume)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def write(self, key: str, meta: Dict[str, Any], features: Dict[str, np.ndarray],
              frames: Optional[np.ndarray] = None) -> Path:
        arrays = {_META: np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)}
        for name, value in features.items():
            arrays[FEATURE_PREFIX + name] = np.asarray(value)
        if frames is not None:
            arrays[_FRAMES] = np.asarray(frames, dtype=np.uint8)
        integrity = {name: _digest(value) for name, value in arrays.items()}
        arrays[_INTEGRITY] = np.frombuffer(json.dumps(integrity, sort_keys=True).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)   # uncompressed: frames of generated video barely compress
        return atomic_write_bytes(self.path(key), buffer.getvalue())

    def _mark_corrupt(self, key: str) -> None:
        if key not in self.corrupt:
            self.corrupt.append(key)

    def read(self, key: str, with_frames: bool = True) -> Optional[ClipRecord]:
        """The clip, or None when it is missing or fails its integrity check."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                digests = json.loads(bytes(data[_INTEGRITY]).decode()) if _INTEGRITY in data.files else None
                wanted = [n for n in data.files if n != _INTEGRITY and (with_frames or n != _FRAMES)]
                arrays = {n: data[n] for n in wanted}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError):
            self._mark_corrupt(key)
            return None
        # files written before digests existed are checked by their zip CRCs only
        if digests is not None and any(digests.get(n) != _digest(a) for n, a in arrays.items()):
            self._mark_corrupt(key)
            return None
        try:
            meta = json.loads(bytes(arrays[_META]).decode())
        except (KeyError, UnicodeDecodeError, json.JSONDecodeError):
            self._mark_corrupt(key)
            return None
        if not isinstance(meta, dict) or meta.get("key") != key:
            self._mark_corrupt(key)
            return None
        features = {n[len(FEATURE_PREFIX):]: a for n, a in arrays.items() if n.startswith(FEATURE_PREFIX)}
        return ClipRecord(meta, features, arrays.get(_FRAMES))

    def keys(self) -> List[str]:
        return sorted(str(p.relative_to(self.root))[:-4] for p in self.root.rglob("*.npz")
                      if not p.name.startswith("."))

    def remove_temporaries(self) -> int:
        """Temporary files whose writer was killed; they are never read. Temporaries of
        live writers (other ranks or jobs sharing this store) are left alone."""
        count = 0
        for tmp in self.root.rglob(".*.tmp*"):
            if is_abandoned(tmp):
                tmp.unlink(missing_ok=True)
                count += 1
        return count

    def has_frames(self, key: str) -> bool:
        """Whether the clip's file keeps its frames (read from the zip's listing, not the frames)."""
        try:
            with np.load(self.path(key), allow_pickle=False) as data:
                return _FRAMES in data.files
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return False

    def read_many(self, keys: Iterable[str], with_frames: bool = False) -> Dict[str, ClipRecord]:
        out = {}
        for key in keys:
            record = self.read(key, with_frames=with_frames)
            if record is not None:
                out[key] = record
        return out
