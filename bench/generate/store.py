"""The clip store: one file per clip, written atomically.

Each clip is an .npz holding its metadata (JSON), the per-clip features of every
metric (``feat::<feature_key>``) and, when asked, its lossless uint8 frames. A file
is written to a temporary name and renamed, so a kill leaves either the old file or
the new one, never a torn one. Each file also carries a sha256 per member
(``integrity``), checked when the file is read on top of the zip CRCs; a file that fails
to load or to match its digests is treated as missing and regenerated. A store object
keeps what it read (metadata and features, not frames) keyed by the file's identity
(inode, size, times), so each stage opens and hashes a clip once, while a file that
another process replaced is read again. A batch of clips is written with one flush of
the filesystem (``write_many``) rather than one journal commit per clip.

Several processes (torchrun ranks, SLURM array jobs, possibly on different hosts)
write into one store at once; they never write the same clip, and a temporary file
is only removed when its writer is known to be dead or it is stale.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from common import clipfile
from common.clipfile import ClipRecord

# A temporary file of a writer on another host is removed only when it is older than
# this: writing one clip takes seconds, so an hour-old temporary has no live writer.
STALE_TEMPORARY_S = 3600.0

try:
    _LIBC = ctypes.CDLL(None, use_errno=True)   # the process's own symbols: libc's syncfs on Linux
except OSError:   # no C library to call: fall back to os.sync
    _LIBC = None


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


def _identity(path: Path) -> Optional[Tuple[int, int, int, int]]:
    """What changes whenever the file is replaced or rewritten; None when it is missing."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _flush_filesystem(path: Path) -> None:
    """Write back the dirty pages of the filesystem holding ``path``: Linux ``syncfs``
    where libc has it (one filesystem, not every mount of a shared GPU node), else
    ``os.sync``."""
    syncfs = getattr(_LIBC, "syncfs", None) if _LIBC is not None else None
    if syncfs is not None:
        fd = os.open(path, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    os.sync()


def _fsync_dir(folder: Path) -> None:
    # the renames themselves survive a power cut only once the folder is flushed
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:   # a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass   # some filesystems refuse fsync on a directory; the renames are still atomic
    finally:
        os.close(fd)


class ClipStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.corrupt: List[str] = []   # keys whose file failed to load (regenerated on resume)
        self.reads: Counter = Counter()   # file opens per key, for the one-read-per-stage check
        self.flushes = 0                   # filesystem flushes (one per written batch)
        self._cache: Dict[str, Tuple[Tuple[int, int, int, int], Optional[ClipRecord]]] = {}

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    @staticmethod
    def _encode(meta: Dict[str, Any], features: Dict[str, np.ndarray], frames: Optional[np.ndarray]) -> bytes:
        return clipfile.encode(meta, features, frames)

    def write(self, key: str, meta: Dict[str, Any], features: Dict[str, np.ndarray],
              frames: Optional[np.ndarray] = None) -> Path:
        self._cache.pop(key, None)
        self.flushes += 1
        return atomic_write_bytes(self.path(key), self._encode(meta, features, frames))

    def write_many(self, items: Sequence[Tuple[str, Dict[str, Any], Dict[str, np.ndarray], Optional[np.ndarray]]]
                   ) -> List[Path]:
        """Write a batch of clips ``(key, meta, features, frames)`` with one flush: every
        temporary is written, the filesystem is flushed once (``os.sync``), each
        temporary's fsync then only collects write errors (ENOSPC, EIO), and the renames
        follow, then one flush of each folder. The crash guarantee is ``write``'s: a kill
        at any point leaves every clip's old file or its new one, and the temporaries of
        a killed writer are removed on resume."""
        if len(items) <= 1:
            return [self.write(*item) for item in items]
        staged: List[Tuple[Path, Path]] = []
        synced = 0   # staged temporaries whose data is known to be on disk
        try:
            for key, meta, features, frames in items:
                self._cache.pop(key, None)
                target = self.path(key)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = temporary_name(target)
                staged.append((tmp, target))
                with open(tmp, "wb") as f:
                    f.write(self._encode(meta, features, frames))
            _flush_filesystem(staged[0][0])
            self.flushes += 1
            for tmp, _ in staged:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)   # the data is already on disk: this reports a failed writeback
                finally:
                    os.close(fd)
                synced += 1
            for tmp, target in staged:
                os.replace(tmp, target)
        except BaseException:
            # Keep every clip whose data reached the disk before the failure (a full disk
            # on the batch's last clip loses only that clip); drop the rest.
            for i, (tmp, target) in enumerate(staged):
                if i < synced and tmp.exists():
                    os.replace(tmp, target)
                else:
                    tmp.unlink(missing_ok=True)
            for folder in sorted({target.parent for _, target in staged[:synced]}):
                _fsync_dir(folder)
            raise
        for folder in sorted({target.parent for _, target in staged}):
            _fsync_dir(folder)
        return [target for _, target in staged]

    def _mark_corrupt(self, key: str) -> None:
        if key not in self.corrupt:
            self.corrupt.append(key)

    def read(self, key: str, with_frames: bool = True) -> Optional[ClipRecord]:
        """The clip, or None when it is missing or fails its integrity check. A clip
        already read (and unchanged on disk) comes from memory; frames are not kept, so
        asking for them opens the file again."""
        path = self.path(key)
        ident = _identity(path)
        if ident is None:
            self._cache.pop(key, None)
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] == ident:
            record = cached[1]
            if record is None or not (with_frames and record.has_frames):
                return record
        record = self._load(key, path, with_frames)
        # frames stay out of the cache: a stage's frames of full-size clips would not fit in memory
        kept = record if record is None or record.frames is None else \
            ClipRecord(record.meta, record.features, None, has_frames=True)
        self._cache[key] = (ident, kept)
        return record

    def _load(self, key: str, path: Path, with_frames: bool) -> Optional[ClipRecord]:
        self.reads[key] += 1
        record = clipfile.decode(path, key, with_frames)
        if record is None:
            self._mark_corrupt(key)
        return record

    def forget(self) -> None:
        """Drop the records kept in memory (the next read of each clip opens its file)."""
        self._cache.clear()

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
        """Whether the clip's file keeps its frames (from the zip's listing, not the frames;
        a clip already read this stage is not opened again)."""
        record = self.read(key, with_frames=False)
        return record is not None and record.has_frames

    def read_many(self, keys: Iterable[str], with_frames: bool = False) -> Dict[str, ClipRecord]:
        out = {}
        for key in keys:
            record = self.read(key, with_frames=with_frames)
            if record is not None:
                out[key] = record
        return out
