"""The clip file's format, in one place: an uncompressed .npz holding the metadata
(JSON), each metric's per-clip features (``feat::<feature_key>``), optionally the
uint8 frames, and a sha256 per member (``integrity``). bench/generate/store.py writes and reads
the store through it; results/ reads stored features through it to re-check a run."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from common.files import PathLike

FEATURE_PREFIX = "feat::"
META = "meta"
FRAMES = "frames"
INTEGRITY = "integrity"


@dataclass
class ClipRecord:
    meta: Dict[str, Any]
    features: Dict[str, np.ndarray] = field(default_factory=dict)
    frames: Optional[np.ndarray] = None
    has_frames: bool = False    # the file holds frames (read or not)

    def __post_init__(self):
        self.has_frames = self.has_frames or self.frames is not None


def digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}|{array.shape}|".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def encode(meta: Dict[str, Any], features: Dict[str, np.ndarray], frames: Optional[np.ndarray]) -> bytes:
    arrays = {META: np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)}
    for name, value in features.items():
        arrays[FEATURE_PREFIX + name] = np.asarray(value)
    if frames is not None:
        arrays[FRAMES] = np.asarray(frames, dtype=np.uint8)
    integrity = {name: digest(value) for name, value in arrays.items()}
    arrays[INTEGRITY] = np.frombuffer(json.dumps(integrity, sort_keys=True).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)   # uncompressed: frames of generated video barely compress
    return buffer.getvalue()


def decode(path: PathLike, key: str, with_frames: bool = True) -> Optional[ClipRecord]:
    """The clip in ``path``, or None when it does not load, fails a digest or names
    another key (files from before the digests are checked by their zip CRCs only)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            digests = json.loads(bytes(data[INTEGRITY]).decode()) if INTEGRITY in data.files else None
            has_frames = FRAMES in data.files
            wanted = [n for n in data.files if n != INTEGRITY and (with_frames or n != FRAMES)]
            arrays = {n: data[n] for n in wanted}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError):
        return None
    if digests is not None and any(digests.get(n) != digest(a) for n, a in arrays.items()):
        return None
    try:
        meta = json.loads(bytes(arrays[META]).decode())
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key:
        return None
    features = {n[len(FEATURE_PREFIX):]: a for n, a in arrays.items() if n.startswith(FEATURE_PREFIX)}
    return ClipRecord(meta, features, arrays.get(FRAMES), has_frames=has_frames)
