"""The clip store: one file per clip, written atomically.

Each clip is an .npz holding its metadata (JSON), the per-clip features of every
metric (``feat::<feature_key>``) and, when asked, its lossless uint8 frames. A file
is written to a temporary name and renamed, so a kill leaves either the old file or
the new one, never a torn one; a file that fails to load (bad zip CRC, truncated) is
treated as missing and regenerated.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

FEATURE_PREFIX = "feat::"
_META = "meta"
_FRAMES = "frames"


@dataclass
class ClipRecord:
    meta: Dict[str, Any]
    features: Dict[str, np.ndarray] = field(default_factory=dict)
    frames: Optional[np.ndarray] = None


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
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)   # uncompressed: frames of generated video barely compress
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        return target

    def read(self, key: str, with_frames: bool = True) -> Optional[ClipRecord]:
        """The clip, or None when it is missing or fails its integrity check."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data[_META]).decode())
                features = {k[len(FEATURE_PREFIX):]: data[k] for k in data.files if k.startswith(FEATURE_PREFIX)}
                frames = data[_FRAMES] if with_frames and _FRAMES in data.files else None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError):
            if key not in self.corrupt:
                self.corrupt.append(key)
            return None
        if meta.get("key") != key:
            self.corrupt.append(key)
            return None
        return ClipRecord(meta, features, frames)

    def keys(self) -> List[str]:
        return sorted(str(p.relative_to(self.root))[:-4] for p in self.root.rglob("*.npz")
                      if not p.name.startswith("."))

    def remove_temporaries(self) -> int:
        """Temporary files left by a killed writer; they are never read."""
        count = 0
        for tmp in self.root.rglob(".*.tmp*"):
            tmp.unlink(missing_ok=True)
            count += 1
        return count

    def read_many(self, keys: Iterable[str], with_frames: bool = False) -> Dict[str, ClipRecord]:
        out = {}
        for key in keys:
            record = self.read(key, with_frames=with_frames)
            if record is not None:
                out[key] = record
        return out
